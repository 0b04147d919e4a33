"""Helpers for chat tests: run a stream with a real SSE client and collect its events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_sse import aconnect_sse

from app.api import deps
from app.main import create_app
from app.services.tools import Toolbox
from test.api.chat.stubs import StubTools
from test.conftest import make_settings, serve_app


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
def stub_tools(app: Any) -> Iterator[StubTools]:
    """Give chat a recording stub as its tool source during one test."""
    stub = StubTools(delay=0.05)
    app.dependency_overrides[deps.get_tools] = lambda: Toolbox([stub])
    yield stub
    del app.dependency_overrides[deps.get_tools]


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


@pytest.fixture
def instance_paths(
    app: Any, database_url: str, log_dir: Path, config_dir: Path
) -> tuple[str, Path, Path]:
    """What another app instance needs (the shared app migrated and emptied the database)."""
    return database_url, log_dir, config_dir


@asynccontextmanager
async def app_instance(
    database_url: str, log_dir: Path, config_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Another app instance on the test database, on a real socket: its client and state."""
    settings = make_settings(database_url, log_dir, config_dir=config_dir, **overrides)
    application = create_app(settings)
    async with (
        LifespanManager(application, startup_timeout=60, shutdown_timeout=60),
        serve_app(application) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client, application.state.vektor
