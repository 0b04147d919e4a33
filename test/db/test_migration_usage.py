"""Migration 0010 copies existing answers' usage into the new columns (both DBs)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from anyio import to_thread
from sqlalchemy import JSON, Uuid, column, insert, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from test.api.sync.test_migration import (  # noqa: F401  (scratch_url is the fixture)
    CONVERSATIONS,
    USERS,
    scratch_url,
)

MESSAGES = table(
    "messages",
    *(column(n, Uuid) for n in ("id", "conversation_id", "user_id")),
    *(column(n) for n in ("role", "content", "status", "created_at", "updated_at")),
    column("usage", JSON),
)


async def test_old_answers_get_their_tokens_as_columns(scratch_url: str) -> None:  # noqa: F811
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0009")
    engine = create_async_engine(scratch_url)
    uid, cid = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    person = {"password_changed_at": now, "created_at": now, "updated_at": now}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(USERS).values(
                    id=uid,
                    email="o@example.com",
                    username="o",
                    password_hash="x",
                    is_admin=False,
                    is_active=True,
                    **person,
                )
            )
            await conn.execute(
                insert(CONVERSATIONS).values(
                    id=cid,
                    user_id=uid,
                    pinned=False,
                    archived=False,
                    message_count=2,
                    created_at=now,
                    updated_at=now,
                )
            )
            for role, usage in (
                ("user", None),
                ("assistant", {"input_tokens": 7, "output_tokens": 3}),
            ):
                await conn.execute(
                    insert(MESSAGES).values(
                        id=uuid.uuid4(),
                        conversation_id=cid,
                        user_id=uid,
                        role=role,
                        content="x",
                        status="complete",
                        created_at=now,
                        updated_at=now,
                        usage=usage,
                    )
                )
        await to_thread.run_sync(command.upgrade, config, "head")
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT role, input_tokens, output_tokens, cached_input_tokens, cost_usd "
                        "FROM messages ORDER BY role"
                    )
                )
            ).all()
            assert [tuple(r) for r in rows] == [
                ("assistant", 7, 3, 0, None),
                ("user", None, None, None, None),
            ]
        await to_thread.run_sync(command.downgrade, config, "0009")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar() == 2
    finally:
        await engine.dispose()
