"""Unsaved turn writes: backoff, the spool's file format, spooling and replay in order."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.repositories.turn_writes import (
    BeginWrite,
    CheckpointWrite,
    FinishWrite,
    ResumeWrite,
    TurnWrite,
)
from app.services.chat.pending import (
    FIRST_DELAY_S,
    MAX_DELAY_S,
    PendingWrites,
    retry_delay,
)
from app.services.chat.spool import Spool, SpoolDocument, database_key, decode, encode

USER = uuid.UUID(int=1)
NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _begin(message_id: uuid.UUID) -> BeginWrite:
    return BeginWrite(
        user_id=USER,
        conversation_id=uuid.UUID(int=2),
        user_message_id=uuid.UUID(int=3),
        message_id=message_id,
        new_conversation=True,
        model="echo",
        text="hello",
        now=NOW,
    )


def _checkpoint(message_id: uuid.UUID, text: str) -> CheckpointWrite:
    return CheckpointWrite(user_id=USER, message_id=message_id, content=text, last_event_id=7)


def _finish(message_id: uuid.UUID) -> FinishWrite:
    return FinishWrite(
        user_id=USER,
        conversation_id=uuid.UUID(int=2),
        message_id=message_id,
        content="Echo: hello",
        status="complete",
        model="echo",
        usage={"input_tokens": 1, "output_tokens": 2},
        tool_calls=[{"id": "c1", "tool": "t", "arguments": {"a": [1, "ü"]}}],
        title="hello",
        now=NOW,
        error_code=None,
        last_event_id=12,
    )


class FakeWriter:
    """Stands in for TurnWriter: records what was applied; fails while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.applied: list[tuple[TurnWrite, bool]] = []
        self.attempts = 0

    async def submit(self, op: Any, *, user_id: uuid.UUID) -> None:
        self.attempts += 1
        if self.down:
            raise PoolTimeout("no connection within the timeout")  # "unavailable"
        self.applied.append((op.write, op.retry))


def test_backoff_doubles_up_to_a_cap_and_spreads_by_jitter() -> None:
    lowest = [retry_delay(n, 0.0) for n in range(12)]
    highest = [retry_delay(n, 0.999999) for n in range(12)]
    assert highest[0] == pytest.approx(FIRST_DELAY_S, rel=1e-3)
    assert lowest[0] == pytest.approx(FIRST_DELAY_S / 2)
    for n in range(1, 12):
        ceiling = min(MAX_DELAY_S, FIRST_DELAY_S * 2**n)
        assert lowest[n] == pytest.approx(ceiling / 2)
        assert highest[n] == pytest.approx(ceiling, rel=1e-3)
        assert highest[n] >= highest[n - 1]
    assert max(highest) == pytest.approx(MAX_DELAY_S, rel=1e-3)
    assert retry_delay(10_000, 0.5) <= MAX_DELAY_S  # no overflow after a long outage


def test_a_spool_file_is_durable_json_that_replays_to_the_same_write(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", database=database_key("postgresql+asyncpg://u:pw@h/db"))
    message_id = uuid.uuid4()
    writes: list[TurnWrite] = [
        _begin(message_id),
        _checkpoint(message_id, "Echo"),
        _finish(message_id),
    ]
    paths = [spool.put(write) for write in writes]
    assert spool.files() == paths  # names sort in the order the writes were made
    assert [p.name.split("-", 2)[2] for p in paths] == [
        f"{message_id}-begin.json",
        f"{message_id}-checkpoint.json",
        f"{message_id}-finish.json",
    ]
    assert not list(spool.directory.glob(".*"))  # no temp file left behind
    document = json.loads(paths[2].read_bytes())
    assert document["format"] == "vektor-turn-write" and document["version"] == 1
    assert document["database"] == database_key("postgresql+asyncpg://u:other@h/db")
    assert document["database"] != database_key("postgresql+asyncpg://u:pw@h/db2")
    assert document["write"]["kind"] == "finish"
    assert document["write"]["message_id"] == str(message_id)
    assert document["write"]["now"] == "2025-01-02T03:04:05.678901Z"
    assert document["write"]["last_event_id"] == 12
    for path, write in zip(paths, writes, strict=True):
        assert decode(path.read_bytes()).write == write
    assert decode(encode(SpoolDocument(write=writes[0]))).write == writes[0]
    with pytest.raises(ValueError):
        decode(b'{"format": "something-else", "version": 1, "write": {}}')


def test_tree_writes_survive_the_spool_and_older_files_still_read(tmp_path: Path) -> None:
    message_id, parent_id = uuid.uuid4(), uuid.uuid4()
    regenerate = replace(_begin(message_id), parent_id=parent_id, user_message=False)
    resume = ResumeWrite(
        user_id=regenerate.user_id,
        conversation_id=regenerate.conversation_id,
        message_id=message_id,
        now=regenerate.now,
    )
    finish = replace(_finish(message_id), finish_reason="length")
    for write in (regenerate, resume, finish):
        assert decode(encode(SpoolDocument(write=write))).write == write
    # a file spooled before conversations were trees: no parent, a new user message
    document = json.loads(encode(SpoolDocument(write=_begin(message_id))))
    del document["write"]["parent_id"], document["write"]["user_message"]
    old = decode(json.dumps(document).encode()).write
    assert isinstance(old, BeginWrite) and old.parent_id is None and old.user_message


def test_a_claimed_file_is_not_claimed_twice(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    path = spool.put(_begin(uuid.uuid4()))
    with spool.claim(path) as first:
        assert first is not None
        with spool.claim(path) as second:  # another worker replaying at the same time
            assert second is None
        spool.remove(path)
    with spool.claim(path) as gone:
        assert gone is None
    assert spool.files() == []


async def test_held_writes_are_retried_in_order_with_checkpoints_collapsed(tmp_path: Path) -> None:
    writer = FakeWriter()
    pending = PendingWrites(
        writer=writer,  # type: ignore[arg-type]
        spool=Spool(tmp_path / "spool"),
        retry_s=600,
        jitter=lambda: 0.0,
    )
    await pending.start()
    message_id = uuid.uuid4()
    writer.down = True
    await pending.submit(_begin(message_id))  # fails: held, does not raise
    await pending.submit(_checkpoint(message_id, "Ec"))
    await pending.submit(_checkpoint(message_id, "Echo"))
    assert pending.held == 1 and writer.applied == []
    writer.down = False
    pending.wake()  # the database is back
    for _ in range(100):
        if not pending.held:
            break
        await asyncio.sleep(0.01)
    await pending.submit(_finish(message_id))  # nothing held any more: written at once
    await pending.aclose()
    assert [(w.kind, getattr(w, "content", None), retry) for w, retry in writer.applied] == [
        ("begin", None, True),
        ("checkpoint", "Echo", True),  # the older checkpoint was dropped
        ("finish", "Echo: hello", False),
    ]
    assert Spool(tmp_path / "spool").files() == []


async def test_past_the_retry_window_writes_are_spooled_then_replayed(tmp_path: Path) -> None:
    clock = [0.0]
    writer = FakeWriter()
    spool = Spool(tmp_path / "spool")
    pending = PendingWrites(
        writer=writer,  # type: ignore[arg-type]
        spool=spool,
        retry_s=30,
        clock=lambda: clock[0],
        jitter=lambda: 0.0,
    )
    await pending.start()
    message_id = uuid.uuid4()
    writer.down = True
    await pending.submit(_begin(message_id))
    await pending.submit(_finish(message_id))
    clock[0] = 31.0  # the retry window is over at the next failed round
    for _ in range(1000):  # the spool files are written one by one after `held` empties
        if pending.held == 0 and pending.busy() == {message_id} and len(spool.files()) == 2:
            break
        await asyncio.sleep(0.01)
    assert [p.name.rsplit("-", 1)[1] for p in spool.files()] == ["begin.json", "finish.json"]
    late = _checkpoint(message_id, "late")
    await pending.submit(late)  # behind its spooled writes: spooled too, never ahead of them
    assert len(spool.files()) == 3
    await pending.aclose()

    # the next start replays them, oldest first, as retries (idempotent), and deletes them
    writer.down = False
    again = PendingWrites(writer=writer, spool=spool, retry_s=30)  # type: ignore[arg-type]
    assert await again.replay() == set()
    assert [(w.kind, retry) for w, retry in writer.applied] == [
        ("begin", True),
        ("finish", True),
        ("checkpoint", True),
    ]
    assert spool.files() == []


async def test_at_shutdown_held_writes_are_spooled_and_a_down_database_keeps_them(
    tmp_path: Path,
) -> None:
    writer = FakeWriter()
    spool = Spool(tmp_path / "spool")
    pending = PendingWrites(writer=writer, spool=spool, retry_s=600)  # type: ignore[arg-type]
    await pending.start()
    first, second = uuid.uuid4(), uuid.uuid4()
    writer.down = True
    await pending.submit(_finish(first))
    await pending.submit(_begin(second))
    await pending.aclose()
    assert sorted(p.name.split("-", 2)[2] for p in spool.files()) == sorted(
        [f"{first}-finish.json", f"{second}-begin.json"]
    )
    restarted = PendingWrites(writer=writer, spool=spool, retry_s=600)  # type: ignore[arg-type]
    assert await restarted.replay() == {first, second}  # still down: kept, in order
    assert len(spool.files()) == 2


async def test_a_spooled_write_of_another_database_is_left_alone(tmp_path: Path) -> None:
    writer = FakeWriter()
    Spool(tmp_path / "spool", database="db-a").put(_begin(uuid.uuid4()))
    other = PendingWrites(
        writer=writer,  # type: ignore[arg-type]
        spool=Spool(tmp_path / "spool", database="db-b"),
        retry_s=600,
    )
    assert await other.replay() == set()
    assert writer.attempts == 0
    assert len(Spool(tmp_path / "spool").files()) == 1


async def test_a_write_that_retrying_cannot_fix_still_raises(tmp_path: Path) -> None:
    class Broken(FakeWriter):
        async def submit(self, op: Any, *, user_id: uuid.UUID) -> None:
            raise ValueError("a bug, not an outage")

    pending = PendingWrites(writer=Broken(), spool=Spool(tmp_path), retry_s=600)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await pending.submit(_begin(uuid.uuid4()))
    assert pending.held == 0


async def test_a_spool_that_cannot_be_written_keeps_the_writes_in_memory(tmp_path: Path) -> None:
    blocked = tmp_path / "spool"
    blocked.write_text("not a directory")  # spooling fails (even for root)
    writer = FakeWriter()
    pending = PendingWrites(
        writer=writer,  # type: ignore[arg-type]
        spool=Spool(blocked),
        retry_s=0,  # spool at the first failure
        jitter=lambda: 0.0,
    )
    await pending.start()
    message_id = uuid.uuid4()
    writer.down = True
    await pending.submit(_begin(message_id))
    assert pending.held == 1  # not lost: still retried
    blocked.unlink()  # the operator fixes the directory
    for _ in range(300):  # (counted as spooled before its file is written)
        if pending.held == 0 and pending.busy() == {message_id} and Spool(blocked).files():
            break
        await asyncio.sleep(0.01)
    assert [p.name.rsplit("-", 1)[1] for p in Spool(blocked).files()] == ["begin.json"]
    writer.down = False
    pending.wake()
    for _ in range(300):
        if not pending.busy():
            break
        await asyncio.sleep(0.01)
    await pending.aclose()
    assert [(w.kind, retry) for w, retry in writer.applied] == [("begin", True)]
    assert Spool(blocked).files() == []
