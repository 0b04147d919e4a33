"""PostgreSQL's hot units on the asyncpg pool: the same rows and answers as the SQLAlchemy
path, one announcement per write, and a dead or frozen server is a quick "unavailable"."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import literal, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.availability import is_unavailable
from app.db.base import utcnow
from app.db.commits import CommitNotifier
from app.db.direct import DirectDb
from app.db.health import DatabaseHealth
from app.models import Conversation, Message, User
from app.repositories.changes import PENDING_CHANGES_KEY
from app.repositories.principals import get_principal, read_principal
from app.repositories.turn_writes import BeginWrite
from app.repositories.turns import TurnUnit
from app.state import AppState
from test.support.pg_cluster import PgCluster, private_cluster

TIMEOUT_S = 1.0
MARGIN_S = 1.5  # scheduling on a loaded machine; a hang would be far over


@pytest.fixture
async def pg(state: AppState) -> AsyncIterator[tuple[DirectDb, list[Any]]]:
    """A DirectDb of the test's own on the app's PostgreSQL database, and its announcements."""
    if state.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")
    notifier = CommitNotifier()
    announced: list[Any] = []
    notifier.on(PENDING_CHANGES_KEY, announced.append)
    db = DirectDb(state.engine, commits=notifier)
    assert db.runs_single
    yield db, announced
    await db.aclose()


def _begin(
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    *,
    new: bool,
    parent_id: uuid.UUID | None = None,
    answer_to: uuid.UUID | None = None,
    second: int = 5,
) -> BeginWrite:
    return BeginWrite(
        user_id=user_id,
        conversation_id=conversation_id,
        user_message_id=answer_to or uuid.uuid4(),
        message_id=uuid.uuid4(),
        new_conversation=new,
        model="echo",
        text="  hello\n  world ",
        now=datetime(2025, 1, 2, 3, 4, second, 678901, tzinfo=UTC),
        parent_id=parent_id,
        user_message=answer_to is None,
    )


async def _message_ids(state: AppState, conversation_id: uuid.UUID) -> list[uuid.UUID]:
    async with state.session_factory() as session:
        found = await session.execute(
            select(Message.id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at)
        )
        return list(found.scalars())


async def _rows(state: AppState, conversation_id: uuid.UUID) -> dict[str, Any]:
    """A conversation and its messages, without ids; change numbers relative to the first."""
    async with state.session_factory() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        found = await session.execute(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at)
        )
        messages = list(found.scalars())
    base = conversation.change_seq
    skip = {"id", "conversation_id", "change_seq", "user_id"}
    # links inside the tree as positions in the conversation (the ids differ)
    position = {m.id: index for index, m in enumerate(messages)}
    links = {"parent_id", "current_message_id"}

    def fields(row: Any) -> dict[str, Any]:
        values = {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}
        for key in links & values.keys():
            values[key] = position.get(values[key], values[key])
        return {**values, "seq": row.change_seq - base}

    return {"conversation": fields(conversation), "messages": [fields(m) for m in messages]}


async def test_a_turns_first_rows_are_the_same_in_one_statement(
    state: AppState, alice: dict[str, Any], pg: tuple[DirectDb, list[Any]]
) -> None:
    db, announced = pg
    user_id = uuid.UUID(alice["user"]["id"])
    through_sqlalchemy, in_one_statement = uuid.uuid4(), uuid.uuid4()
    for new in (True, False):  # a new conversation, then a second turn in it
        second = 5 if new else 6
        await db.write(TurnUnit(_begin(user_id, through_sqlalchemy, new=new, second=second)))
        sqlalchemy_seq = announced[-1][user_id]
        single = TurnUnit(_begin(user_id, in_one_statement, new=new, second=second)).single()
        assert single is not None
        await db.write_single(single)
        assert announced[-1] == {user_id: sqlalchemy_seq + 3}  # three numbers, announced once
    assert len(announced) == 4
    assert await _rows(state, through_sqlalchemy) == await _rows(state, in_one_statement)
    # a fork below the first answer, then a regenerated answer to the first question
    for cid in (through_sqlalchemy, in_one_statement):
        ids = await _message_ids(state, cid)
        fork = _begin(user_id, cid, new=False, parent_id=ids[1], second=7)
        again = _begin(user_id, cid, new=False, answer_to=ids[0], second=8)
        if cid == through_sqlalchemy:
            await db.write(TurnUnit(fork))
            await db.write(TurnUnit(again))
        else:
            for write, count in ((fork, 3), (again, 2)):
                single = TurnUnit(write).single()
                assert single is not None
                before = announced[-1][user_id]
                await db.write_single(single)
                assert announced[-1] == {user_id: before + count}
    rows = await _rows(state, in_one_statement)
    other = await _rows(state, through_sqlalchemy)
    for a, b in zip(rows["messages"], other["messages"], strict=True):
        # change numbers relative to the conversation's last one, taken in another order
        assert {**a, "seq": 0} == {**b, "seq": 0}
    parents = [m["parent_id"] for m in rows["messages"]]
    assert parents == [None, 0, None, 2, 1, 4, 0]  # the second turn had no parent: a root
    assert rows["conversation"]["current_message_id"] == 6
    assert rows["conversation"]["message_count"] == 7
    assert TurnUnit(_begin(user_id, in_one_statement, new=False), retry=True).single() is None


async def test_the_session_check_reads_the_same_on_asyncpg(
    state: AppState, alice: dict[str, Any], pg: tuple[DirectDb, list[Any]]
) -> None:
    db, _ = pg
    claims = state.tokens.decode(alice["access_token"], expected="access")
    async with state.session_factory() as session:  # every column type has a value
        await session.execute(
            update(User)
            .where(User.id == claims.user_id)
            .values(last_login_at=utcnow(), quota_tokens_per_day=7, quota_cost_per_month=2.5)
        )
        await session.commit()
    fast = await read_principal(db, session_id=claims.session_id, user_id=claims.user_id)
    async with state.session_factory() as session:
        orm = await get_principal(session, session_id=claims.session_id, user_id=claims.user_id)
    assert fast is not None and orm is not None
    columns = [c.key for c in fast.user.__table__.columns]
    assert {c: getattr(fast.user, c) for c in columns} == {c: getattr(orm.user, c) for c in columns}
    assert {c: type(getattr(fast.user, c)) for c in columns} == {
        c: type(getattr(orm.user, c)) for c in columns
    }
    assert isinstance(fast.user.id, uuid.UUID) and fast.user.created_at.tzinfo is not None
    assert (fast.revoked_at, fast.preferences) == (orm.revoked_at, orm.preferences)
    assert await read_principal(db, session_id=uuid.uuid4(), user_id=claims.user_id) is None


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster of this module's own."""
    with private_cluster() as running:
        yield running


async def _fails_fast(db: DirectDb, limit_s: float) -> None:
    started = time.monotonic()
    with pytest.raises(DBAPIError) as caught:
        await db.first(select(literal(1).label("one")), {})
    assert is_unavailable(caught.value)
    assert time.monotonic() - started < limit_s


@pytest.mark.parametrize("outage", ["frozen", "stopped"])
async def test_a_dead_or_frozen_server_is_a_quick_unavailable(
    cluster: PgCluster, outage: str
) -> None:
    engine = create_async_engine(cluster.url())
    health = DatabaseHealth(timeout_s=TIMEOUT_S)
    db = DirectDb(engine, timeout_s=TIMEOUT_S, health=health)
    try:
        assert await db.first(select(literal(1).label("one")), {}) == {"one": 1}  # pooled
        if outage == "frozen":
            cluster.freeze()
        else:
            cluster.stop()
        await _fails_fast(db, TIMEOUT_S + MARGIN_S)
        assert health.down  # the breaker heard it: the next caller does not even wait
        await _fails_fast(db, 0.5)
    finally:
        cluster.thaw()
        if not cluster.running():
            cluster.start()
        await health.aclose()
        await db.aclose()
        await engine.dispose()
