"""Conversation trees: parent ids, forks, sibling ids, branches in history, regenerate, edit."""

from __future__ import annotations

import asyncio

import httpx

from test.api.chat.tree_helpers import contents, history, post_stream
from test.support.assertions import assert_error
from test.support.factories import chat_turns
from test.support.sse import names, stream_chat, text_of


async def test_turns_form_one_branch_ending_at_the_active_leaf(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one", "two")
    conv = await history(client, h, cid)
    messages = conv["messages"]
    assert contents(conv) == ["one", "Echo: one", "two", "Echo: two"]
    assert [m["parent_id"] for m in messages] == [None] + [m["id"] for m in messages[:-1]]
    assert [m["sibling_ids"] for m in messages] == [[m["id"]] for m in messages]
    assert conv["current_message_id"] == messages[-1]["id"]
    assert all(m["reasoning"] is None for m in messages)


async def test_parent_id_forks_and_history_shows_each_branch(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one", "two")
    u1, a1, u2, a2 = (m["id"] for m in (await history(client, h, cid))["messages"])

    events = await stream_chat(client, h, message="three", conversation_id=cid, parent_id=a1)
    assert names(events)[-1] == "done"
    u3, a3 = events[0].data["user_message_id"], events[0].data["message_id"]

    active = await history(client, h, cid)
    assert contents(active) == ["one", "Echo: one", "three", "Echo: three"]
    assert active["current_message_id"] == a3
    assert active["messages"][2]["parent_id"] == a1
    assert active["messages"][2]["sibling_ids"] == [u2, u3]
    assert active["messages"][0]["sibling_ids"] == [u1]
    assert active["message_count"] == 6

    older = await history(client, h, cid, leaf=u2)
    assert [m["id"] for m in older["messages"]] == [u1, a1, u2, a2]
    # through a shared message: down to its newest descendant
    newest = await history(client, h, cid, leaf=u1)
    assert [m["id"] for m in newest["messages"]] == [u1, a1, u3, a3]
    everything = await history(client, h, cid, all="true")
    assert [m["id"] for m in everything["messages"]] == [u1, a1, u2, a2, u3, a3]
    assert everything["messages"][4]["sibling_ids"] == [u2, u3]

    # a parent alone names its conversation; the answer continues that branch
    events = await stream_chat(client, h, message="four", parent_id=a2)
    assert events[0].data["conversation_id"] == cid
    assert contents(await history(client, h, cid))[-4:] == [
        "two",
        "Echo: two",
        "four",
        "Echo: four",
    ]


async def test_regenerate_adds_an_assistant_sibling(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one")
    u1, a1 = (m["id"] for m in (await history(client, h, cid))["messages"])

    events = await post_stream(client, f"/chat/messages/{a1}/regenerate", h, {"max_tokens": 1})
    assert names(events)[-1] == "done" and text_of(events) == "Echo:"
    start = events[0].data
    assert start["conversation_id"] == cid and start["user_message_id"] == u1
    a2 = start["message_id"]
    assert a2 != a1

    conv = await history(client, h, cid)
    assert [m["id"] for m in conv["messages"]] == [u1, a2]
    assert conv["messages"][1]["sibling_ids"] == [a1, a2]
    assert conv["current_message_id"] == a2 and conv["message_count"] == 3
    # without a body too
    again = await post_stream(client, f"/chat/messages/{a1}/regenerate", h)
    assert text_of(again) == "Echo: one"


async def test_edit_adds_a_user_sibling_and_answers_it(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one", "two")
    u1, a1, u2, _ = (m["id"] for m in (await history(client, h, cid))["messages"])

    events = await post_stream(client, f"/chat/messages/{u2}/edit", h, {"content": "deux"})
    assert text_of(events) == "Echo: deux"
    conv = await history(client, h, cid)
    assert contents(conv) == ["one", "Echo: one", "deux", "Echo: deux"]
    assert conv["messages"][2]["parent_id"] == a1
    assert conv["messages"][2]["sibling_ids"] == [u2, events[0].data["user_message_id"]]

    # the first question has no parent: its new version is a second root
    first = await post_stream(client, f"/chat/messages/{u1}/edit", h, {"content": "uno"})
    conv = await history(client, h, cid)
    assert contents(conv) == ["uno", "Echo: uno"]
    assert conv["messages"][0]["parent_id"] is None
    assert conv["messages"][0]["sibling_ids"] == [u1, first[0].data["user_message_id"]]


async def test_wrong_roles_and_unknown_ids(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one")
    u1, a1 = (m["id"] for m in (await history(client, h, cid))["messages"])
    for path in (f"/chat/messages/{u1}/regenerate", f"/chat/messages/{u1}/continue"):
        assert_error(await client.post(path, headers=h), 400, "wrong_message_role")
    edit = await client.post(f"/chat/messages/{a1}/edit", json={"content": "x"}, headers=h)
    assert_error(edit, 400, "wrong_message_role")
    assert_error(
        await client.post(f"/chat/messages/{a1}/continue", headers=h), 409, "not_continuable"
    )
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(
        await client.post(f"/chat/messages/{missing}/regenerate", headers=h), 404, "not_found"
    )
    leaf = await client.get(f"/chat/history/{cid}", params={"leaf": missing}, headers=h)
    assert_error(leaf, 404, "not_found")
    for path, body in (
        (f"/chat/messages/{u1}/edit", {"content": ""}),
        (f"/chat/messages/{u1}/edit", {"content": "nul \u0000 inside"}),
        (f"/chat/messages/{u1}/edit", {"content": "x", "surprise": 1}),
        (f"/chat/messages/{a1}/regenerate", {"temperature": 5}),
        (f"/chat/messages/{a1}/continue", {"max_tokens": 0}),
        ("/chat/messages/not-a-uuid/regenerate", None),
        ("/chat/stream", {"message": "x", "parent_id": "not-a-uuid"}),
    ):
        response = await client.post(path, json=body, headers=h)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["code"] == "validation_error"
    garbage = await client.get(f"/chat/history/{cid}", params={"leaf": "x"}, headers=h)
    assert garbage.status_code == 422 and garbage.json()["code"] == "validation_error"


async def test_another_users_ids_are_404_on_every_tree_route(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    h, other = alice["headers"], bob["headers"]
    cid = await chat_turns(client, h, "one")
    u1, a1 = (m["id"] for m in (await history(client, h, cid))["messages"])
    own = await chat_turns(client, other, "mine")
    for path, body in (
        (f"/chat/messages/{a1}/regenerate", None),
        (f"/chat/messages/{u1}/edit", {"content": "x"}),
        (f"/chat/messages/{a1}/continue", None),
    ):
        assert_error(await client.post(path, json=body, headers=other), 404, "not_found")
    for body in ({"parent_id": a1}, {"parent_id": a1, "conversation_id": own}):
        response = await client.post("/chat/stream", json={"message": "x", **body}, headers=other)
        assert_error(response, 404, "not_found")
    leaf = await client.get(f"/chat/history/{own}", params={"leaf": a1}, headers=other)
    assert_error(leaf, 404, "not_found")
    assert_error(
        await client.get(f"/chat/history/{cid}", params={"all": True}, headers=other),
        404,
        "not_found",
    )
    # alice's own message under the wrong conversation is 404 too
    mixed = {"message": "x", "parent_id": a1, "conversation_id": own}
    assert_error(await client.post("/chat/stream", json=mixed, headers=h), 404, "not_found")
    assert contents(await history(client, h, cid)) == ["one", "Echo: one"]


async def test_two_regenerations_at_once_make_two_siblings(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "one")
    u1, a1 = (m["id"] for m in (await history(client, h, cid))["messages"])
    path = f"/chat/messages/{a1}/regenerate"
    first, second = await asyncio.gather(
        post_stream(client, path, h, {"model": "echo-slow"}),
        post_stream(client, path, h, {"model": "echo-slow"}),
    )
    new = {first[0].data["message_id"], second[0].data["message_id"]}
    assert len(new) == 2 and names(first)[-1] == names(second)[-1] == "done"
    tree = await history(client, h, cid, all="true")
    answers = [m for m in tree["messages"] if m["role"] == "assistant"]
    assert {m["parent_id"] for m in answers} == {u1}
    assert {m["id"] for m in answers} == {a1} | new
    assert all(m["sibling_ids"] == [a["id"] for a in answers] for m in answers)
    assert tree["current_message_id"] in new and tree["message_count"] == 4
    active = await history(client, h, cid)
    assert [m["id"] for m in active["messages"]] == [u1, tree["current_message_id"]]
