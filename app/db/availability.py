"""A dead or frozen database is a quick, recognisable failure, never a hang or a traceback.

`harden(engine, timeout_s=...)` makes every way an asyncpg engine can fail on an unreachable
server raise a SQLAlchemy `OperationalError` within the timeout: asyncpg lets a refused or
timed-out connect and a timed-out statement escape as bare `OSError`/`TimeoutError`, and a
pre-ping on a frozen server would wait for the statement timeout and then again for a new
connection. A timed-out connection is closed at once (a graceful close would wait on the
frozen server too). `is_unavailable(exc)` tells such failures from bugs (a syntax error, a
constraint violation): the former become `503 database_unavailable`, the latter stay 500s.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, Protocol

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext

# SQLite result codes that mean "cannot use the database now", not "bad statement"
_SQLITE_UNAVAILABLE = {
    5,  # BUSY (another connection holds the lock past the busy timeout)
    6,  # LOCKED
    7,  # NOMEM
    8,  # READONLY
    10,  # IOERR
    11,  # CORRUPT
    13,  # FULL
    14,  # CANTOPEN
    15,  # PROTOCOL
    26,  # NOTADB
}
# PostgreSQL SQLSTATEs of the same kind: connection exceptions, insufficient resources,
# operator intervention (shutdown, crash recovery, statement timeout)
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57")
_TRANSPORT_ERRORS = (OSError, TimeoutError)  # TimeoutError is an OSError; said for clarity


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached or used right now."""
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection within the timeout
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return True
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_UNAVAILABLE
    if isinstance(orig, sqlite3.Error):  # a SQLite error without a code: judge by its kind
        return isinstance(orig, sqlite3.OperationalError) and "locked" in str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate.startswith(_PG_UNAVAILABLE_CLASSES)
    return isinstance(exc, sa_exc.OperationalError)


class Breaker(Protocol):
    """What `harden` reports to and asks (app.db.health.DatabaseHealth)."""

    @property
    def down(self) -> bool:
        """True while an outage is known: connecting is not even tried."""

    def failed(self, exc: BaseException) -> None:
        """A failure that means the database is unavailable."""


def harden(engine: Engine, *, breaker: Breaker | None = None) -> None:
    """Make an asyncpg engine fail fast and recognisably, and tell `breaker` about outages
    (SQLite needs none of this: its busy timeout is set in `app.db.session`)."""
    if engine.dialect.driver != "asyncpg":
        return
    dialect: Any = engine.dialect
    dbapi: Any = dialect.loaded_dbapi

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        """Connect; a refused or timed-out connect is an OperationalError like any other."""
        if breaker is not None and breaker.down:  # known outage: answer now, do not pile up
            raise dbapi.OperationalError("database unavailable (outage in progress)")
        try:
            return dbapi.connect(*cargs, **cparams)
        except _TRANSPORT_ERRORS as exc:
            raise dbapi.OperationalError(_describe(exc, "connect"), exc) from exc

    ping = dialect.do_ping

    def _ping(dbapi_connection: Any) -> bool:
        """Pre-ping; on a frozen server fail now instead of also trying a new connection."""
        if breaker is not None and breaker.down:
            _abort(dbapi_connection)
            raise sa_exc.OperationalError(
                "pre-ping", None, dbapi.OperationalError("database unavailable (outage)")
            )
        try:
            return bool(ping(dbapi_connection))
        except _TRANSPORT_ERRORS as exc:
            _abort(dbapi_connection)
            error = sa_exc.OperationalError(
                "pre-ping", None, dbapi.OperationalError(_describe(exc, "ping"), exc)
            )
            if breaker is not None:
                breaker.failed(error)
            raise error from exc

    dialect.do_ping = _ping

    @event.listens_for(engine, "handle_error")
    def _error(context: ExceptionContext) -> BaseException | None:
        """Report outages; a statement that timed out also drops its connection."""
        original = context.original_exception
        if not isinstance(original, _TRANSPORT_ERRORS):
            reported = context.sqlalchemy_exception
            if breaker is not None and reported is not None and is_unavailable(reported):
                breaker.failed(reported)
            return None
        if context.connection is not None:
            with contextlib.suppress(Exception):
                _abort(context.connection.connection.dbapi_connection)
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = not isinstance(original, TimeoutError)
        error = sa_exc.OperationalError(
            context.statement,
            None,
            dbapi.OperationalError(_describe(original, "statement"), original),
            hide_parameters=True,
            connection_invalidated=True,
        )
        if breaker is not None:
            breaker.failed(error)
        return error


def _describe(exc: BaseException, step: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"database {step} timed out"
    return f"database {step} failed: {exc}"


def _abort(dbapi_connection: Any) -> None:
    """Close the driver's socket without a goodbye the server would have to answer."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    terminate = getattr(driver, "terminate", None)
    if callable(terminate):
        terminate()
