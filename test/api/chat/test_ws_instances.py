"""`GET /ws` across two app instances sharing the database and Redis: another instance's
write reaches the socket as `sync.changed`, its logout closes the socket with 4401."""

from __future__ import annotations

import httpx

from test.support.auth import log_in, register_and_login
from test.support.ws import close_code, receive, send, signed_in


async def test_another_instances_write_and_logout_reach_the_socket(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    alice = await register_and_login(a, "alice")
    other = await log_in(a, "alice")
    async with signed_in(str(b.base_url).rstrip("/"), alice["access_token"]) as ws:
        await send(ws, {"type": "sync.subscribe"})
        first = await receive(ws)
        put = await a.put(
            "/users/preferences", json={"system_prompt": "Be brief."}, headers=other["headers"]
        )
        assert put.status_code == 200, put.text
        changed = await receive(ws)
        assert changed["type"] == "sync.changed" and changed["cursor"] != first["cursor"]
        out = await a.post("/auth/logout", headers=alice["headers"])
        assert out.status_code == 204
        assert await close_code(ws) == 4401
