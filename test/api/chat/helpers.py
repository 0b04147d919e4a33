"""Helpers for chat tests: run a stream with a real SSE client and collect its events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from test.api.chat.stubs import StubTools


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


@pytest.fixture
def stub_tools(state: Any) -> Iterator[StubTools]:
    """Swap the app's tool source for a recording stub during one test."""
    stub = StubTools(delay=0.05)
    previous, state.tools = state.tools, stub
    yield stub
    state.tools = previous


@pytest.fixture
def upstream(fake_llm: Any) -> Iterator[Any]:
    """The session's fake LLM upstream, emptied for this test."""
    fake_llm._queue.clear()
    fake_llm._by_model.clear()
    fake_llm.requests.clear()
    fake_llm.default = None
    yield fake_llm
    fake_llm._queue.clear()
    fake_llm._by_model.clear()
    fake_llm.default = None
