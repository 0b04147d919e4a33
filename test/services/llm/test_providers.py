"""Behaviour both networked providers share, run against the real loopback fake upstream."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import replace
from typing import Any

import pytest

from app.services.llm import (
    Finish,
    ModelConfig,
    Provider,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from test.fakes.llm_upstream import FakeToolCall, FakeUpstream, Reply
from test.services.llm.support import API_KEY, TOOL, collect, text_of, user


async def test_text_streams_in_order_then_usage_then_finish(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply.text("Hello brave new world", usage=(12, 4)))
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


@pytest.mark.parametrize(("scripted", "expected"), [("length", "length"), ("stop", "stop")])
async def test_finish_reason_is_mapped(
    provider: Provider, model: ModelConfig, fake: FakeUpstream, scripted: str, expected: str
) -> None:
    fake.script(Reply.text("cut short", finish=scripted))
    events, error = await collect(provider, model, user("hi"))
    assert error is None
    assert events[-1] == Finish(expected)  # type: ignore[arg-type]


async def test_two_tool_calls_are_reassembled_from_pieces(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    calls = [
        FakeToolCall(
            "time__get_current_time", {"timezone": "Europe/Berlin"}, id="call_a", chunks=5
        ),
        FakeToolCall("search__query", {"q": "weather", "limit": 3}, id="call_b", chunks=4),
    ]
    fake.script(Reply(tokens=["Let me check."], tool_calls=calls, interleave_tool_calls=True))
    events, error = await collect(provider, model, user("time?"), tools=[TOOL])
    assert error is None
    assert events[0] == TextDelta("Let me check.")
    assert events[1:3] == [
        ToolCallRequest("call_a", "time__get_current_time", {"timezone": "Europe/Berlin"}),
        ToolCallRequest("call_b", "search__query", {"q": "weather", "limit": 3}),
    ]
    assert isinstance(events[3], Usage)
    assert events[-1] == Finish("tool_calls")


async def test_garbled_tool_arguments_are_kept_raw(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tool_calls=[FakeToolCall("t__x", '{"a": 1,', id="call_1")]))
    events, error = await collect(provider, model, user("go"), tools=[TOOL])
    assert error is None
    assert ToolCallRequest("call_1", "t__x", {"_raw": '{"a": 1,'}) in events


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
    provider: Provider, model: ModelConfig, fake: FakeUpstream, status: int, code: str
) -> None:
    fake.script(Reply.error(status, f"nope, key {API_KEY} was rejected"))
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
    assert events == []
    assert error is not None and error.code == "upstream_unavailable"


async def test_connection_dropped_mid_stream_fails_after_the_deltas(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=["one ", "two ", "three ", "four"], fail_after=2))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one "), TextDelta("two ")]
    assert error is not None and error.code == "upstream_unavailable"


async def test_error_event_mid_stream_fails_after_the_deltas(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=["one ", "two "], error_after=1, error_message="overloaded now"))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one ")]
    assert error is not None and "overloaded now" in error.message


async def test_clean_end_without_finish_is_a_protocol_error(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=["one ", "two "], stop_after=1))
    events, error = await collect(provider, model, user("hi"))
    assert events == [TextDelta("one ")]
    assert error is not None and error.code == "upstream_protocol"


@pytest.mark.parametrize(
    "reply",
    [Reply(tokens=["late"], headers_delay=1.0), Reply(tokens=["late"], first_token_delay=1.0)],
    ids=["before-headers", "after-headers"],
)
async def test_slow_first_byte_times_out(
    provider: Provider, model: ModelConfig, fake: FakeUpstream, reply: Reply
) -> None:
    fake.script(reply)
    started = time.monotonic()
    events, error = await collect(provider, replace(model, timeout_s=0.3), user("hi"))
    assert events == []
    assert error is not None and error.code == "upstream_timeout"
    assert time.monotonic() - started < 0.9


async def test_timeout_is_per_read_not_per_answer(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=["a", "b", "c", "d", "e", "f"], token_delay=0.1))
    events, error = await collect(provider, replace(model, timeout_s=0.35), user("hi"))
    assert error is None
    assert text_of(events) == "abcdef"


async def test_hanging_upstream_times_out(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(hang=True))
    events, error = await collect(provider, replace(model, timeout_s=0.3), user("hi"))
    assert events == [] and error is not None and error.code == "upstream_timeout"


async def test_non_sse_lines_and_comments_are_skipped(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply.text("still fine", garbage=["hello there", ": keep-alive", "retry: 10"]))
    events, error = await collect(provider, model, user("hi"))
    assert error is None and text_of(events) == "still fine"


# what a server that ignores "stream": true answers instead (the non-streaming API response)
PLAIN_ANSWER = {
    "openai": '{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, '
    '"message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}]}',
    "anthropic": '{"id": "msg_1", "type": "message", "role": "assistant", "content": '
    '[{"type": "text", "text": "Hi there"}], "stop_reason": "end_turn"}',
}


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/json", None, "got application/json: {"),
        ("text/html; charset=utf-8", "<html><h1>502 Bad Gateway</h1></html>", "got text/html: <"),
        ("text/event-stream", "", "got text/event-stream: (empty body)"),
    ],
    ids=["plain-json", "html", "empty"],
)
async def test_an_answer_that_is_not_an_event_stream_says_what_came_back(
    provider: Provider,
    model: ModelConfig,
    fake: FakeUpstream,
    kind: str,
    content_type: str,
    body: str | None,
    expected: str,
) -> None:
    raw = PLAIN_ANSWER[kind] if body is None else body
    fake.script(Reply(raw_body=raw, content_type=content_type))
    events, error = await collect(provider, model, user("hi"))
    assert events == []
    assert error is not None and error.code == "upstream_protocol"
    assert error.message.startswith(f"{kind} upstream: expected an event stream, {expected}")
    assert raw[:40] in error.message  # the start of what came back, verbatim
    assert "ended before the answer finished" not in error.message


async def test_a_quoted_non_stream_body_is_short_and_keyless(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    echoed = {"x-api-key": API_KEY, "authorization": f"Bearer {API_KEY}"}
    raw = json.dumps({"echo": echoed, "pad": "z" * 5000})
    fake.script(Reply(raw_body=raw, content_type="application/json"))
    _events, error = await collect(provider, model, user("hi"))
    assert error is not None and error.code == "upstream_protocol"
    assert API_KEY not in error.message and API_KEY[:12] not in error.message
    assert '{"echo": {"x-api-key": "[REDACTED]"' in error.message
    quoted = error.message.split("application/json: ", 1)[1]
    assert len(quoted) <= 203 and quoted.endswith("...")


async def test_undecodable_data_is_a_protocol_error(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply.text("never seen", garbage=["data: {not json"]))
    events, error = await collect(provider, model, user("hi"))
    assert events == []
    assert error is not None and error.code == "upstream_protocol"


async def test_events_split_across_reads_are_reassembled(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply.text("split into halves on the wire", fragment=True))
    events, error = await collect(provider, model, user("hi"))
    assert error is None and text_of(events) == "split into halves on the wire"


async def test_missing_key_fails_before_any_request(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    events, error = await collect(provider, replace(model, api_key_env="UNSET_KEY_VAR"), user("x"))
    assert events == [] and error is not None and error.code == "upstream_auth"
    assert "UNSET_KEY_VAR" in error.message
    assert fake.requests == []


async def test_connections_are_reused(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script("first answer", "second answer")
    for _ in range(2):
        _, error = await collect(provider, model, user("hi"))
        assert error is None
    assert fake.requests[0].peer == fake.requests[1].peer


async def test_stopping_early_closes_the_upstream_stream(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=[f"t{i} " for i in range(50)], token_delay=0.02))
    stream = provider.stream(
        model=model, messages=user("hi"), tools=[], temperature=None, max_tokens=None
    )
    first = await anext(stream)
    assert first == TextDelta("t0 ")
    await stream.aclose()  # type: ignore[attr-defined]
    for _ in range(100):
        if fake.disconnects:
            break
        await asyncio.sleep(0.01)
    assert fake.disconnects == 1 and fake.completed == 0


async def test_key_shaped_text_from_the_upstream_is_redacted(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(
        Reply.error(401, "Incorrect API key provided: sk-proj-AbC1********************wxyz")
    )
    _, error = await collect(provider, model, user("hi"))
    assert error is not None and error.code == "upstream_auth"
    assert "Incorrect API key provided" in error.message
    assert "AbC1" not in error.message and "wxyz" not in error.message


async def test_an_upstream_that_stalls_mid_answer_times_out(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    fake.script(Reply(tokens=["a", "b"], token_delay=1.5))
    events, error = await collect(provider, replace(model, timeout_s=0.3), user("hi"))
    assert events == [TextDelta("a")]
    assert error is not None and error.code == "upstream_timeout"


async def test_after_the_headers_no_read_timer_is_rearmed_per_chunk(
    provider: Provider, model: ModelConfig, fake: FakeUpstream
) -> None:
    """The body's idle limit is the watchdog's: aiohttp's per-chunk timer is off."""
    fake.script(Reply(tokens=[f"t{i} " for i in range(20)], token_delay=0.01))
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_later = loop.call_later

    def counting(delay: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(delay)
        return call_later(delay, *args, **kwargs)

    loop.call_later = counting  # type: ignore[method-assign]
    try:
        events, error = await collect(provider, model, user("hi"))
    finally:
        del loop.call_later
    assert error is None and text_of(events) == "".join(f"t{i} " for i in range(20))
    assert armed.count(model.timeout_s) < 5  # the headers' reads only, not one per token
