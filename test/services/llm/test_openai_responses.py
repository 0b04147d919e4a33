"""OpenAI Responses dialect: what goes on the wire and how its events are read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from app.services.llm import ChatMessage, Finish, ProviderError, TextDelta, ToolCallRequest, Usage
from app.services.llm.base import ReasoningConfig, ReasoningDelta
from app.services.llm.openai_responses import EventReader, OpenAIResponsesProvider
from test.fakes.new_upstreams import FakeToolCall, NewFakeUpstream, Reply, start_new_fake_upstream
from test.services.llm.new_support import new_model
from test.services.llm.support import API_KEY, TOOL, collect, user


@pytest.fixture
async def new_fake() -> AsyncIterator[NewFakeUpstream]:
    """A fresh Responses + Gemini fake per test."""
    async with start_new_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def responses(http: aiohttp.ClientSession, environ: dict[str, str]) -> OpenAIResponsesProvider:
    """The Responses API provider over the test session."""
    return OpenAIResponsesProvider(session=http, environ=environ)


async def test_request_is_a_streaming_stateless_response(
    responses: OpenAIResponsesProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script("ok")
    model = new_model("openai_responses", new_fake, temperature=0.7)
    messages = [ChatMessage(role="system", content="Be brief."), *user("hi")]
    _, error = await collect(responses, model, messages, tools=[TOOL], max_tokens=50)
    assert error is None
    [request] = new_fake.requests
    assert request.path == "/v1/responses"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json == {
        "model": "openai_responses-model-1",
        "input": [{"role": "user", "content": "hi"}],
        "instructions": "Be brief.",
        "stream": True,
        "store": False,
        "max_output_tokens": 50,
        "temperature": 0.7,
        "tools": [
            {
                "type": "function",
                "name": "time__get_current_time",
                "description": "Current time in a timezone",
                "parameters": TOOL.input_schema,
                "strict": False,
            }
        ],
    }


async def test_reasoning_effort_asks_for_summaries_and_drops_temperature(
    responses: OpenAIResponsesProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(reasoning=["Weighing it."], tokens=["Yes."]))
    model = new_model(
        "openai_responses",
        new_fake,
        temperature=0.7,
        reasoning=ReasoningConfig(effort="high"),
        supports_tools=False,
    )
    events, error = await collect(responses, model, user("hi"), tools=[TOOL], max_tokens=99999)
    assert error is None
    assert events[:2] == [ReasoningDelta("Weighing it."), TextDelta("Yes.")]
    body = new_fake.requests[0].json
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert "temperature" not in body  # reasoning models refuse it
    assert body["max_output_tokens"] == model.max_output_tokens
    assert "tools" not in body  # the model does not support tools


async def test_tool_round_trip_sends_function_call_items_back(
    responses: OpenAIResponsesProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(
        Reply(
            tokens=["Checking."],
            tool_calls=[FakeToolCall("time__get_current_time", {"timezone": "UTC"}, id="call_7")],
        ),
        Reply.text("It is noon."),
    )
    model = new_model("openai_responses", new_fake)
    conversation = user("time?")
    events, error = await collect(responses, model, conversation, tools=[TOOL])
    assert error is None
    call = ToolCallRequest("call_7", "time__get_current_time", {"timezone": "UTC"})
    assert events[0] == TextDelta("Checking.")
    assert events[1] == call and events[-1] == Finish("tool_calls")

    conversation += [
        ChatMessage(role="assistant", content="Checking.", tool_calls=[call]),
        ChatMessage(role="tool", content="12:00", tool_call_id="call_7"),
    ]
    events, error = await collect(responses, model, conversation, tools=[TOOL])
    assert error is None and events[0] == TextDelta("It")
    assert new_fake.requests[1].json["input"] == [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": "Checking."},
        {
            "type": "function_call",
            "call_id": "call_7",
            "name": "time__get_current_time",
            "arguments": '{"timezone": "UTC"}',
        },
        {"type": "function_call_output", "call_id": "call_7", "output": "12:00"},
    ]


async def test_garbled_arguments_are_kept_raw(
    responses: OpenAIResponsesProvider, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tool_calls=[FakeToolCall("t__x", '{"a": 1,', id="call_1")]))
    events, error = await collect(responses, new_model("openai_responses", new_fake), user("go"))
    assert error is None
    assert ToolCallRequest("call_1", "t__x", {"_raw": '{"a": 1,'}) in events


def _event(kind: str, **fields: Any) -> bytes:
    """One Responses event as a data payload."""
    return json.dumps({"type": kind, **fields}).encode()


def test_calls_are_assembled_from_deltas_when_no_done_event_comes() -> None:
    reader = EventReader(None)
    added = {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "a__b"}
    reader.handle(_event("response.output_item.added", output_index=0, item=added))
    reader.handle(_event("response.function_call_arguments.delta", item_id="fc_1", delta='{"x"'))
    reader.handle(_event("response.function_call_arguments.delta", item_id="fc_1", delta=": 1}"))
    no_id = {"type": "function_call", "id": "fc_2", "name": "c__d", "arguments": ""}
    reader.handle(_event("response.output_item.added", output_index=1, item=no_id))
    usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    done = {"status": "completed", "incomplete_details": None, "usage": usage}
    reader.handle(_event("response.completed", response=done))
    [first, second, *rest] = reader.final_events()
    assert first == ToolCallRequest("call_a", "a__b", {"x": 1})
    assert isinstance(second, ToolCallRequest) and second.name == "c__d"
    assert second.id.startswith("call_") and second.arguments == {}
    assert rest == [Usage(7, 3), Finish("tool_calls")]


def test_summary_parts_are_separated_and_other_events_ignored() -> None:
    reader = EventReader(None)
    delta = "response.reasoning_summary_text.delta"
    first = reader.handle(_event(delta, item_id="rs_1", summary_index=0, delta="One."))
    ignored = reader.handle(_event("response.reasoning_summary_part.added", item_id="rs_1"))
    second = reader.handle(_event(delta, item_id="rs_1", summary_index=1, delta="Two."))
    refusal = reader.handle(_event("response.refusal.delta", delta="I can't."))
    assert (first, ignored, second) == (ReasoningDelta("One."), None, ReasoningDelta("\n\nTwo."))
    assert refusal == TextDelta("I can't.")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ({"code": "rate_limit_exceeded", "message": "slow down"}, "upstream_rate_limited"),
        ({"code": "server_error", "message": "oops"}, "upstream_unavailable"),
        ({"code": "invalid_prompt", "message": "no"}, "upstream_bad_request"),
        ({"code": "bio_policy", "message": "no"}, "upstream_error"),
    ],
)
def test_a_failed_response_raises_its_code(error: dict[str, str], code: str) -> None:
    reader = EventReader(API_KEY)
    failed = {"status": "failed", "error": {**error, "message": f"{error['message']} {API_KEY}"}}
    with pytest.raises(ProviderError) as raised:
        reader.handle(_event("response.failed", response=failed))
    assert raised.value.code == code
    assert error["message"] in raised.value.message and API_KEY not in raised.value.message


def test_an_error_event_raises_its_code() -> None:
    reader = EventReader(None)
    with pytest.raises(ProviderError) as raised:
        reader.handle(_event("error", code="rate_limit_exceeded", message="too many"))
    assert raised.value.code == "upstream_rate_limited" and "too many" in raised.value.message


def test_a_filtered_empty_answer_is_an_error_and_a_filtered_partial_one_stops() -> None:
    incomplete = {"status": "incomplete", "incomplete_details": {"reason": "content_filter"}}
    empty = EventReader(None)
    empty.handle(_event("response.incomplete", response=incomplete))
    with pytest.raises(ProviderError) as raised:
        empty.final_events()
    assert raised.value.code == "upstream_error" and "content_filter" in raised.value.message
    partial = EventReader(None)
    partial.handle(_event("response.output_text.delta", delta="Some"))
    partial.handle(_event("response.incomplete", response=incomplete))
    assert partial.final_events() == [Finish("stop")]
