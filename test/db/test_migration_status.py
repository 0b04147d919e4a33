"""Migration 0012 makes room for the status `awaiting_approval` (both DBs), data kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from test.api.sync.test_migration import (  # noqa: F401  (scratch_url is the fixture)
    CONVERSATIONS,
    USERS,
    scratch_url,
)
from test.db.test_migration_usage import MESSAGES


async def test_an_answer_can_await_approval_after_the_upgrade(scratch_url: str) -> None:  # noqa: F811
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0011")
    engine = create_async_engine(scratch_url)
    uid, cid, mid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    stamps = {"created_at": now, "updated_at": now}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                USERS.insert().values(
                    id=uid,
                    email="s@example.com",
                    username="s",
                    password_hash="x",
                    is_admin=False,
                    is_active=True,
                    password_changed_at=now,
                    **stamps,
                )
            )
            await conn.execute(
                CONVERSATIONS.insert().values(
                    id=cid, user_id=uid, pinned=False, archived=False, message_count=1, **stamps
                )
            )
            await conn.execute(
                MESSAGES.insert().values(
                    id=mid,
                    conversation_id=cid,
                    user_id=uid,
                    role="assistant",
                    content="kept",
                    status="streaming",
                    **stamps,
                )
            )
        await to_thread.run_sync(command.upgrade, config, "head")
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE messages SET status = 'awaiting_approval'"))
            row = (await conn.execute(text("SELECT status, content FROM messages"))).one()
            assert tuple(row) == ("awaiting_approval", "kept")
        await to_thread.run_sync(command.downgrade, config, "0011")
        await engine.dispose()  # statements prepared before the schema changed
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT status, content FROM messages"))).one()
            assert row[1] == "kept"
    finally:
        await engine.dispose()
