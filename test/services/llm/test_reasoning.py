"""Reasoning at the provider level: what each dialect streams, what its requests carry, and
which reasoning goes back to which model (the wire formats follow the providers' docs)."""

from __future__ import annotations

import aiohttp
import pytest

from app.services.chat.reasoning import ReasoningTrack
from app.services.llm import (
    ChatMessage,
    Finish,
    LLMEvent,
    ReasoningBlock,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
)
from app.services.llm.anthropic import AnthropicProvider
from app.services.llm.base import ReasoningConfig
from app.services.llm.echo import EchoProvider
from app.services.llm.openai import OpenAIProvider
from test.fakes.llm_upstream import FakeToolCall, FakeUpstream, Reply
from test.services.llm.support import TOOL, collect, model_for, user

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
THINKING = ReasoningConfig(budget_tokens=2048)
EFFORT = ReasoningConfig(effort="high")


@pytest.fixture
def anthropic(http: aiohttp.ClientSession, environ: dict[str, str]) -> AnthropicProvider:
    """The Anthropic provider over the test session."""
    return AnthropicProvider(session=http, environ=environ)


@pytest.fixture
def openai(http: aiohttp.ClientSession, environ: dict[str, str]) -> OpenAIProvider:
    """The OpenAI-compatible provider over the test session."""
    return OpenAIProvider(session=http, environ=environ)


def reasoning_of(events: list[LLMEvent]) -> str:
    """The concatenated reasoning text."""
    return "".join(e.content for e in events if isinstance(e, ReasoningDelta))


def answer_of(events: list[LLMEvent]) -> str:
    """The concatenated answer text."""
    return "".join(e.content for e in events if isinstance(e, TextDelta))


# --- Anthropic extended thinking -----------------------------------------------------------


async def test_anthropic_thinking_request_has_budget_and_room_for_the_answer(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("anthropic", fake.anthropic_base_url, reasoning=THINKING, temperature=0.3)
    _, error = await collect(anthropic, model, user("hi"), temperature=0.7, max_tokens=300)
    assert error is None
    body = fake.requests[0].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2048 + 300  # above the budget, as the API requires
    assert "temperature" not in body  # thinking accepts only the default


async def test_anthropic_without_reasoning_sends_no_thinking(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    fake.script("ok")
    model = model_for("anthropic", fake.anthropic_base_url, temperature=0.3)
    await collect(anthropic, model, user("hi"))
    body = fake.requests[0].json
    assert "thinking" not in body and body["temperature"] == 0.3 and body["max_tokens"] == 1000


async def test_anthropic_thinking_deltas_become_reasoning_then_the_signature(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    fake.script(
        Reply.text(
            "The answer is 42.",
            reasoning=["Let me ", "work it out.\n", "6 x 7 = 42."],
            signature=SIGNATURE,
            redacted_thinking=["EmwKAhgBEgy3va3pzix/LafPsn4a"],
        )
    )
    model = model_for("anthropic", fake.anthropic_base_url, reasoning=THINKING)
    events, error = await collect(anthropic, model, user("6 x 7?"))
    assert error is None
    assert reasoning_of(events) == "Let me work it out.\n6 x 7 = 42."
    assert answer_of(events) == "The answer is 42."
    kinds = [type(e).__name__ for e in events]
    assert kinds[:3] == ["ReasoningDelta"] * 3  # reasoning streams before the answer
    closing = [e for e in events if isinstance(e, ReasoningDelta) and not e.content]
    assert closing == [
        ReasoningDelta("", signature=SIGNATURE),  # at the end of the thinking block
        ReasoningDelta("", redacted="EmwKAhgBEgy3va3pzix/LafPsn4a"),
    ]
    assert events[-1] == Finish("stop")


async def test_signed_thinking_is_replayed_before_tool_use_in_the_same_loop(
    anthropic: AnthropicProvider, fake: FakeUpstream
) -> None:
    call = FakeToolCall("time__get_current_time", {"timezone": "UTC"}, id="toolu_1")
    fake.script(
        Reply(
            reasoning=["I need the time."],
            signature=SIGNATURE,
            redacted_thinking=["opaque=="],
            tool_calls=[call],
        ),
        "It is noon.",
    )
    model = model_for("anthropic", fake.anthropic_base_url, reasoning=THINKING)
    first, _ = await collect(anthropic, model, user("time?"), tools=[TOOL])
    track = ReasoningTrack()  # what the agent keeps of the round
    for event in first:
        if isinstance(event, ReasoningDelta):
            track.add(event, model_id=model.id)
    calls = [e for e in first if isinstance(e, ToolCallRequest)]
    messages = [
        *user("time?"),
        ChatMessage("assistant", "", tool_calls=calls, reasoning_blocks=track.take_blocks()),
        ChatMessage("tool", "12:00", tool_call_id="toolu_1"),
    ]
    _, error = await collect(anthropic, model, messages, tools=[TOOL])
    assert error is None
    assert fake.requests[1].json["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I need the time.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": "opaque=="},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "time__get_current_time",
                "input": {"timezone": "UTC"},
            },
        ],
    }


async def test_another_models_thinking_is_never_sent(
    anthropic: AnthropicProvider, openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    blocks = [ReasoningBlock("fake-anthropic", "secret plan", signature=SIGNATURE)]
    calls = [ToolCallRequest("toolu_1", "time__get_current_time", {})]
    messages = [
        *user("time?"),
        ChatMessage("assistant", "", tool_calls=calls, reasoning_blocks=blocks),
        ChatMessage("tool", "12:00", tool_call_id="toolu_1"),
    ]
    fake.script("a", "b")
    other = model_for("anthropic", fake.anthropic_base_url, id="other-claude")
    await collect(anthropic, other, messages, tools=[TOOL])
    await collect(openai, model_for("openai", fake.openai_base_url), messages, tools=[TOOL])
    for request in fake.requests:
        assert "secret plan" not in str(request.json) and SIGNATURE not in str(request.json)


# --- OpenAI-compatible reasoning -------------------------------------------------------------


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_openai_reasoning_fields_become_reasoning(
    openai: OpenAIProvider, fake: FakeUpstream, field: str
) -> None:
    fake.script(
        Reply.text("Paris.", reasoning=["The capital ", "of France."], reasoning_field=field)
    )
    events, error = await collect(openai, model_for("openai", fake.openai_base_url), user("?"))
    assert error is None
    assert reasoning_of(events) == "The capital of France."
    assert answer_of(events) == "Paris."
    assert isinstance(events[0], ReasoningDelta) and events[-1] == Finish("stop")


async def test_openai_effort_sends_reasoning_effort_and_max_completion_tokens(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    fake.script("ok", "ok")
    model = model_for("openai", fake.openai_base_url, reasoning=EFFORT, temperature=0.2)
    await collect(openai, model, user("hi"), temperature=0.5, max_tokens=321)
    body = fake.requests[0].json
    assert body["reasoning_effort"] == "high"
    assert body["max_completion_tokens"] == 321
    assert "max_tokens" not in body and "temperature" not in body

    await collect(openai, model_for("openai", fake.openai_base_url), user("hi"), temperature=0.5)
    plain = fake.requests[1].json
    assert plain["max_tokens"] == 1000 and plain["temperature"] == 0.5
    assert "reasoning_effort" not in plain and "max_completion_tokens" not in plain


async def test_openai_reasoning_is_never_sent_back(
    openai: OpenAIProvider, fake: FakeUpstream
) -> None:
    blocks = [ReasoningBlock("fake-openai", "private musings")]
    calls = [ToolCallRequest("call_1", "time__get_current_time", {})]
    messages = [
        *user("time?"),
        ChatMessage("assistant", "", tool_calls=calls, reasoning_blocks=blocks),
        ChatMessage("tool", "12:00", tool_call_id="call_1"),
    ]
    fake.script("ok")
    await collect(openai, model_for("openai", fake.openai_base_url), messages, tools=[TOOL])
    assert "private musings" not in str(fake.requests[0].json)


# --- the offline model ------------------------------------------------------------------------


async def test_echo_think_streams_reasoning_then_the_answer() -> None:
    echo = EchoProvider(environ={})
    model = model_for("echo", "http://unused.invalid", id="vektor-echo")
    events, error = await collect(echo, model, user("/think why is the sky blue?"))
    assert error is None
    assert reasoning_of(events) == "Thinking about: why is the sky blue?…"
    assert answer_of(events) == "Echo: why is the sky blue?"
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])
    plain, _ = await collect(echo, model, user("why?"))
    assert reasoning_of(plain) == "" and answer_of(plain) == "Echo: why?"
