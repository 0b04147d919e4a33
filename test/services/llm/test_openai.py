"""OpenAI-compatible dialect: what goes on the wire and how its chunks are read."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from app.services.llm import ChatMessage, Finish, TextDelta, ToolCallRequest, Usage
from app.services.llm.openai import ChunkReader, OpenAIProvider
from test.fakes.llm_upstream import FakeToolCall, FakeUpstream, Reply
from test.services.llm.support import API_KEY, TOOL, collect, model_for, user


@pytest.fixture
def openai(http: aiohttp.ClientSession, environ: dict[str, str]) -> OpenAIProvider:
    """The OpenAI-compatible provider over the test session."""
    return OpenAIProvider(session=http, environ=environ)


async def test_request_is_a_streaming_chat_completion(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("openai", fake.openai_base_url, temperature=0.7)
    _, error = await collect(openai, model, user("hi"), tools=[TOOL], max_tokens=50)
    assert error is None
    [request] = fake.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.json
    assert body["model"] == "openai-model-1"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.7
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "time__get_current_time",
                "description": "Current time in a timezone",
                "parameters": TOOL.input_schema,
            },
        }
    ]


async def test_request_temperature_overrides_and_output_cap(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("openai", fake.openai_base_url, temperature=0.7, supports_tools=False)
    await collect(openai, model, user("hi"), tools=[TOOL], temperature=0.1, max_tokens=99999)
    body = fake.requests[0].json
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == model.max_output_tokens
    assert "tools" not in body  # the model does not support tools


async def test_tool_round_trip_is_serialised_as_chat_completions(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("It is noon.")
    call = ToolCallRequest("call_9", "time__get_current_time", {"timezone": "UTC"})
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="time?"),
        ChatMessage(role="assistant", content="", tool_calls=[call]),
        ChatMessage(role="tool", content="12:00", tool_call_id="call_9"),
    ]
    _, error = await collect(openai, model_for("openai", fake.openai_base_url), messages)
    assert error is None
    assert fake.requests[0].json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {
                        "name": "time__get_current_time",
                        "arguments": '{"timezone": "UTC"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "12:00"},
    ]


async def test_keyless_local_server_gets_no_authorization(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("openai", fake.openai_base_url, api_key_env=None)
    _, error = await collect(openai, model, user("hi"))
    assert error is None
    assert "Authorization" not in fake.requests[0].headers


async def test_base_url_with_trailing_slash_works(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("openai", fake.openai_base_url + "/")
    events, error = await collect(openai, model, user("hi"))
    assert error is None and events[0] == TextDelta("ok")


async def test_usage_is_left_out_when_the_server_sends_none(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script(Reply.text("no usage here", send_usage=False))
    events, error = await collect(openai, model_for("openai", fake.openai_base_url), user("hi"))
    assert error is None
    assert not any(isinstance(event, Usage) for event in events)
    assert events[-1] == Finish("stop")


async def test_truncated_tool_call_is_not_emitted(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script(Reply(tool_calls=[FakeToolCall("t__x", '{"a": "lo', id="c1")], finish="length"))
    events, error = await collect(openai, model_for("openai", fake.openai_base_url), user("hi"))
    assert error is None
    assert not any(isinstance(event, ToolCallRequest) for event in events)
    assert events[-1] == Finish("length")


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One Chat Completions chunk as a data payload."""
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()


def test_calls_without_index_or_with_a_reused_index_stay_apart() -> None:
    # seen from some compatible servers: whole calls without "index", or index 0 for every call
    reader = ChunkReader(None)
    reader.handle(
        _chunk({"tool_calls": [{"id": "c1", "function": {"name": "a__b", "arguments": {"x": 1}}}]})
    )
    reader.handle(_chunk({"tool_calls": [{"index": 0, "id": "c2", "function": {"name": "c__d"}}]}))
    reader.handle(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"y":'}}]}))
    reader.handle(_chunk({"tool_calls": [{"index": 0, "id": "c3", "function": {"name": "e__f"}}]}))
    reader.handle(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    reader.handle(_chunk({}, "stop"))  # some servers say "stop" even after tool calls
    assert reader.final_events() == [
        ToolCallRequest("c1", "a__b", {"x": 1}),
        ToolCallRequest("c2", "c__d", {"_raw": '{"y":'}),
        ToolCallRequest("c3", "e__f", {}),
        Finish("tool_calls"),
    ]


def test_missing_call_id_gets_a_generated_one() -> None:
    reader = ChunkReader(None)
    reader.handle(_chunk({"tool_calls": [{"index": 0, "function": {"name": "a__b"}}]}))
    reader.handle(_chunk({}, "tool_calls"))
    [call, finish] = reader.final_events()
    assert isinstance(call, ToolCallRequest) and call.id.startswith("call_") and call.name == "a__b"
    assert finish == Finish("tool_calls")
