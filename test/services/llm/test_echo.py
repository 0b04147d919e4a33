"""The offline echo model: deterministic text, tool calls on command, and tool reports."""

from __future__ import annotations

import time

import pytest

from app.services.llm import ChatMessage, Finish, ModelConfig, TextDelta, ToolCallRequest, Usage
from app.services.llm.echo import EchoProvider
from test.services.llm.support import TOOL, collect, text_of, user

ECHO = ModelConfig(id="vektor-echo", provider="echo", supports_tools=True, context_window=8192)


@pytest.fixture
def echo() -> EchoProvider:
    """An echo provider with no delay configured."""
    return EchoProvider(environ={})


async def test_reply_echoes_the_text_word_by_word(echo: EchoProvider) -> None:
    events, error = await collect(echo, ECHO, user("hello  big world"))
    assert error is None
    assert events == [
        TextDelta("Echo:"),
        TextDelta(" hello"),
        TextDelta("  big"),
        TextDelta(" world"),
        Usage(3, 4),
        Finish("stop"),
    ]


async def test_tool_command_makes_a_tool_call(echo: EchoProvider) -> None:
    message = '/tool time__get_current_time {"timezone": "UTC"}'
    events, error = await collect(echo, ECHO, user(message), tools=[TOOL])
    assert error is None
    assert events[0] == ToolCallRequest("call_1", "time__get_current_time", {"timezone": "UTC"})
    assert events[-1] == Finish("tool_calls")


async def test_tool_command_without_arguments_and_with_bad_json(echo: EchoProvider) -> None:
    events, _ = await collect(echo, ECHO, user("/tool time__now"), tools=[TOOL])
    assert events[0] == ToolCallRequest("call_1", "time__now", {})
    events, _ = await collect(echo, ECHO, user("/tool time__now {oops"), tools=[TOOL])
    assert events[0] == ToolCallRequest("call_1", "time__now", {"_raw": "{oops"})


async def test_tools_command_makes_several_calls(echo: EchoProvider) -> None:
    message = '/tools [{"name": "a__x", "arguments": {"n": 1}}, {"name": "b__y"}]'
    events, _ = await collect(echo, ECHO, user(message), tools=[TOOL])
    assert events[:2] == [
        ToolCallRequest("call_1", "a__x", {"n": 1}),
        ToolCallRequest("call_2", "b__y", {}),
    ]
    assert events[-1] == Finish("tool_calls")


async def test_malformed_tools_command_answers_with_usage(echo: EchoProvider) -> None:
    events, _ = await collect(echo, ECHO, user("/tools not-json"), tools=[TOOL])
    assert text_of(events).startswith("usage: /tools")
    assert events[-1] == Finish("stop")


async def test_tool_command_without_offered_tools_is_just_text(echo: EchoProvider) -> None:
    events, _ = await collect(echo, ECHO, user("/tool a__b {}"), tools=[])
    assert text_of(events) == "Echo: /tool a__b {}"
    assert not any(isinstance(event, ToolCallRequest) for event in events)


async def test_tool_results_are_reported_and_ids_keep_counting(echo: EchoProvider) -> None:
    calls = [ToolCallRequest("call_1", "a__x", {}), ToolCallRequest("call_2", "b__y", {})]
    history = [
        ChatMessage(role="user", content="/tools [...]"),
        ChatMessage(role="assistant", content="", tool_calls=calls),
        ChatMessage(role="tool", content="first", tool_call_id="call_1"),
        ChatMessage(role="tool", content="second", tool_call_id="call_2"),
    ]
    events, _ = await collect(echo, ECHO, history, tools=[TOOL])
    assert text_of(events) == "Tool a__x returned: first\nTool b__y returned: second"
    assert events[-1] == Finish("stop")
    events, _ = await collect(echo, ECHO, [*history, *user("/tool c__z {}")], tools=[TOOL])
    assert events[0] == ToolCallRequest("call_3", "c__z", {})


async def test_max_tokens_cuts_the_reply_with_length(echo: EchoProvider) -> None:
    events, _ = await collect(echo, ECHO, user("one two three four"), max_tokens=2)
    assert text_of(events) == "Echo: one"
    assert events[-2:] == [Usage(4, 2), Finish("length")]


async def test_error_command_raises_before_any_event(echo: EchoProvider) -> None:
    events, error = await collect(echo, ECHO, user("/error upstream_rate_limited slow down"))
    assert events == []
    assert error is not None
    assert (error.code, error.message) == ("upstream_rate_limited", "slow down")


@pytest.mark.parametrize("source", ["config", "env"])
async def test_delay_makes_a_slow_stream(source: str) -> None:
    if source == "config":
        provider, model = (
            EchoProvider(environ={}),
            ModelConfig(id="e", provider="echo", delay_ms=40),
        )
    else:
        provider, model = EchoProvider(environ={"ECHO_DELAY_MS": "40"}), ECHO
    started = time.monotonic()
    events, _ = await collect(provider, model, user("a b c d"))
    assert text_of(events) == "Echo: a b c d"
    assert time.monotonic() - started >= 5 * 0.04 * 0.9
