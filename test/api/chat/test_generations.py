"""Generations outlive connections: cancel, re-attach with Last-Event-ID, disconnect, caps."""

from __future__ import annotations

import asyncio
import json

import httpx
from httpx_sse import aconnect_sse

from test.support.auth import log_in
from test.support.sse import Event, first_events, names, read_events, stream_chat, text_of

LONG = " ".join(f"word{i}" for i in range(60))  # echo-slow: ~30 ms per word


async def _reattach(
    client: httpx.AsyncClient, headers: dict, message_id: str, last_id: str | None
) -> list[Event]:
    extra = {"Last-Event-ID": last_id} if last_id else {}
    events: list[Event] = []
    async with aconnect_sse(
        client, "GET", f"/chat/stream/{message_id}", headers={**headers, **extra}
    ) as source:
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            events.append(Event(sse.event, sse.id, json.loads(sse.data)))
    return events


async def _wait_saved(client: httpx.AsyncClient, headers: dict, conversation_id: str) -> dict:
    for _ in range(200):
        conv = (await client.get(f"/chat/history/{conversation_id}", headers=headers)).json()
        if conv["messages"][-1]["status"] != "streaming":
            return conv
        await asyncio.sleep(0.05)
    raise AssertionError("assistant message was never finalised")


async def test_disconnect_then_reattach_gets_exactly_the_missed_events(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    first = await first_events(live, h, 5, message=LONG, model="echo-slow")
    # the live went away after 5 events; the generation keeps going
    start = first[0].data
    rest = await _reattach(live, h, start["message_id"], first[-1].id)
    assert int(rest[0].id) == int(first[-1].id) + 1
    combined = first + rest
    assert [int(e.id) for e in combined] == list(range(1, len(combined) + 1))
    assert combined[-1].name == "done" and combined[-1].data["finish_reason"] == "stop"
    conv = await _wait_saved(live, h, start["conversation_id"])
    assert conv["messages"][-1]["content"] == text_of(combined)
    assert conv["messages"][-1]["status"] == "complete"

    # a finished generation replays from the beginning to done
    replay = await _reattach(live, h, start["message_id"], None)
    assert [e.id for e in replay] == [e.id for e in combined]
    # ?last_event_id= works like the header
    tail = []
    async with aconnect_sse(
        live, "GET", f"/chat/stream/{start['message_id']}?last_event_id=3", headers=h
    ) as source:
        async for sse in source.aiter_sse():
            tail.append(sse.id)
    assert tail[0] == "4"


async def test_client_gone_reply_is_still_saved(live: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    first = await first_events(live, h, 2, message=LONG, model="echo-slow")
    conv = await _wait_saved(live, h, first[0].data["conversation_id"])
    assert conv["messages"][-1]["status"] == "complete"
    assert "word59" in conv["messages"][-1]["content"]


async def test_cancel_from_a_second_client_saves_partial_text(
    app, live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    # a second device of the same user
    other = (await log_in(live, "alice"))["headers"]
    async with aconnect_sse(
        live, "POST", "/chat/stream", json={"message": LONG, "model": "echo-slow"}, headers=h
    ) as source:
        events = await read_events(source, 4)
        message_id = events[0].data["message_id"]
        cancelled = await live.post(f"/chat/stream/{message_id}/cancel", headers=other)
        assert cancelled.status_code == 202
        events += await read_events(source)
    assert events[-1].name == "done" and events[-1].data["finish_reason"] == "cancelled"
    conv = await _wait_saved(live, h, events[0].data["conversation_id"])
    saved = conv["messages"][-1]
    assert saved["status"] == "cancelled"
    assert saved["content"] == text_of(events) and "word59" not in saved["content"]
    again = await live.post(f"/chat/stream/{message_id}/cancel", headers=other)
    assert again.status_code == 404


async def test_other_users_cannot_cancel_or_reattach(
    live: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    async with aconnect_sse(
        live,
        "POST",
        "/chat/stream",
        json={"message": LONG, "model": "echo-slow"},
        headers=alice["headers"],
    ) as source:
        events = await read_events(source, 2)
        message_id = events[0].data["message_id"]
        assert (
            await live.post(f"/chat/stream/{message_id}/cancel", headers=bob["headers"])
        ).status_code == 404
        assert (
            await live.get(f"/chat/stream/{message_id}", headers=bob["headers"])
        ).status_code == 404
        assert (
            await live.post(f"/chat/stream/{message_id}/cancel", headers=alice["headers"])
        ).status_code == 202
    unknown = "00000000-0000-4000-8000-000000000001"
    assert (await live.get(f"/chat/stream/{unknown}", headers=alice["headers"])).status_code == 404
    bad = await live.get(
        f"/chat/stream/{message_id}", headers={**alice["headers"], "Last-Event-ID": "abc"}
    )
    assert bad.status_code == 422


async def test_concurrent_generation_cap(live: httpx.AsyncClient, alice: dict, state) -> None:
    h = alice["headers"]
    cap = state.settings.max_concurrent_generations
    ids = []
    for _ in range(cap):
        async with aconnect_sse(
            live, "POST", "/chat/stream", json={"message": LONG, "model": "echo-slow"}, headers=h
        ) as source:
            ids.append((await read_events(source, 1))[0].data["message_id"])
    over = await live.post("/chat/stream", json={"message": "one more"}, headers=h)
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert int(over.headers["Retry-After"]) >= 1
    for message_id in ids:
        await live.post(f"/chat/stream/{message_id}/cancel", headers=h)
    for message_id in ids:
        await _reattach(live, h, message_id, None)  # ends at done
    ok = await stream_chat(live, h, message="after the others")
    assert names(ok)[-1] == "done"
