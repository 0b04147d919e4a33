"""`DELETE /chat/messages/{id}`: a message and its descendants go, every device hears of each
one, the active leaf moves, and an answer still being generated is never cut away."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from httpx_sse import aconnect_sse
from sqlalchemy import update

from app.models import Message
from app.state import AppState
from test.api.sync.helpers import Replica
from test.support.auth import log_in
from test.support.sse import read_events
from test.support.trees import TEXTS, branchy, import_doc, stored_tree

LONG = " ".join(f"word{i}" for i in range(1000))  # echo-slow: ~30 s unless cancelled


async def _delete(client: httpx.AsyncClient, headers: dict[str, str], mid: str) -> httpx.Response:
    return await client.delete(f"/chat/messages/{mid}", headers=headers)


async def test_deleting_a_subtree_tombstones_each_message_and_moves_the_leaf(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    laptop = (await log_in(client, "alice"))["headers"]
    doc, ids = branchy(current="a2")
    await import_doc(client, h, doc)
    cid = doc["conversations"][0]["id"]
    replica = Replica()
    await replica.pull(client, laptop)
    assert len(replica.messages) == 7
    before = replica.cursor

    response = await _delete(client, h, ids["a1"])  # a1, u2 and a2 go; a2 was active
    assert response.status_code == 204, response.text
    assert response.content == b""

    stored = (await stored_tree(client, h))[cid]
    left = {m["id"] for m in stored["messages"]}
    assert left == {ids[n] for n in ("u1", "a1b", "u1b", "a1c")}
    # the newest message left below the deleted one's parent (u1) is the new leaf
    assert stored["current_message_id"] == ids["a1b"]
    assert stored["message_count"] == 4
    assert stored["last_message_preview"] == TEXTS["a1b"]

    await replica.pull(client, laptop)
    assert set(replica.messages) == left
    assert replica.conversations[cid]["current_message_id"] == ids["a1b"]
    since = await client.get("/sync/changes", params={"since": before}, headers=h)
    deleted = since.json()["deleted"]
    assert sorted(d["id"] for d in deleted) == sorted(ids[n] for n in ("a1", "u2", "a2"))
    assert {d["type"] for d in deleted} == {"message"}

    again = await _delete(client, h, ids["a1"])
    assert again.status_code == 404 and again.json()["code"] == "not_found"


async def test_deleting_roots_keeps_or_clears_the_active_branch(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    doc, ids = branchy(current="a1b")
    await import_doc(client, h, doc)
    cid = doc["conversations"][0]["id"]

    assert (await _delete(client, h, ids["u1b"])).status_code == 204  # another branch
    stored = (await stored_tree(client, h))[cid]
    assert stored["current_message_id"] == ids["a1b"]  # the active branch is untouched
    assert stored["message_count"] == 5

    assert (await _delete(client, h, ids["u1"])).status_code == 204  # the rest of the tree
    stored = (await stored_tree(client, h))[cid]
    assert stored["messages"] == [] and stored["message_count"] == 0
    assert stored["current_message_id"] is None and stored["last_message_preview"] is None
    # the conversation itself stays (delete it with DELETE /chat/history/{id})
    assert (await client.get(f"/chat/history/{cid}", headers=h)).status_code == 200


async def test_delete_is_404_for_another_users_message(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    doc, ids = branchy()
    await import_doc(client, alice["headers"], doc)
    cid = doc["conversations"][0]["id"]
    before = await client.get("/sync/changes", headers=alice["headers"])
    for mid in (ids["u1"], ids["a2"], str(uuid.uuid4())):
        response = await _delete(client, bob["headers"], mid)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
    assert (await client.delete(f"/chat/messages/{ids['u1']}")).status_code == 401
    assert (
        await client.delete("/chat/messages/not-a-uuid", headers=bob["headers"])
    ).status_code == 422
    assert len((await stored_tree(client, alice["headers"]))[cid]["messages"]) == 7
    after = await client.get("/sync/changes", headers=alice["headers"])
    assert after.json()["cursor"] == before.json()["cursor"]


async def _streaming_saved(client: httpx.AsyncClient, h: dict[str, str], cid: str) -> dict:
    """The conversation once the answer's `streaming` placeholder is stored."""
    for _ in range(200):
        response = await client.get(f"/chat/history/{cid}", headers=h)
        if response.status_code == 200 and response.json()["messages"]:
            return dict(response.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the turn was never stored")


async def _finished(client: httpx.AsyncClient, h: dict[str, str], cid: str, mid: str) -> None:
    for _ in range(200):
        conv = (await client.get(f"/chat/history/{cid}", headers=h)).json()
        if all(m["status"] != "streaming" for m in conv["messages"] if m["id"] == mid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the answer never ended")


async def test_deleting_what_is_still_generating_is_409(
    live: httpx.AsyncClient, alice: dict, state: AppState
) -> None:
    h = alice["headers"]
    async with aconnect_sse(
        live, "POST", "/chat/stream", json={"message": LONG, "model": "echo-slow"}, headers=h
    ) as source:
        start = (await read_events(source, 1))[0].data
    cid, answer = start["conversation_id"], start["message_id"]
    conversation = await _streaming_saved(live, h, cid)
    question = next(m["id"] for m in conversation["messages"] if m["role"] == "user")
    # the answer hangs below its question (a no-op once chat turns write parent_id themselves)
    async with state.session_factory() as session:
        await session.execute(
            update(Message)
            .where(Message.id == uuid.UUID(answer), Message.parent_id.is_(None))
            .values(parent_id=uuid.UUID(question))
        )
        await session.commit()

    for target in (answer, question):  # the answer itself, and the question above it
        refused = await _delete(live, h, target)
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "generation_running"
    assert len((await live.get(f"/chat/history/{cid}", headers=h)).json()["messages"]) == 2

    assert (await live.post(f"/chat/stream/{answer}/cancel", headers=h)).status_code == 202
    await _finished(live, h, cid, answer)
    assert (await _delete(live, h, question)).status_code == 204
    stored = (await live.get(f"/chat/history/{cid}", headers=h)).json()
    assert stored["messages"] == [] and stored["current_message_id"] is None
