"""The conversation tree across devices: branch switches through `/sync/changes` and
`/sync/stream`, and backups of version 2 (the tree) and 1 (one linear branch)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.api import deps
from app.state import AppState
from test.api.sync.helpers import Replica
from test.support.auth import TEST_PASSWORD, log_in, register_and_login
from test.support.sse import next_event, sse_frames
from test.support.trees import PARENTS, branchy, import_doc, stored_tree, version_1


@pytest.fixture
def fast_pings(app: Any, state: AppState) -> Iterator[None]:
    """Pings every 0.2 s for this test."""
    fast = state.settings.model_copy(update={"sse_ping_seconds": 0.2})
    app.dependency_overrides[deps.get_settings_dep] = lambda: fast
    yield
    del app.dependency_overrides[deps.get_settings_dep]


async def _switch(
    client: httpx.AsyncClient, headers: dict[str, str], cid: str, message_id: str
) -> httpx.Response:
    return await client.put(
        f"/chat/history/{cid}/current", json={"message_id": message_id}, headers=headers
    )


async def _cursor(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await client.get("/sync/changes", headers=headers)).json()["cursor"])


async def test_a_branch_switch_reaches_the_other_device(
    live: httpx.AsyncClient, client: httpx.AsyncClient, alice: dict, fast_pings: None
) -> None:
    phone = alice["headers"]
    laptop = (await log_in(client, "alice"))["headers"]
    doc, ids = branchy(current="a1b")
    assert (await import_doc(client, phone, doc)).status_code == 200
    cid = doc["conversations"][0]["id"]
    replica = Replica()
    await replica.pull(client, laptop)
    assert replica.conversations[cid]["current_message_id"] == ids["a1b"]
    by_id = replica.messages
    assert {m["id"]: m["parent_id"] for m in by_id.values()} == {
        ids[n]: (ids[p] if p else None) for n, p in PARENTS.items()
    }
    assert by_id[ids["a1"]]["reasoning"] == "thinking it over"

    async with live.stream("GET", "/sync/stream", headers=laptop) as response:
        frames = sse_frames(response)
        name, data = await next_event(frames)
        assert name == "changed" and data["cursor"] == replica.cursor

        # the phone picks the follow-up branch by its user message: the leaf is its newest
        # descendant, and the body is that branch, root first
        switched = await _switch(client, phone, cid, ids["u2"])
        assert switched.status_code == 200, switched.text
        body = switched.json()
        assert body["current_message_id"] == ids["a2"]
        assert [m["id"] for m in body["messages"]] == [ids[n] for n in ("u1", "a1", "u2", "a2")]
        assert body["message_count"] == 7

        name, data = await next_event(frames)  # pushed to the laptop
        assert name == "changed" and data["cursor"] != replica.cursor
        await replica.pull(client, laptop)
        assert replica.cursor == data["cursor"]
        assert replica.conversations[cid]["current_message_id"] == ids["a2"]


async def test_switching_to_the_active_leaf_changes_nothing(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    doc, ids = branchy(current="a1b")
    await import_doc(client, h, doc)
    cid = doc["conversations"][0]["id"]
    before = await _cursor(client, h)
    again = await _switch(client, h, cid, ids["a1b"])
    assert again.status_code == 200
    assert [m["id"] for m in again.json()["messages"]] == [ids["u1"], ids["a1b"]]
    assert await _cursor(client, h) == before  # no change number spent, nothing to sync

    other = await _switch(client, h, cid, ids["u1b"])
    assert other.json()["current_message_id"] == ids["a1c"]
    since = (await client.get("/sync/changes", params={"since": before}, headers=h)).json()
    assert [c["current_message_id"] for c in since["conversations"]] == [ids["a1c"]]
    assert since["messages"] == [] and since["deleted"] == []


async def test_branch_switch_is_404_for_other_users_and_other_conversations(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h = alice["headers"]
    doc, ids = branchy()
    await import_doc(client, h, doc)
    cid = doc["conversations"][0]["id"]
    second, second_ids = branchy()
    await import_doc(client, h, second)
    bobs, bob_ids = branchy()
    await import_doc(client, bob["headers"], bobs)

    cases = [
        (bob["headers"], cid, ids["u2"]),  # bob, alice's conversation and message
        (h, cid, second_ids["a2"]),  # alice's message of another conversation
        (h, cid, bob_ids["a2"]),  # bob's message
        (h, bobs["conversations"][0]["id"], bob_ids["a2"]),  # bob's conversation
        (h, cid, str(uuid.uuid4())),
        (h, str(uuid.uuid4()), ids["a2"]),
    ]
    before = await _cursor(client, h)
    for headers, conversation_id, message_id in cases:
        response = await _switch(client, headers, conversation_id, message_id)
        assert response.status_code == 404, (conversation_id, message_id, response.text)
        assert response.json()["code"] == "not_found"
    bad = await client.put(f"/chat/history/{cid}/current", json={"message_id": "x"}, headers=h)
    assert bad.status_code == 422
    extra = await client.put(
        f"/chat/history/{cid}/current", json={"message_id": ids["a2"], "x": 1}, headers=h
    )
    assert extra.status_code == 422
    unauthenticated = await client.put(
        f"/chat/history/{cid}/current", json={"message_id": ids["a2"]}
    )
    assert unauthenticated.status_code == 401
    assert (await stored_tree(client, h))[cid]["current_message_id"] == ids["a1b"]
    assert await _cursor(client, h) == before  # a refused switch spends no change number


def _tree_fields(conversation: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "role", "content", "parent_id", "reasoning", "finish_reason", "created_at")
    return {
        "current_message_id": conversation["current_message_id"],
        "messages": sorted(
            ({k: m[k] for k in keys} for m in conversation["messages"]), key=lambda m: m["id"]
        ),
    }


async def test_version_2_round_trip_keeps_every_branch(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h = alice["headers"]
    doc, ids = branchy(current="a2")
    first = await import_doc(client, h, doc)
    assert first.json() == {"conversations_imported": 1, "messages_imported": 7, "skipped": 0}
    cid = doc["conversations"][0]["id"]
    exported = (await client.get("/sync/export", headers=h)).json()
    assert exported["version"] == 3  # version 2 documents still import (above)
    assert _tree_fields(exported["conversations"][0]) == _tree_fields(doc["conversations"][0])
    # parents come before their children in the export
    order = [m["id"] for m in exported["conversations"][0]["messages"]]
    for message in exported["conversations"][0]["messages"]:
        if message["parent_id"]:
            assert order.index(message["parent_id"]) < order.index(message["id"])

    twice = await import_doc(client, h, exported)
    assert twice.json() == {"conversations_imported": 0, "messages_imported": 0, "skipped": 8}

    # through a deleted account: the same ids, the same tree, the same active branch
    gone = await client.request("DELETE", "/users/me", json={"password": TEST_PASSWORD}, headers=h)
    assert gone.status_code == 204
    h2 = (await register_and_login(client, "alice"))["headers"]
    assert (await import_doc(client, h2, exported)).status_code == 200
    again = await stored_tree(client, h2)
    assert again[cid] == exported["conversations"][0]

    # into another account: new ids, the same shape (parents follow their messages' new ids)
    assert (await import_doc(client, bob["headers"], exported)).status_code == 200
    (bobs,) = (await stored_tree(client, bob["headers"])).values()
    pairs = list(zip(order_of(exported["conversations"][0]), order_of(bobs), strict=True))
    new_id = {old["id"]: new["id"] for old, new in pairs}
    assert set(new_id) == set(ids.values()) and not set(new_id.values()) & set(ids.values())
    assert bobs["current_message_id"] == new_id[ids["a2"]]
    for old, new in pairs:
        assert new["parent_id"] == (new_id[old["parent_id"]] if old["parent_id"] else None)
        assert (new["content"], new["reasoning"]) == (old["content"], old["reasoning"])


def order_of(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """A conversation's messages in time order."""
    return sorted(conversation["messages"], key=lambda m: m["created_at"])


async def test_a_version_1_document_imports_as_one_branch(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    doc = version_1("hi", "hello", "how are you?", "fine")
    result = await import_doc(client, h, doc)
    assert result.status_code == 200, result.text
    assert result.json() == {"conversations_imported": 1, "messages_imported": 4, "skipped": 0}
    old = doc["conversations"][0]
    stored = (await stored_tree(client, h))[old["id"]]
    chain = [m["id"] for m in old["messages"]]
    assert [m["id"] for m in stored["messages"]] == chain
    assert [m["parent_id"] for m in stored["messages"]] == [None, *chain[:-1]]
    assert stored["current_message_id"] == chain[-1]
    assert [m["content"] for m in stored["messages"]] == ["hi", "hello", "how are you?", "fine"]

    twice = await import_doc(client, h, doc)
    assert twice.json() == {"conversations_imported": 0, "messages_imported": 0, "skipped": 5}


async def test_a_broken_tree_is_refused_with_the_field(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    doc, ids = branchy()
    other, _ = branchy()
    stranger = copy.deepcopy(doc)
    stranger["conversations"][0]["messages"][1]["parent_id"] = other["conversations"][0][
        "messages"
    ][0]["id"]
    cycle = copy.deepcopy(doc)
    cycle["conversations"][0]["messages"][0]["parent_id"] = ids["a2"]  # u1 below its grandchild
    leaf = copy.deepcopy(doc)
    leaf["conversations"][0]["current_message_id"] = str(uuid.uuid4())
    cases = [
        (stranger, "conversations[0].messages[1].parent_id"),
        (cycle, "conversations[0].messages[0].parent_id"),
        (leaf, "conversations[0].current_message_id"),
    ]
    for body, path in cases:
        response = await import_doc(client, h, body)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "invalid_backup"
        assert response.json()["detail"].startswith(path), response.json()["detail"]
    assert (await client.get("/chat/history", headers=h)).json()["items"] == []
