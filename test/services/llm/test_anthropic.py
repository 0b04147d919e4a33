"""Anthropic dialect: what goes on the wire and how its events are read."""

from __future__ import annotations

import json

import aiohttp
import pytest

from app.services.llm import ChatMessage, Finish, ProviderError, ToolCallRequest, Usage
from app.services.llm.anthropic import ANTHROPIC_VERSION, AnthropicProvider, EventReader
from test.fakes.llm_upstream import FakeUpstream
from test.services.llm.support import API_KEY, TOOL, collect, model_for, user


@pytest.fixture
def anthropic(http: aiohttp.ClientSession, environ: dict[str, str]) -> AnthropicProvider:
    """The Anthropic provider over the test session."""
    return AnthropicProvider(session=http, environ=environ)


async def test_request_is_a_streaming_messages_call(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("anthropic", fake.anthropic_base_url, max_output_tokens=777)
    _, error = await collect(anthropic, model, user("hi"), tools=[TOOL], temperature=1.5)
    assert error is None
    [request] = fake.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "Authorization" not in request.headers
    body = request.json
    assert body["model"] == "anthropic-model-1"
    assert body["stream"] is True
    assert body["max_tokens"] == 777  # required by the API: the model's cap by default
    assert body["temperature"] == 1.0  # clamped to Anthropic's 0..1
    assert "system" not in body
    assert body["tools"] == [
        {
            "name": "time__get_current_time",
            "description": "Current time in a timezone",
            "input_schema": TOOL.input_schema,
        }
    ]


async def test_system_and_tool_round_trip_use_anthropic_shapes(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    fake.script("Noon in both.")
    calls = [
        ToolCallRequest("toolu_1", "time__get_current_time", {"timezone": "UTC"}),
        ToolCallRequest("toolu_2", "time__get_current_time", {"timezone": "Asia/Tokyo"}),
    ]
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="time?"),
        ChatMessage(role="assistant", content="Checking.", tool_calls=calls),
        ChatMessage(role="tool", content="12:00", tool_call_id="toolu_1"),
        ChatMessage(role="tool", content="21:00", tool_call_id="toolu_2"),
    ]
    model = model_for("anthropic", fake.anthropic_base_url + "/v1")  # tolerated
    _, error = await collect(anthropic, model, messages)
    assert error is None
    body = fake.requests[0].json
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "time?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "time__get_current_time",
                    "input": {"timezone": "UTC"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "time__get_current_time",
                    "input": {"timezone": "Asia/Tokyo"},
                },
            ],
        },
        {
            "role": "user",  # both results in one user turn, as the API requires
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12:00"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "21:00"},
            ],
        },
    ]


def test_usage_counts_cached_input_and_latest_output() -> None:
    reader = EventReader(None)
    start = {
        "type": "message_start",
        "message": {
            "usage": {
                "input_tokens": 5,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
                "output_tokens": 1,
            }
        },
    }
    outputs = [
        reader.handle(json.dumps(event).encode())
        for event in [
            start,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "A"},
            },
            {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta"}},
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 9},
            },
            {"type": "message_stop"},
        ]
    ]
    assert [out for out in outputs if out is not None] == ["A"]
    # cache reads are the cached part of the input (priced apart); cache writes are input
    assert reader.final_events(emitted_tools=False) == [Usage(125, 9, 100), Finish("stop")]


@pytest.mark.parametrize(
    ("error_type", "code"),
    [
        ("overloaded_error", "upstream_unavailable"),
        ("rate_limit_error", "upstream_rate_limited"),
        ("invalid_request_error", "upstream_bad_request"),
        ("something_new", "upstream_error"),
    ],
)
def test_error_events_map_to_codes(error_type: str, code: str) -> None:
    event = {"type": "error", "error": {"type": error_type, "message": f"boom {API_KEY}"}}
    with pytest.raises(ProviderError) as caught:
        EventReader(API_KEY).handle(json.dumps(event).encode())
    assert caught.value.code == code
    assert "boom" in caught.value.message and API_KEY not in caught.value.message
