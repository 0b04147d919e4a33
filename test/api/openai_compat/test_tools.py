"""Client tools through /v1: offered to the model, returned as `tool_calls`, and the client's
results mapped back into each provider's history format (echo, OpenAI, Anthropic)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from test.api.chat.helpers import upstream  # noqa: F401  (fixture)
from test.fakes.llm_upstream import FakeToolCall, Reply

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def follow_up(question: str, call: Any, result: str) -> list[dict[str, Any]]:
    """The next request's messages: the question, the assistant's call, the tool's result."""
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": result},
    ]


async def test_echo_round_trip_whole(aclient: openai.AsyncOpenAI) -> None:
    question = '/tool get_weather {"city": "Paris"}'
    first = await aclient.chat.completions.create(
        model="vektor-echo", messages=[{"role": "user", "content": question}], tools=[WEATHER]
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    second = await aclient.chat.completions.create(
        model="vektor-echo", messages=follow_up(question, call, "sunny, 21 C"), tools=[WEATHER]
    )
    assert second.choices[0].message.content == "Tool get_weather returned: sunny, 21 C"
    assert second.choices[0].finish_reason == "stop"


async def test_echo_tool_call_streamed(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(
        model="vektor-echo",
        messages=[{"role": "user", "content": '/tool get_weather {"city": "Oslo"}'}],
        tools=[WEATHER],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    calls = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or ()]
    assert [(c.index, c.function.name) for c in calls if c.function] == [(0, "get_weather")]
    assert json.loads(calls[0].function.arguments or "") == {"city": "Oslo"}  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_choice_none_offers_no_tools(aclient: openai.AsyncOpenAI) -> None:
    answer = await aclient.chat.completions.create(
        model="vektor-echo",
        messages=[{"role": "user", "content": '/tool get_weather {"city": "Rome"}'}],
        tools=[WEATHER],
        tool_choice="none",
    )
    assert answer.choices[0].message.tool_calls is None
    assert answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["fake-openai", "fake-anthropic"])
async def test_upstream_round_trip(
    aclient: openai.AsyncOpenAI,
    upstream: Any,  # noqa: F811
    model: str,
) -> None:
    upstream.script(
        Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Lima"}, id="call_abc")]),
        "It is warm in Lima.",
    )
    question = "Weather in Lima?"
    first = await aclient.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], tools=[WEATHER]
    )
    (call,) = first.choices[0].message.tool_calls or []
    assert call.id == "call_abc" and json.loads(call.function.arguments) == {"city": "Lima"}
    assert first.choices[0].finish_reason == "tool_calls"
    offered = upstream.requests[0].json["tools"]
    assert "get_weather" in json.dumps(offered)
    stream = await aclient.chat.completions.create(
        model=model, messages=follow_up(question, call, "28 C"), tools=[WEATHER], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "It is warm in Lima."
    history = upstream.requests[1].json["messages"]
    rendered = json.dumps(history)
    assert "call_abc" in rendered and "28 C" in rendered
    if model == "fake-openai":
        assert history[-1] == {"role": "tool", "tool_call_id": "call_abc", "content": "28 C"}
        assert history[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    else:
        assert history[-1]["role"] == "user"
        assert history[-1]["content"][0]["type"] == "tool_result"
        assert history[-2]["content"][-1]["type"] == "tool_use"


async def test_tool_result_without_call_is_refused(aclient: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await aclient.chat.completions.create(
            model="vektor-echo",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_nowhere", "content": "x"},
            ],
        )
    assert caught.value.param == "messages"
