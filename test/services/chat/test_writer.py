"""The group-commit writer: batches writes, runs them in one lock order, isolates failures."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.direct import DirectDb
from app.services.chat.writer import TurnWriter

USERS = {name: uuid.UUID(int=i + 1) for i, name in enumerate(("a", "b", "c"))}


@pytest.fixture(params=["file", "memory"])
async def db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    # a SQLite file runs inline or on DirectDb's threads, in-memory SQLite through run_sync
    url = (
        f"sqlite+aiosqlite:///{tmp_path}/w.db" if request.param == "file" else "sqlite+aiosqlite://"
    )
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL)"))
    direct = DirectDb(engine)
    assert direct.inline is (request.param == "file")
    yield direct
    direct.close()
    await engine.dispose()


def _insert(order: list[str], value: str | None, seq: int = 0):  # type: ignore[no-untyped-def]
    def op(conn: Connection) -> int:
        order.append(str(value))
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return seq

    return op


async def _values(db: DirectDb) -> list[str]:
    return await db.read(
        lambda conn: list(conn.execute(text("SELECT v FROM t ORDER BY v")).scalars())
    )


async def test_a_batch_runs_sorted_by_user_and_reports_its_commit(db: DirectDb) -> None:
    committed: list[dict[uuid.UUID, int]] = []
    writer = TurnWriter(db=db, on_commit=committed.append)
    await writer.start()
    order: list[str] = []
    await asyncio.gather(
        *(
            writer.submit(_insert(order, name, seq), user_id=USERS[name])
            for name, seq in (("c", 7), ("a", 3), ("b", 0), ("a", 5))
        )
    )
    await writer.aclose()
    assert order == ["a", "a", "b", "c"]
    assert await _values(db) == ["a", "a", "b", "c"]
    # one commit for the batch: the newest number per user, users without changes left out
    assert committed == [{USERS["a"]: 5, USERS["c"]: 7}]


async def test_one_failing_write_does_not_sink_the_batch(db: DirectDb) -> None:
    committed: list[dict[uuid.UUID, int]] = []
    writer = TurnWriter(db=db, on_commit=committed.append)
    await writer.start()
    order: list[str] = []
    results = await asyncio.gather(
        writer.submit(_insert(order, "ok-1", 1), user_id=USERS["a"]),
        writer.submit(_insert(order, None, 2), user_id=USERS["b"]),  # NOT NULL violation
        writer.submit(_insert(order, "ok-2", 3), user_id=USERS["c"]),
        return_exceptions=True,
    )
    await writer.aclose()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    assert await _values(db) == ["ok-1", "ok-2"]
    assert committed == [{USERS["a"]: 1}, {USERS["c"]: 3}]  # retried alone, each reported


async def test_a_write_without_the_writer_task_commits_alone(db: DirectDb) -> None:
    committed: list[dict[uuid.UUID, int]] = []
    writer = TurnWriter(db=db, on_commit=committed.append)  # not started (scripts)
    await writer.submit(_insert([], "solo", 4), user_id=USERS["b"])
    assert await _values(db) == ["solo"]
    assert committed == [{USERS["b"]: 4}]
    with pytest.raises(Exception):  # noqa: B017 (the driver's IntegrityError)
        await writer.submit(_insert([], None, 5), user_id=USERS["b"])
    assert committed == [{USERS["b"]: 4}]
