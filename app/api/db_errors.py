"""A database that cannot answer becomes `503 database_unavailable`, and its outage is noted."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core.errors import DatabaseUnavailable, app_error_response
from app.db.availability import is_unavailable
from app.state import AppState


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A database that cannot answer is a 503 (reported once per outage, no traceback);
    any other database error is a bug and stays a 500 with its traceback."""
    if not is_unavailable(exc):
        raise exc
    state: AppState | None = getattr(request.app.state, "vektor", None)  # None before start-up
    if state is not None:
        state.db_health.failed(exc)
    return app_error_response(DatabaseUnavailable())


def install_database_error_handler(app: FastAPI) -> None:
    """Map driver errors and pool timeouts through `database_error_handler`."""
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(PoolTimeout, database_error_handler)
