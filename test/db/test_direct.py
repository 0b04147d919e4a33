"""DirectDb: inline SQLite units that never wait, thread fallback when SQLite is busy."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import direct
from app.db.direct import DirectDb


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/d.db")
    async with engine.begin() as conn:
        await conn.execute(text("PRAGMA journal_mode=WAL"))
        await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL)"))
    direct_db = DirectDb(engine)
    yield direct_db
    direct_db.close()
    await engine.dispose()


def _insert(value: str | None):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return threading.get_ident()

    return work


def _values(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT v FROM t ORDER BY v")).scalars())


async def test_small_units_run_inline_on_the_event_loop(db: DirectDb) -> None:
    assert db.inline
    assert await db.write(_insert("a")) == threading.get_ident()
    assert await db.read(_values) == ["a"]
    # a large batch goes to the write thread instead
    assert await db.write(_insert("b"), inline=False) != threading.get_ident()
    assert await db.read(_values) == ["a", "b"]


async def test_a_failing_unit_is_rolled_back_and_raises(db: DirectDb) -> None:
    def two_then_fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO t (v) VALUES ('kept-out')"))
        conn.execute(text("INSERT INTO t (v) VALUES (NULL)"))  # NOT NULL

    with pytest.raises(Exception, match="NOT NULL"):
        await db.write(two_then_fail)
    assert await db.read(_values) == []
    assert await db.write(_insert("after")) > 0  # the inline connection is usable again
    assert await db.read(_values) == ["after"]


async def test_a_locked_database_never_blocks_the_loop(db: DirectDb, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "d.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO t (v) VALUES ('other')")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    started = time.monotonic()
    writer_thread = await db.write(_insert("mine"))
    waited = time.monotonic() - started
    tick_task.cancel()
    assert writer_thread != threading.get_ident()  # it fell back to the write thread
    assert waited >= 0.25  # ...which waited for the lock
    assert ticks >= 10  # while the event loop kept running
    assert await db.read(_values) == ["mine", "other"]
    other.close()


def _whole_file_lock(path: Path) -> sqlite3.Connection:
    """Another connection that locks the whole file, readers included (as a WAL recovery
    or an exclusive-mode process does for a moment)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    return other


def _reading_thread(conn: Connection) -> int:
    _values(conn)
    return threading.get_ident()


def _release(other: sqlite3.Connection) -> None:
    other.execute("ROLLBACK")
    other.execute("PRAGMA locking_mode=NORMAL")
    other.execute("SELECT 1").fetchall()  # the next access gives the lock up
    other.close()


@pytest.mark.parametrize("kind", ["write", "read"])
async def test_opening_the_inline_connection_on_a_busy_file_falls_back_to_a_thread(
    db: DirectDb, tmp_path: Path, kind: str
) -> None:
    await db.engine.dispose()  # the file is closed: nothing has opened it yet
    other = _whole_file_lock(tmp_path / "d.db")  # before the inline connection is opened
    asyncio.get_running_loop().call_later(0.3, _release, other)
    if kind == "write":
        ran_on = await db.write(_insert("mine"))
    else:
        ran_on = await db.read(_reading_thread)
    # not "database is locked" at once (a 503, an unsaved answer): the thread waited
    assert ran_on != threading.get_ident()
    assert await db.read(_values) == (["mine"] if kind == "write" else [])


@pytest.fixture
def checkpoints(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Checkpoint every 5 inline commits; the threads checkpoints ran on."""
    monkeypatch.setattr(direct, "CHECKPOINT_EVERY", 5)
    original, threads = direct._checkpoint, []

    def spy(engine):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        original(engine)

    monkeypatch.setattr(direct, "_checkpoint", spy)
    return threads


async def test_the_inline_connection_never_waits_nor_checkpoints(
    db: DirectDb, checkpoints: list[int]
) -> None:
    pragmas = await db.read(
        lambda conn: [
            conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("busy_timeout", "wal_autocheckpoint", "journal_mode")
        ]
    )
    assert pragmas == [0, 0, "wal"]
    for i in range(4):
        await db.write(_insert(f"v{i}"))
    db.close()  # waits for the write thread's queue: nothing was scheduled yet
    assert checkpoints == []


async def test_every_fifth_inline_commit_schedules_a_checkpoint_on_the_write_thread(
    db: DirectDb, checkpoints: list[int]
) -> None:
    for i in range(10):
        await db.write(_insert(f"v{i}"))
    db.close()
    assert len(checkpoints) == 2
    assert threading.get_ident() not in checkpoints


async def test_postgres_and_memory_databases_use_the_async_engine() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL)"))
    db = DirectDb(engine)
    assert not db.inline
    await db.write(_insert("m"))
    assert await db.read(_values) == ["m"]
    db.close()
    await engine.dispose()
