"""Tests below the API: a migrated database of their own, one transaction per test that is
rolled back at the end (the code under test commits to a savepoint inside it), and row
factories that go through the ORM models.

The API tests cannot work this way: the app reaches its database through its own engine, the
hot path's `DirectDb` connections and the turn writer's thread, none of which can join a
test's transaction, so `test/conftest.py` empties the tables before each of them instead.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.models import Conversation, Message, User


def savepoints_on_sqlite(engine: AsyncEngine) -> None:
    """Let pysqlite nest SAVEPOINTs in a transaction: it must not begin transactions itself
    (SQLAlchemy's documented recipe); PostgreSQL needs nothing."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


@asynccontextmanager
async def rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is always rolled back: `commit()` in the
    code under test releases a savepoint, so nothing a test writes outlives it."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(
            bind=conn,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


async def add_user(session: AsyncSession, name: str | None = None, **fields: Any) -> User:
    """A user row (the password hash is a placeholder: nobody logs in below the API)."""
    name = name or f"u{uuid.uuid4().hex[:10]}"
    user = User(email=f"{name}@example.com", username=name, password_hash="x" * 60, **fields)
    session.add(user)
    await session.flush()
    return user


async def add_conversation(
    session: AsyncSession,
    user: User,
    *contents: str,
    updated_at: datetime | None = None,
    **fields: Any,
) -> Conversation:
    """A conversation of `user` with one message per text (user, assistant, user, ...)."""
    when = updated_at or datetime.now(UTC)
    conversation = Conversation(
        user_id=user.id,
        created_at=when,
        updated_at=when,
        message_count=len(contents),
        **fields,
    )
    session.add(conversation)
    await session.flush()
    for i, content in enumerate(contents):
        session.add(
            Message(
                conversation_id=conversation.id,
                user_id=user.id,
                role="user" if i % 2 == 0 else "assistant",
                content=content,
                created_at=when - timedelta(seconds=len(contents) - i),
            )
        )
    await session.flush()
    return conversation
