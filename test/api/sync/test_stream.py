"""`GET /sync/stream` in one process: a `changed` event per commit, pings, sign-out ends it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.api import deps
from app.state import AppState
from test.api.sync.helpers import Replica, server_state
from test.support.sse import next_event, sse_frames, stream_chat


@pytest.fixture
def fast_pings(app: Any, state: AppState, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pings every 0.2 s and session checks every 0.3 s for this test."""
    fast = state.settings.model_copy(update={"sse_ping_seconds": 0.2})
    app.dependency_overrides[deps.get_settings_dep] = lambda: fast
    monkeypatch.setattr("app.services.sync.stream.REVALIDATE_S", 0.3)
    yield
    del app.dependency_overrides[deps.get_settings_dep]


async def test_stream_pushes_each_change_and_pings(
    live: httpx.AsyncClient, client: httpx.AsyncClient, alice: dict, fast_pings: None
) -> None:
    h = alice["headers"]
    replica = Replica()
    await replica.pull(client, h)
    async with live.stream("GET", "/sync/stream", headers=h) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = sse_frames(response)
        name, data = await next_event(frames)
        assert name == "changed" and data["cursor"] == replica.cursor  # nothing missed yet

        await client.put("/users/preferences", json={"theme": "light"}, headers=h)
        name, data = await next_event(frames)
        assert name == "changed" and data["cursor"] != replica.cursor
        await replica.pull(client, h)
        assert replica.cursor == data["cursor"] and replica.preferences["theme"] == "light"

        await stream_chat(client, h, message="pushed")  # begin and finish: two commits
        head = (await client.get("/sync/changes", headers=h)).json()["cursor"]
        while data["cursor"] != head:
            name, data = await next_event(frames)
        await replica.pull(client, h)
        assert replica.state() == await server_state(client, h)

        kinds = []
        async for kind, _ in frames:
            kinds.append(kind)
            if len(kinds) == 2:
                break
        assert kinds == ["ping", "ping"]  # quiet: keep-alives only


async def test_stream_needs_a_token_and_ends_after_sign_out(
    live: httpx.AsyncClient, alice: dict, bob: dict, fast_pings: None
) -> None:
    assert (await live.get("/sync/stream")).status_code == 401
    h = alice["headers"]
    async with live.stream("GET", "/sync/stream", headers=h) as response:
        frames = sse_frames(response)
        assert (await next_event(frames))[0] == "changed"
        await live.put("/users/preferences", json={"theme": "dark"}, headers=bob["headers"])
        assert (await live.post("/auth/logout", headers=h)).status_code == 204
        # bob's change is not alice's business; her stream ends after the sign-out, saying why
        name, data = await next_event(frames, timeout=5)
        assert (name, data["code"]) == ("error", "token_revoked")
        assert await next_event(frames, timeout=5) == ("eof", None)
