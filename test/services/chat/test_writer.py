"""The group-commit writer: batches writes, runs them in one lock order, isolates failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.services.chat.writer import TurnWriter


@pytest.fixture
async def factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/w.db")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL)"))
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


def _insert(order: list[str], value: str | None):  # type: ignore[no-untyped-def]
    async def op(session: AsyncSession) -> None:
        order.append(str(value))
        await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})

    return op


async def test_a_batch_runs_sorted_by_user_and_commits_once(factory) -> None:  # type: ignore[no-untyped-def]
    writer = TurnWriter(session_factory=factory)
    await writer.start()
    order: list[str] = []
    await asyncio.gather(
        *(writer.submit(_insert(order, v), user_key=v) for v in ("user-c", "user-a", "user-b"))
    )
    await writer.aclose()
    assert order == ["user-a", "user-b", "user-c"]
    async with factory() as session:
        assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 3


async def test_one_failing_write_does_not_sink_the_batch(factory) -> None:  # type: ignore[no-untyped-def]
    writer = TurnWriter(session_factory=factory)
    await writer.start()
    order: list[str] = []
    results = await asyncio.gather(
        writer.submit(_insert(order, "ok-1"), user_key="a"),
        writer.submit(_insert(order, None), user_key="b"),  # NOT NULL violation
        writer.submit(_insert(order, "ok-2"), user_key="c"),
        return_exceptions=True,
    )
    await writer.aclose()
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], Exception)
    async with factory() as session:
        rows = (await session.execute(text("SELECT v FROM t ORDER BY v"))).scalars().all()
    assert rows == ["ok-1", "ok-2"]
