"""Behaviour `openai_responses` and `google` share with the other providers, on the fake."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from app.services.llm import Finish, ModelConfig, Provider, TextDelta, ToolCallRequest, Usage
from app.services.llm.base import ReasoningDelta
from test.fakes.new_upstreams import FakeToolCall, NewFakeUpstream, Reply, start_new_fake_upstream
from test.services.llm.new_support import NEW_KINDS, new_model, new_provider
from test.services.llm.support import API_KEY, TOOL, collect, text_of, user


@pytest.fixture
async def new_fake() -> AsyncIterator[NewFakeUpstream]:
    """A fresh Responses + Gemini fake per test."""
    async with start_new_fake_upstream() as upstream:
        yield upstream


@pytest.fixture(params=NEW_KINDS)
def new_kind(request: pytest.FixtureRequest) -> str:
    """Run the test against both new dialects."""
    value: str = request.param
    return value


@pytest.fixture
def provider(new_kind: str, http: aiohttp.ClientSession, environ: dict[str, str]) -> Provider:
    """The provider of the current dialect."""
    return new_provider(new_kind, http, environ)


@pytest.fixture
def model(new_kind: str, new_fake: NewFakeUpstream) -> ModelConfig:
    """A model of the current dialect pointing at the fake."""
    return new_model(new_kind, new_fake)


async def test_text_streams_in_order_then_usage_then_finish(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply.text("Hello brave new world", usage=(12, 4)))
    events, error = await collect(provider, model, user("hi"))
    assert error is None
    assert events == [
        TextDelta("Hello"),
        TextDelta(" brave"),
        TextDelta(" new"),
        TextDelta(" world"),
        Usage(12, 4),
        Finish("stop"),
    ]


async def test_reasoning_comes_apart_from_the_text(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(reasoning=["Let me ", "think."], tokens=["Four."], usage=(3, 9)))
    events, error = await collect(provider, model, user("2+2?"))
    assert error is None
    assert events == [
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        TextDelta("Four."),
        Usage(3, 9),
        Finish("stop"),
    ]


async def test_finish_length_runs_no_tool_call(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(
        Reply(tokens=["cut"], tool_calls=[FakeToolCall("t__x", {"a": 1})], finish="length")
    )
    events, error = await collect(provider, model, user("hi"), tools=[TOOL])
    assert error is None
    assert not any(isinstance(event, ToolCallRequest) for event in events)
    assert events[0] == TextDelta("cut") and events[-1] == Finish("length")


async def test_usage_is_left_out_when_none_is_reported(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply.text("no usage", send_usage=False))
    events, error = await collect(provider, model, user("hi"))
    assert error is None
    assert not any(isinstance(event, Usage) for event in events)
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "upstream_auth"),
        (403, "upstream_auth"),
        (429, "upstream_rate_limited"),
        (500, "upstream_unavailable"),
        (503, "upstream_unavailable"),
        (400, "upstream_bad_request"),
        (404, "upstream_bad_request"),
        (409, "upstream_error"),
    ],
)
async def test_http_errors_map_to_codes_with_the_upstream_message(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream, status: int, code: str
) -> None:
    new_fake.script(Reply.error(status, f"nope, key {API_KEY} was rejected"))
    events, error = await collect(provider, model, user("hi"))
    assert events == []
    assert error is not None
    assert (error.code, error.status) == (code, status)
    assert "nope" in error.message and str(status) in error.message
    assert API_KEY not in error.message and API_KEY not in repr(error)


async def test_connection_refused_is_unavailable(provider: Provider, model: ModelConfig) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = model.base_url or ""
    dead = replace(model, base_url=base.replace(base.split("/")[2], f"127.0.0.1:{port}"))
    events, error = await collect(provider, dead, user("hi"))
    assert events == [] and error is not None and error.code == "upstream_unavailable"


async def test_connection_dropped_mid_stream_fails_after_the_deltas(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=["one ", "two ", "three ", "four"], fail_after=2))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one "), TextDelta("two ")]
    assert error is not None and error.code == "upstream_unavailable"


async def test_error_event_mid_stream_fails_after_the_deltas(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=["one ", "two "], error_after=1, error_message="overloaded now"))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one ")]
    assert error is not None and error.code == "upstream_unavailable"
    assert "overloaded now" in error.message


async def test_clean_end_without_finish_is_a_protocol_error(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=["one ", "two "], stop_after=1))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one ")]
    assert error is not None and error.code == "upstream_protocol"


async def test_undecodable_data_is_a_protocol_error(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply.text("never seen", garbage=["data: {not json", ""]))
    events, error = await collect(provider, model, user("hi"))
    assert events == [] and error is not None and error.code == "upstream_protocol"


async def test_a_plain_json_answer_is_not_an_event_stream(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(raw_body='{"output": []}', content_type="application/json"))
    events, error = await collect(provider, model, user("hi"))
    assert events == [] and error is not None and error.code == "upstream_protocol"
    assert "expected an event stream, got application/json" in error.message


async def test_missing_key_fails_before_any_request(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    events, error = await collect(provider, replace(model, api_key_env="UNSET_KEY_VAR"), user("x"))
    assert events == [] and error is not None and error.code == "upstream_auth"
    assert new_fake.requests == []


@pytest.mark.parametrize(
    "reply",
    [Reply(tokens=["late"], headers_delay=1.0), Reply(tokens=["late"], first_token_delay=1.0)],
    ids=["before-headers", "after-headers"],
)
async def test_slow_first_byte_times_out(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream, reply: Reply
) -> None:
    new_fake.script(reply)
    started = time.monotonic()
    events, error = await collect(provider, replace(model, timeout_s=0.3), user("hi"))
    assert events == []
    assert error is not None and error.code == "upstream_timeout"
    assert time.monotonic() - started < 0.9


async def test_an_upstream_that_stalls_mid_answer_times_out(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=["a", "b"], token_delay=1.5))
    events, error = await collect(provider, replace(model, timeout_s=0.3), user("hi"))
    assert events == [TextDelta("a")]
    assert error is not None and error.code == "upstream_timeout"


async def test_timeout_is_per_read_not_per_answer(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=["a", "b", "c", "d", "e", "f"], token_delay=0.1))
    events, error = await collect(provider, replace(model, timeout_s=0.35), user("hi"))
    assert error is None and text_of(events) == "abcdef"


async def test_events_split_across_reads_are_reassembled(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply.text("split into halves on the wire", fragment=True))
    events, error = await collect(provider, model, user("hi"))
    assert error is None and text_of(events) == "split into halves on the wire"


async def test_connections_are_reused(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script("first answer", "second answer")
    for _ in range(2):
        _, error = await collect(provider, model, user("hi"))
        assert error is None
    assert new_fake.requests[0].peer == new_fake.requests[1].peer


async def test_stopping_early_closes_the_upstream_stream(
    provider: Provider, model: ModelConfig, new_fake: NewFakeUpstream
) -> None:
    new_fake.script(Reply(tokens=[f"t{i} " for i in range(50)], token_delay=0.02))
    stream = provider.stream(
        model=model, messages=user("hi"), tools=[], temperature=None, max_tokens=None
    )
    assert await anext(stream) == TextDelta("t0 ")
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(100):
        if new_fake.disconnects:
            break
        await asyncio.sleep(0.01)
    assert new_fake.disconnects == 1 and new_fake.completed == 0
