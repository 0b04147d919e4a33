"""Shutdown ends every open stream with `error` `server_shutdown` before it closes: sync
streams at once, chat streams before the grace runs out (with the id of the last event the
client got), and after the restart a re-attach with that id gets the saved answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx_sse import aconnect_sse

from app.schemas.events import SERVER_SHUTDOWN as SHUTDOWN_ERROR
from test.support.apps import app_instance
from test.support.auth import register_and_login
from test.support.sse import Event, next_event, read_events, sse_frames

LONG = " ".join(f"w{i}" for i in range(300))  # echo-slow: ~9 s


async def after_changes(frames: AsyncIterator[tuple[str, Any]], timeout: float) -> tuple:
    """The next sync event that is not `changed` (changes made before shutdown still come)."""
    async with asyncio.timeout(timeout):
        while (event := await next_event(frames)) and event[0] == "changed":
            pass
    return event


@pytest.mark.slow
async def test_shutdown_ends_sync_streams_at_once_and_chat_streams_before_the_grace(
    instance_paths: tuple,
) -> None:
    async with app_instance(*instance_paths, shutdown_grace_seconds=1) as (client, state):
        user = await register_and_login(client, "bye")
        h = user["headers"]
        body = {"message": LONG, "model": "echo-slow"}
        async with (
            aconnect_sse(client, "POST", "/chat/stream", json=body, headers=h) as chat,
            client.stream("GET", "/sync/stream", headers=h) as sync,
        ):
            events = await read_events(chat, 4)
            sync_frames = sse_frames(sync)
            assert (await next_event(sync_frames))[0] == "changed"
            loop = asyncio.get_running_loop()
            began = loop.time()
            state.shutdown.begin()
            # the sync stream: the error at once, then the end of the response
            assert await after_changes(sync_frames, timeout=1) == ("error", SHUTDOWN_ERROR)
            assert await next_event(sync_frames, timeout=1) == ("eof", None)
            assert loop.time() - began < 0.5
            # the chat stream follows its answer until the grace minus the margin (0.5 s)
            events += await asyncio.wait_for(read_events(chat), 5)
            ended = loop.time() - began
        assert 0.4 < ended < 1.0, ended
        assert events[-1] == Event("error", events[-2].id, SHUTDOWN_ERROR)
        assert [e.name for e in events[4:-1]] == ["delta"] * (len(events) - 5)
        assert "w299" not in "".join(e.data.get("content", "") for e in events)
        message_id, last_id = events[0].data["message_id"], int(events[-1].id)
    # after the restart the answer was saved (cancelled): re-attach with the last id
    async with app_instance(*instance_paths) as (client, _):
        headers = {**h, "Last-Event-ID": str(last_id)}
        async with aconnect_sse(
            client, "GET", f"/chat/stream/{message_id}", headers=headers
        ) as source:
            rest = [(int(e.id), e.event, json.loads(e.data)) async for e in source.aiter_sse()]
        saved = await _message(client, h, events[0].data["conversation_id"])
    # the answer went on after the stream ended: ids continue above all it sent
    assert [name for _, name, _ in rest] == ["snapshot", "done"]
    assert last_id < rest[0][0] and rest[1][0] == rest[0][0] + 1
    assert rest[0][2]["content"] == saved["content"] and saved["status"] == "cancelled"
    assert rest[1][2]["finish_reason"] == "cancelled"
    text = "".join(e.data["content"] for e in events if e.name == "delta")
    assert saved["content"].startswith(text)


async def _message(client: Any, headers: dict, conversation_id: str) -> dict:
    response = await client.get(f"/chat/history/{conversation_id}", headers=headers)
    return dict(response.json()["messages"][-1])


async def test_a_stream_opened_after_the_deadline_ends_at_once(instance_paths: tuple) -> None:
    async with app_instance(*instance_paths, shutdown_grace_seconds=0) as (client, state):
        user = await register_and_login(client, "late")
        state.shutdown.begin()
        await asyncio.sleep(0.05)  # the deadline (grace 0) has passed
        body = {"message": "hi", "model": "echo-slow"}
        async with aconnect_sse(
            client, "POST", "/chat/stream", json=body, headers=user["headers"]
        ) as chat:
            events = await asyncio.wait_for(read_events(chat), 2)
    assert events == [Event("error", "0", SHUTDOWN_ERROR)]
