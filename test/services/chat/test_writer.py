"""The group-commit writer: batches writes, runs them in one lock order, isolates failures."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.commits import CommitNotifier
from app.db.direct import DirectDb
from app.db.writer import INLINE_BUDGET, INLINE_WINDOW_S, TurnWriter
from app.repositories.changes import PENDING_CHANGES_KEY, record_changes

USERS = {name: uuid.UUID(int=i + 1) for i, name in enumerate(("a", "b", "c"))}


async def _direct_db(url: str):  # type: ignore[no-untyped-def]
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL)"))
    direct = DirectDb(engine, commits=CommitNotifier())
    yield direct
    direct.close()
    await engine.dispose()


@pytest.fixture(params=["file", "memory"])
async def db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    # a SQLite file runs inline or on DirectDb's threads, in-memory SQLite through run_sync
    file = request.param == "file"
    async for direct in _direct_db(
        f"sqlite+aiosqlite:///{tmp_path}/w.db" if file else "sqlite+aiosqlite://"
    ):
        assert direct.inline is file
        yield direct


@pytest.fixture
async def file_db(tmp_path: Path):  # type: ignore[no-untyped-def]
    async for direct in _direct_db(f"sqlite+aiosqlite:///{tmp_path}/w.db"):
        yield direct


@pytest.fixture
async def awaited_db():  # type: ignore[no-untyped-def]
    # every write awaits (as on PostgreSQL), so concurrent submissions pile up into batches
    async for direct in _direct_db("sqlite+aiosqlite://"):
        yield direct


def _insert(order: list[str], value: str | None, seq: int = 0, user: str = "a"):  # type: ignore[no-untyped-def]
    def op(conn: Connection) -> None:
        order.append(str(value))
        if seq:  # as a repository notes the change numbers it stamped
            record_changes(conn.info, user_id=USERS[user], last=seq)
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})

    return op


def _committed(db: DirectDb) -> list[dict[uuid.UUID, int]]:
    """What the commit notifier announces to sync push, one entry per commit."""
    committed: list[dict[uuid.UUID, int]] = []
    db.commits.on(PENDING_CHANGES_KEY, committed.append)
    return committed


async def _values(db: DirectDb) -> list[str]:
    return await db.read(
        lambda conn: list(conn.execute(text("SELECT v FROM t ORDER BY v")).scalars())
    )


async def test_a_batch_runs_sorted_by_user_and_reports_its_commit(awaited_db: DirectDb) -> None:
    db = awaited_db
    committed = _committed(db)
    writer = TurnWriter(db=db)
    await writer.start()
    order: list[str] = []
    await asyncio.gather(
        *(
            writer.submit(_insert(order, name, seq, name), user_id=USERS[name])
            for name, seq in (("c", 7), ("a", 3), ("b", 0), ("a", 5))
        )
    )
    await writer.aclose()
    assert order == ["a", "a", "b", "c"]
    assert await _values(db) == ["a", "a", "b", "c"]
    # one commit for the batch: the newest number per user, users without changes left out
    assert committed == [{USERS["a"]: 5, USERS["c"]: 7}]


async def test_on_sqlite_a_lone_write_commits_at_once_in_the_caller(file_db: DirectDb) -> None:
    db = file_db
    committed = _committed(db)
    writer = TurnWriter(db=db)
    await writer.start()
    order: list[str] = []
    for name, seq in (("c", 7), ("a", 3)):
        await writer.submit(_insert(order, name, seq, name), user_id=USERS[name])
        assert await _values(db) == sorted(order)  # committed when submit returns
    await writer.aclose()
    assert order == ["c", "a"]
    assert committed == [{USERS["c"]: 7}, {USERS["a"]: 3}]


async def test_one_failing_write_does_not_sink_the_batch(awaited_db: DirectDb) -> None:
    db = awaited_db
    committed = _committed(db)
    writer = TurnWriter(db=db)
    await writer.start()
    order: list[str] = []
    results = await asyncio.gather(
        writer.submit(_insert(order, "ok-1", 1, "a"), user_id=USERS["a"]),
        writer.submit(_insert(order, None, 2, "b"), user_id=USERS["b"]),  # NOT NULL violation
        writer.submit(_insert(order, "ok-2", 3, "c"), user_id=USERS["c"]),
        return_exceptions=True,
    )
    await writer.aclose()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    assert await _values(db) == ["ok-1", "ok-2"]
    assert committed == [{USERS["a"]: 1}, {USERS["c"]: 3}]  # retried alone, each reported


async def test_a_write_without_the_writer_task_commits_alone(db: DirectDb) -> None:
    committed = _committed(db)
    writer = TurnWriter(db=db)  # not started (scripts)
    await writer.submit(_insert([], "solo", 4, "b"), user_id=USERS["b"])
    assert await _values(db) == ["solo"]
    assert committed == [{USERS["b"]: 4}]
    with pytest.raises(Exception):  # noqa: B017 (the driver's IntegrityError)
        await writer.submit(_insert([], None, 5, "b"), user_id=USERS["b"])
    assert committed == [{USERS["b"]: 4}]


class FrozenClock:
    """The writer's clock, moved only by the test: the inline budget's window is exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_of_writes_leaves_the_event_loop_to_the_streams(file_db: DirectDb) -> None:
    clock = FrozenClock()  # wall time made this flaky: a slow write let the window renew
    writer = TurnWriter(db=file_db, clock=clock)
    await writer.start()
    threads: list[int] = []

    def op(conn: Connection) -> int:
        threads.append(threading.get_ident())
        conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        return 0

    await asyncio.gather(*(writer.submit(op, user_id=USERS["a"]) for _ in range(20)))
    inline = threads.count(threading.get_ident())
    # the first few at once, the rest on the write thread
    assert 1 <= inline <= INLINE_BUDGET
    assert inline == INLINE_BUDGET  # the whole burst falls in one window
    assert len(threads) == 20
    # a new window (time moved on) lends the loop a new budget, and no more
    clock.now += INLINE_WINDOW_S * 2
    threads.clear()
    await asyncio.gather(*(writer.submit(op, user_id=USERS["a"]) for _ in range(20)))
    await writer.aclose()
    assert threads.count(threading.get_ident()) == INLINE_BUDGET
    assert await _values(file_db) == ["x"] * 40
