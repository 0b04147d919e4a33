"""Answers a dead process left `streaming`: which are ended as `interrupted`, and which not.

The rule (app/services/chat/interrupted.py): a generation that runs on a live process, or
that Redis has not heard of yet, is never touched; one whose process is gone is ended with
its checkpointed text, under a new sync change number. Run on both databases.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import update

from app.db.base import utcnow
from app.models import Message
from app.services.chat.interrupted import InterruptedAnswers
from app.services.chat.log import EventLog
from app.services.chat.redis_mirror import RedisMirror
from app.services.chat.store import TurnIds, TurnStore
from app.state import AppState


class FakeGenerations:
    """What the registry answers about each generation (the test decides)."""

    def __init__(self, states: dict[uuid.UUID, str] | None) -> None:
        self.answers = states
        self.asked: list[set[uuid.UUID]] = []

    async def states(self, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, str] | None:
        self.asked.append(set(message_ids))
        return None if self.answers is None else dict(self.answers)


async def _streaming(state: AppState, user_id: uuid.UUID, text: str, *, age_s: float) -> uuid.UUID:
    """A turn begun `age_s` ago and checkpointed with `text`, never finished."""
    store = TurnStore(writer=state.turn_writer)
    ids = TurnIds(
        user_id=user_id,
        conversation_id=uuid.uuid4(),
        user_message_id=uuid.uuid4(),
        message_id=uuid.uuid4(),
    )
    await store.begin(
        ids=ids,
        new_conversation=True,
        model_id="vektor-echo",
        text="question",
        now=utcnow() - timedelta(seconds=age_s),
    )
    await store.checkpoint(user_id=user_id, message_id=ids.message_id, content=text)
    return ids.message_id


async def _status(state: AppState, message_id: uuid.UUID) -> tuple[str, str, str | None, int]:
    async with state.session_factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message.status, message.content, message.error_code, message.change_seq


async def test_only_answers_no_live_process_runs_are_interrupted(
    state: AppState, alice: dict[str, Any], client: httpx.AsyncClient
) -> None:
    user_id = uuid.UUID(alice["user"]["id"])
    live = await _streaming(state, user_id, "Echo: still", age_s=60)
    dead = await _streaming(state, user_id, "Echo: half", age_s=60)
    forgotten = await _streaming(state, user_id, "Echo: old", age_s=3600)
    fresh = await _streaming(state, user_id, "Echo: new", age_s=0)
    spooled = await _streaming(state, user_id, "Echo: spooled", age_s=60)
    before = {m: await _status(state, m) for m in (live, dead, forgotten, fresh, spooled)}
    generations = FakeGenerations(
        {live: "running", dead: "orphaned", forgotten: "unknown", fresh: "unknown"}
    )
    sweeper = InterruptedAnswers(
        db=state.db,
        writer=state.turn_writer,
        generations=generations,  # type: ignore[arg-type]
        max_generation_s=60,
        recheck_s=0.1,
        register_grace_s=1.0,
    )
    cursor = (await client.get("/sync/changes", headers=alice["headers"])).json()["cursor"]
    ended = await sweeper.start(skip={spooled})  # its spooled finish was not replayed yet
    assert ended == 2
    for message_id, text in ((dead, "Echo: half"), (forgotten, "Echo: old")):
        status, content, code, seq = await _status(state, message_id)
        assert (status, content, code) == ("error", text, "interrupted")
        assert seq > before[message_id][3]  # devices are told
    for message_id in (live, fresh, spooled):
        assert await _status(state, message_id) == before[message_id]
    changes = await client.get(f"/sync/changes?since={cursor}", headers=alice["headers"])
    synced = {m["id"]: m for m in changes.json()["messages"]}
    assert synced[str(dead)]["status"] == "error" and synced[str(dead)]["content"] == "Echo: half"
    assert str(live) not in synced

    # later: the live one's process died (its heartbeat expired), the fresh one was never
    # mirrored; the background re-check ends both, still never the spooled one
    generations.answers = {live: "orphaned", fresh: "unknown"}
    for _ in range(100):
        if (await _status(state, live))[0] == "error" and (await _status(state, fresh))[
            0
        ] == "error":
            break
        await asyncio.sleep(0.05)
    assert (await _status(state, live))[:3] == ("error", "Echo: still", "interrupted")
    assert (await _status(state, fresh))[:3] == ("error", "Echo: new", "interrupted")
    assert await _status(state, spooled) == before[spooled]
    await sweeper.aclose()
    assert all(spooled not in asked for asked in generations.asked)


async def test_nothing_is_touched_when_redis_cannot_be_asked(
    state: AppState, alice: dict[str, Any]
) -> None:
    user_id = uuid.UUID(alice["user"]["id"])
    message_id = await _streaming(state, user_id, "Echo: maybe", age_s=3600)
    before = await _status(state, message_id)
    sweeper = InterruptedAnswers(
        db=state.db,
        writer=state.turn_writer,
        generations=FakeGenerations(None),  # type: ignore[arg-type]
        max_generation_s=60,
    )
    assert await sweeper.start() == 0
    await sweeper.aclose()
    assert await _status(state, message_id) == before


async def test_a_finished_answer_beats_an_interrupted_mark(
    state: AppState, alice: dict[str, Any]
) -> None:
    # if a process is ever wrong (its finish still held while another marked the message),
    # the answer's own final write wins
    user_id = uuid.UUID(alice["user"]["id"])
    message_id = await _streaming(state, user_id, "Echo: par", age_s=60)
    async with state.engine.begin() as conn:
        await conn.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status="error", error_code="interrupted")
        )
    async with state.session_factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        conversation_id = message.conversation_id
    await TurnStore(writer=state.turn_writer).finish(
        ids=TurnIds(
            user_id=user_id,
            conversation_id=conversation_id,
            user_message_id=uuid.uuid4(),
            message_id=message_id,
        ),
        content="Echo: partial answer",
        status="complete",
        model_id="vektor-echo",
        usage=None,
        tool_calls=None,
        title=None,
        now=utcnow(),
        last_event_id=9,
    )
    assert (await _status(state, message_id))[:3] == ("complete", "Echo: partial answer", None)


async def test_redis_tells_a_live_owner_from_a_dead_one(private_redis: Any) -> None:
    url = private_redis.url(11)
    raw = Redis.from_url(url)
    await raw.flushdb()
    mirror = RedisMirror(
        url,
        retention_s=60,
        max_generation_s=60,
        on_cancel=lambda _: None,
        on_catchup=lambda _id, _after: None,
    )
    await mirror.start()
    try:
        mine = EventLog(message_id=uuid.uuid4(), user_id=uuid.uuid4())
        mirror.register(mine)  # owned by this live process
        dead, legacy_running, legacy_done, never = (uuid.uuid4() for _ in range(4))
        await raw.hset(f"vektor:gen:{dead}", mapping={"status": "running", "owner": "gone"})
        await raw.hset(f"vektor:gen:{legacy_running}", mapping={"status": "running"})
        await raw.hset(f"vektor:gen:{legacy_done}", mapping={"status": "done"})
        for _ in range(100):
            if await raw.exists(f"vektor:gen:{mine.message_id}"):
                break
            await asyncio.sleep(0.02)
        states = await mirror.states([mine.message_id, dead, legacy_running, legacy_done, never])
        assert states == {
            mine.message_id: "running",
            dead: "orphaned",
            legacy_running: "running",
            legacy_done: "orphaned",
            never: "unknown",
        }
        # the owner's heartbeat key going away (its process died) orphans its generation
        await raw.delete(f"vektor:gen:instance:{mirror.instance}")
        assert (await mirror.states([mine.message_id]))[mine.message_id] == "orphaned"
    finally:
        await mirror.aclose()
        await raw.flushdb()
        await raw.aclose()


async def test_an_answer_awaiting_approval_is_interrupted_with_its_call_listed(
    state: AppState, alice: dict[str, Any]
) -> None:
    user_id = uuid.UUID(alice["user"]["id"])
    message_id = await _streaming(state, user_id, "Echo: asking", age_s=60)
    pending = {"id": "c1", "server": "test", "tool": "add", "arguments": {"a": 1}, "round": 0}
    done = {**pending, "id": "c0", "status": "ok", "result": "2", "duration_ms": 3}
    waiting = {**pending, "status": "awaiting_approval", "result": None, "duration_ms": 0}
    await TurnStore(writer=state.turn_writer).checkpoint(
        user_id=user_id,
        message_id=message_id,
        content="Echo: asking",
        status="awaiting_approval",
        tool_calls=[done, {**waiting, "expires_at": "2026-01-01T00:00:00+00:00"}],
    )
    assert (await _status(state, message_id))[0] == "awaiting_approval"
    sweeper = InterruptedAnswers(
        db=state.db,
        writer=state.turn_writer,
        generations=FakeGenerations({message_id: "orphaned"}),  # type: ignore[arg-type]
        max_generation_s=60,
    )
    assert await sweeper.start() == 1
    assert (await _status(state, message_id))[:3] == ("error", "Echo: asking", "interrupted")
    async with state.session_factory() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        first, second = message.tool_calls or []
    assert first == done
    assert second["id"] == "c1" and second["status"] == "error" and "expires_at" not in second
    assert "restarted" in second["result"]
    await sweeper.aclose()
