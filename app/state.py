"""The resources the lifespan owns, reachable from `request.app.state.vektor`.

Only the composition layer (`app/main.py`, `app/api/deps.py`, `deps_system.py`) reads it:
services are built from the few collaborators they use, never from this bag.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.ratelimit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec
from app.core.shutdown import StreamShutdown
from app.db.direct import DirectDb
from app.db.health import DatabaseHealth
from app.db.writer import TurnWriter
from app.services.adapters import AdapterTools
from app.services.admin import AuditLog
from app.services.api_keys import ApiKeyAuthenticator
from app.services.chat.interrupted import InterruptedAnswers
from app.services.chat.pending import PendingWrites
from app.services.chat.registry import GenerationRegistry
from app.services.files import Storage, UploadLimits
from app.services.llm.registry import ModelRegistry
from app.services.mcp.pool import McpPool
from app.services.pushbus import PushBus
from app.services.revocations import SessionRevocations
from app.services.stream_tickets import StreamTickets
from app.services.sync.runtime import SyncRuntime
from app.services.system import HealthProbe
from app.services.tools import Toolbox
from app.services.usage.api import ApiUsageLog


@dataclass
class AppState:
    """Everything created at start-up and closed at shutdown.

    The fields without a default are set by the lifespan as it starts each part
    (`field(init=False)`: reading one before the lifespan set it is an AttributeError)."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    db: DirectDb  # the hot path's one-hop units of work (app/db/direct.py)
    db_health: DatabaseHealth  # outage state, bounded probe, one log line per outage
    hasher: PasswordHasher
    tokens: TokenCodec
    limiter: RateLimiter
    api_keys: ApiKeyAuthenticator  # `vk-` bearers (app/services/api_keys.py)
    models: ModelRegistry = field(init=False)
    mcp: McpPool = field(init=False)
    generations: GenerationRegistry = field(init=False)
    tools: Toolbox = field(init=False)  # MCP pool + adapters, as the agent sees them
    adapters: AdapterTools = field(init=False)  # config/app/*.json
    turn_writer: TurnWriter = field(init=False)  # group commit
    pending_writes: PendingWrites = field(init=False)  # retry, spool
    interrupted: InterruptedAnswers = field(init=False)
    sync: SyncRuntime = field(init=False)  # push hub, tombstone pruner
    bus: PushBus = field(init=False)  # the worker's one Redis pub/sub connection
    revocations: SessionRevocations = field(init=False)
    stream_tickets: StreamTickets = field(init=False)
    file_storage: Storage = field(init=False)  # uploads: local directory or S3-compatible
    upload_limits: UploadLimits = field(init=False)  # and the worker's upload-check gate
    audit: AuditLog = field(init=False)  # the audit log's writer and pruner
    api_usage: ApiUsageLog | None = None  # usage rows of stateless /v1 answers
    # chat requests in their start-up work at once (app/api/deps.py: start_chat)
    chat_admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    started_at: float = field(default_factory=time.time)
    capabilities: list[str] = field(default_factory=list)
    # optional parts (MCP pool, Redis, ...) register a probe; failing ones make health "degraded"
    health_probes: dict[str, HealthProbe] = field(default_factory=dict)
    # ends open streams with a terminal event when the server shuts down (app/core/shutdown.py)
    shutdown: StreamShutdown = field(default_factory=StreamShutdown)
