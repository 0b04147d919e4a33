"""Reasoning end to end: `reasoning` events, `Message.reasoning` in history, snapshots that
carry it after a re-attach, Anthropic thinking replayed inside its tool loop only, and the
offline `/think`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.apps import app_instance
from test.support.auth import register_and_login
from test.support.sse import Event, names, read_events, stream_chat, text_of

SIGNATURE = "EqQBCgIYAhIMfakeSignatureOfTheFirstBlock"


def reasoning_of(events: list[Event]) -> str:
    """What the `reasoning` events add up to."""
    return "".join(e.data["content"] for e in events if e.name == "reasoning")


async def _saved_answer(client: httpx.AsyncClient, headers: dict, events: list[Event]) -> dict:
    cid = events[0].data["conversation_id"]
    response = await client.get(f"/chat/history/{cid}", headers=headers)
    assert response.status_code == 200
    message: dict[str, Any] = response.json()["messages"][-1]
    assert message["id"] == events[0].data["message_id"]
    return message


async def _attach(client: httpx.AsyncClient, headers: dict, message_id: str, last: int) -> list:
    path = f"/chat/stream/{message_id}"
    h = {**headers, "Last-Event-ID": str(last)}
    async with asyncio.timeout(20), aconnect_sse(client, "GET", path, headers=h) as source:
        assert source.response.status_code == 200
        return await read_events(source)


async def test_echo_think_streams_reasoning_saved_apart_from_the_content(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    events = await stream_chat(live, h, message="/think is the sky blue?")
    order = names(events)
    assert order[0] == "start" and order[-1] == "done"
    assert order.index("reasoning") < order.index("delta")  # it thinks, then answers
    assert reasoning_of(events) == "Thinking about: is the sky blue?…"
    assert text_of(events) == "Echo: is the sky blue?"
    saved = await _saved_answer(live, h, events)
    assert saved["reasoning"] == "Thinking about: is the sky blue?…"
    assert saved["content"] == "Echo: is the sky blue?"  # never mixed into the content
    plain = await stream_chat(live, h, message="no thinking")
    assert "reasoning" not in names(plain)
    assert (await _saved_answer(live, h, plain))["reasoning"] is None


async def test_reattach_replays_reasoning_and_snapshots_carry_it(
    live: httpx.AsyncClient, alice: dict
) -> None:
    h = alice["headers"]
    topic = " ".join(f"t{i}" for i in range(12))
    body = {"message": f"/think {topic}", "model": "echo-slow"}
    async with aconnect_sse(live, "POST", "/chat/stream", json=body, headers=h) as source:
        first = await read_events(source, limit=3)  # start and two reasoning pieces
    assert names(first) == ["start", "reasoning", "reasoning"]
    message_id = first[0].data["message_id"]

    # an id the log never sent: a snapshot of the message so far, then the rest, live
    rest = await _attach(live, h, message_id, 10_000)
    snapshot = rest[0]
    assert snapshot.name == "snapshot"
    reasoning = snapshot.data["reasoning"]
    assert reasoning.startswith(reasoning_of(first)) and snapshot.data["content"] == ""
    reasoning += reasoning_of(rest[1:])
    assert rest[-1].name == "done"
    saved = await _saved_answer(live, h, first)
    assert reasoning == saved["reasoning"] == f"Thinking about: {topic}…"
    assert text_of(rest) == saved["content"] == f"Echo: {topic}"

    # the live log replays the reasoning events exactly after an id it holds
    replayed = await _attach(live, h, message_id, 1)
    assert names(replayed)[0] == "reasoning"
    assert reasoning_of(replayed) == saved["reasoning"]


async def test_snapshot_rebuilt_from_the_database_carries_reasoning(
    instance_paths: tuple,
) -> None:
    async with app_instance(*instance_paths) as (client, _):
        user = await register_and_login(client, "thinker")
        events = await stream_chat(client, user["headers"], message="/think about restarts")
    assert events[-1].name == "done"
    async with app_instance(*instance_paths) as (client, _):  # the live log is gone
        rest = await _attach(client, user["headers"], events[0].data["message_id"], 1)
        saved = await _saved_answer(client, user["headers"], events)
    assert [e.name for e in rest] == ["snapshot", "done"]
    assert rest[0].data["reasoning"] == saved["reasoning"] == "Thinking about: about restarts…"
    assert rest[0].data["content"] == "Echo: about restarts"


async def test_openai_reasoning_content_is_streamed_saved_and_never_sent_back(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    h = alice["headers"]
    upstream.script(Reply.text("Paris.", reasoning=["The capital ", "of France."]))
    events = await stream_chat(live, h, message="Capital of France?", model="fake-openai")
    assert reasoning_of(events) == "The capital of France."
    assert text_of(events) == "Paris."
    saved = await _saved_answer(live, h, events)
    assert saved["reasoning"] == "The capital of France." and saved["content"] == "Paris."

    upstream.script(Reply.text("Yes.", reasoning=["Sure."], reasoning_field="reasoning"))
    cid = events[0].data["conversation_id"]
    again = await stream_chat(live, h, message="Sure?", model="fake-openai", conversation_id=cid)
    assert reasoning_of(again) == "Sure."
    sent = json.dumps(upstream.requests[-1].json)
    assert "The capital" not in sent  # the history carries the answer, never its reasoning


async def test_anthropic_thinking_is_replayed_in_its_tool_loop_only(
    live: httpx.AsyncClient, alice: dict, upstream: Any, stub_tools: Any
) -> None:
    h = alice["headers"]
    call = FakeToolCall("stub__add", {"a": 2, "b": 3}, id="toolu_1")
    upstream.script(
        Reply(reasoning=["I should add ", "them."], signature=SIGNATURE, tool_calls=[call]),
        Reply.text("The sum is 5.", reasoning=["5 it is."], signature="EqSecondBlock"),
    )
    events = await stream_chat(live, h, message="2+3?", model="fake-anthropic-thinking")
    assert events[-1].name == "done", events[-1]
    order = names(events)
    assert order.index("reasoning") < order.index("tool_call") < order.index("delta")
    assert reasoning_of(events) == "I should add them.\n\n5 it is."
    first, second = upstream.requests[-2:]
    assert first.json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assistant = second.json["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {
        "type": "thinking",
        "thinking": "I should add them.",
        "signature": SIGNATURE,
    }
    assert assistant["content"][1]["type"] == "tool_use"
    saved = await _saved_answer(live, h, events)
    assert saved["reasoning"] == "I should add them.\n\n5 it is."
    assert saved["content"] == "The sum is 5."

    upstream.script("Bye.")
    cid = events[0].data["conversation_id"]
    await stream_chat(live, h, message="Thanks", model="fake-anthropic", conversation_id=cid)
    later = json.dumps(upstream.requests[-1].json)
    assert SIGNATURE not in later and "I should add" not in later  # not in later turns


async def test_reasoning_reaches_a_reader_on_another_instance(
    two_instances: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    a, b = two_instances
    user = await register_and_login(a, "mirrored-thinker")
    h = user["headers"]
    topic = " ".join(f"m{i}" for i in range(10))
    body = {"message": f"/think {topic}", "model": "echo-slow"}
    async with aconnect_sse(a, "POST", "/chat/stream", json=body, headers=h) as source:
        first = await read_events(source, limit=3)  # start and two reasoning pieces on A
    message_id = first[0].data["message_id"]
    # through B: the mirrored events after id 1, exactly; and a snapshot for an unknown id
    replayed = await _attach(b, h, message_id, 1)
    caught_up = await _attach(b, h, message_id, 10_000)
    expected = f"Thinking about: {topic}…"
    assert replayed[-1].name == caught_up[-1].name == "done"
    assert reasoning_of(replayed) == expected
    assert caught_up[0].name == "snapshot"
    assert caught_up[0].data["reasoning"] + reasoning_of(caught_up[1:]) == expected
    assert (await _saved_answer(b, h, first))["reasoning"] == expected
