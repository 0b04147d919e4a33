"""The in-process event log: replay from any id, live follow, bounded memory."""

from __future__ import annotations

import asyncio
import uuid

from app.core.sse import decode_frame
from app.services.chat.log import EventLog
from app.services.chat.registry import GenerationRegistry


def _log(max_events: int = 100) -> EventLog:
    return EventLog(message_id=uuid.uuid4(), user_id=uuid.uuid4(), max_events=max_events)


async def _read(log: EventLog, after: int) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    async for batch in log.follow(after, ping_s=5):
        assert batch is not None
        out += [decode_frame(frame) for frame in batch]
    return out


async def test_a_reader_gets_exactly_the_events_after_its_id_then_follows_live() -> None:
    log = _log()
    for i in range(3):
        log.append("delta", {"content": str(i)})
    reader = asyncio.create_task(_read(log, 1))
    await asyncio.sleep(0)
    log.append("delta", {"content": "3"})
    log.append("done", {"finish_reason": "stop"})
    events = await asyncio.wait_for(reader, 2)
    assert [e[1].get("content") for e in events] == ["1", "2", "3", None]
    assert events[-1][0] == "done"


async def test_after_the_terminal_event_a_reader_ends_at_once() -> None:
    log = _log()
    log.append("delta", {"content": "x"})
    log.append("done", {"finish_reason": "stop"})
    assert await asyncio.wait_for(_read(log, 2), 1) == []
    assert [name for name, _ in await _read(log, 0)] == ["delta", "done"]


def _ids(batches: list[bytes]) -> list[int]:
    return [int(line[4:]) for f in batches for line in f.decode().split("\n") if line[:4] == "id: "]


async def _frames(log: EventLog, after: int) -> list[bytes]:
    out: list[bytes] = []
    async for batch in log.follow(after, ping_s=5):
        assert batch is not None
        out += batch
    return out


async def test_a_reader_whose_events_were_dropped_gets_a_snapshot_then_follows_live() -> None:
    log = _log(max_events=10)
    log.append("start", {"message_id": str(log.message_id)})
    for i in range(10):  # the 11th append drops the oldest half
        log.append("delta", {"content": str(i)})
    assert log.first_available_id() == 7
    reader = asyncio.create_task(_frames(log, 2))
    await asyncio.sleep(0)
    log.append("delta", {"content": "10"})
    log.append("done", {"finish_reason": "stop"})
    frames = await asyncio.wait_for(reader, 1)
    assert decode_frame(frames[0]) == (
        "snapshot",
        {
            "message_id": str(log.message_id),
            "content": "0123456789",
            "reasoning": None,
            "tool_calls": None,
            "status": "streaming",
        },
    )
    # the snapshot stands for the newest event (11), then the log goes on from there
    assert _ids(frames) == [11, 12, 13]
    assert [decode_frame(f)[1].get("content") for f in frames[1:]] == ["10", None]


async def test_a_finished_log_resyncs_to_its_last_content_then_replays_its_outcome() -> None:
    log = _log(max_events=10)
    log.append("tool_call", {"call_id": "c1", "server": "s", "tool": "t", "arguments": {}})
    log.append("tool_result", {"call_id": "c1", "status": "ok", "content": "r", "duration_ms": 3})
    for i in range(9):
        log.append("delta", {"content": str(i)})
    log.append("usage", {"input_tokens": 1, "output_tokens": 2})
    log.append("done", {"finish_reason": "stop"})
    frames = await asyncio.wait_for(_frames(log, 1), 1)  # event 2 was dropped
    name, data = decode_frame(frames[0])
    assert name == "snapshot" and data["content"] == "012345678"
    assert data["tool_calls"] == [
        {
            "id": "c1",
            "server": "s",
            "tool": "t",
            "arguments": {},
            "status": "ok",
            "result": "r",
            "duration_ms": 3,
        }
    ]
    assert _ids(frames) == [11, 12, 13]
    assert [decode_frame(f)[0] for f in frames[1:]] == ["usage", "done"]


async def test_an_id_the_log_never_sent_gets_a_snapshot_not_a_silent_gap() -> None:
    log = _log()
    log.append("delta", {"content": "a"})
    log.append("delta", {"content": "b"})
    reader = asyncio.create_task(_frames(log, 9))
    await asyncio.sleep(0)
    log.append("done", {"finish_reason": "stop"})
    frames = await asyncio.wait_for(reader, 1)
    assert decode_frame(frames[0])[1]["content"] == "ab"
    assert [decode_frame(f)[0] for f in frames] == ["snapshot", "done"]


def test_the_owner_catches_a_remote_reader_up_exactly_or_with_a_snapshot() -> None:
    registry = GenerationRegistry()
    gen = registry.create(message_id=uuid.uuid4(), user_id=uuid.uuid4())
    gen.log.max_events = 10
    for i in range(11):  # ids 1..11; the 11th drops ids 1..6
        registry.publish(gen, "delta", {"content": str(i)})
    exact = registry._catchup_local(gen.log.message_id, 8)
    assert exact is not None and (exact.last_id, exact.done) == (11, False)
    assert _ids([exact.frames]) == [9, 10, 11]
    lost = registry._catchup_local(gen.log.message_id, 2)  # before what the log still holds
    assert lost is not None and (lost.last_id, lost.done) == (11, False)
    assert decode_frame(lost.frames) == ("snapshot", decode_frame(lost.frames)[1])
    assert decode_frame(lost.frames)[1]["content"] == "012345678910"
    assert _ids([lost.frames]) == [11]
    registry.publish(gen, "done", {"finish_reason": "stop"})
    finished = registry._catchup_local(gen.log.message_id, 1)
    assert finished is not None and (finished.last_id, finished.done) == (12, True)
    assert _ids([finished.frames]) == [11, 12]  # snapshot at the last delta, then done
    assert registry._catchup_local(uuid.uuid4(), 0) is None


async def test_an_idle_reader_gets_keep_alives_and_none_while_events_flow() -> None:
    log = _log()
    got: list[str] = []

    async def read() -> None:
        async for batch in log.follow(0, ping_s=0.3):
            got.extend(["ping"] if batch is None else [decode_frame(f)[0] for f in batch])

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.4)  # idle: a keep-alive every 0.3 s
    pings = got.count("ping")
    assert pings >= 1
    for _ in range(8):  # an event every 0.01 s: never idle for 0.3 s, so no keep-alive
        log.append("delta", {"content": "x"})
        await asyncio.sleep(0.01)
    log.append("done", {"finish_reason": "stop"})
    await asyncio.wait_for(reader, 1)
    assert got.count("ping") == pings
    assert got[pings:] == ["delta"] * 8 + ["done"]
    assert log._waiters == []  # an idle reader's keep-alives leave no waiter behind


async def test_a_reader_that_leaves_cancels_its_keep_alive_timer() -> None:
    log = _log()
    follow = log.follow(0, ping_s=0.05)
    reader = asyncio.create_task(anext(follow))
    await asyncio.sleep(0.01)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await follow.aclose()
    log.append("delta", {"content": "x"})  # the cancelled waiter is skipped
    assert log._waiters == []


async def test_a_cancel_request_reaches_its_agent_whether_asked_before_or_after_it_waits() -> None:
    from app.services.chat.registry import CancelRequest

    early = CancelRequest()
    early.set()
    assert early.is_set() and early.future().done()
    late = CancelRequest()
    waiting = asyncio.ensure_future(late.wait())
    await asyncio.sleep(0)
    assert not late.future().done()
    late.set()
    late.set()  # again: no effect
    await asyncio.wait_for(waiting, 1)
    assert late.is_set()
