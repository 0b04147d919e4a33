"""Stream tickets (API.md v1.1): `POST /auth/stream-ticket`, then `?ticket=` on the two GET
streams instead of an `Authorization` header. One stream per ticket, 60 s, bound to the
caller's session; only a reconnect of that same stream (`Last-Event-ID`) may present it
again, once the connection it opened has ended. Never in a log file."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt

from app.core.config import Settings
from app.observability.logging import redact
from test.support.apps import serve_app
from test.support.auth import register_and_login
from test.support.logs import read_logs
from test.support.sse import Event, next_event, sse_frames, stream_chat, text_of


async def new_ticket(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    """A fresh stream ticket for the caller."""
    response = await client.post("/auth/stream-ticket", headers=headers)
    assert response.status_code == 200, response.text
    ticket: str = response.json()["ticket"]
    return ticket


async def answered(client: httpx.AsyncClient, headers: dict[str, str], text: str) -> str:
    """The message id of a finished echo answer to `text`."""
    events = await stream_chat(client, headers, message=text)
    assert events[-1].name == "done"
    return str(events[0].data["message_id"])


def refused(response: httpx.Response, code: str) -> None:
    """401 with the documented body and `WWW-Authenticate: Bearer`."""
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code, response.json()
    assert response.headers["www-authenticate"] == "Bearer"


async def eventually(attempt: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Repeat a refused request until it succeeds: the server releases a ticket only after
    it has seen the previous connection end (a refusal changes nothing)."""
    deadline = time.monotonic() + 5
    while True:
        response = await attempt()
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.05)


async def test_a_ticket_is_issued_to_a_signed_in_caller(
    client: httpx.AsyncClient, alice: dict
) -> None:
    refused(await client.post("/auth/stream-ticket"), "not_authenticated")
    response = await client.post("/auth/stream-ticket", headers=alice["headers"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticket", "expires_in"} and body["expires_in"] == 60
    assert await new_ticket(client, alice["headers"]) != body["ticket"]


def sse_events(text: str) -> list[Event]:
    """The events of a whole SSE body."""
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append(Event(fields["event"], fields.get("id", ""), json.loads(fields["data"])))
    return events


async def test_a_ticket_opens_one_answer_stream_once(
    client: httpx.AsyncClient, alice: dict
) -> None:
    message_id = await answered(client, alice["headers"], "hello tickets")
    ticket = await new_ticket(client, alice["headers"])
    response = await client.get(f"/chat/stream/{message_id}", params={"ticket": ticket})
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1].name == "done" and text_of(events) == "Echo: hello tickets"
    # opening it again is a reuse, not a reconnect
    refused(
        await client.get(f"/chat/stream/{message_id}", params={"ticket": ticket}), "invalid_token"
    )


async def test_a_ticket_holds_the_sync_stream_and_resumes_only_it(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    ticket = await new_ticket(live, h)
    params = {"ticket": ticket}
    async with live.stream("GET", "/sync/stream", params=params) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
        assert (await next_event(frames))[0] == "changed"
        # while it is open, nobody can open or resume a stream with the same ticket
        refused(await live.get("/sync/stream", params=params), "invalid_token")
        resume = {"Last-Event-ID": "1"}
        refused(await live.get("/sync/stream", params=params, headers=resume), "invalid_token")
        await live.put("/users/preferences", json={"theme": "dark"}, headers=h)
        assert (await next_event(frames))[0] == "changed"  # live events reach it
    # closed: a fresh open, or another stream, is still a reuse
    refused(await live.get("/sync/stream", params=params), "invalid_token")
    other = f"/chat/stream/{uuid.uuid4()}"
    refused(await live.get(other, params=params, headers=resume), "invalid_token")

    # an EventSource-style reconnect of the same stream is accepted
    async def reconnect() -> httpx.Response:
        async with live.stream("GET", "/sync/stream", params=params, headers=resume) as again:
            if again.status_code == 200:
                assert (await next_event(sse_frames(again)))[0] == "changed"
            else:
                await again.aread()
            return again

    assert (await eventually(reconnect)).status_code == 200


def _signed(settings: Settings, **claims: Any) -> str:
    """A token signed with the app's real key."""
    now = datetime.now(UTC)
    payload = {
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=60)).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "stream",
        **claims,
    }
    return jwt.encode(payload, settings.signing_key(), algorithm="HS256")


async def test_expired_forged_and_misused_tickets_are_refused(
    client: httpx.AsyncClient, settings: Settings, alice: dict
) -> None:
    h = alice["headers"]
    message_id = await answered(client, h, "guarded")
    sessions = (await client.get("/auth/sessions", headers=h)).json()
    mine = {"sub": alice["user"]["id"], "sid": sessions[0]["id"]}
    ticket = await new_ticket(client, h)
    head, body, signature = ticket.split(".")
    bad = {
        "token_expired": [_signed(settings, **mine, exp=int(time.time()) - 1)],
        "invalid_token": [
            jwt.encode({**mine, "typ": "stream", "jti": "x", "iat": 1, "exp": 2**40}, "k" * 40),
            f"{head}.{body}.{signature[::-1]}",
            f"{head}.{_signed(settings, **mine).split('.')[1]}.{signature}",
            "not-a-ticket",
            alice["access_token"],
            alice["refresh_token"],
        ],
    }
    for path in ("/sync/stream", f"/chat/stream/{message_id}"):
        for code, tickets in bad.items():
            for value in tickets:
                refused(await client.get(path, params={"ticket": value}), code)
    # a ticket is no bearer token either
    refused(
        await client.get("/users/me", headers={"Authorization": f"Bearer {ticket}"}),
        "invalid_token",
    )
    refused(
        await client.get("/sync/stream", headers={"Authorization": f"Bearer {ticket}"}),
        "invalid_token",
    )


async def test_a_ticket_does_not_open_another_users_stream(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    bobs = await answered(client, bob["headers"], "bob's answer")
    for message_id in (bobs, str(uuid.uuid4())):  # foreign and unknown look the same
        ticket = await new_ticket(client, alice["headers"])
        refused(
            await client.get(f"/chat/stream/{message_id}", params={"ticket": ticket}),
            "invalid_token",
        )
    # with the header it stays the documented 404
    response = await client.get(f"/chat/stream/{bobs}", headers=alice["headers"])
    assert response.status_code == 404


async def test_a_revoked_session_stops_its_tickets(client: httpx.AsyncClient, alice: dict) -> None:
    message_id = await answered(client, alice["headers"], "soon revoked")
    ticket = await new_ticket(client, alice["headers"])
    assert (await client.post("/auth/logout", headers=alice["headers"])).status_code == 204
    refused(
        await client.get(f"/chat/stream/{message_id}", params={"ticket": ticket}), "token_revoked"
    )
    refused(await client.get("/sync/stream", params={"ticket": ticket}), "token_revoked")


async def test_a_ticket_is_single_use_across_instances(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    alice = await register_and_login(a, "alice")
    message_id = await answered(a, alice["headers"], "shared ledger")
    path = f"/chat/stream/{message_id}"
    for _ in range(3):
        ticket = await new_ticket(a, alice["headers"])
        tries = [c.get(path, params={"ticket": ticket}) for c in (a, b) * 4]
        statuses = sorted(r.status_code for r in await asyncio.gather(*tries))
        assert statuses == [200] + [401] * 7  # one winner among 8 racing on both instances
    # the stream it opened has ended: its EventSource may reconnect, through either instance
    resume = {"Last-Event-ID": "1"}
    response = await eventually(lambda: b.get(path, params={"ticket": ticket}, headers=resume))
    assert response.status_code == 200 and "event: done" in response.text


async def test_tickets_never_reach_the_logs(app: Any, log_dir: Path, alice: dict) -> None:
    forged = f"forged-{uuid.uuid4().hex}"
    async with serve_app(app, access_log=True) as url, httpx.AsyncClient(base_url=url) as http:
        h = alice["headers"]
        message_id = await answered(http, h, "quiet")
        used = await new_ticket(http, h)
        for _ in range(2):  # accepted, then refused as a reuse
            await http.get(f"/chat/stream/{message_id}", params={"ticket": used})
        await http.get("/sync/stream", params={"ticket": forged})
        await http.get(f"/chat/stream/{message_id}?ticket={forged}&last_event_id=x")  # 422
        revoked = await new_ticket(http, h)
        await http.post("/auth/logout", headers=h)
        await http.get("/sync/stream", params={"ticket": revoked})
    logs = await read_logs(log_dir)
    secrets = {used, used.split(".")[2], revoked, revoked.split(".")[2], forged}
    for name, text in logs.items():
        assert not [s for s in secrets if s in text], f"a ticket leaked into {name}"
    assert f"/chat/stream/{message_id}" in logs["api.log"]  # the requests were logged
    assert (
        redact(f"GET /sync/stream?ticket={forged}&x=1") == "GET /sync/stream?ticket=[REDACTED]&x=1"
    )
