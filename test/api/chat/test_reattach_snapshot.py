"""Re-attach never loses text: a client that applies `delta` and `snapshot` events and drops
its connection at random points always ends with exactly the saved text, and the ids it
sees only ever grow — through the live log, an expired log, a restart of the app, and the
Redis mirror of another instance (also when the mirror lost the events)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from redis import Redis

from app.models import Conversation, Message
from app.services.chat.snapshot import ERROR_MESSAGES
from test.conftest import two_instances_on_redis
from test.support.apps import app_instance
from test.support.auth import register_and_login
from test.support.sse import Event
from test.support.waiting import eventually

WORDS = 90  # echo-slow: 30 ms a word, ~2.7 s an answer
MESSAGE = " ".join(f"w{i}" for i in range(WORDS))
SEEDS = range(4)
READ_TIMEOUT_S = 20


@dataclass
class Reader:
    """A client that applies delta and snapshot events, as the contract asks."""

    text: str = ""
    last_id: int = 0
    start: dict[str, Any] = field(default_factory=dict)
    snapshots: int = 0
    terminal: Event | None = None

    def apply(self, event: Event) -> None:
        """One event, in order; ids must only grow, even across re-attaches."""
        assert int(event.id) > self.last_id, (event, self.last_id)
        self.last_id = int(event.id)
        if event.name == "start":
            self.start = event.data
        elif event.name == "delta":
            self.text += event.data["content"]
        elif event.name == "snapshot":
            assert event.data["message_id"] == self.start["message_id"]
            self.text = event.data["content"]
            self.snapshots += 1
        elif event.name in ("done", "error"):
            self.terminal = event


async def _read(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    reader: Reader,
    *,
    limit: int | None,
    **kw: Any,
) -> None:
    """Open a stream, apply up to `limit` events (all when None), then drop the connection."""
    async with asyncio.timeout(READ_TIMEOUT_S), aconnect_sse(client, method, path, **kw) as source:
        assert source.response.status_code == 200, await source.response.aread()
        if limit == 0:
            return
        count = 0
        async for sse in source.aiter_sse():
            reader.apply(Event(sse.event, sse.id, json.loads(sse.data)))
            count += 1
            if reader.terminal is not None or count == limit:
                return


# before each re-attach: (round, the reader so far) -> the client to re-attach through
Between = Callable[[int, "Reader"], Awaitable[httpx.AsyncClient]]


async def _chat_with_drops(
    first: httpx.AsyncClient, headers: dict[str, str], rng: random.Random, between: Between
) -> Reader:
    """Start an answer, then keep dropping and re-attaching at random points until it ends."""
    reader = Reader()
    body = {"message": MESSAGE, "model": "echo-slow"}
    limit = rng.randint(1, 6)
    await _read(first, "POST", "/chat/stream", reader, limit=limit, json=body, headers=headers)
    message_id = reader.start["message_id"]
    for round_no in range(200):
        if reader.terminal is not None:
            return reader
        client = await between(round_no, reader)
        await _read(
            client,
            "GET",
            f"/chat/stream/{message_id}",
            reader,
            limit=rng.choice([0, 1, 2, 3, 5, 8, 13, None]),
            headers={**headers, "Last-Event-ID": str(reader.last_id)},
        )
    raise AssertionError("the answer never ended")


async def _saved(client: httpx.AsyncClient, headers: dict[str, str], reader: Reader) -> dict:
    """The saved assistant message once it is final."""
    for _ in range(400):
        path = f"/chat/history/{reader.start['conversation_id']}"
        message = (await client.get(path, headers=headers)).json()["messages"][-1]
        if message["status"] != "streaming":
            return dict(message)
        await asyncio.sleep(0.05)
    raise AssertionError("the answer was never saved")


async def _ends_with_the_saved_text(
    client: httpx.AsyncClient, headers: dict[str, str], reader: Reader
) -> None:
    saved = await _saved(client, headers, reader)
    assert reader.terminal is not None
    assert reader.text == saved["content"]
    expected = {"complete": ("done", "stop"), "cancelled": ("done", "cancelled")}
    assert (reader.terminal.name, reader.terminal.data.get("finish_reason")) == expected[
        saved["status"]
    ]
    if saved["status"] == "complete":
        assert saved["content"] == "Echo: " + MESSAGE


async def _same(client: httpx.AsyncClient) -> Between:
    async def between(_round: int, _reader: Reader) -> httpx.AsyncClient:
        return client

    return between


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_drops_on_the_live_log(
    live: httpx.AsyncClient, alice: dict, seed: int
) -> None:
    h = alice["headers"]
    reader = await _chat_with_drops(live, h, random.Random(seed), await _same(live))
    await _ends_with_the_saved_text(live, h, reader)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
async def test_random_drops_with_the_live_log_expiring(instance_paths: tuple, seed: int) -> None:
    rng = random.Random(seed)
    async with app_instance(*instance_paths, generation_retention_seconds=1) as (client, state):
        user = await register_and_login(client, f"expiry{seed}")
        user_id, expire_at = uuid.UUID(user["user"]["id"]), rng.randint(0, 3)
        expired = False

        async def between(round_no: int, reader: Reader) -> httpx.AsyncClient:
            nonlocal expired
            if round_no == expire_at:  # the answer ends, then its log is forgotten
                expired = True

                async def forgotten() -> bool:
                    known = await state.generations.owner_known(
                        message_id=uuid.UUID(reader.start["message_id"]), user_id=user_id
                    )
                    return known is None

                await eventually(forgotten, timeout_s=15)
            return client

        reader = await _chat_with_drops(client, user["headers"], rng, between)
        assert (reader.snapshots > 0) == expired  # rebuilt from the database once expired
        await _ends_with_the_saved_text(client, user["headers"], reader)


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_drops_across_a_restart_of_the_app(instance_paths: tuple, seed: int) -> None:
    rng = random.Random(seed)
    restart_at = rng.randint(0, 3)
    async with AsyncExitStack() as stack:
        first, _ = await stack.enter_async_context(app_instance(*instance_paths))
        user = await register_and_login(first, f"restart{seed}")
        current, restarted = first, False

        async def between(round_no: int, _reader: Reader) -> httpx.AsyncClient:
            nonlocal current, restarted
            if round_no == restart_at:  # stop the app (the answer is saved) and start anew
                restarted = True
                await stack.aclose()
                current, _ = await stack.enter_async_context(app_instance(*instance_paths))
            return current

        reader = await _chat_with_drops(first, user["headers"], rng, between)
        assert (reader.snapshots > 0) == restarted  # rebuilt from the database after it
        await _ends_with_the_saved_text(current, user["headers"], reader)


async def _lose_mirrored_events(redis: Redis, message_id: str, *, after: int) -> None:
    """Delete the mirrored events once the one after `after` is among them (or it ended)."""
    key = f"vektor:gen:{message_id}:events"

    async def written() -> bool:
        newest: Any = redis.xrevrange(key, count=1)
        if newest and int(newest[0][0].split(b"-")[1]) > after:
            return True
        return bool(redis.hget(f"vektor:gen:{message_id}", "status") != b"running")

    await eventually(written, timeout_s=15)
    redis.delete(key)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
async def test_random_drops_across_two_instances_and_a_lossy_mirror(
    instance_paths: tuple, private_redis: Any, seed: int
) -> None:
    rng = random.Random(seed)
    database_url, log_dir, config_dir = instance_paths
    url = private_redis.url(13)
    async with two_instances_on_redis(
        database_url=database_url, log_dir=log_dir, config_dir=config_dir, redis_url=url
    ) as (a, b):
        redis = Redis.from_url(url)
        user = await register_and_login(a, f"mirror{seed}")
        forget_at = rng.randint(3, 8)

        async def between(round_no: int, reader: Reader) -> httpx.AsyncClient:
            message_id, client = reader.start["message_id"], rng.choice([a, b])
            if client is b and rng.random() < 0.5:  # the mirror loses what the reader missed
                await _lose_mirrored_events(redis, message_id, after=reader.last_id)
            if round_no == forget_at:  # the answer ended, then Redis forgot all about it
                await _saved(a, user["headers"], reader)
                redis.delete(f"vektor:gen:{message_id}:events", f"vektor:gen:{message_id}")
            return client

        reader = await _chat_with_drops(a, user["headers"], rng, between)
        await _ends_with_the_saved_text(b, user["headers"], reader)


async def _saved_answer(state: Any, user: dict, **values: Any) -> str:
    """An assistant message saved by a worker that is gone (no log knows it)."""
    user_id, conversation_id, message_id = uuid.UUID(user["user"]["id"]), uuid.uuid4(), uuid.uuid4()
    async with state.session_factory() as session, session.begin():
        session.add(Conversation(id=conversation_id, user_id=user_id, message_count=1))
        await session.flush()
        row = {"content": "", "status": "complete", "last_event_id": 0, **values}
        session.add(
            Message(
                id=message_id,
                conversation_id=conversation_id,
                user_id=user_id,
                role="assistant",
                model="vektor-echo",
                **row,
            )
        )
    return str(message_id)


async def _reattach(client: httpx.AsyncClient, user: dict, message_id: str, after: int) -> list:
    headers = {**user["headers"], "Last-Event-ID": str(after)}
    async with aconnect_sse(client, "GET", f"/chat/stream/{message_id}", headers=headers) as src:
        assert src.response.status_code == 200
        return [(int(e.id), e.event, json.loads(e.data)) async for e in src.aiter_sse()]


TOOL_CALL = {
    "id": "c1",
    "server": "time",
    "tool": "now",
    "qualified_name": "time__now",
    "arguments": {"tz": "UTC"},
    "status": "ok",
    "result": "12:00",
    "duration_ms": 4,
    "round": 0,
}


async def test_an_interrupted_answer_is_a_snapshot_then_error_interrupted_above_every_id(
    live: httpx.AsyncClient, alice: dict, state: Any
) -> None:
    message_id = await _saved_answer(
        state, alice, content="half an ans", status="streaming", last_event_id=7
    )
    snapshot = {
        "message_id": message_id,
        "content": "half an ans",
        "reasoning": None,
        "tool_calls": None,
        "status": "streaming",
    }
    interrupted = {"code": "interrupted", "message": ERROR_MESSAGES["interrupted"]}
    # the client had fewer events than were saved: ids continue above the saved one
    assert await _reattach(live, alice, message_id, 3) == [
        (8, "snapshot", snapshot),
        (9, "error", interrupted),
    ]
    # ... or more (it saw events after the last checkpoint): above the client's
    assert await _reattach(live, alice, message_id, 12) == [
        (13, "snapshot", snapshot),
        (14, "error", interrupted),
    ]


async def test_a_saved_outcome_is_replayed_with_its_code_and_tool_calls(
    live: httpx.AsyncClient, alice: dict, state: Any
) -> None:
    failed = await _saved_answer(
        state,
        alice,
        content="so far",
        status="error",
        error_code="upstream_timeout",
        last_event_id=5,
        tool_calls=[TOOL_CALL],
    )
    events = await _reattach(live, alice, failed, 0)
    assert [(i, name) for i, name, _ in events] == [(6, "snapshot"), (7, "error")]
    public_call = {k: v for k, v in TOOL_CALL.items() if k not in ("qualified_name", "round")}
    assert events[0][2]["tool_calls"] == [public_call]
    assert events[0][2]["status"] == "error"
    assert events[1][2]["code"] == "upstream_timeout"

    cancelled = await _saved_answer(
        state, alice, content="stopped", status="cancelled", last_event_id=4
    )
    events = await _reattach(live, alice, cancelled, 4)
    assert events == [
        (5, "snapshot", {**events[0][2], "content": "stopped", "status": "cancelled"}),
        (6, "done", {"message_id": cancelled, "finish_reason": "cancelled"}),
    ]
