"""A real loopback LLM upstream speaking OpenAI and Anthropic streaming, scriptable per test.

An aiohttp.web server on 127.0.0.1 (free port) serving `POST /v1/chat/completions` (OpenAI,
also `/chat/completions`) and `POST /v1/messages` (Anthropic), so the code under test runs
its real HTTP client, SSE parsing, timeouts and connection pooling against it. Use::

    from test.fakes.llm_upstream import FakeToolCall, Reply, start_fake_upstream

    async with start_fake_upstream() as fake:
        fake.script(
            "Hello there",                                   # = Reply.text("Hello there")
            Reply.text("Slow answer", token_delay=0.05, first_token_delay=0.2),
            Reply(tool_calls=[FakeToolCall("time__get_current_time", {"timezone": "UTC"})]),
            Reply.error(429),                                # JSON error body + Retry-After
            Reply(tokens=["a", "b", "c"], fail_after=2),     # TCP connection dropped after 2
            Reply(hang=True),                                # never answers
            Reply(raw_body='{"id": "msg_1"}', content_type="application/json"),  # no stream
            Reply.text("42", reasoning=["Let me ", "think."]),  # reasoning first, then text
        )
        # model configs: {"provider": "openai", "base_url": fake.openai_base_url, ...}
        #             or {"provider": "anthropic", "base_url": fake.anthropic_base_url, ...}
        fake.requests[0].json["messages"], fake.requests[0].headers["Authorization"]

`fake.script(*replies, model=None)` queues replies; each request takes the next one from
the queue of its upstream model name (when one was scripted with `model=`), else from the
shared queue, else `fake.default` (a `Reply`, or a callable `RecordedRequest -> Reply`);
with none of these it answers 500 "no scripted reply". `Reply` documents every knob.
Counters for assertions and benchmarks: `requests` (list of `RecordedRequest`; off with
`record=False`), `completed` (streams played to the end), `disconnects` (clients that went
away mid-stream, e.g. a cancelled generation), `in_flight`, `pending` (unused replies).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

_WORD = re.compile(r"\s*\S+")
# ("open" | "token" | "tail", one SSE event): "token" events (text and reasoning pieces) get
# the delays and count for fail_after/error_after/stop_after; "open" ones go out at once
Events = list[tuple[str, bytes]]


@dataclass
class FakeToolCall:
    """A tool call the fake model makes; its arguments (dict or raw text) come in pieces."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None
    chunks: int = 3

    def pieces(self) -> list[str]:
        """The JSON arguments cut into `chunks` pieces, as upstreams stream them."""
        text = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        size = max(1, -(-len(text) // max(1, self.chunks)))
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class Reply:
    """One scripted upstream response; every field is optional."""

    tokens: list[str] = field(default_factory=list)  # text pieces, streamed in order
    # reasoning pieces, streamed before the text: Anthropic, one thinking block closed by a
    # `signature_delta`; OpenAI-compatible, deltas with `reasoning_field` (`reasoning_content`:
    # DeepSeek, vLLM; `reasoning`: OpenRouter, Ollama)
    reasoning: list[str] = field(default_factory=list)
    reasoning_field: str = "reasoning_content"
    signature: str = "EqQBCgIYAhIMfakeSignature"  # Anthropic: the thinking block's signature
    redacted_thinking: list[str] = field(default_factory=list)  # Anthropic: redacted blocks
    tool_calls: list[FakeToolCall] = field(default_factory=list)
    interleave_tool_calls: bool = False  # OpenAI: mix the pieces of several calls (by index)
    usage: tuple[int, int] | None = None  # (input, output); None = a rough estimate
    send_usage: bool = True  # False: the upstream reports no usage at all
    cached_tokens: int = 0  # of the input, read from the provider's prompt cache
    finish: str | None = None  # stop | length | tool_calls (default: from tool_calls)
    status: int = 200  # non-200: the API's JSON error body (429 adds Retry-After)
    error_message: str = "scripted upstream error"  # for status and error_after
    headers_delay: float = 0.0  # seconds before the response headers (slow first byte)
    first_token_delay: float = 0.0  # seconds between the headers and the first token
    token_delay: float = 0.0  # seconds between tokens
    fail_after: int | None = None  # drop the TCP connection after this many tokens
    error_after: int | None = None  # send an in-stream error event after this many tokens
    stop_after: int | None = None  # end the body cleanly after this many tokens, no finish
    garbage: list[str] = field(default_factory=list)  # raw lines before the first event
    fragment: bool = False  # write every event in two pieces (reads split mid-event)
    hang: bool = False  # never answer (until the client gives up or the fake closes)
    content_type: str = "text/event-stream"  # of the 200 answer (stream or raw_body)
    raw_body: str | None = None  # a 200 answer with this body instead of an event stream

    @classmethod
    def text(cls, text: str, **fields: Any) -> Reply:
        """A text answer streamed as word-sized tokens that join back to `text`."""
        return cls(tokens=_WORD.findall(text), **fields)

    @classmethod
    def error(cls, status: int, message: str = "scripted upstream error") -> Reply:
        """An HTTP error answer with the API's JSON error body."""
        return cls(status=status, error_message=message)

    def usage_pair(self, body: dict[str, Any]) -> tuple[int, int]:
        """The scripted usage, or an estimate from the request and the reply."""
        if self.usage is not None:
            return self.usage
        pieces = sum(len(call.pieces()) for call in self.tool_calls)
        return len(json.dumps(body.get("messages", []))) // 4 + 1, len(self.tokens) + pieces

    @property
    def finish_reason(self) -> str:
        """The generic finish reason this reply ends with."""
        return self.finish or ("tool_calls" if self.tool_calls else "stop")


@dataclass
class RecordedRequest:
    """A request the fake received."""

    api: str  # "openai" | "anthropic"
    path: str
    headers: CIMultiDict[str]
    json: dict[str, Any]
    peer: str = ""  # client "host:port": the same for two requests on one pooled connection

    @property
    def model(self) -> str:
        """The upstream model name asked for."""
        return str(self.json.get("model", ""))


Responder = Reply | Callable[[RecordedRequest], Reply]


def _sse(data: Any, event: str | None = None) -> bytes:
    """One SSE event (Anthropic names its events, OpenAI does not)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def _openai_events(body: dict[str, Any], reply: Reply) -> Events:
    """A Chat Completions chunk stream for `reply`."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [choice]})

    events: Events = [("open", chunk({"role": "assistant", "content": ""}))]
    # DeepSeek sends `content: null` beside `reasoning_content`; OpenRouter `""` beside `reasoning`
    empty = None if reply.reasoning_field == "reasoning_content" else ""
    events += [
        ("token", chunk({"content": empty, reply.reasoning_field: piece}))
        for piece in reply.reasoning
    ]
    events += [("token", chunk({"content": token})) for token in reply.tokens]
    per_call: list[list[bytes]] = []
    for index, call in enumerate(reply.tool_calls):
        first = {"id": call.id or f"call_fake_{index}", "type": "function"}
        parts = [(first, {"name": call.name, "arguments": ""})]
        parts += [({}, {"arguments": piece}) for piece in call.pieces()]
        per_call.append(
            [chunk({"tool_calls": [{"index": index, **f, "function": fn}]}) for f, fn in parts]
        )
    if reply.interleave_tool_calls:
        longest = max((len(calls) for calls in per_call), default=0)
        events += [("tail", c[i]) for i in range(longest) for c in per_call if i < len(c)]
    else:
        events += [("tail", event) for calls in per_call for event in calls]
    events.append(("tail", chunk({}, reply.finish_reason)))
    if reply.send_usage and (body.get("stream_options") or {}).get("include_usage"):
        prompt, completion = reply.usage_pair(body)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion}
        if reply.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}  # type: ignore[assignment]
        events.append(("tail", _sse({"choices": [], "usage": usage})))
    events.append(("tail", _sse("[DONE]")))
    return events


def _openai_error(status: int, message: str) -> dict[str, Any]:
    """Chat Completions error body."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _openai_stream_error(message: str) -> bytes:
    """An error chunk in the middle of a stream (as OpenRouter/vLLM send them)."""
    return _sse({"error": {"message": message, "type": "server_error", "code": 502}})


_ANTHROPIC_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _named(data: dict[str, Any]) -> bytes:
    """An Anthropic event: named after its `type`."""
    return _sse(data, data["type"])


def _anthropic_events(body: dict[str, Any], reply: Reply) -> Events:
    """A Messages event stream for `reply`."""
    input_tokens, output_tokens = reply.usage_pair(body) if reply.send_usage else (0, 0)
    # Anthropic counts cache reads apart from `input_tokens`
    counts = {"input_tokens": input_tokens - reply.cached_tokens}
    if reply.cached_tokens:
        counts["cache_read_input_tokens"] = reply.cached_tokens
    message = {"id": "msg_fake", "role": "assistant", "usage": counts}
    events: Events = [("open", _named({"type": "message_start", "message": message}))]
    events += _anthropic_thinking(reply)
    first = int(bool(reply.reasoning)) + len(reply.redacted_thinking)  # the text block's index
    text_block = {"type": "text", "text": ""}
    start = {"type": "content_block_start", "index": first, "content_block": text_block}
    events += [("open", _named(start)), ("open", _named({"type": "ping"}))]
    delta = {"type": "content_block_delta", "index": first}
    for token in reply.tokens:
        text = {"type": "text_delta", "text": token}
        events.append(("token", _named({**delta, "delta": text})))
    events.append(("tail", _named({"type": "content_block_stop", "index": first})))
    for index, call in enumerate(reply.tool_calls, start=first + 1):
        block = {"type": "tool_use", "id": call.id or f"toolu_fake_{index}", "name": call.name}
        start = {"type": "content_block_start", "index": index}
        events.append(("tail", _named({**start, "content_block": {**block, "input": {}}})))
        for piece in call.pieces():
            json_delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("tail", _named({**delta, "index": index, "delta": json_delta})))
        events.append(("tail", _named({"type": "content_block_stop", "index": index})))
    stop = {"stop_reason": _ANTHROPIC_FINISH.get(reply.finish_reason, reply.finish_reason)}
    closing: dict[str, Any] = {"type": "message_delta", "delta": stop}
    if reply.send_usage:
        closing["usage"] = {"output_tokens": output_tokens}
    events += [("tail", _named(closing)), ("tail", _named({"type": "message_stop"}))]
    return events


def _anthropic_thinking(reply: Reply) -> Events:
    """Extended thinking as Anthropic streams it: a `thinking` block of `thinking_delta`s closed
    by a `signature_delta`, then any `redacted_thinking` blocks (opaque `data`, no deltas)."""
    events: Events = []
    if reply.reasoning:
        block = {"type": "thinking", "thinking": "", "signature": ""}
        events.append(
            ("open", _named({"type": "content_block_start", "index": 0, "content_block": block}))
        )
        delta = {"type": "content_block_delta", "index": 0}
        for piece in reply.reasoning:
            thinking = {"type": "thinking_delta", "thinking": piece}
            events.append(("token", _named({**delta, "delta": thinking})))
        signed = {"type": "signature_delta", "signature": reply.signature}
        events.append(("open", _named({**delta, "delta": signed})))
        events.append(("open", _named({"type": "content_block_stop", "index": 0})))
    for offset, data in enumerate(reply.redacted_thinking):
        index = int(bool(reply.reasoning)) + offset
        block = {"type": "redacted_thinking", "data": data}
        start = {"type": "content_block_start", "index": index, "content_block": block}
        events += [("open", _named(start))]
        events += [("open", _named({"type": "content_block_stop", "index": index}))]
    return events


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    """Messages API error body."""
    kinds = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _anthropic_stream_error(message: str) -> bytes:
    """An `error` event in the middle of a stream."""
    return _named({"type": "error", "error": {"type": "overloaded_error", "message": message}})


@dataclass(frozen=True)
class _Dialect:
    """How one API spells streams and errors."""

    api: str
    events: Callable[[dict[str, Any], Reply], Events]
    error_body: Callable[[int, str], dict[str, Any]]
    stream_error: Callable[[str], bytes]


OPENAI = _Dialect("openai", _openai_events, _openai_error, _openai_stream_error)
ANTHROPIC = _Dialect("anthropic", _anthropic_events, _anthropic_error, _anthropic_stream_error)


class FakeUpstream:
    """The running fake; create it with `start_fake_upstream()`."""

    def __init__(self, *, default: Responder | None = None, record: bool = True) -> None:
        """Empty queues; `url` is set once the server listens."""
        self.url = ""
        self.default = default
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.completed = 0
        self.disconnects = 0
        self.in_flight = 0
        self._queue: deque[Responder] = deque()
        self._by_model: dict[str, deque[Responder]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def openai_base_url(self) -> str:
        """`base_url` for an `openai` model config."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """`base_url` for an `anthropic` model config."""
        return self.url

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._queue) + sum(len(queue) for queue in self._by_model.values())

    def script(self, *replies: Responder | str, model: str | None = None) -> None:
        """Queue replies (a plain string is `Reply.text(string)`), optionally for one model."""
        queue = self._queue if model is None else self._by_model.setdefault(model, deque())
        queue.extend(Reply.text(reply) if isinstance(reply, str) else reply for reply in replies)

    def _next_reply(self, recorded: RecordedRequest) -> Reply:
        """The reply for this request: per-model queue, shared queue, default, else a 500."""
        queue = self._by_model.get(recorded.model) or self._queue
        responder = queue.popleft() if queue else self.default
        if responder is None:
            return Reply.error(500, "fake upstream: no scripted reply")
        return responder if isinstance(responder, Reply) else responder(recorded)

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", partial(self._serve, dialect=OPENAI))
        app.router.add_post("/chat/completions", partial(self._serve, dialect=OPENAI))
        app.router.add_post("/v1/messages", partial(self._serve, dialect=ANTHROPIC))
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.url = f"http://{host}:{runner.addresses[0][1]}"

    async def close(self) -> None:
        """Release hanging handlers and stop the server."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request, dialect: _Dialect) -> web.StreamResponse:
        """Record the request, then play the scripted reply in the dialect of the API."""
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        headers = CIMultiDict(request.headers)
        recorded = RecordedRequest(
            dialect.api, request.path, headers, body, f"{peer[0]}:{peer[1]}" if peer else ""
        )
        if self.record:
            self.requests.append(recorded)
        reply = self._next_reply(recorded)
        if reply.hang:
            await self._closing.wait()
            raise web.HTTPServiceUnavailable()
        if reply.headers_delay:
            await asyncio.sleep(reply.headers_delay)
        if reply.status != 200:
            return web.json_response(
                dialect.error_body(reply.status, reply.error_message),
                status=reply.status,
                headers={"Retry-After": "1"} if reply.status == 429 else None,
            )
        if reply.raw_body is not None:  # e.g. a server that ignores "stream": true
            headers = {"Content-Type": reply.content_type}
            return web.Response(body=reply.raw_body.encode(), headers=headers)
        response = web.StreamResponse(headers={"Content-Type": reply.content_type})
        await response.prepare(request)
        self.in_flight += 1
        try:
            await self._play(request, response, dialect, reply, body)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        finally:
            self.in_flight -= 1
        return response

    async def _play(
        self,
        request: web.Request,
        response: web.StreamResponse,
        dialect: _Dialect,
        reply: Reply,
        body: dict[str, Any],
    ) -> None:
        """Write the events of one reply, applying the delays and scripted failures."""

        async def send(event: bytes) -> None:
            if reply.fragment and len(event) > 1:
                await response.write(event[: len(event) // 2])
                await asyncio.sleep(0.002)
                event = event[len(event) // 2 :]
            await response.write(event)

        def due(limit: int | None, final: bool) -> bool:
            return limit is not None and (limit == sent or (final and limit >= sent))

        for line in reply.garbage:
            await response.write(line.encode() + b"\n")
        sent, in_tail = 0, False
        for kind, event in dialect.events(body, reply):
            if kind == "token" or (kind == "tail" and not in_tail):
                in_tail = kind == "tail"
                delay = reply.token_delay if sent else reply.first_token_delay
                if delay:
                    await asyncio.sleep(delay)
                if due(reply.fail_after, in_tail):
                    assert request.transport is not None
                    request.transport.abort()  # no terminating chunk: a truncated body
                    return
                if due(reply.error_after, in_tail):
                    await send(dialect.stream_error(reply.error_message))
                    await response.write_eof()
                    return
                if due(reply.stop_after, in_tail):
                    await response.write_eof()
                    return
                if kind == "token":
                    sent += 1
            await send(event)
        await response.write_eof()
        self.completed += 1


@asynccontextmanager
async def start_fake_upstream(
    *, default: Responder | None = None, record: bool = True, port: int = 0
) -> AsyncIterator[FakeUpstream]:
    """Run a fake upstream on 127.0.0.1 for the duration of the block."""
    fake = FakeUpstream(default=default, record=record)
    await fake.start(port=port)
    try:
        yield fake
    finally:
        await fake.close()
