"""The one commit notifier: what a transaction noted is announced once, after its commit,
on both paths (the app's request sessions and DirectDb units), and never after a rollback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, select

from app.db.commits import CommitNotifier
from app.db.direct import DirectDb
from app.db.session import create_session_factory
from app.models import User
from app.repositories.changes import PENDING_CHANGES_KEY, ChangeRepository
from app.repositories.turns import TurnRepository
from app.state import AppState


@pytest.fixture
async def heard(state: AppState) -> AsyncIterator[tuple[CommitNotifier, list[Any]]]:
    """A notifier of the test's own, and what it announced to sync push."""
    notifier = CommitNotifier()
    announced: list[Any] = []
    notifier.on(PENDING_CHANGES_KEY, announced.append)
    yield notifier, announced


async def _head(state: AppState, user_id: uuid.UUID) -> int:
    async with state.session_factory() as session:
        return int(
            (await session.execute(select(User.change_seq).where(User.id == user_id))).scalar_one()
        )


async def test_a_session_commit_is_announced_once_and_a_rollback_never(
    state: AppState, alice: dict[str, Any], heard: tuple[CommitNotifier, list[Any]]
) -> None:
    notifier, announced = heard
    user_id = uuid.UUID(alice["user"]["id"])
    factory = create_session_factory(state.engine)
    notifier.attach(factory)
    async with factory() as session:
        first = await ChangeRepository(session).allocate(user_id=user_id, count=2)
        assert announced == []  # not before the commit
        await session.commit()
    assert announced == [{user_id: first + 1}]
    async with factory() as session:
        await ChangeRepository(session).allocate(user_id=user_id)
        await session.rollback()
    async with factory() as session:
        await ChangeRepository(session).allocate(user_id=user_id)  # closed without a commit
    assert announced == [{user_id: first + 1}]
    # attached to this factory only, not to SQLAlchemy's global Session class
    other = create_session_factory(state.engine)
    async with other() as session:
        await ChangeRepository(session).allocate(user_id=user_id)
        await session.commit()
    assert announced == [{user_id: first + 1}]


async def test_a_direct_unit_is_announced_once_after_its_commit(
    state: AppState, alice: dict[str, Any], heard: tuple[CommitNotifier, list[Any]]
) -> None:
    notifier, announced = heard
    user_id = uuid.UUID(alice["user"]["id"])
    db = DirectDb(state.engine, commits=notifier)
    try:

        def two_writes(conn: Connection) -> None:
            repo = TurnRepository(conn)
            repo.allocate(user_id=user_id, count=1)
            repo.allocate(user_id=user_id, count=2)

        before = await _head(state, user_id)
        await db.write(two_writes)
        assert announced == [{user_id: before + 3}]  # one announcement per commit, the newest

        def fails(conn: Connection) -> None:
            TurnRepository(conn).allocate(user_id=user_id, count=1)
            raise RuntimeError("the unit fails after noting a change")

        with pytest.raises(RuntimeError):
            await db.write(fails)
        await db.write(lambda conn: None)  # the next unit on that connection notes nothing
        assert announced == [{user_id: before + 3}]
        assert await _head(state, user_id) == before + 3  # rolled back with its note
    finally:
        await db.aclose()
