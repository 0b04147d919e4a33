"""Reading event streams the way a client does: chat turns with `httpx-sse`, raw frames
(keep-alive pings included) for `/sync/stream`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse


@dataclass
class Event:
    """One parsed SSE event."""

    name: str
    id: str
    data: dict[str, Any]


async def stream_chat(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> list[Event]:
    """POST /chat/stream and read every event until the stream ends."""
    events: list[Event] = []
    async with aconnect_sse(client, "POST", "/chat/stream", json=body, headers=headers) as source:
        assert source.response.status_code == 200, await source.response.aread()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            events.append(Event(sse.event, sse.id, json.loads(sse.data)))
    return events


async def read_events(source: Any, limit: int | None = None) -> list[Event]:
    """Read up to `limit` events (all when None) from an open `aconnect_sse` source.

    One iterator per response is kept on the source, so reading can resume later."""
    if not hasattr(source, "_events_iter"):
        source._events_iter = source.aiter_sse()
    events: list[Event] = []
    async for sse in source._events_iter:
        events.append(Event(sse.event, sse.id, json.loads(sse.data)))
        if limit is not None and len(events) >= limit:
            break
    return events


def names(events: list[Event]) -> list[str]:
    """The event names in order."""
    return [e.name for e in events]


def text_of(events: list[Event]) -> str:
    """The assistant text the deltas add up to."""
    return "".join(e.data["content"] for e in events if e.name == "delta")


async def sse_frames(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """('ping', None) for keep-alives, (event name, data) for events."""
    name = None
    async for line in response.aiter_lines():
        if line.startswith(": ping"):
            yield "ping", None
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            yield name, json.loads(line.removeprefix("data: "))
            name = None


async def next_event(frames: AsyncIterator[tuple[str, Any]], timeout: float = 5) -> tuple[str, Any]:
    """The next event that is not a ping (`("eof", None)` when the stream ends)."""

    async def read() -> tuple[str, Any]:
        async for name, data in frames:
            if name != "ping":
                return name, data
        return "eof", None

    return await asyncio.wait_for(read(), timeout=timeout)


async def first_events(
    client: httpx.AsyncClient, headers: dict[str, str], count: int, **body: Any
) -> list[Event]:
    """Start a chat turn, read its first `count` events and hang up (the answer runs on)."""
    async with aconnect_sse(client, "POST", "/chat/stream", json=body, headers=headers) as source:
        assert source.response.status_code == 200, await source.response.aread()
        return await read_events(source, count)
