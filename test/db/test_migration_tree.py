"""Migration 0005 turns every existing conversation into one branch (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from anyio import to_thread
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from test.api.sync.test_migration import (  # noqa: F401  (scratch_url is the fixture)
    CONVERSATIONS,
    MESSAGES,
    USERS,
    scratch_url,
)


async def test_existing_conversations_become_one_branch_each(
    scratch_url: str,  # noqa: F811
) -> None:
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0004")
    engine = create_async_engine(scratch_url)
    uid = uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    chains: dict[uuid.UUID, list[uuid.UUID]] = {}
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(USERS).values(
                    id=uid,
                    email="t@example.com",
                    username="tree",
                    password_hash="x",
                    is_admin=False,
                    is_active=True,
                    password_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            for c, length in enumerate((5, 1, 0)):
                cid = uuid.uuid4()
                await conn.execute(
                    insert(CONVERSATIONS).values(
                        id=cid,
                        user_id=uid,
                        pinned=False,
                        archived=False,
                        message_count=length,
                        created_at=now,
                        updated_at=now,
                    )
                )
                # inserted out of order; two share a timestamp (history order breaks the tie by id)
                times = [now + timedelta(seconds=s) for s in (0, 1, 1, 2, 3)][:length]
                ids = sorted(uuid.uuid4() for _ in times)
                chains[cid] = ids
                for i in reversed(range(length)):
                    await conn.execute(
                        insert(MESSAGES).values(
                            id=ids[i],
                            conversation_id=cid,
                            user_id=uid,
                            role="user" if i % 2 == 0 else "assistant",
                            content=f"{c}-{i}",
                            status="complete",
                            created_at=times[i],
                            updated_at=times[i],
                        )
                    )
        await to_thread.run_sync(command.upgrade, config, "head")
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, parent_id FROM messages"))).all()
            parents = {_uuid(r[0]): _uuid(r[1]) for r in rows}
            rows = (
                await conn.execute(text("SELECT id, current_message_id FROM conversations"))
            ).all()
            leaves = {_uuid(r[0]): _uuid(r[1]) for r in rows}
    finally:
        await engine.dispose()
    for cid, ids in chains.items():
        assert [parents[m] for m in ids] == [None, *ids][: len(ids)]
        assert leaves[cid] == (ids[-1] if ids else None)


def _uuid(value: object) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    return uuid.UUID(str(value))
