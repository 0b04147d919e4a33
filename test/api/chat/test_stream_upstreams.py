"""Chat turns through real loopback OpenAI/Anthropic upstreams: tools, fallback, errors."""

from __future__ import annotations

from typing import Any

import httpx

from test.fakes.llm_upstream import FakeToolCall, Reply
from test.support.sse import names, stream_chat, text_of


async def _conversation(live: httpx.AsyncClient, headers: dict, cid: str) -> dict[str, Any]:
    response = await live.get(f"/chat/history/{cid}", headers=headers)
    assert response.status_code == 200
    return response.json()


async def test_openai_text_stream_with_history_and_system_prompt(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.script(Reply.text("Hi Alice, nice to meet you.", usage=(12, 7)))
    events = await stream_chat(
        live, alice["headers"], message="Hello!", model="fake-openai", system_prompt="Be brief."
    )
    assert names(events)[0] == "start" and names(events)[-1] == "done"
    assert text_of(events) == "Hi Alice, nice to meet you."
    assert next(e for e in events if e.name == "usage").data == {
        "input_tokens": 12,
        "output_tokens": 7,
    }
    sent = upstream.requests[-1]
    assert sent.headers["Authorization"].startswith("Bearer sk-test-openai-")
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent.json["messages"][-1] == {"role": "user", "content": "Hello!"}

    upstream.script(Reply.text("Second answer."))
    cid = events[0].data["conversation_id"]
    await stream_chat(
        live, alice["headers"], message="Again", model="fake-openai", conversation_id=cid
    )
    history = [(m["role"], m["content"]) for m in upstream.requests[-1].json["messages"]]
    assert history == [
        ("user", "Hello!"),
        ("assistant", "Hi Alice, nice to meet you."),
        ("user", "Again"),
    ]


async def test_openai_tool_round_trip_is_streamed_saved_and_replayed(
    live: httpx.AsyncClient, alice: dict, upstream: Any, stub_tools: Any
) -> None:
    upstream.script(
        Reply(tool_calls=[FakeToolCall("stub__add", {"a": 2, "b": 3}, id="call_1")]),
        Reply.text("The sum is 5."),
    )
    events = await stream_chat(live, alice["headers"], message="2+3?", model="fake-openai")
    order = names(events)
    assert order.index("tool_call") < order.index("tool_progress") < order.index("tool_result")
    call = next(e for e in events if e.name == "tool_call").data
    assert call == {
        "call_id": "call_1",
        "server": "stub",
        "tool": "add",
        "arguments": {"a": 2, "b": 3},
    }
    result = next(e for e in events if e.name == "tool_result").data
    assert result["status"] == "ok" and result["content"] == "5"
    assert text_of(events) == "The sum is 5."
    offered = [t["function"]["name"] for t in upstream.requests[0].json["tools"]]
    assert "stub__add" in offered
    second = upstream.requests[1].json["messages"]
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}

    conv = await _conversation(live, alice["headers"], events[0].data["conversation_id"])
    saved = conv["messages"][-1]
    assert saved["tool_calls"] == [
        {
            "id": "call_1",
            "server": "stub",
            "tool": "add",
            "arguments": {"a": 2, "b": 3},
            "status": "ok",
            "result": "5",
            "duration_ms": 3,
        }
    ]
    # the next turn replays the tool round to the model
    upstream.script(Reply.text("ok"))
    await stream_chat(
        live, alice["headers"], message="thanks", model="fake-openai", conversation_id=conv["id"]
    )
    replayed = upstream.requests[-1].json["messages"]
    roles = [m["role"] for m in replayed]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert replayed[1]["tool_calls"][0]["function"]["name"] == "stub__add"


async def test_anthropic_parallel_tool_calls_run_concurrently(
    live: httpx.AsyncClient, alice: dict, upstream: Any, stub_tools: Any
) -> None:
    upstream.script(
        Reply(
            tool_calls=[
                FakeToolCall("stub__add", {"a": 1, "b": 1}, id="toolu_1"),
                FakeToolCall("stub__fail", {"a": 0, "b": 0}, id="toolu_2"),
            ]
        ),
        Reply.text("One worked, one failed."),
    )
    events = await stream_chat(live, alice["headers"], message="go", model="fake-anthropic")
    results = {e.data["call_id"]: e.data for e in events if e.name == "tool_result"}
    assert results["toolu_1"]["status"] == "ok" and results["toolu_2"]["status"] == "error"
    assert stub_tools.max_in_flight == 2
    blocks = upstream.requests[1].json["messages"][-1]["content"]
    assert {b["tool_use_id"] for b in blocks if b["type"] == "tool_result"} == {
        "toolu_1",
        "toolu_2",
    }
    assert names(events)[-1] == "done"


async def test_echo_tool_command_uses_the_tool_source(
    live: httpx.AsyncClient, alice: dict, stub_tools: Any
) -> None:
    events = await stream_chat(live, alice["headers"], message='/tool stub__add {"a": 40, "b": 2}')
    assert next(e for e in events if e.name == "tool_result").data["content"] == "42"
    assert "42" in text_of(events)
    assert stub_tools.calls == [("stub__add", {"a": 40, "b": 2})]


async def test_tools_can_be_switched_off(
    live: httpx.AsyncClient, alice: dict, upstream: Any, stub_tools: Any
) -> None:
    upstream.script(Reply.text("no tools"), Reply.text("still none"))
    await stream_chat(live, alice["headers"], message="x", model="fake-openai", tools=False)
    assert "tools" not in upstream.requests[-1].json or not upstream.requests[-1].json["tools"]
    await live.put(
        "/users/preferences", json={"enabled_mcp_servers": ["other"]}, headers=alice["headers"]
    )
    await stream_chat(live, alice["headers"], message="y", model="fake-openai")
    assert not upstream.requests[-1].json.get("tools")


async def test_tool_rounds_stop_at_the_limit(
    live: httpx.AsyncClient, alice: dict, upstream: Any, stub_tools: Any, state: Any
) -> None:
    upstream.default = lambda _req: Reply(tool_calls=[FakeToolCall("stub__add", {"a": 1, "b": 1})])
    events = await stream_chat(live, alice["headers"], message="loop", model="fake-openai")
    assert events[-1].data["finish_reason"] == "tool_limit"
    assert len(upstream.requests) == state.settings.max_tool_rounds + 1


async def test_fallback_when_the_model_fails_before_its_first_token(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.script(Reply.error(500), model="gpt-fake")
    upstream.script(Reply.text("from the fallback"), model="claude-fake")
    events = await stream_chat(live, alice["headers"], message="hi", model="fake-openai")
    assert text_of(events) == "from the fallback" and names(events)[-1] == "done"
    # `start` names the requested model; `model` says which one answers, before its text
    assert names(events)[:3] == ["start", "model", "delta"]
    start, model = events[0].data, events[1].data
    assert start["model"] == "fake-openai"
    assert model == {"message_id": start["message_id"], "model": "fake-anthropic"}
    conv = await _conversation(live, alice["headers"], start["conversation_id"])
    assert conv["messages"][-1]["model"] == model["model"]


async def test_no_model_event_when_the_requested_model_answers(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.script(Reply.text("first try"), model="gpt-fake")
    events = await stream_chat(live, alice["headers"], message="hi", model="fake-openai")
    assert "model" not in names(events) and names(events)[-1] == "done"
    conv = await _conversation(live, alice["headers"], events[0].data["conversation_id"])
    assert conv["messages"][-1]["model"] == events[0].data["model"] == "fake-openai"


async def test_upstream_errors_become_error_events_and_are_saved(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.script(Reply.error(401, "bad key"))
    events = await stream_chat(live, alice["headers"], message="hi", model="fake-anthropic")
    assert names(events)[0] == "start" and names(events)[-1] == "error"
    assert "delta" not in names(events) and "done" not in names(events)
    assert events[-1].data["code"] == "upstream_auth"
    conv = await _conversation(live, alice["headers"], events[0].data["conversation_id"])
    assert conv["messages"][-1]["status"] == "error"

    upstream.script(Reply(tokens=["one ", "two ", "three"], fail_after=2))
    events = await stream_chat(
        live, alice["headers"], message="again", model="fake-anthropic", conversation_id=conv["id"]
    )
    assert names(events)[-1] == "error" and text_of(events) == "one two "
    conv = await _conversation(live, alice["headers"], conv["id"])
    assert conv["messages"][-1]["status"] == "error"
    assert conv["messages"][-1]["content"] == "one two "


async def test_history_is_truncated_to_the_context_window(
    live: httpx.AsyncClient, alice: dict, upstream: Any
) -> None:
    upstream.default = lambda _req: Reply.text("noted")
    first = await stream_chat(
        live, alice["headers"], message="OLDEST " + "a " * 3000, model="fake-openai"
    )
    cid = first[0].data["conversation_id"]
    for _ in range(2):
        await stream_chat(
            live, alice["headers"], message="b " * 3000, model="fake-openai", conversation_id=cid
        )
    sent = upstream.requests[-1].json["messages"]
    assert all("OLDEST" not in m.get("content", "") for m in sent)
    assert sent[-1]["role"] == "user"
