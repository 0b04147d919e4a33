"""Run Alembic migrations programmatically (the only way the schema is made)."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic.config import Config

from alembic import command
from app.db.session import sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at this project's migrations and the given database."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade_head(database_url: str) -> None:
    """`alembic upgrade head` (blocking: call from a thread inside an event loop).

    Several processes may start at once (gunicorn workers, hosts): they migrate one after the
    other, and the later ones find the schema at head. On PostgreSQL the migration's
    transaction takes an advisory lock first (alembic/env.py); a SQLite file is locked
    through a file beside it (`<database>.migrate.lock`)."""
    path = sqlite_file(database_url)
    if path is None:
        command.upgrade(alembic_config(database_url), "head")
        return
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no data/ yet
    with path.with_name(path.name + ".migrate.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        command.upgrade(alembic_config(database_url), "head")
