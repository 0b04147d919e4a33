"""Conversation trees: continue a cut answer, 409s while generating, what the model sees."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from test.api.chat.tree_helpers import contents, history, post_stream
from test.fakes.llm_upstream import Reply
from test.support.assertions import assert_error
from test.support.sse import names, read_events, stream_chat, text_of


async def test_continue_appends_to_an_answer_cut_by_length(
    client: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    events = await stream_chat(client, h, message="one two three", max_tokens=2)
    assert events[-1].data["finish_reason"] == "length" and text_of(events) == "Echo: one"
    cid, mid = events[0].data["conversation_id"], events[0].data["message_id"]
    last_id = int(events[-1].id)

    more = await post_stream(client, f"/chat/messages/{mid}/continue", h)
    assert names(more)[:2] == ["start", "snapshot"] and names(more)[-1] == "done"
    assert more[0].data["message_id"] == mid
    assert more[1].data["content"] == "Echo: one" and more[1].data["status"] == "streaming"
    assert text_of(more) == " two three"
    assert more[-1].data["finish_reason"] == "stop"
    assert min(int(e.id) for e in more) > last_id  # event ids never restart
    first_usage = next(e for e in events if e.name == "usage").data
    usage = next(e for e in more if e.name == "usage").data  # the whole answer's tokens
    assert usage["output_tokens"] == first_usage["output_tokens"] + 2

    conv = await history(client, h, cid)
    assert contents(conv) == ["one two three", "Echo: one two three"]
    assert conv["messages"][1]["id"] == mid and conv["current_message_id"] == mid
    assert conv["messages"][1]["status"] == "complete"
    # finished with `stop` now: nothing left to continue
    again = await client.post(f"/chat/messages/{mid}/continue", headers=h)
    assert_error(again, 409, "not_continuable")
    # re-attaching to the continued answer gives its whole text
    reattached = await client.get(f"/chat/stream/{mid}", headers=h)
    data = [json.loads(line[6:]) for line in reattached.text.splitlines() if line[:6] == "data: "]
    assert data[0]["message_id"] == mid and data[0]["content"] == "Echo: one two three"
    assert data[-1] == {"message_id": mid, "finish_reason": "stop"}


async def test_running_answers_are_409_for_continue_and_edit_then_continue_after_cancel(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    body = {"message": " ".join(f"w{i}" for i in range(200)), "model": "echo-slow"}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        start = (await read_events(source, 2))[0].data
        mid, uid = start["message_id"], start["user_message_id"]
        running = await live.post(f"/chat/messages/{mid}/continue", headers=h)
        assert_error(running, 409, "generation_running")
        edit = await live.post(f"/chat/messages/{uid}/edit", json={"content": "x"}, headers=h)
        assert_error(edit, 409, "generation_running")
        cancel = await live.post(f"/chat/stream/{mid}/cancel", headers=h)
        assert cancel.status_code == 202
        rest = await read_events(source)
    assert rest[-1].data["finish_reason"] == "cancelled"
    saved = (await history(live, h, start["conversation_id"]))["messages"][1]["content"]
    more = await post_stream(live, f"/chat/messages/{mid}/continue", h, {"model": "vektor-echo"})
    assert more[1].data["content"] == saved and names(more)[-1] == "done"
    final = (await history(live, h, start["conversation_id"]))["messages"][1]
    assert final["content"] == saved + text_of(more)
    assert final["content"].endswith("w199") and final["status"] == "complete"


async def test_the_model_sees_only_the_path_to_the_parent(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    h = alice["headers"]
    upstream.script("A1", "A2", "A3", "A2 again", Reply.text("cut short", finish="length"), "!")
    first = await stream_chat(live, h, message="Q1", model="fake-openai")
    cid = first[0].data["conversation_id"]
    await stream_chat(live, h, message="Q2", model="fake-openai", conversation_id=cid)
    _, a1, u2, a2 = (m["id"] for m in (await history(live, h, cid))["messages"])

    def seen() -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in upstream.requests[-1].json["messages"]]

    await stream_chat(live, h, message="Q3", model="fake-openai", parent_id=a1)
    assert seen() == [("user", "Q1"), ("assistant", "A1"), ("user", "Q3")]

    await post_stream(live, f"/chat/messages/{a2}/regenerate", h, {"model": "fake-openai"})
    assert seen() == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")]

    cut = await post_stream(
        live, f"/chat/messages/{u2}/edit", h, {"content": "Q2b", "model": "fake-openai"}
    )
    assert cut[-1].data["finish_reason"] == "length"
    assert seen() == [("user", "Q1"), ("assistant", "A1"), ("user", "Q2b")]

    more = await post_stream(live, f"/chat/messages/{cut[0].data['message_id']}/continue", h)
    assert text_of(more) == "!"
    # the partial answer goes last, as the assistant message the model continues
    assert seen() == [
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2b"),
        ("assistant", "cut short"),
    ]
    assert contents(await history(live, h, cid))[-1] == "cut short!"


async def test_anthropic_continues_from_a_prefill(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    h = alice["headers"]
    upstream.script(Reply.text("Half an answer", finish="length"), " and the rest.")
    cut = await stream_chat(live, h, message="Q", model="fake-anthropic")
    assert cut[-1].data["finish_reason"] == "length"
    more = await post_stream(live, f"/chat/messages/{cut[0].data['message_id']}/continue", h)
    assert names(more)[-1] == "done" and text_of(more) == " and the rest."
    sent = upstream.requests[-1]
    assert sent.api == "anthropic"
    last = sent.json["messages"][-1]
    text = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    assert (last["role"], text) == ("assistant", "Half an answer")  # the prefill
    conv = await history(live, h, cut[0].data["conversation_id"])
    assert contents(conv) == ["Q", "Half an answer and the rest."]
