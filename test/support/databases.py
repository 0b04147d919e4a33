"""A private database per run: a SQLite file, or a fresh database on a PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


async def _admin(base: str, sql: str) -> None:
    engine = create_async_engine(_admin_url(base), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


@contextmanager
def private_database(base: str, directory: Path, prefix: str = "vektor_test") -> Iterator[str]:
    """A SQLite file in `directory` (empty or SQLite `base`), or a new database on the
    PostgreSQL server of `base` (the URL's database only has to exist), dropped at the end."""
    if not base or base.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{directory / 'test.db'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield url
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
