"""`create_app()` and the lifespan that owns every long-lived resource."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from loguru import logger
from starlette.types import ASGIApp

from app import __version__
from app.api.cors import JsonCORSMiddleware
from app.api.db_errors import install_database_error_handler
from app.api.docs import install_docs
from app.api.openai_errors import install_openai_errors
from app.api.openapi import install_openapi
from app.api.routers import (
    admin,
    api_keys,
    auth,
    chat,
    chat_tree,
    dashboard,
    files,
    mcp,
    openai_compat,
    system,
    users,
    ws,
)
from app.api.routers import sync as sync_routes
from app.core.api_keys import ApiKeyHasher
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.ratelimit import RateLimiter
from app.core.security import PasswordHasher, TokenCodec
from app.core.shutdown import StreamShutdown
from app.db.commits import CommitNotifier
from app.db.direct import DirectDb
from app.db.health import DatabaseHealth
from app.db.migrate import upgrade_head
from app.db.session import create_engine, create_session_factory, database_probes
from app.db.writer import TurnWriter
from app.observability.logging import configure_logging
from app.observability.middleware import RequestContextMiddleware, RequestObserver
from app.observability.runtime import Observability
from app.services.adapters import start_adapter_tools
from app.services.admin import AuditLog
from app.services.api_keys import ApiKeyAuthenticator, UsageThrottle
from app.services.chat.interrupted import InterruptedAnswers
from app.services.chat.pending import PendingWrites
from app.services.chat.registry import GenerationRegistry
from app.services.chat.spool import Spool, database_key
from app.services.files import open_storage, upload_limits
from app.services.llm import ModelRegistry
from app.services.mcp import McpPool, load_mcp_config
from app.services.pushbus import PushBus
from app.services.revocations import SessionRevocations
from app.services.stream_tickets import StreamTickets
from app.services.sync import SyncRuntime
from app.services.tools import Toolbox
from app.services.usage.api import ApiUsageLog
from app.state import AppState

SQLITE_SWITCH_INTERVAL_S = 0.0005
SAVE_GRACE_S = 2.0
DESCRIPTION = """
The backend of the Vektor AI assistant: streamed chat over Server-Sent Events, MCP tools,
JWT auth with device sessions, sync and backup. Use **Authorize** with your username (or
email) and password to try the protected routes.
"""


def build_state(settings: Settings) -> AppState:
    """Create the engine, session factory, hasher, token codec and rate limiter."""
    health = DatabaseHealth(timeout_s=settings.db_timeout_seconds)
    engine = create_engine(settings, breaker=health)
    probe, watch_probe, close_probes = database_probes(settings, engine)
    health.attach(probe=probe, watch_probe=watch_probe, close=close_probes)
    commits = CommitNotifier()  # the one "changes committed" path: request sessions, DirectDb
    session_factory = create_session_factory(engine)
    commits.attach(session_factory)
    db = DirectDb(
        engine,
        timeout_s=settings.db_timeout_seconds,
        commits=commits,
        health=health,
        pool_size=settings.db_pool_size,
    )
    return AppState(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        db=db,
        db_health=health,
        hasher=PasswordHasher(rounds=settings.bcrypt_rounds),
        tokens=TokenCodec(
            key=settings.signing_key(),
            access_ttl=timedelta(minutes=settings.access_token_expire_minutes),
            refresh_ttl=timedelta(days=settings.refresh_token_expire_days),
        ),
        limiter=RateLimiter(redis_url=settings.redis_url, enabled=settings.rate_limit_enabled),
        api_keys=ApiKeyAuthenticator(
            db=db, hasher=ApiKeyHasher(signing_key=settings.signing_key()), throttle=UsageThrottle()
        ),
        shutdown=StreamShutdown(grace_s=settings.shutdown_grace_seconds),
    )


async def _recover_turns(state: AppState) -> None:
    """Before serving: replay the spool, then end answers a dead process left `streaming`."""
    settings = state.settings
    state.pending_writes = PendingWrites(
        writer=state.turn_writer,
        spool=Spool(settings.data_dir / "spool", database=database_key(settings.database_url)),
        retry_s=settings.turn_write_retry_seconds,
        health=state.db_health,
    )
    unsaved = await state.pending_writes.replay()  # first: a spooled finish beats "interrupted"
    await state.pending_writes.start()
    state.interrupted = InterruptedAnswers(
        db=state.db,
        writer=state.turn_writer,
        generations=state.generations,
        max_generation_s=settings.max_generation_seconds,
        busy=state.pending_writes.busy,
    )
    await state.interrupted.start(skip=unsaved)


class VektorApi(FastAPI):
    """FastAPI with the request-context middleware outside the stack FastAPI builds.

    Outermost, it sees the server's own `send` (a stream's frames go straight to it,
    app/observability/middleware.py), every response including a 500 carries the
    request id, and CORS is entered only by requests with an `Origin` header: one layer
    for an API client where `add_middleware` would stack two inside FastAPI's own."""

    observers: list[RequestObserver]
    cors_options: dict[str, Any] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        """FastAPI's stack wrapped in the request context (and CORS when configured)."""
        inner = super().build_middleware_stack()
        options = self.cors_options
        cors = JsonCORSMiddleware(inner, **options) if options is not None else None
        return RequestContextMiddleware(inner, self.observers, cors=cors)


def use_docstring_summaries(router: APIRouter) -> None:
    """Make each route's one-line docstring its OpenAPI summary."""
    for route in router.routes:
        if isinstance(route, APIRoute) and not route.summary and route.description:
            route.summary = route.description.strip().splitlines()[0]


OPENAPI_TAGS = [
    {"name": "auth", "description": "Register, log in, refresh, log out, device sessions."},
    {"name": "users", "description": "The user's profile, password and preferences."},
    {"name": "chat", "description": "Streamed answers, re-attach, cancel, conversation history."},
    {"name": "files", "description": "Uploads: images, documents and text for the models."},
    {
        "name": "openai",
        "description": "The OpenAI-compatible API (`/v1`): the OpenAI SDKs and clients work "
        "unchanged with an API key; errors in OpenAI's shape.",
    },
    {"name": "sync", "description": "Changes across devices, live pushes, backup and restore."},
    {"name": "mcp", "description": "MCP servers and their tools (admin only)."},
    {"name": "admin", "description": "Accounts and the audit log (admin only)."},
    {"name": "system", "description": "Health, status, info, endpoints, metrics, dashboard."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application (resources are opened by its lifespan)."""
    settings = settings or get_settings()
    configure_logging(settings)
    observability = Observability()
    if settings.is_sqlite:
        # aiosqlite runs every statement on a thread; with CPython's default 5 ms GIL switch
        # interval a busy event loop makes each statement wait up to 5 ms for its result.
        sys.setswitchinterval(SQLITE_SWITCH_INTERVAL_S)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.db_auto_migrate:
            await to_thread.run_sync(upgrade_head, settings.database_url)
        state = build_state(settings)
        state.bus = PushBus(redis_url=settings.redis_url)
        state.revocations = SessionRevocations(bus=state.bus)
        state.revocations.install(state.db.commits)
        state.stream_tickets = StreamTickets(
            db=state.db, tokens=state.tokens, redis_url=settings.redis_url
        )
        state.sync = SyncRuntime(
            session_factory=state.session_factory, bus=state.bus, commits=state.db.commits
        )
        await state.sync.start()
        await state.bus.start()
        state.capabilities += ["sync", "sync_stream", "backup"]
        state.file_storage = await open_storage(settings)
        state.upload_limits = upload_limits(settings)
        state.capabilities += ["files", f"files_{state.file_storage.kind}"]
        state.audit = AuditLog(
            session_factory=state.session_factory, retention_days=settings.audit_retention_days
        )
        await state.audit.start()
        state.capabilities += ["admin_users", "audit_log"]
        state.turn_writer = TurnWriter(db=state.db)
        await state.turn_writer.start()
        state.models = ModelRegistry.load(settings.config_dir)
        await state.models.start()
        state.generations = GenerationRegistry(
            redis_url=settings.redis_url,
            max_generation_s=settings.max_generation_seconds,
            ping_s=settings.sse_ping_seconds,
            retention_s=settings.generation_retention_seconds,
        )
        await state.generations.start()
        await _recover_turns(state)
        state.adapters = await start_adapter_tools(settings)
        state.mcp = McpPool(load_mcp_config(settings.config_dir))
        await state.mcp.start()
        state.tools = Toolbox([state.mcp, state.adapters])  # the tool sources, MCP first
        state.health_probes["mcp"] = state.mcp.health_probe
        state.capabilities += ["chat", "sse", "reattach", "cancel"]
        state.api_usage = ApiUsageLog(session_factory=state.session_factory)
        state.capabilities += ["openai_compat"]
        app.state.vektor = state
        observability.start(engine=state.engine, mcp=state.mcp)
        # everything built so far lives as long as the process: move it out of the collector's
        # view, so a full collection later scans only what requests created (measured: a full
        # collection of the startup heap took ~100 ms, stalling every open stream)
        gc.collect()
        gc.freeze()
        logger.info(
            "Vektor Backend {} started ({} database, environment {})",
            __version__,
            state.engine.dialect.name,
            settings.environment.value,
        )
        # the server's SIGTERM/SIGINT handlers also start ending open streams with an event
        restore_signals = state.shutdown.install_signal_handlers()
        try:
            yield
        finally:
            restore_signals()
            await observability.aclose()
            state.shutdown.close_all()  # any stream still open (e.g. no signal was seen)
            # answers still running get the rest of SHUTDOWN_GRACE_SECONDS (at least a
            # moment), then are cancelled and save their partial text
            await state.generations.aclose(grace_s=max(SAVE_GRACE_S, state.shutdown.remaining()))
            await state.interrupted.aclose()
            await state.pending_writes.aclose()  # what is still unsaved goes to the spool
            await state.audit.aclose()  # what is queued is written (or logged as lost)
            if state.api_usage is not None:
                await state.api_usage.drain()
            await state.turn_writer.aclose()
            await state.db.aclose()
            await state.sync.aclose()
            await state.bus.aclose()
            await state.stream_tickets.aclose()
            await state.file_storage.aclose()
            await state.mcp.aclose()
            await state.adapters.aclose()
            await state.models.aclose()
            await state.db_health.aclose()
            await state.engine.dispose()
            gc.unfreeze()  # collectable again (an app in a test process is not the last)
            logger.info("Vektor Backend stopped")

    app = VektorApi(
        title="Vektor Backend",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # install_docs serves both pages with local assets
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,  # the docs' order (the routes' order is the hot path's)
    )
    install_error_handlers(app)
    install_database_error_handler(app)
    install_openai_errors(app)  # after every handler: it wraps them for /v1
    # chat first: a request is matched against the routes in order (~1.5 µs per route with
    # FastAPI's included routers), and chat streams are the hot path; the docs pages last
    for router in (
        chat.router,
        openai_compat.router,
        chat_tree.router,
        auth.router,
        users.router,
        api_keys.router,
        files.router,
        mcp.router,
        admin.router,
        system.router,
        dashboard.router,
    ):
        use_docstring_summaries(router)
        app.include_router(router)
    use_docstring_summaries(sync_routes.router)
    app.include_router(sync_routes.router)
    app.include_router(ws.router)
    install_docs(app)
    install_openapi(app)
    app.observers = observability.observers
    if settings.backend_cors_origins:
        app.cors_options = {
            "allow_origins": settings.backend_cors_origins,
            "allow_credentials": "*" not in settings.backend_cors_origins,
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "expose_headers": ["X-Request-ID", "Retry-After"],
        }
    app.state.observability = observability
    return app
