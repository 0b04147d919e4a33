"""Gemini dialect: what goes on the wire and how its chunks are read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from app.services.llm import (
    ChatMessage,
    Finish,
    ModelConfig,
    ProviderError,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from app.services.llm.base import ReasoningConfig, ReasoningDelta
from app.services.llm.google import SKIP_SIGNATURE, GoogleProvider, build_request, call_id
from app.services.llm.google_reader import ChunkReader
from app.services.llm.google_schema import gemini_parameters
from app.services.tools import Tool
from test.fakes.new_upstreams import FakeToolCall, NewFakeUpstream, Reply, start_new_fake_upstream
from test.services.llm.new_support import new_model
from test.services.llm.support import API_KEY, TOOL, collect, user


@pytest.fixture
async def new_fake() -> AsyncIterator[NewFakeUpstream]:
    """A fresh Responses + Gemini fake per test."""
    async with start_new_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def google(http: aiohttp.ClientSession, environ: dict[str, str]) -> GoogleProvider:
    """The Gemini provider over the test session."""
    return GoogleProvider(session=http, environ=environ)


async def test_request_is_a_streaming_generate_content_call_with_the_key_in_a_header(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script("ok")
    model = new_model("google", new_fake, temperature=0.4)
    messages = [ChatMessage(role="system", content="Be brief."), *user("hi")]
    _, error = await collect(google, model, messages, tools=[TOOL], max_tokens=50)
    assert error is None
    [request] = new_fake.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == "alt=sse"  # type: ignore[attr-defined]  # and no key in the URL
    assert request.headers["x-goog-api-key"] == API_KEY
    assert "Authorization" not in request.headers
    assert request.json == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 50, "temperature": 0.4},
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "time__get_current_time",
                        "description": "Current time in a timezone",
                        "parameters": TOOL.input_schema,
                    }
                ]
            }
        ],
    }


async def test_thinking_budget_streams_thoughts_as_reasoning(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(reasoning=["Hmm, ", "four."], tokens=["4"], usage=(5, 2)))
    model = new_model("google", new_fake, reasoning=ReasoningConfig(budget_tokens=2048))
    events, error = await collect(google, model, user("2+2?"))
    assert error is None
    assert events == [
        ReasoningDelta("Hmm, "),
        ReasoningDelta("four."),
        TextDelta("4"),
        Usage(5, 2),
        Finish("stop"),
    ]
    config = new_fake.requests[0].json["generationConfig"]
    assert config["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 2048}
    assert config["maxOutputTokens"] == model.max_output_tokens + 2048  # thoughts on top


async def test_tool_round_trip_answers_by_name_with_stable_ids(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(
        Reply(
            tool_calls=[
                FakeToolCall("time__get_current_time", {"timezone": "UTC"}),
                FakeToolCall("time__get_current_time", {"timezone": "Asia/Tokyo"}),
            ],
            signature="c2lnbmF0dXJl",
        ),
        Reply.text("Noon and nine."),
    )
    model = new_model("google", new_fake, model="gemini-3-flash")
    conversation = user("time?")
    events, error = await collect(google, model, conversation, tools=[TOOL])
    assert error is None
    calls = [event for event in events if isinstance(event, ToolCallRequest)]
    assert [call.arguments for call in calls] == [{"timezone": "UTC"}, {"timezone": "Asia/Tokyo"}]
    assert [call.id for call in calls] == [
        call_id("r-1", 0, "time__get_current_time"),
        call_id("r-1", 1, "time__get_current_time"),
    ]
    assert calls[0].id != calls[1].id and events[-1] == Finish("tool_calls")

    conversation += [
        ChatMessage(role="assistant", content="", tool_calls=calls),
        ChatMessage(role="tool", content="12:00", tool_call_id=calls[0].id),
        ChatMessage(role="tool", content="21:00", tool_call_id=calls[1].id),
    ]
    events, error = await collect(google, model, conversation, tools=[TOOL])
    assert error is None and events[-1] == Finish("stop")
    name = "time__get_current_time"
    assert new_fake.requests[1].json["contents"] == [
        {"role": "user", "parts": [{"text": "time?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": name, "args": {"timezone": "UTC"}},
                    "thoughtSignature": "c2lnbmF0dXJl",  # remembered from the first call
                },
                {"functionCall": {"name": name, "args": {"timezone": "Asia/Tokyo"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": name, "response": {"result": "12:00"}}},
                {"functionResponse": {"name": name, "response": {"result": "21:00"}}},
            ],
        },
    ]


def test_a_replayed_gemini_3_call_without_a_known_signature_skips_validation() -> None:
    calls = [ToolCallRequest("toolu_x", "a__b", {}), ToolCallRequest("toolu_y", "a__b", {})]
    messages = [
        *user("go"),
        ChatMessage(role="assistant", content="", tool_calls=calls),
        ChatMessage(role="tool", content="done", tool_call_id="toolu_x"),
    ]
    base = {"id": "g", "provider": "google", "model": "gemini-3-pro", "base_url": "http://x"}
    body = build_request(
        model=ModelConfig(**base),  # type: ignore[arg-type]
        messages=messages,
        tools=[],
        temperature=None,
        max_tokens=None,
        signatures={},
    )
    [first, second] = body["contents"][1]["parts"]
    assert first["thoughtSignature"] == SKIP_SIGNATURE and "thoughtSignature" not in second
    assert first["functionCall"]["id"] == "toolu_x"  # not made here: Gemini's own id
    answer = body["contents"][2]["parts"][0]["functionResponse"]
    assert answer == {"name": "a__b", "response": {"result": "done"}, "id": "toolu_x"}
    older = build_request(
        model=ModelConfig(**{**base, "model": "gemini-2.5-pro"}),  # type: ignore[arg-type]
        messages=messages,
        tools=[],
        temperature=None,
        max_tokens=None,
        signatures={},
    )
    assert "thoughtSignature" not in older["contents"][1]["parts"][0]


async def test_a_bad_key_is_an_auth_error_though_gemini_says_400(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply.error(400, "API key not valid. Please pass a valid API key."))
    events, error = await collect(google, new_model("google", new_fake), user("hi"))
    assert events == [] and error is not None
    assert (error.code, error.status) == ("upstream_auth", 400)


async def test_a_safety_stop_before_any_text_is_an_error(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(finish="SAFETY"), Reply(tokens=["Partly"], finish="RECITATION"))
    model = new_model("google", new_fake)
    events, error = await collect(google, model, user("hi"))
    assert events == [] and error is not None and error.code == "upstream_error"
    assert "SAFETY" in error.message
    events, error = await collect(google, model, user("hi"))
    assert error is None and events[0] == TextDelta("Partly") and events[-1] == Finish("stop")


def _chunk(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_a_blocked_prompt_and_stream_errors_raise_their_codes() -> None:
    reader = ChunkReader(API_KEY, make_id=call_id)
    with pytest.raises(ProviderError) as raised:
        reader.handle(_chunk(promptFeedback={"blockReason": "SAFETY"}))
    assert raised.value.code == "upstream_bad_request"
    for error, code in [
        ({"code": 429, "message": f"quota {API_KEY}"}, "upstream_rate_limited"),
        ({"status": "UNAVAILABLE", "message": "busy"}, "upstream_unavailable"),
        ({"status": "WHATEVER"}, "upstream_error"),
    ]:
        with pytest.raises(ProviderError) as raised:
            reader.handle(_chunk(error=error))
        assert raised.value.code == code and API_KEY not in raised.value.message


def test_thoughts_count_as_output_tokens_and_the_last_usage_wins() -> None:
    reader = ChunkReader(None, make_id=call_id)
    reader.handle(_chunk(usageMetadata={"promptTokenCount": 10}))
    candidate = {"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6}
    reader.handle(_chunk(candidates=[candidate], usageMetadata=usage))
    assert reader.final_events() == [Usage(10, 10), Finish("length")]


def test_mcp_schemas_are_cut_to_what_gemini_accepts() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}},
        "properties": {
            "city": {"type": "string", "default": "Berlin", "examples": ["x"]},
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"type": ["integer", "null"], "minimum": 1},
            "mode": {"const": "fast"},
            "tags": {"type": "array"},
            "level": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["city", "ghost"],
    }
    assert gemini_parameters(schema) == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer", "nullable": True, "minimum": 1},
            "mode": {"type": "string", "enum": ["fast"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "level": {"type": "integer", "nullable": True},
        },
        "required": ["city"],
    }
    assert gemini_parameters({"type": "object", "properties": {}}) is None
    assert gemini_parameters({}) is None


async def test_a_tool_without_arguments_is_declared_without_parameters(
    google: GoogleProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script("ok")
    bare = Tool(server="s", name="now", qualified_name="s__now", description="d", input_schema={})
    await collect(google, new_model("google", new_fake), user("hi"), tools=[bare])
    [declaration] = new_fake.requests[0].json["tools"][0]["functionDeclarations"]
    assert declaration == {"name": "s__now", "description": "d"}
