"""Engine and session factory (created by the lifespan, never at import time)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import NullPool, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings
from app.db.availability import Breaker, harden

Probe = Callable[[], Coroutine[Any, Any, None]]


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory databases."""
    if not url.startswith("sqlite"):
        return None
    prefix = url.split("///", 1)
    if len(prefix) != 2 or prefix[1] in ("", ":memory:"):
        return None
    return Path(prefix[1].split("?", 1)[0])


def sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_timeout_s: float = 10.0) -> None:
    """WAL for concurrent readers, enforced foreign keys, and a bounded wait instead of 'locked'."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(settings: Settings, *, breaker: Breaker | None = None) -> AsyncEngine:
    """Build the async engine for the configured database.

    Every wait is bounded by DB_TIMEOUT_SECONDS (connect, pool checkout, statement, SQLite's
    busy timeout), and SQL parameters never appear in an error (they hold password hashes
    and emails, and errors end up in error.log)."""
    url, timeout = settings.database_url, settings.db_timeout_seconds
    if settings.is_sqlite:
        path = sqlite_file(url)
        options: dict[str, Any] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            options["pool_timeout"] = timeout  # in-memory SQLite has no queue to wait in
        engine = create_async_engine(
            url, connect_args={"timeout": timeout}, hide_parameters=True, **options
        )
        event.listen(engine.sync_engine, "connect", partial(sqlite_pragmas, busy_timeout_s=timeout))
        return engine
    engine = create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=timeout,
        hide_parameters=True,
        connect_args={"timeout": timeout, "command_timeout": timeout},
    )
    harden(engine.sync_engine, breaker=breaker)
    return engine


def database_probes(settings: Settings, engine: AsyncEngine) -> tuple[Probe, Probe, Probe]:
    """`(probe, watch_probe, close)` for `DatabaseHealth`.

    `probe` goes through the engine like a request. `watch_probe` (used during an outage)
    must bypass the breaker and ask what requests need: on PostgreSQL a fresh connection on
    an engine of its own, on a SQLite file whether the write lock can be taken."""
    path = sqlite_file(settings.database_url) if settings.is_sqlite else None
    statement = "SELECT 1 FROM sqlite_master LIMIT 1" if settings.is_sqlite else "SELECT 1"

    async def probe() -> None:
        """One short statement through the pool."""
        async with engine.connect() as conn:
            await conn.exec_driver_sql(statement)

    if settings.is_sqlite:

        async def writable() -> None:
            """Take SQLite's write lock and let it go (a held lock is the SQLite outage)."""
            if path is not None:
                await to_thread.run_sync(_sqlite_write_probe, path, settings.db_timeout_seconds)
            else:
                await probe()

        async def nothing() -> None:
            """Nothing to close."""

        return probe, writable, nothing
    side = create_async_engine(
        settings.database_url,
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={"timeout": settings.db_timeout_seconds, "command_timeout": 2},
    )
    harden(side.sync_engine)

    async def fresh() -> None:
        """A new connection and one statement."""
        async with side.connect() as conn:
            await conn.exec_driver_sql(statement)

    return probe, fresh, side.dispose


def _sqlite_write_probe(path: Path, timeout_s: float) -> None:
    conn = sqlite3.connect(path, timeout=min(timeout_s, 1.0), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses read them)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """Yield one session and always close it."""
    async with factory() as session:
        yield session
