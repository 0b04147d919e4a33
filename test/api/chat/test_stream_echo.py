"""POST /chat/stream with the offline echo model: event order, ids, persistence, history."""

from __future__ import annotations

import httpx

from test.support.sse import names, stream_chat, text_of


async def test_models_list_has_echo_as_default(client: httpx.AsyncClient, alice: dict) -> None:
    response = await client.get("/chat/models", headers=alice["headers"])
    assert response.status_code == 200
    items = {m["id"]: m for m in response.json()["items"]}
    assert items["vektor-echo"]["available"] is True
    assert items["vektor-echo"]["default"] is True
    assert items["fake-nokey"]["available"] is False
    assert set(items["gpt-4o-mini"]) == {
        "id",
        "name",
        "provider",
        "context_window",
        "supports_tools",
        "supports_vision",
        "available",
        "default",
    }
    assert items["gpt-4o-mini"]["supports_vision"] is True


async def test_echo_stream_events_in_order_and_saved(
    client: httpx.AsyncClient, alice: dict
) -> None:
    events = await stream_chat(client, alice["headers"], message="Hello there, echo!")
    order = names(events)
    assert order[0] == "start" and order[-1] == "done"
    assert "delta" in order and order.index("usage") > max(
        i for i, n in enumerate(order) if n == "delta"
    )
    assert [int(e.id) for e in events] == list(range(1, len(events) + 1))
    start, done = events[0].data, events[-1].data
    assert start["model"] == "vektor-echo"
    assert done == {"message_id": start["message_id"], "finish_reason": "stop"}
    title = next(e for e in events if e.name == "title").data
    assert title["conversation_id"] == start["conversation_id"]
    answer = text_of(events)
    assert "Hello there, echo!" in answer

    conv = await client.get(f"/chat/history/{start['conversation_id']}", headers=alice["headers"])
    assert conv.status_code == 200
    body = conv.json()
    assert body["title"] == title["title"]
    assert body["message_count"] == 2
    user_msg, assistant = body["messages"]
    assert (
        user_msg["id"] == start["user_message_id"] and user_msg["content"] == "Hello there, echo!"
    )
    assert assistant["id"] == start["message_id"]
    assert assistant["content"] == answer and assistant["status"] == "complete"
    assert assistant["usage"]["output_tokens"] > 0


async def test_continuing_a_conversation_keeps_one_thread(
    client: httpx.AsyncClient, alice: dict
) -> None:
    first = await stream_chat(client, alice["headers"], message="first question")
    conversation_id = first[0].data["conversation_id"]
    second = await stream_chat(
        client, alice["headers"], message="second question", conversation_id=conversation_id
    )
    assert second[0].data["conversation_id"] == conversation_id
    assert "title" not in names(second)  # the title came from the first exchange
    conv = (await client.get(f"/chat/history/{conversation_id}", headers=alice["headers"])).json()
    assert [m["content"] for m in conv["messages"] if m["role"] == "user"] == [
        "first question",
        "second question",
    ]
    assert conv["message_count"] == 4


async def test_bad_requests_are_plain_json_errors(client: httpx.AsyncClient, alice: dict) -> None:
    h = alice["headers"]
    too_long = await client.post("/chat/stream", json={"message": "x" * 32001}, headers=h)
    assert too_long.status_code == 422
    empty = await client.post("/chat/stream", json={"message": ""}, headers=h)
    assert empty.status_code == 422
    unknown = await client.post(
        "/chat/stream",
        json={"message": "hi", "conversation_id": "00000000-0000-4000-8000-000000000000"},
        headers=h,
    )
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    for model in ("no-such-model", "fake-nokey"):
        bad = await client.post("/chat/stream", json={"message": "hi", "model": model}, headers=h)
        assert bad.status_code == 400 and bad.json()["code"] == "model_unavailable"
    unauth = await client.post("/chat/stream", json={"message": "hi"})
    assert unauth.status_code == 401


async def test_user_default_model_preference_is_used(
    client: httpx.AsyncClient, alice: dict
) -> None:
    await client.put(
        "/users/preferences", json={"default_model": "echo-slow"}, headers=alice["headers"]
    )
    events = await stream_chat(client, alice["headers"], message="which model?")
    assert events[0].data["model"] == "echo-slow"
