"""Migration 0007 adds the admin columns to existing users and the audit table (both DBs)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from anyio import to_thread
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from app.db.migrate import alembic_config
from app.models import AuditEvent
from test.api.sync.test_migration import USERS, scratch_url  # noqa: F401  (the fixture)


async def test_existing_users_keep_working_and_audit_rows_can_be_written(
    scratch_url: str,  # noqa: F811
) -> None:
    config = alembic_config(scratch_url)
    await to_thread.run_sync(command.upgrade, config, "0005")
    engine = create_async_engine(scratch_url)
    uid = uuid.uuid4()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(USERS).values(
                    id=uid,
                    email="old@example.com",
                    username="old",
                    password_hash="x",
                    is_admin=True,
                    is_active=True,
                    password_changed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        await to_thread.run_sync(command.upgrade, config, "head")
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT username, is_admin, last_login_at, quota_tokens_per_day, "
                        "quota_cost_per_month FROM users"
                    )
                )
            ).one()
            assert tuple(row) == ("old", True, None, None, None)
            await conn.execute(
                insert(AuditEvent.__table__).values(
                    id=uuid.uuid4(),
                    at=now,
                    actor_id=uid,
                    action="auth.login",
                    target_type="user",
                    target_id=uid,
                    ip="127.0.0.1",
                    details={"k": [1, 2]},
                )
            )
            count = (await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar()
            assert count == 1
        await to_thread.run_sync(command.downgrade, config, "0005")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT username FROM users"))).scalar() == "old"
    finally:
        await engine.dispose()
