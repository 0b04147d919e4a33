"""A database error's traceback never prints the statement's parameters.

Registration writes the email and the bcrypt hash of the password; a database error during
that insert used to print both in error.log (`[parameters: (..., 'x@example.com', '$2b$...')]`).
A trigger makes the insert fail with a genuine driver error (a bug, not an outage: a 500 with
its traceback, which is what must stay free of parameters). On both databases.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from loguru import logger
from sqlalchemy import text

from app.state import AppState
from test.support.auth import TEST_PASSWORD

CANARY_EMAIL = "param.canary.7781@example.com"
FAILURE = "vektor_test_refuse"

_CREATE = {
    "postgresql": [
        f"CREATE FUNCTION {FAILURE}() RETURNS trigger AS $$ BEGIN "
        f"RAISE EXCEPTION 'refused by {FAILURE}'; END $$ LANGUAGE plpgsql",
        f"CREATE TRIGGER {FAILURE} BEFORE INSERT ON users "
        f"FOR EACH ROW EXECUTE FUNCTION {FAILURE}()",
    ],
    # SQLite resolves a trigger's tables when it fires: "no such table" (not an outage)
    "sqlite": [
        f"CREATE TRIGGER {FAILURE} BEFORE INSERT ON users BEGIN "
        f"INSERT INTO {FAILURE}_missing VALUES (1); END",
    ],
}
_DROP = {
    "postgresql": [
        f"DROP TRIGGER IF EXISTS {FAILURE} ON users",
        f"DROP FUNCTION IF EXISTS {FAILURE}()",
    ],
    "sqlite": [f"DROP TRIGGER IF EXISTS {FAILURE}"],
}


async def _run(state: AppState, statements: list[str]) -> None:
    async with state.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_a_failed_insert_logs_its_traceback_without_email_or_password_hash(
    live: httpx.AsyncClient, state: AppState, log_dir: Path
) -> None:
    dialect = state.engine.dialect.name
    error_log = log_dir / "error.log"
    offset = len(error_log.read_text(encoding="utf-8")) if error_log.exists() else 0
    await _run(state, _CREATE[dialect])
    try:
        response = await live.post(
            "/auth/register",
            json={"email": CANARY_EMAIL, "username": "canary", "password": TEST_PASSWORD},
        )
    finally:
        await _run(state, _DROP[dialect])
    assert response.status_code == 500  # a bug, not an unavailable database
    assert response.json()["code"] == "internal_error"

    await asyncio.to_thread(logger.complete)
    logged = error_log.read_text(encoding="utf-8")[offset:]
    assert FAILURE in logged and "INSERT INTO users" in logged  # the traceback is there
    assert "parameters hidden" in logged
    assert CANARY_EMAIL not in logged
    assert "$2b$" not in logged  # no bcrypt hash
    everything = "".join(
        (log_dir / name).read_text(encoding="utf-8") for name in ("app.log", "api.log")
    )
    assert CANARY_EMAIL not in everything and "$2b$" not in everything
