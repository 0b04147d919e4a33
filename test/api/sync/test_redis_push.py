"""Two app instances sharing the database and Redis: a write on A is pushed to a stream on B."""

from __future__ import annotations

import httpx

from test.api.sync.helpers import Replica, server_state
from test.support.auth import register_and_login
from test.support.sse import next_event, sse_frames, stream_chat


async def test_a_change_on_one_instance_reaches_a_stream_on_the_other(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    user = await register_and_login(a, "alice")
    h = user["headers"]
    replica = Replica()
    await replica.pull(b, h)
    async with b.stream("GET", "/sync/stream", headers=h) as response:
        frames = sse_frames(response)
        assert (await next_event(frames))[1]["cursor"] == replica.cursor
        await a.put("/users/preferences", json={"theme": "dark"}, headers=h)  # written on A
        name, data = await next_event(frames, timeout=5)  # well before B's own re-check
        assert name == "changed" and data["cursor"] != replica.cursor
        await replica.pull(b, h)
        assert replica.cursor == data["cursor"] and replica.preferences["theme"] == "dark"

        await stream_chat(a, h, message="from instance A")
        head = (await b.get("/sync/changes", headers=h)).json()["cursor"]
        while data["cursor"] != head:
            name, data = await next_event(frames, timeout=5)
        await replica.pull(b, h)
        assert replica.state() == await server_state(a, h)
