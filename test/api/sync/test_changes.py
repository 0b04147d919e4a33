"""The change feed: what each kind of write produces, paging, and cursors it refuses."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import update

from app.db.base import utcnow
from app.models import SyncTombstone
from app.services.sync.cursor import encode_cursor
from app.state import AppState
from test.api.sync.helpers import Replica, server_state
from test.support.auth import register_and_login
from test.support.factories import chat_turns
from test.support.sse import read_events, stream_chat


async def _changes(client: httpx.AsyncClient, h: dict, **params: Any) -> dict[str, Any]:
    response = await client.get("/sync/changes", params=params, headers=h)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_first_sync_of_a_new_account(client: httpx.AsyncClient, alice: dict) -> None:
    page = await _changes(client, alice["headers"])
    assert page["conversations"] == [] and page["messages"] == [] and page["deleted"] == []
    assert page["preferences"]["theme"] == "system"  # defaults: nothing was ever saved
    assert page["has_more"] is False and page["cursor"]
    again = await _changes(client, alice["headers"], since=page["cursor"])
    assert again["preferences"] is None and again["cursor"] == page["cursor"]
    assert (await client.get("/sync/changes")).status_code == 401


async def test_each_write_appears_once_after_the_cursor(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cursor = (await _changes(client, h))["cursor"]
    events = await stream_chat(client, h, message="hello feed")
    cid, mid = events[0].data["conversation_id"], events[0].data["message_id"]
    page = await _changes(client, h, since=cursor)
    assert [c["id"] for c in page["conversations"]] == [cid]
    assert page["conversations"][0]["message_count"] == 2
    assert {m["role"] for m in page["messages"]} == {"user", "assistant"}
    assistant = next(m for m in page["messages"] if m["id"] == mid)
    assert assistant["status"] == "complete" and assistant["conversation_id"] == cid
    cursor = page["cursor"]

    await client.patch(f"/chat/history/{cid}", json={"title": "Renamed"}, headers=h)
    page = await _changes(client, h, since=cursor)
    assert [c["title"] for c in page["conversations"]] == ["Renamed"]
    assert page["messages"] == [] and page["preferences"] is None
    cursor = page["cursor"]

    await client.put("/users/preferences", json={"theme": "dark"}, headers=h)
    page = await _changes(client, h, since=cursor)
    assert page["preferences"]["theme"] == "dark" and page["conversations"] == []
    cursor = page["cursor"]

    assert (await client.delete(f"/chat/history/{cid}", headers=h)).status_code == 204
    page = await _changes(client, h, since=cursor)
    assert page["deleted"] == [{"type": "conversation", "id": cid}]
    assert page["conversations"] == [] and page["messages"] == []
    assert (await _changes(client, h, since=page["cursor"]))["deleted"] == []
    # a fresh device never hears of what no longer exists
    assert (await _changes(client, h))["deleted"] == []


async def test_streaming_message_is_visible_then_final(
    live: httpx.AsyncClient, client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cursor = (await _changes(client, h))["cursor"]
    long_text = " ".join(f"w{i}" for i in range(40))
    async with aconnect_sse(
        live, "POST", "/chat/stream", json={"message": long_text, "model": "echo-slow"}, headers=h
    ) as source:
        start = (await read_events(source, 2))[0]
        page = await _changes(client, h, since=cursor)
        mid = start.data["message_id"]
        streaming = next(m for m in page["messages"] if m["id"] == mid)
        assert streaming["status"] == "streaming" and streaming["content"] == ""
        await read_events(source)
    final = await _changes(client, h, since=page["cursor"])
    assert [(m["id"], m["status"]) for m in final["messages"]] == [(mid, "complete")]
    assert final["messages"][0]["content"].endswith(long_text)


async def test_small_pages_rebuild_the_account_exactly(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h = alice["headers"]
    ids = [(await stream_chat(client, h, message=f"topic {i}"))[0].data for i in range(4)]
    await stream_chat(client, h, message="more", conversation_id=ids[0]["conversation_id"])
    await client.patch(
        f"/chat/history/{ids[1]['conversation_id']}", json={"pinned": True}, headers=h
    )
    await client.delete(f"/chat/history/{ids[2]['conversation_id']}", headers=h)
    await client.put("/users/preferences", json={"language": "de"}, headers=h)
    await stream_chat(client, bob["headers"], message="bob's own")  # never in alice's feed

    replica = Replica()
    await replica.pull(client, h, limit=1)
    assert replica.pages > 5
    assert replica.state() == await server_state(client, h)
    before = replica.cursor
    await replica.pull(client, h, limit=1)  # nothing new: same cursor, empty page
    assert replica.cursor == before


async def test_cursors_that_cannot_continue(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h = alice["headers"]
    bob_cursor = (await _changes(client, bob["headers"]))["cursor"]
    # a cursor from the future, e.g. kept by a device across a database restore
    ahead = encode_cursor(user_id=uuid.UUID(alice["user"]["id"]), seq=10**9)
    for bad in ("garbage", "djEuYWJjLjE", bob_cursor, "x" * 128, ahead):
        response = await client.get("/sync/changes", params={"since": bad}, headers=h)
        assert response.status_code == 410, bad
        assert response.json()["code"] == "resync_required"
    assert (await client.get("/sync/changes", params={"limit": 0}, headers=h)).status_code == 422


async def test_a_cursor_older_than_pruned_tombstones_must_resync(
    client: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    h = alice["headers"]
    await stream_chat(client, h, message="kept, numbered before the deletion")
    cid = await chat_turns(client, h, "to be deleted")
    old = (await _changes(client, h))["cursor"]
    await client.delete(f"/chat/history/{cid}", headers=h)
    recent = (await _changes(client, h, since=old))["cursor"]
    async with state.session_factory() as session:
        await session.execute(
            update(SyncTombstone).values(deleted_at=utcnow() - timedelta(days=31))
        )
        await session.commit()
    assert await state.sync.prune() == 1
    gone = await client.get("/sync/changes", params={"since": old}, headers=h)
    assert gone.status_code == 410 and gone.json()["code"] == "resync_required"
    assert (
        await client.get("/sync/changes", params={"since": recent}, headers=h)
    ).status_code == 200
    assert await state.sync.prune() == 0
    # a first sync paged one item at a time passes below the pruned numbers without a 410
    replica = Replica()
    await replica.pull(client, h, limit=1)
    assert replica.pages >= 3 and replica.state() == await server_state(client, h)


async def test_other_devices_and_users_are_isolated(client: httpx.AsyncClient, alice: dict) -> None:
    laptop = await client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse battery"}
    )
    h2 = {"Authorization": f"Bearer {laptop.json()['access_token']}"}
    phone = Replica()
    await phone.pull(client, alice["headers"])
    await asyncio.gather(*(stream_chat(client, h2, message=f"from laptop {i}") for i in range(3)))
    await phone.pull(client, alice["headers"])
    assert phone.state() == await server_state(client, h2)
    carol = await register_and_login(client, "carol")
    assert (await _changes(client, carol["headers"]))["conversations"] == []
