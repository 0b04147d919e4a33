"""History: cursor pagination newest first, search, patch, delete, ownership."""

from __future__ import annotations

import httpx

from test.support.factories import chat_turns, imported_conversation, message


async def test_pagination_newest_first_without_gaps(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    created = [await chat_turns(client, h, f"topic number {i}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/chat/history", params=params, headers=h)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    item = (await client.get("/chat/history", params={"limit": 1}, headers=h)).json()["items"][0]
    assert set(item) == {
        "id",
        "title",
        "model",
        "pinned",
        "archived",
        "created_at",
        "updated_at",
        "message_count",
        "last_message_preview",
        "current_message_id",
    }
    assert item["message_count"] == 2 and item["last_message_preview"]


async def test_search_titles_and_message_text(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    penguin = await chat_turns(client, h, "Tell me about penguins")
    await chat_turns(client, h, "Something else entirely")
    renamed = await chat_turns(client, h, "untitled thing")
    await client.patch(f"/chat/history/{renamed}", json={"title": "Antarctic birds"}, headers=h)
    found = (await client.get("/chat/history", params={"q": "penguins"}, headers=h)).json()
    assert [c["id"] for c in found["items"]] == [penguin]
    by_title = (await client.get("/chat/history", params={"q": "antarctic"}, headers=h)).json()
    assert [c["id"] for c in by_title["items"]] == [renamed]
    nothing = (await client.get("/chat/history", params={"q": "zebra"}, headers=h)).json()
    assert nothing["items"] == []
    weird = await client.get("/chat/history", params={"q": "100% _'\"&|!"}, headers=h)
    assert weird.status_code == 200


async def test_search_reaches_later_messages_of_a_conversation(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    later = await imported_conversation(
        client,
        h,
        message("user", "first question"),
        message("assistant", "an answer about walruses", model="vektor-echo"),
        message("user", "thanks"),
        title="Sea life",
    )
    assert [m["role"] for m in later["messages"]] == ["user", "assistant", "user"]
    found = (await client.get("/chat/history", params={"q": "walruses"}, headers=h)).json()
    assert [c["id"] for c in found["items"]] == [later["id"]]


async def test_patch_and_delete(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    cid = await chat_turns(client, h, "keep me")
    patched = await client.patch(
        f"/chat/history/{cid}",
        json={"title": "Renamed", "pinned": True, "archived": True},
        headers=h,
    )
    assert patched.status_code == 200
    assert patched.json()["title"] == "Renamed" and patched.json()["pinned"] is True
    archived = (await client.get("/chat/history", params={"archived": True}, headers=h)).json()
    assert [c["id"] for c in archived["items"]] == [cid]
    active = (await client.get("/chat/history", params={"archived": False}, headers=h)).json()
    assert active["items"] == []
    bad = await client.patch(f"/chat/history/{cid}", json={"colour": "red"}, headers=h)
    assert bad.status_code == 422
    assert (await client.delete(f"/chat/history/{cid}", headers=h)).status_code == 204
    assert (await client.get(f"/chat/history/{cid}", headers=h)).status_code == 404
    assert (await client.delete(f"/chat/history/{cid}", headers=h)).status_code == 404


async def test_another_users_conversation_is_not_found(
    client: httpx.AsyncClient, alice: dict, bob: dict
) -> None:
    cid = await chat_turns(client, alice["headers"], "private")
    b = bob["headers"]
    assert (await client.get(f"/chat/history/{cid}", headers=b)).status_code == 404
    assert (
        await client.patch(f"/chat/history/{cid}", json={"title": "x"}, headers=b)
    ).status_code == 404
    assert (await client.delete(f"/chat/history/{cid}", headers=b)).status_code == 404
    cont = await client.post(
        "/chat/stream", json={"message": "hi", "conversation_id": cid}, headers=b
    )
    assert cont.status_code == 404
    assert (await client.get("/chat/history", headers=b)).json()["items"] == []
    assert (await client.get(f"/chat/history/{cid}", headers=alice["headers"])).status_code == 200


async def test_invalid_cursor_and_limits(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    bad = await client.get("/chat/history", params={"cursor": "not-a-cursor"}, headers=h)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    assert (await client.get("/chat/history", params={"limit": 0}, headers=h)).status_code == 422
    assert (await client.get("/chat/history", params={"limit": 101}, headers=h)).status_code == 422
