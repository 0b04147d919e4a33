"""Migration 0003 numbers the rows that existed before the feed: unique per user, counter set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anyio import to_thread
from sqlalchemy import JSON, DateTime, Uuid, column, insert, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from app.models import Conversation, Message, User, UserPreferences

# the tables as migration 0002 left them (the models already have the new columns)
_ts = DateTime(timezone=True)
USERS = table(
    "users",
    *(column(n) for n in ("email", "username", "password_hash", "is_admin", "is_active")),
    column("id", Uuid),
    column("password_changed_at", _ts),
    column("created_at", _ts),
    column("updated_at", _ts),
)
PREFS = table(
    "user_preferences", column("user_id", Uuid), column("data", JSON), column("updated_at", _ts)
)
CONVERSATIONS = table(
    "conversations",
    column("id", Uuid),
    column("user_id", Uuid),
    column("pinned"),
    column("archived"),
    column("message_count"),
    column("created_at", _ts),
    column("updated_at", _ts),
)
MESSAGES = table(
    "messages",
    column("id", Uuid),
    column("conversation_id", Uuid),
    column("user_id", Uuid),
    *(column(n) for n in ("role", "content", "status")),
    column("created_at", _ts),
    column("updated_at", _ts),
)


@pytest.fixture
async def scratch_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of the kind the tests run on."""
    base = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not base or base.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    name = f"vektor_mig_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(
        make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_existing_rows_get_unique_numbers(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0002")
    engine = create_async_engine(scratch_url)
    users = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]  # the third has nothing at all
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        for i, uid in enumerate(users):
            await conn.execute(
                insert(USERS).values(
                    id=uid,
                    email=f"u{i}@example.com",
                    username=f"user{i}",
                    password_hash="x",
                    is_admin=False,
                    is_active=True,
                    password_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        for uid, conversations in ((users[0], 3), (users[1], 1)):
            await conn.execute(insert(PREFS).values(user_id=uid, data={}, updated_at=now))
            for c in range(conversations):
                cid = uuid.uuid4()
                await conn.execute(
                    insert(CONVERSATIONS).values(
                        id=cid,
                        user_id=uid,
                        pinned=False,
                        archived=False,
                        message_count=2,
                        created_at=now,
                        updated_at=now + timedelta(seconds=c),
                    )
                )
                for m in range(2):
                    await conn.execute(
                        insert(MESSAGES).values(
                            id=uuid.uuid4(),
                            conversation_id=cid,
                            user_id=uid,
                            role="user",
                            content=f"{c}-{m}",
                            status="complete",
                            created_at=now,
                            updated_at=now,
                        )
                    )
    await to_thread.run_sync(command.upgrade, config, "head")
    async with engine.connect() as conn:
        for uid, expected in ((users[0], 3 + 6 + 1), (users[1], 1 + 2 + 1), (users[2], 0)):
            seqs = [
                row[0]
                for model in (Conversation, Message, UserPreferences)
                for row in await conn.execute(select(model.change_seq).where(model.user_id == uid))
            ]
            assert sorted(seqs) == list(range(1, expected + 1))
            head = (await conn.execute(select(User.change_seq).where(User.id == uid))).scalar_one()
            assert head == expected
    await engine.dispose()
