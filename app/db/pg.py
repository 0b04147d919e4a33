"""The hot path's one-statement units on PostgreSQL: prepared statements on a raw asyncpg pool.

Through SQLAlchemy's async engine a statement costs a pool checkout with its pre-ping (one
round trip), BEGIN and COMMIT (two more) and two greenlet switches; a chat turn's first
write was six round trips, the session check two. `PgUnits` runs a Core statement built once
in app/repositories as what it compiles to, on an asyncpg pool of its own (from the same
DATABASE_URL), in autocommit: one round trip, prepared once per connection (asyncpg's
statement cache). The statement is compiled by the engine's own dialect, and values go in
and come out through the same type processors and JSON codecs SQLAlchemy uses, so a row
reads the same on both paths and the SQL stays defined once.

Failures look exactly like the engine's: every wait is bounded by DB_TIMEOUT_SECONDS
(acquire, connect, statement), errors are SQLAlchemy's `DBAPIError` family without
parameters (`is_unavailable` tells outages from bugs), a connection that failed or timed out
is dropped at once (never a goodbye to a frozen server), and the outage breaker
(app/db/health.py) is told of failures and answers "unavailable" at once while it is open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import Float
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.url import URL
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.sqltypes import NumericCommon
from sqlalchemy.sql.type_api import TypeEngine

from app.db.availability import Breaker, is_unavailable

_TRANSPORT_ERRORS = (OSError, TimeoutError)
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A Core statement as asyncpg runs it: SQL, argument order and type processors."""

    sql: str
    names: tuple[str, ...]
    static: dict[str, Any]  # values fixed in the statement (literals became parameters)
    binds: tuple[Processor, ...]
    keys: tuple[str, ...]
    results: tuple[Processor, ...]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for `params`."""
        values = {**self.static, **params}
        return [
            value if process is None else process(value)
            for value, process in zip(
                (values[name] for name in self.names), self.binds, strict=True
            )
        ]

    def row(self, record: asyncpg.Record | None) -> dict[str, Any] | None:
        """A record's values by column name, as SQLAlchemy would have read them."""
        if record is None:
            return None
        return {
            key: value if process is None else process(value)
            for key, value, process in zip(self.keys, record.values(), self.results, strict=True)
        }


# what asyncpg reports for a column of these types (its result processors ask for it)
_FLOAT8_OID = 701
_NUMERIC_OID = 1700


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """The processor SQLAlchemy would apply to a result column of `type_`.

    Numeric types choose theirs by the column's PostgreSQL type, which only a live cursor
    reports; a `Float` column is float8 and a `Numeric` one numeric."""
    coltype = None
    if isinstance(type_, NumericCommon):
        coltype = _FLOAT8_OID if isinstance(type_, Float) else _NUMERIC_OID
    return cast(Processor, type_._cached_result_processor(dialect, coltype))


def prepare(statement: Any, dialect: Dialect) -> Prepared:
    """Compile `statement` with the engine's dialect (numbered `$n` parameters)."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    processors = compiled._bind_processors
    columns = compiled._result_columns
    return Prepared(
        sql=compiled.string,
        names=names,
        static={
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if not compiled.binds[name].required
        },
        binds=tuple(cast(Processor, processors.get(name)) for name in names),
        keys=tuple(column.keyname for column in columns),
        results=tuple(_result_processor(column.type, dialect) for column in columns),
    )


class PgUnits:
    """One-statement units on an asyncpg pool: `first` (a read), `execute` (autocommit)."""

    def __init__(
        self,
        url: URL,
        *,
        dialect: Dialect,
        timeout_s: float,
        pool_size: int,
        breaker: Breaker | None = None,
    ) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._dialect = dialect
        self._timeout_s = timeout_s
        self._pool_size = pool_size
        self._breaker = breaker
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._prepared: dict[int, tuple[Any, Prepared]] = {}
        self._expiring: set[asyncio.Task[None]] = set()

    async def first(self, statement: Any, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of `statement` by column name (None without one)."""
        prepared = self._prepare(statement)
        record = await self._run(prepared, params)
        return prepared.row(record)

    async def _run(self, prepared: Prepared, params: Mapping[str, Any]) -> asyncpg.Record | None:
        if self._breaker is not None and self._breaker.down:  # known outage: answer now
            raise self._error(prepared.sql, OSError("database unavailable (outage in progress)"))
        pool = self._pool or await self._open()
        args = prepared.args(params)
        try:
            conn = await pool.acquire(timeout=self._timeout_s)
        except Exception as exc:
            raise self._failed(prepared.sql, exc) from exc
        try:
            record: asyncpg.Record | None = await conn.fetchrow(
                prepared.sql, *args, timeout=self._timeout_s
            )
        except BaseException as exc:  # a cancelled statement leaves the connection unusable too
            if _drops_connection(exc):
                # a frozen server would never answer a goodbye (a closed connection has
                # already left the pool: nothing to end)
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
            if isinstance(exc, Exception):
                raise self._failed(prepared.sql, exc) from exc
            raise
        finally:
            await pool.release(conn, timeout=self._timeout_s)
        return record

    def _prepare(self, statement: Any) -> Prepared:
        cached = self._prepared.get(id(statement))
        if cached is None or cached[0] is not statement:
            cached = (statement, prepare(statement, self._dialect))
            self._prepared[id(statement)] = cached
        return cached[1]

    async def _open(self) -> asyncpg.Pool:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,  # connect on first use: a database that is down delays nothing
                    max_size=self._pool_size,
                    timeout=self._timeout_s,
                    command_timeout=self._timeout_s,
                    init=self._setup_connection,
                    reset=_keep,  # units leave no session state: no reset round trip
                )
        return self._pool

    async def _setup_connection(self, conn: asyncpg.Connection) -> None:
        """The JSON codecs of SQLAlchemy's asyncpg dialect (JSON columns read the same)."""
        adapted = _Adapted(conn)
        dialect: Any = self._dialect
        await dialect.setup_asyncpg_json_codec(adapted)
        await dialect.setup_asyncpg_jsonb_codec(adapted)

    def expire(self) -> None:
        """Replace every pooled connection (after an outage: they may be dead)."""
        if self._pool is not None:
            task = asyncio.get_running_loop().create_task(self._pool.expire_connections())
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    async def aclose(self) -> None:
        """Close the pool (at most DB_TIMEOUT_SECONDS; then its connections are dropped)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self._timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pool.terminate()

    def _failed(self, sql: str, exc: Exception) -> sa_exc.DBAPIError:
        error = self._error(sql, exc)
        if self._breaker is not None and is_unavailable(error):
            self._breaker.failed(error)
        return error

    def _error(self, sql: str, exc: Exception) -> sa_exc.DBAPIError:
        """`exc` as the engine would have raised it (SQLAlchemy's class, no parameters)."""
        dbapi: Any = self._dialect.loaded_dbapi
        transport = isinstance(exc, _TRANSPORT_ERRORS)
        if transport:
            kind = "timed out" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            translated = dbapi.OperationalError(f"database statement {kind}", exc)
        else:
            translated = dbapi.Error(str(exc), exc)
            for cls in type(exc).__mro__:
                mapped = dbapi._asyncpg_error_translate.get(cls)
                if mapped is not None:
                    translated = mapped(str(exc), exc)
                    break
        error = sa_exc.DBAPIError.instance(
            sql,
            None,
            translated,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=transport,
            dialect=self._dialect,
        )
        assert isinstance(error, sa_exc.DBAPIError)
        return error


class _Adapted:
    """What the dialect's codec set-up expects: an object with the raw connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._connection = conn


def _drops_connection(exc: BaseException) -> bool:
    """Whether the connection cannot be trusted after `exc` (timed out, broken, cancelled):
    anything but an error the server reported on a healthy connection."""
    return not isinstance(exc, asyncpg.PostgresError) or isinstance(
        exc, asyncpg.PostgresConnectionError
    )


async def _keep(_conn: asyncpg.Connection) -> None:
    """A released connection needs no reset (no transaction, no session settings)."""
