"""`GET /ws` with the real `websockets` client against the app on a loopback uvicorn."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect

from app.api.ws import handshake
from app.api.ws import session as ws_session
from app.state import AppState
from test.support.apps import serve_app
from test.support.auth import log_in
from test.support.sse import Event, names, text_of
from test.support.waiting import eventually
from test.support.ws import (
    close_code,
    receive,
    send,
    signed_in,
    started,
    until_done,
    ws_url,
)

LONG = " ".join(f"word{i}" for i in range(60))  # echo-slow: ~30 ms per word
ECHO_LONG = f"Echo: {LONG}"


async def _sse_replay(live: httpx.AsyncClient, headers: dict, message_id: str) -> list[Event]:
    """Every event of an answer over SSE (`GET /chat/stream/{id}` from the first)."""
    events: list[Event] = []
    async with aconnect_sse(
        live, "GET", f"/chat/stream/{message_id}?last_event_id=0", headers=headers
    ) as source:
        async for sse in source.aiter_sse():
            events.append(Event(sse.event, sse.id, json.loads(sse.data)))
    return events


async def test_no_auth_frame_in_time_closes_4401(
    live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handshake, "AUTH_TIMEOUT_S", 0.3)
    async with connect(ws_url(live_url)) as ws:
        assert await close_code(ws) == 4401


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "not-a-token"},
        {"type": "auth", "token": "vk-not-a-key"},
        {"type": "chat.start", "message": "hi"},
        {"type": "auth"},
    ],
)
async def test_a_bad_first_frame_closes_4401(live_url: str, first: dict[str, Any]) -> None:
    async with connect(ws_url(live_url)) as ws:
        await send(ws, first)
        assert await close_code(ws) == 4401


async def test_two_answers_on_one_socket_interleave_and_one_is_cancelled(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    start = {"type": "chat.start", "message": LONG, "model": "echo-slow"}
    async with signed_in(live_url, alice["access_token"]) as ws:
        await send(ws, {**start, "ref": "a"})
        await send(ws, {**start, "ref": "b"})
        arrived: list[dict[str, Any]] = []
        while len(arrived) < 16:  # both running: their events arrive mixed on the one socket
            arrived.append(await receive(ws))
        ids = {frame["ref"]: frame["message_id"] for frame in arrived}
        first, second = ids["a"], ids["b"]
        order = [frame["ref"] for frame in arrived]
        switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
        assert switches >= 3, order
        await send(ws, {"type": "chat.cancel", "message_id": first})
        rest = await until_done(ws, {first, second})
    assert rest[first][-1].name == "done"
    assert rest[first][-1].data["finish_reason"] == "cancelled"
    assert rest[second][-1].data["finish_reason"] == "stop"
    conv = next(
        f["data"]["conversation_id"] for f in arrived if f["event"] == "start" and f["ref"] == "b"
    )
    history = (await live.get(f"/chat/history/{conv}", headers=alice["headers"])).json()
    assert history["messages"][-1]["content"] == ECHO_LONG
    assert history["messages"][-1]["status"] == "complete"


async def test_event_ids_are_the_sse_ids(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    async with signed_in(live_url, alice["access_token"]) as ws:
        await send(ws, {"type": "chat.start", "ref": "r", "message": "hello there"})
        message_id = await started(ws, "r")
        frames = (await until_done(ws, {message_id}))[message_id]
    over_sse = await _sse_replay(live, alice["headers"], message_id)
    # the first event was read by `started`: the rest must be the SSE events 2..n exactly
    assert [(e.name, e.id, e.data) for e in over_sse[1:]] == [
        (e.name, e.id, e.data) for e in frames
    ]
    assert names(over_sse)[0] == "start" and over_sse[0].id == "1"


async def test_attach_after_a_dropped_socket_loses_no_text(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    token = alice["access_token"]
    seen: list[Event] = []
    async with signed_in(live_url, token) as ws:
        await send(ws, {"type": "chat.start", "ref": "r", "message": LONG, "model": "echo-slow"})
        while len(seen) < 8:
            frame = await receive(ws)
            seen.append(Event(frame["event"], str(frame["id"]), frame["data"]))
        message_id = frame["message_id"]
        ws.transport.abort()  # the phone lost its network
    async with signed_in(live_url, token) as again:
        await send(
            again,
            {"type": "chat.attach", "message_id": message_id, "last_event_id": int(seen[-1].id)},
        )
        rest = (await until_done(again, {message_id}))[message_id]
    assert int(rest[0].id) == int(seen[-1].id) + 1
    assert text_of(seen + rest) == ECHO_LONG
    assert "snapshot" not in names(rest)


async def test_sync_changed_after_another_devices_write(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    other = (await log_in(live, "alice"))["headers"]
    async with signed_in(live_url, alice["access_token"]) as ws:
        await send(ws, {"type": "sync.subscribe"})
        first = await receive(ws)
        assert first["type"] == "sync.changed"
        put = await live.put(
            "/users/preferences", json={"system_prompt": "Be brief."}, headers=other
        )
        assert put.status_code == 200, put.text
        changed = await receive(ws)
    assert changed["type"] == "sync.changed" and changed["cursor"] != first["cursor"]
    page = await live.get("/sync/changes", params={"since": first["cursor"]}, headers=other)
    assert page.status_code == 200 and page.json()["cursor"] == changed["cursor"]


async def test_logout_closes_the_socket_with_4401(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    async with signed_in(live_url, alice["access_token"]) as ws:
        out = await live.post("/auth/logout", headers=alice["headers"])
        assert out.status_code == 204
        assert await close_code(ws) == 4401


async def test_a_revoked_api_key_closes_the_socket_with_4401(
    live_url: str, live: httpx.AsyncClient, alice: dict
) -> None:
    created = await live.post(
        "/users/me/api-keys", json={"name": "phone"}, headers=alice["headers"]
    )
    assert created.status_code == 201, created.text
    key = created.json()
    async with signed_in(live_url, key["key"]) as ws:
        await send(ws, {"type": "chat.start", "ref": "r", "message": "hi"})
        await started(ws, "r")  # the key works on the socket
        gone = await live.delete(f"/users/me/api-keys/{key['id']}", headers=alice["headers"])
        assert gone.status_code == 204
        assert await close_code(ws) == 4401


async def test_bad_frames_are_error_frames_and_the_socket_goes_on(
    live_url: str, alice: dict
) -> None:
    async with signed_in(live_url, alice["access_token"]) as ws:
        await ws.send("not json")
        assert (await receive(ws))["code"] == "bad_frame"
        await ws.send(b"\xff\xfe")
        assert (await receive(ws))["code"] == "bad_frame"
        await ws.send("[1, 2]")
        assert (await receive(ws))["code"] == "bad_frame"
        await send(ws, {"type": "chat.explode", "ref": "x"})
        assert await receive(ws) == {
            "type": "error",
            "ref": "x",
            "code": "bad_frame",
            "detail": "Unknown frame type 'chat.explode'",
        }
        await send(ws, {"type": "chat.start", "ref": "v", "message": ""})
        invalid = await receive(ws)
        assert (invalid["ref"], invalid["code"]) == ("v", "validation_error")
        assert invalid["detail"].startswith("message:")
        await send(ws, {"type": "chat.start", "ref": "n", "message": "a\u0000b"})
        assert (await receive(ws))["code"] == "validation_error"
        await send(ws, {"type": "chat.start", "ref": "m", "message": "hi", "model": "nope"})
        assert (await receive(ws))["code"] == "model_unavailable"
        missing = "00000000-0000-4000-8000-000000000000"
        for frame in (
            {"type": "chat.attach", "message_id": missing},
            {"type": "chat.cancel", "message_id": missing},
            {"type": "tool.approve", "message_id": missing, "call_id": "c1"},
            {"type": "tool.deny", "message_id": missing, "call_id": "c1", "reason": "no"},
        ):
            await send(ws, {**frame, "ref": "q"})
            error = await receive(ws)
            assert (error["type"], error["ref"], error["code"]) == ("error", "q", "not_found")
        await send(ws, {"type": "chat.attach", "message_id": "nope"})
        assert (await receive(ws))["code"] == "validation_error"
        await send(ws, {"type": "auth", "token": alice["access_token"]})
        assert (await receive(ws))["code"] == "bad_frame"
        await send(ws, {"type": "chat.start", "ref": "ok", "message": "still here"})
        message_id = await started(ws, "ok")
        events = (await until_done(ws, {message_id}))[message_id]
    assert text_of(events) == "Echo: still here"


async def test_the_per_user_answer_cap_holds_on_the_socket(live_url: str, alice: dict) -> None:
    async with signed_in(live_url, alice["access_token"]) as ws:
        for ref in ("1", "2", "3"):
            await send(
                ws, {"type": "chat.start", "ref": ref, "message": LONG, "model": "echo-slow"}
            )
            await started(ws, ref)
        await send(ws, {"type": "chat.start", "ref": "4", "message": LONG, "model": "echo-slow"})
        while (frame := await receive(ws))["type"] != "error":
            pass
    assert (frame["ref"], frame["code"]) == ("4", "rate_limited") and frame["retry_after"] >= 1


@pytest.mark.slow
async def test_a_client_that_never_reads_is_dropped_and_its_answer_completes(
    app: Any,
    live: httpx.AsyncClient,
    alice: dict,
    state: AppState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from test.support.ws import deaf_socket

    monkeypatch.setattr(state.settings, "ws_send_buffer_bytes", 4096)
    monkeypatch.setattr(state.settings, "ws_stall_seconds", 0.5)
    before = ws_session.metrics.ws_connections.value
    text = " ".join(["ab"] * 4000)  # three answers of ~4,000 events: megabytes of frames
    start = {"type": "chat.start", "message": text}  # the default model: echo
    async with serve_app(app, send_buffer=8192) as small_buffers:
        sock = await deaf_socket(
            small_buffers, [{"type": "auth", "token": alice["access_token"]}, start, start, start]
        )
        await _dropped_while_answers_complete(sock, live, alice, text, before)


async def _dropped_while_answers_complete(
    sock: Any, live: httpx.AsyncClient, alice: dict, text: str, before: int
) -> None:
    from test.support.ws import reset_or_closed

    try:

        async def done() -> bool:
            page = (await live.get("/chat/history", headers=alice["headers"])).json()["items"]
            if len(page) < 3:
                return False
            for conv in page:
                read = await live.get(f"/chat/history/{conv['id']}", headers=alice["headers"])
                last = read.json()["messages"][-1]
                if last["status"] != "complete" or last["content"] != f"Echo: {text}":
                    return False
            return True

        await eventually(done, timeout_s=30, what="the answer saved complete")
        await eventually(
            lambda: ws_session.metrics.ws_connections.value == before,
            timeout_s=30,
            what="the server dropped the socket",
        )
        # the client reads at last: what was sent, then the end (never the rest of the answer)
        assert await reset_or_closed(sock, timeout=10), "the server kept the deaf client"
    finally:
        sock.close()


async def test_the_socket_counts_while_open(live_url: str, alice: dict) -> None:
    before = ws_session.metrics.ws_connections.value
    async with signed_in(live_url, alice["access_token"]):
        assert ws_session.metrics.ws_connections.value == before + 1
    await eventually(
        lambda: ws_session.metrics.ws_connections.value == before, what="the socket closed"
    )
