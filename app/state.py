"""The resources the lifespan owns, reachable from `request.app.state.vektor`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.ratelimit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec
from app.core.shutdown import StreamShutdown
from app.db.direct import DirectDb
from app.db.health import DatabaseHealth


@dataclass
class AppState:
    """Everything created at start-up and closed at shutdown."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    db: DirectDb  # the hot path's one-hop units of work (app/db/direct.py)
    db_health: DatabaseHealth  # outage state, bounded probe, one log line per outage
    hasher: PasswordHasher
    tokens: TokenCodec
    limiter: RateLimiter
    models: Any = None  # app.services.llm.registry.ModelRegistry
    mcp: Any = None  # app.services.mcp.pool.McpPool
    generations: Any = None  # app.services.chat.registry.GenerationRegistry
    tools: Any = None  # app.services.chat.tools.ToolExecutor
    adapters: Any = None  # app.services.adapters.AdapterTools (config/app/*.json)
    turn_writer: Any = None  # app.db.writer.TurnWriter (group commit)
    pending_writes: Any = None  # app.services.chat.pending.PendingWrites (retry, spool)
    interrupted: Any = None  # app.services.chat.interrupted.InterruptedAnswers
    sync: Any = None  # app.services.sync.SyncRuntime (push hub, tombstone pruner)
    bus: Any = None  # app.services.pushbus.PushBus (the worker's one Redis pub/sub connection)
    revocations: Any = None  # app.services.revocations.SessionRevocations
    stream_tickets: Any = None  # app.services.stream_tickets.StreamTickets
    # chat requests in their start-up work at once (app/api/deps.py: admit_chat)
    chat_admission: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    started_at: float = field(default_factory=time.time)
    capabilities: list[str] = field(default_factory=list)
    # optional parts (MCP pool, Redis, ...) register a probe; failing ones make health "degraded"
    health_probes: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    # ends open streams with a terminal event when the server shuts down (app/core/shutdown.py)
    shutdown: StreamShutdown = field(default_factory=StreamShutdown)
