"""`GET /sync/stream` ends within a second when its session is revoked, on any instance.

The periodic session check (every 30 s) stays untouched here: only the revocation notice can
end these streams in time. Each stream must end with `error` `token_revoked`, then EOF.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.repositories.auth_sessions import AuthSessionRepository
from app.state import AppState
from test.support.auth import TEST_PASSWORD, log_in, register_and_login
from test.support.sse import next_event, sse_frames

Frames = AsyncIterator[tuple[str, Any]]
PROMPTLY_S = 1.0


@asynccontextmanager
async def sync_stream(client: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[Frames]:
    """An open `/sync/stream` whose first `changed` event has arrived."""
    async with client.stream("GET", "/sync/stream", headers=headers) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
        assert (await next_event(frames))[0] == "changed"
        yield frames


async def ends_revoked(frames: Frames) -> None:
    """The stream says `token_revoked` and closes, both within `PROMPTLY_S`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    name, data = await next_event(frames, timeout=PROMPTLY_S)
    assert (name, data.get("code")) == ("error", "token_revoked"), (name, data)
    assert await next_event(frames, timeout=PROMPTLY_S) == ("eof", None)
    assert loop.time() - started < PROMPTLY_S


async def still_live(client: httpx.AsyncClient, headers: dict[str, str], frames: Frames) -> None:
    """The stream still delivers changes."""
    assert (
        await client.put("/users/preferences", json={"theme": "light"}, headers=headers)
    ).is_success
    assert (await next_event(frames))[0] == "changed"


async def change_password(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Change the password from the session of `headers` (revokes every other session)."""
    response = await client.post(
        "/users/change-password",
        json={"current_password": TEST_PASSWORD, "new_password": "another horse battery"},
        headers=headers,
    )
    assert response.status_code == 204


async def test_logout_ends_the_stream_at_once(live: httpx.AsyncClient, alice: dict) -> None:
    async with sync_stream(live, alice["headers"]) as frames:
        assert (await live.post("/auth/logout", headers=alice["headers"])).status_code == 204
        await ends_revoked(frames)


async def test_logout_of_all_devices_ends_every_stream(
    live: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    phone = await log_in(live)
    async with (
        sync_stream(live, alice["headers"]) as laptop_frames,
        sync_stream(live, phone["headers"]) as phone_frames,
        sync_stream(live, bob["headers"]) as bob_frames,
    ):
        response = await live.post(
            "/auth/logout", json={"all_devices": True}, headers=phone["headers"]
        )
        assert response.status_code == 204
        await ends_revoked(laptop_frames)
        await ends_revoked(phone_frames)
        await still_live(live, bob["headers"], bob_frames)  # another user is not touched


async def test_revoking_one_device_ends_only_its_stream(
    live: httpx.AsyncClient, alice: dict
) -> None:
    phone = await log_in(live)
    sessions = (await live.get("/auth/sessions", headers=alice["headers"])).json()
    phone_id = next(s["id"] for s in sessions if not s["current"])
    async with (
        sync_stream(live, alice["headers"]) as laptop_frames,
        sync_stream(live, phone["headers"]) as phone_frames,
    ):
        response = await live.delete(f"/auth/sessions/{phone_id}", headers=alice["headers"])
        assert response.status_code == 204
        await ends_revoked(phone_frames)
        await still_live(live, alice["headers"], laptop_frames)


async def test_password_change_ends_the_other_sessions_streams(
    live: httpx.AsyncClient, alice: dict
) -> None:
    phone = await log_in(live)
    async with (
        sync_stream(live, alice["headers"]) as laptop_frames,
        sync_stream(live, phone["headers"]) as phone_frames,
    ):
        await change_password(live, alice["headers"])
        await ends_revoked(phone_frames)
        await still_live(live, alice["headers"], laptop_frames)  # the session that changed it


async def test_account_deletion_ends_the_stream(live: httpx.AsyncClient, alice: dict) -> None:
    async with sync_stream(live, alice["headers"]) as frames:
        response = await live.request(
            "DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=alice["headers"]
        )
        assert response.status_code == 204
        await ends_revoked(frames)


async def test_a_replayed_refresh_token_ends_the_stream(
    live: httpx.AsyncClient, alice: dict
) -> None:
    spent = alice["refresh_token"]
    assert (await live.post("/auth/refresh", json={"refresh_token": spent})).status_code == 200
    async with sync_stream(live, alice["headers"]) as frames:
        replay = await live.post("/auth/refresh", json={"refresh_token": spent})
        assert replay.json()["code"] == "token_reused"
        await ends_revoked(frames)


async def test_a_rolled_back_revocation_is_not_announced(
    live: httpx.AsyncClient, state: AppState, alice: dict
) -> None:
    sessions = (await live.get("/auth/sessions", headers=alice["headers"])).json()
    async with sync_stream(live, alice["headers"]) as frames:
        async with state.session_factory() as session:
            await AuthSessionRepository(session).revoke(
                session_id=uuid.UUID(sessions[0]["id"]), reason="logout"
            )
            await session.rollback()
        await still_live(live, alice["headers"], frames)


async def test_a_revocation_on_one_instance_ends_a_stream_on_the_other(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    alice = await register_and_login(a, "alice")
    phone = await log_in(a)
    async with (
        sync_stream(b, alice["headers"]) as laptop_frames,
        sync_stream(b, phone["headers"]) as phone_frames,
    ):
        await change_password(a, alice["headers"])
        await ends_revoked(phone_frames)  # revoked on A, streaming on B
        await still_live(a, alice["headers"], laptop_frames)
        assert (await a.post("/auth/logout", headers=alice["headers"])).status_code == 204
        await ends_revoked(laptop_frames)
