"""Short units of database work on the chat hot path, in as few hand-offs as possible.

Through SQLAlchemy's async layer every statement is its own await, and on aiosqlite each of
those is several thread hops; measured here, the session check cost ~1 ms and a chat turn's
first write ~4 ms, most of it hand-off overhead rather than SQL. `DirectDb` runs a whole
unit of work, written as plain synchronous SQLAlchemy Core on a `Connection`:

* **SQLite file**: a unit that can run at once runs *inline*, on the event loop, on a
  connection whose busy timeout is 0, so it never waits: a point read or a turn's writes
  take 0.1-0.3 ms of SQLite and Core, less than handing them to a thread (a worker thread
  waits for the GIL while the loop is busy, ~0.5 ms per hand-off here). If SQLite answers
  "busy" (another process or connection holds the write lock), the unit is rolled back
  and rerun on a thread with the normal timeout. Large batches and bursts (the caller
  decides) go to the thread directly.
  The inline connection never checkpoints the WAL itself (a checkpoint syncs the file);
  every `CHECKPOINT_EVERY` inline commits a passive checkpoint runs on the write thread.
* **Anything else** (PostgreSQL, in-memory SQLite): on the async engine through
  `run_sync`, SQLAlchemy's greenlet bridge; reads in autocommit (no BEGIN/ROLLBACK).
* **PostgreSQL's hot units** (`first`: the session check; `write_single`: a turn's first
  rows in one data-modifying statement): prepared statements on a raw asyncpg pool, in
  autocommit, one round trip each (app/db/pg.py).

What a unit's repositories note in `Connection.info` (change numbers for sync push) goes to
the commit notifier (app/db/commits.py) once the unit has committed, never before.

Everything else keeps using the request's `AsyncSession` (services own the transaction).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import Connection, Engine, event, make_url
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.commits import CommitNotifier
from app.db.health import DatabaseHealth
from app.db.pg import PgUnits
from app.db.session import sqlite_file, sqlite_pragmas

T = TypeVar("T")
Work = Callable[[Connection], T]
READ_THREADS = 2
CHECKPOINT_EVERY = 200
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


@dataclass(frozen=True, slots=True)
class SingleStatement:
    """A unit of work that is one statement (run in autocommit where that is faster):
    `noted(info, first row by column)` notes what the commit notifier must announce."""

    statement: Any  # a Core statement built once (app/repositories)
    params: dict[str, Any]
    noted: Callable[[dict[str, Any], Mapping[Any, Any] | None], None]


class DirectDb:
    """Runs synchronous Core units of work: `await db.read(fn)`, `await db.write(fn)`."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        timeout_s: float = 10.0,
        commits: CommitNotifier | None = None,
        health: DatabaseHealth | None = None,
        pool_size: int = 5,
    ) -> None:
        self.engine = engine
        self.commits = commits if commits is not None else CommitNotifier()
        self._pg: PgUnits | None = None
        if engine.dialect.driver == "asyncpg":
            self._pg = PgUnits(
                engine.url,
                dialect=engine.dialect,
                timeout_s=timeout_s,
                pool_size=pool_size,
                breaker=health,
            )
            if health is not None:  # pooled connections may not have survived an outage
                health.on_recovered(self._pg.expire)
        # reads need no transaction: no BEGIN/ROLLBACK round trips around them
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        url = engine.url
        is_file = url.get_backend_name() == "sqlite" and sqlite_file(str(url)) is not None
        self._sqlite = SqliteUnits(str(url), timeout_s=timeout_s) if is_file else None

    @property
    def inline(self) -> bool:
        """True on a SQLite file (units run inline first, then on threads)."""
        return self._sqlite is not None

    async def read(self, work: Work[T]) -> T:
        """Run `work` outside any transaction it would have to commit."""
        if self._sqlite is None:
            async with self._reads.connect() as conn:
                return await conn.run_sync(work)
        return await self._sqlite.read(work)

    async def first(self, statement: Any, params: dict[str, Any]) -> Mapping[Any, Any] | None:
        """The first row of a one-statement read (a Core statement built once), by column."""
        if self._pg is not None:
            return await self._pg.first(statement, params)
        return await self.read(partial(_first, statement, params))

    async def write(self, work: Work[T], *, inline: bool = True) -> T:
        """Run `work` in one transaction and commit it (rolled back if `work` raises); then
        announce what it noted.

        `inline=False` (a large batch, a burst) keeps it off the event loop on SQLite."""
        notes: dict[str, Any] = {}
        unit = partial(self._noting, work, notes)
        if self._sqlite is None:
            async with self.engine.begin() as conn:
                result = await conn.run_sync(unit)
        else:
            result = await self._sqlite.write(unit, inline=inline)
        self.commits.committed(notes)
        return result

    @property
    def runs_single(self) -> bool:
        """Whether `write_single` has a faster path than a transaction of its own."""
        return self._pg is not None

    async def write_single(self, single: SingleStatement) -> None:
        """Run a one-statement unit (in autocommit where it can) and announce what it noted."""
        statement, params = single.statement, single.params
        if self._pg is None:
            await self.write(lambda conn: single.noted(conn.info, _first(statement, params, conn)))
            return
        row = await self._pg.first(statement, params)
        notes: dict[str, Any] = {}
        single.noted(notes, row)
        self.commits.committed(notes)

    def _noting(self, work: Work[T], notes: dict[str, Any], conn: Connection) -> T:
        """Run `work`; keep its notes aside (announced once the transaction committed)."""
        self.commits.forget(conn.info)  # a failed earlier unit's leftovers
        notes.clear()  # a unit SQLite was too busy for runs again, elsewhere
        result = work(conn)
        notes.update(self.commits.take(conn.info))
        return result

    def close(self) -> None:
        """Finish queued work and close the connections (see `aclose` on PostgreSQL)."""
        if self._sqlite is not None:
            self._sqlite.close()

    async def aclose(self) -> None:
        """Close the asyncpg pool, then everything `close` closes (on a thread)."""
        if self._pg is not None:
            await self._pg.aclose()
        await asyncio.to_thread(self.close)


class SqliteUnits:
    """A SQLite file: an inline connection that never waits, and threads that may."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        sync_url = make_url(url).set(drivername="sqlite")
        # a thread waits at most `timeout_s` for a lock (DB_TIMEOUT_SECONDS), then fails
        # with "database is locked" (a 503); parameters never appear in an error
        self.threaded = create_sync_engine(
            sync_url,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
            pool_size=READ_THREADS + 1,
            max_overflow=0,
            pool_timeout=timeout_s,
            hide_parameters=True,
        )
        event.listen(self.threaded, "connect", partial(sqlite_pragmas, busy_timeout_s=timeout_s))
        self._inline_engine = create_sync_engine(
            sync_url,
            connect_args={"timeout": 0, "check_same_thread": False},
            hide_parameters=True,
        )
        event.listen(self._inline_engine, "connect", _inline_pragmas)
        self._inline: Connection | None = None
        self._reader = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="db-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="db-write")
        self._commits_since_checkpoint = 0

    async def read(self, work: Work[T]) -> T:
        """Inline; on a thread if SQLite is busy (also while opening the connection)."""
        try:
            conn = self._connection()
            try:
                return work(conn)
            finally:
                conn.rollback()
        except OperationalError as exc:
            if not is_busy(exc):
                raise
        return await _run_on(self._reader, partial(_read, self.threaded, work))

    async def write(self, work: Work[T], *, inline: bool) -> T:
        """Inline when `inline` and SQLite is free; else on the write thread."""
        if inline:
            try:  # opening the connection may find the file busy too (it never waits)
                conn = self._connection()
                with conn.begin():
                    result = work(conn)
            except OperationalError as exc:
                if not is_busy(exc):
                    raise
            else:
                self._committed_inline()
                return result
        return await _run_on(self._writer, partial(_write, self.threaded, work))

    def _connection(self) -> Connection:
        if self._inline is None or self._inline.closed or self._inline.invalidated:
            self._inline = self._inline_engine.connect()
        return self._inline

    def _committed_inline(self) -> None:
        self._commits_since_checkpoint += 1
        if self._commits_since_checkpoint >= CHECKPOINT_EVERY:
            self._commits_since_checkpoint = 0
            self._writer.submit(_checkpoint, self.threaded)

    def close(self) -> None:
        """Stop the threads after their queued work, close every connection."""
        self._reader.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        if self._inline is not None:
            self._inline.close()
        self._inline_engine.dispose()
        self.threaded.dispose()


def is_busy(exc: OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock (worth a retry)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


def _inline_pragmas(dbapi_connection: Any, record: Any) -> None:
    """The usual pragmas, but never wait for a lock and never checkpoint on commit."""
    sqlite_pragmas(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


async def _run_on(pool: ThreadPoolExecutor, call: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, call)


def _first(statement: Any, params: dict[str, Any], conn: Connection) -> Mapping[Any, Any] | None:
    row = conn.execute(statement, params).first()
    return None if row is None else row._mapping


def _read(engine: Engine, work: Work[T]) -> T:
    with engine.connect() as conn:
        return work(conn)


def _write(engine: Engine, work: Work[T]) -> T:
    with engine.begin() as conn:
        return work(conn)


def _checkpoint(engine: Engine) -> None:
    """Copy the WAL back into the database file without blocking anyone (PASSIVE)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    except (OperationalError, sqlite3.Error) as exc:
        logger.warning("WAL checkpoint failed: {}", exc)
