"""Redis goes away and comes back: the app keeps serving what it can and recovers by itself.

Runs its own `redis-server` on a free loopback port, two app instances (X and Y) on it and
the test database. While Redis is down: health is `degraded`, auth endpoints fail closed
(503 `rate_limit_unavailable`), chat, history and sync keep working in-process. After Redis
is back on the same port, without restarting anything: health is `ok`, logins work, a
change on Y is pushed to a stream on X, and a generation on Y is re-attached and
cancelled through X (mirror writer, cancel listener and sync listener reconnected).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from httpx_sse import aconnect_sse
from redis import Redis

from app.main import create_app
from test.support.apps import make_settings, serve_app
from test.support.auth import TEST_PASSWORD, register_and_login
from test.support.redis_server import REDIS_SERVER, SKIP_REASON, RedisProcess
from test.support.sse import first_events, next_event, read_events, sse_frames, stream_chat
from test.support.waiting import eventually

LONG = " ".join(f"word{i}" for i in range(200))
# cancel requests, sync push, session revocations
CHANNELS = ("vektor:gen:cancel", "vektor:sync:changed", "vektor:auth:revoked")

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason=SKIP_REASON)


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A running private Redis, stopped at the end whatever happened."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def xy(
    app: Any, database_url: str, log_dir: Path, config_dir: Path, redis_process: RedisProcess
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Instances X and Y on the private Redis and the test database, on real sockets."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            settings = make_settings(
                database_url,
                log_dir,
                config_dir=config_dir,
                redis_url=redis_process.url(),
                sse_ping_seconds=1,
            )
            application = create_app(settings)
            await stack.enter_async_context(LifespanManager(application))
            url = await stack.enter_async_context(serve_app(application))
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=10))
            )
        yield clients[0], clients[1]


async def _login(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/auth/login", json={"username": "alice", "password": TEST_PASSWORD})


async def test_redis_outage_degrades_then_recovers(
    xy: tuple[httpx.AsyncClient, httpx.AsyncClient], redis_process: RedisProcess
) -> None:
    x, y = xy
    h = (await register_and_login(x, "alice"))["headers"]
    health = (await x.get("/health")).json()
    assert health["status"] == "ok" and health["checks"]["redis"]["status"] == "ok"

    redis_process.stop()
    health = (await x.get("/health")).json()
    assert health["status"] == "degraded" and health["checks"]["redis"]["status"] == "error"
    for response in (
        await _login(x),
        await x.post(
            "/auth/register",
            json={"email": "b@example.com", "username": "bob", "password": TEST_PASSWORD},
        ),
    ):
        assert response.status_code == 503 and response.json()["code"] == "rate_limit_unavailable"
    # what does not need Redis keeps working in-process
    events = await asyncio.wait_for(stream_chat(x, h, message="still here"), timeout=15)
    assert events[-1].name == "done"
    assert (await x.get("/chat/history", headers=h)).json()["items"]
    async with x.stream("GET", "/sync/stream", headers=h) as response:
        frames = sse_frames(response)
        await next_event(frames)
        assert (
            await x.put("/users/preferences", json={"theme": "dark"}, headers=h)
        ).status_code == 200
        assert (await next_event(frames))[0] == "changed"  # same-instance push needs no Redis

    redis_process.start()  # same port, empty
    await eventually(lambda: _status_is(x, "ok"), timeout_s=10, interval_s=0.1, what="recovery")
    await eventually(lambda: _ok(_login(x)), timeout_s=5, interval_s=0.1, what="recovery")
    # both instances' cancel and sync listeners subscribe again by themselves
    await eventually(
        lambda: _subscribed(redis_process, 2), timeout_s=10, interval_s=0.1, what="recovery"
    )

    # a change written on Y reaches a stream on X through Redis pub/sub again
    async with x.stream("GET", "/sync/stream", headers=h) as response:
        frames = sse_frames(response)
        _, last = await next_event(frames)

        async def pushed() -> bool:
            await y.put(
                "/users/preferences", json={"language": f"l{time.monotonic_ns()}"}, headers=h
            )
            try:
                _, data = await next_event(frames, timeout=1.5)
            except TimeoutError:
                return False
            return data["cursor"] != last["cursor"]

        await eventually(pushed, timeout_s=10, interval_s=0.1, what="recovery")

    # a generation on Y is mirrored to Redis, re-attached and cancelled through X
    first = await asyncio.wait_for(
        first_events(y, h, 4, message=LONG, model="echo-slow"), timeout=10
    )
    message_id = first[0].data["message_id"]
    async with aconnect_sse(
        x, "GET", f"/chat/stream/{message_id}", headers={**h, "Last-Event-ID": first[-1].id}
    ) as source:
        assert source.response.status_code == 200
        await asyncio.wait_for(read_events(source, 2), timeout=10)
        assert (await x.post(f"/chat/stream/{message_id}/cancel", headers=h)).status_code == 202
        rest = await asyncio.wait_for(read_events(source), timeout=10)
    assert rest[-1].name == "done" and rest[-1].data["finish_reason"] == "cancelled"


async def _subscribed(server: RedisProcess, instances: int) -> bool:
    counts = dict(Redis.from_url(server.url()).pubsub_numsub(*CHANNELS))
    return all(counts.get(channel.encode(), 0) >= instances for channel in CHANNELS)


async def _status_is(client: httpx.AsyncClient, status: str) -> bool:
    return bool((await client.get("/health")).json()["status"] == status)


async def _ok(request: Awaitable[httpx.Response]) -> bool:
    return (await request).status_code == 200
