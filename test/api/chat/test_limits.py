"""Chat limits on a dedicated app: per-user rate limit, maximum duration, keep-alive pings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from test.fakes.llm_upstream import Reply
from test.support.apps import make_settings, serve_app
from test.support.auth import register_and_login
from test.support.sse import names, stream_chat, text_of


@pytest.fixture
async def limited(
    app: Any, database_url: str, log_dir: Path, config_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with tight chat limits, served on a real socket."""
    settings = make_settings(
        database_url,
        log_dir,
        config_dir=config_dir,
        rate_limit_chat="3/minute",
        max_generation_seconds=0.6,
        sse_ping_seconds=0.1,
    )
    application = create_app(settings)
    async with (
        LifespanManager(application),
        serve_app(application) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        yield client


async def test_chat_rate_limit_is_per_user(limited: httpx.AsyncClient) -> None:
    alice = await register_and_login(limited, "alice")
    bob = await register_and_login(limited, "bob")
    for _ in range(3):
        events = await stream_chat(limited, alice["headers"], message="hi")
        assert names(events)[-1] == "done"
    over = await limited.post("/chat/stream", json={"message": "hi"}, headers=alice["headers"])
    assert over.status_code == 429 and over.json()["code"] == "rate_limited"
    assert int(over.headers["Retry-After"]) >= 1
    assert names(await stream_chat(limited, bob["headers"], message="hi"))[-1] == "done"


async def test_maximum_duration_ends_with_error_and_keeps_partial_text(
    limited: httpx.AsyncClient,
) -> None:
    user = await register_and_login(limited, "slowpoke")
    long = " ".join(f"w{i}" for i in range(80))  # echo-slow: 30 ms a word, ~2.4 s
    events = await stream_chat(limited, user["headers"], message=long, model="echo-slow")
    assert events[-1].name == "error" and events[-1].data["code"] == "generation_timeout"
    conv = (
        await limited.get(
            f"/chat/history/{events[0].data['conversation_id']}", headers=user["headers"]
        )
    ).json()
    saved = conv["messages"][-1]
    assert saved["status"] == "error" and saved["content"] == text_of(events)
    assert 0 < len(saved["content"]) < len(long)


async def test_keep_alive_pings_while_waiting(limited: httpx.AsyncClient, upstream: Any) -> None:
    user = await register_and_login(limited, "pinger")
    upstream.script(Reply.text("late answer", first_token_delay=0.35))
    async with limited.stream(
        "POST",
        "/chat/stream",
        json={"message": "hi", "model": "fake-openai"},
        headers=user["headers"],
    ) as response:
        raw = await response.aread()
    assert raw.startswith(b"event: start\nid: 1\n")
    assert raw.count(b": ping\n\n") >= 2
    assert raw.index(b": ping") < raw.index(b"event: delta")
    assert b"event: done" in raw
