"""Migration 0006 adds `files` to a database with data in it (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from anyio import to_thread
from sqlalchemy import column, delete, insert, inspect, select, table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from app.models import StoredFile
from test.api.sync.test_migration import USERS, scratch_url  # noqa: F401  (the fixture)

FILES = StoredFile.__table__


def _user(uid: uuid.UUID, name: str, now: datetime) -> dict[str, object]:
    return {
        "id": uid,
        "email": f"{name}@example.com",
        "username": name,
        "password_hash": "x",
        "is_admin": False,
        "is_active": True,
        "password_changed_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _file(uid: uuid.UUID, sha: str, now: datetime) -> dict[str, object]:
    fid = uuid.uuid4()
    return {
        "id": fid,
        "user_id": uid,
        "name": "a.txt",
        "content_type": "text/plain",
        "size": 3,
        "sha256": sha,
        "kind": "text",
        "storage_key": f"{uid}/{fid}",
        "text_chars": 3,
        "has_text": True,
        "created_at": now,
    }


async def test_files_table_arrives_on_existing_data_and_goes_back(
    scratch_url: str,  # noqa: F811
) -> None:
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0005")
    engine = create_async_engine(scratch_url)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    sqlite = scratch_url.startswith("sqlite")
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(USERS).values(_user(alice, "alice", now)))
            await conn.execute(insert(USERS).values(_user(bob, "bob", now)))
        await to_thread.run_sync(command.upgrade, config, "head")
        async with engine.begin() as conn:
            await conn.execute(insert(FILES).values(_file(alice, "a" * 64, now)))
            await conn.execute(insert(FILES).values(_file(bob, "a" * 64, now)))  # other user
            change_seq = (await conn.execute(select(FILES.c.change_seq))).scalars().all()
            assert change_seq == [0, 0]  # the server default
        with pytest.raises(IntegrityError):  # the same bytes twice for one user
            async with engine.begin() as conn:
                await conn.execute(insert(FILES).values(_file(alice, "a" * 64, now)))
        async with engine.begin() as conn:
            if sqlite:
                await conn.execute(text("PRAGMA foreign_keys=ON"))
            await conn.execute(delete(table("users", column("id"))).where(column("id") == alice))
            owners = (await conn.execute(select(FILES.c.user_id))).scalars().all()
            assert owners == [bob]  # Alice's file went with her
        await to_thread.run_sync(command.downgrade, config, "0005")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert "files" not in names and "users" in names
        await to_thread.run_sync(command.upgrade, config, "head")
    finally:
        await engine.dispose()
