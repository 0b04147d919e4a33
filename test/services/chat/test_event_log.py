"""The in-process event log: replay from any id, live follow, bounded memory."""

from __future__ import annotations

import asyncio
import uuid

from app.services.chat.events import decode_frame
from app.services.chat.log import EventLog


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


async def test_dropped_events_are_reported_not_skipped_silently() -> None:
    log = _log(max_events=10)
    for i in range(11):  # the 11th append drops the oldest half
        log.append("delta", {"content": str(i)})
    assert log.first_available_id() == 7
    assert await asyncio.wait_for(_read(log, 2), 1) == [
        ("error", {"code": "replay_unavailable", "message": "Events were dropped; reload."})
    ]
    log.append("done", {"finish_reason": "stop"})
    tail = await _read(log, 6)
    assert [e[1].get("content") for e in tail] == ["6", "7", "8", "9", "10", None]
