"""A loopback upstream speaking the OpenAI Responses API and Gemini's streamGenerateContent.

The same scriptable server as `test.fakes.llm_upstream` (its `_play` paces, drops, stalls
and breaks the stream), with two more dialects, written after the wire formats of
openai-python (`types/responses/*_event.py`) and google-genai (`types.py`:
`GenerateContentResponse`, `Part`, `FinishReason`, `UsageMetadata`)::

    async with start_new_fake_upstream() as fake:
        fake.script(Reply(reasoning=["Thinking."], tokens=["Hi"], usage=(5, 2)))
        # {"provider": "openai_responses", "base_url": fake.responses_base_url, ...}
        # {"provider": "google", "base_url": fake.google_base_url, "model": "gemini-x", ...}
        fake.requests[0].json, fake.requests[0].query

`Reply` adds `reasoning` (summary / thought pieces streamed before the text) and
`signature` (Gemini: the `thoughtSignature` of the first function call) to the base `Reply`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from test.fakes import llm_upstream as base
from test.fakes.llm_upstream import Events, FakeToolCall, RecordedRequest, _Dialect, _sse

__all__ = ["FakeToolCall", "NewFakeUpstream", "Reply", "start_new_fake_upstream"]


@dataclass
class Reply(base.Reply):
    """A scripted reply that may also reason first."""

    reasoning: list[str] = field(default_factory=list)  # streamed before the text
    signature: str | None = None  # Gemini: thoughtSignature of the first function call


@dataclass
class GeminiRequest(RecordedRequest):
    """A recorded Gemini request: the model is in the path, the query is kept."""

    upstream_model: str = ""
    query: str = ""

    @property
    def model(self) -> str:
        """The model named in the URL."""
        return self.upstream_model


def _events_with_tail(events: list[tuple[bool, bytes]]) -> Events:
    """Deltas are tokens; what follows the last one is the tail, what comes before opens."""
    last = max((i for i, (token, _) in enumerate(events) if token), default=-1)
    return [
        ("token" if token else ("tail" if i > last else "open"), data)
        for i, (token, data) in enumerate(events)
    ]


def _responses_events(body: dict[str, Any], reply: base.Reply) -> Events:
    """A Responses API event stream for `reply`."""
    seq = iter(range(1_000_000))
    out: list[tuple[bool, bytes]] = []

    def add(kind: str, token: bool = False, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": next(seq), **fields}
        out.append((token, _sse(data, kind)))

    response = {"id": "resp_fake", "object": "response", "status": "in_progress", "output": []}
    add("response.created", response=response)
    add("response.in_progress", response=response)
    index = 0
    reasoning = getattr(reply, "reasoning", [])
    if reasoning:
        item = {"type": "reasoning", "id": "rs_fake", "summary": []}
        add("response.output_item.added", output_index=index, item=item)
        where = {"item_id": "rs_fake", "output_index": index, "summary_index": 0}
        add("response.reasoning_summary_part.added", **where, part={"type": "summary_text"})
        for piece in reasoning:
            add("response.reasoning_summary_text.delta", True, **where, delta=piece)
        add("response.reasoning_summary_text.done", **where, text="".join(reasoning))
        add("response.output_item.done", output_index=index, item=item)
        index += 1
    if reply.tokens:
        item = {"type": "message", "id": "msg_fake", "role": "assistant", "content": []}
        add("response.output_item.added", output_index=index, item=item)
        where = {"item_id": "msg_fake", "output_index": index, "content_index": 0}
        for token in reply.tokens:
            add("response.output_text.delta", True, **where, delta=token, logprobs=[])
        add("response.output_text.done", **where, text="".join(reply.tokens))
        add("response.output_item.done", output_index=index, item=item)
        index += 1
    for number, call in enumerate(reply.tool_calls):
        text = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        item_id = f"fc_fake_{number}"
        item = {
            "type": "function_call",
            "id": item_id,
            "call_id": call.id or f"call_fake_{number}",
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }
        add("response.output_item.added", output_index=index, item=item)
        for piece in call.pieces():
            add("response.function_call_arguments.delta", item_id=item_id, delta=piece)
        add(
            "response.function_call_arguments.done",
            item_id=item_id,
            name=call.name,
            arguments=text,
        )
        done = {**item, "arguments": text, "status": "completed"}
        add("response.output_item.done", output_index=index, item=done)
        index += 1
    usage = None
    if reply.send_usage:
        prompt, completion = reply.usage_pair(body)
        usage = {"input_tokens": prompt, "output_tokens": completion}
        usage["total_tokens"] = prompt + completion
        if reply.cached_tokens:
            usage["input_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    if reply.finish_reason == "length":
        details = {"reason": "max_output_tokens"}
        final = {**response, "status": "incomplete", "incomplete_details": details}
        add("response.incomplete", response={**final, "usage": usage})
    else:
        final = {**response, "status": "completed", "incomplete_details": None}
        add("response.completed", response={**final, "usage": usage})
    return _events_with_tail(out)


def _responses_error(status: int, message: str) -> dict[str, Any]:
    """The Responses API's HTTP error body (the OpenAI one)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _responses_stream_error(message: str) -> bytes:
    """An `error` event in the middle of a stream."""
    data = {"type": "error", "code": "server_error", "message": message, "param": None}
    return _sse({**data, "sequence_number": 99}, "error")


_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _gemini_events(body: dict[str, Any], reply: base.Reply) -> Events:
    """A streamGenerateContent (alt=sse) chunk stream for `reply`."""
    out: list[tuple[bool, bytes]] = []

    def chunk(parts: list[dict[str, Any]], token: bool, **extra: Any) -> None:
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0, **extra}
        data = {"candidates": [candidate], "modelVersion": "gemini-fake", "responseId": "r-1"}
        out.append((token, _sse(data)))

    for piece in getattr(reply, "reasoning", []):
        chunk([{"text": piece, "thought": True}], True)
    for token in reply.tokens:
        chunk([{"text": token}], True)
    calls = []
    for number, call in enumerate(reply.tool_calls):
        args = call.arguments
        if isinstance(args, str):  # Gemini sends objects only; garbled text becomes {}
            try:
                args = json.loads(args)
            except ValueError:
                args = {}
        part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
        signature = getattr(reply, "signature", None)
        if number == 0 and signature:
            part["thoughtSignature"] = signature
        calls.append(part)
    if calls:
        chunk(calls, False)
    finish = _GEMINI_FINISH.get(reply.finish_reason, reply.finish_reason)
    candidate = {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": finish}
    last: dict[str, Any] = {"candidates": [{**candidate, "index": 0}], "responseId": "r-1"}
    if reply.send_usage:
        prompt, completion = reply.usage_pair(body)
        last["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
            "cachedContentTokenCount": reply.cached_tokens,
        }
    out.append((False, _sse(last)))
    return _events_with_tail(out)


def _gemini_error(status: int, message: str) -> dict[str, Any]:
    """Google's HTTP error body."""
    name = _GEMINI_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


def _gemini_stream_error(message: str) -> bytes:
    """An error object in the middle of a stream."""
    return _sse({"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}})


RESPONSES = _Dialect(
    "openai_responses", _responses_events, _responses_error, _responses_stream_error
)
GEMINI = _Dialect("google", _gemini_events, _gemini_error, _gemini_stream_error)


class NewFakeUpstream(base.FakeUpstream):
    """The fake with Responses API and Gemini routes; create it with the function below."""

    @property
    def responses_base_url(self) -> str:
        """`base_url` for an `openai_responses` model config."""
        return self.url + "/v1"

    @property
    def google_base_url(self) -> str:
        """`base_url` for a `google` model config."""
        return self.url + "/v1beta"

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/v1/responses", partial(self._serve, dialect=RESPONSES))
        app.router.add_post("/v1beta/models/{target}", self._serve_gemini)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self.url = f"http://{host}:{runner.addresses[0][1]}"

    async def _serve_gemini(self, request: web.Request) -> web.StreamResponse:
        """`{model}:streamGenerateContent?alt=sse` (anything else is a 404 as upstream)."""
        model, _, method = request.match_info["target"].partition(":")
        if method != "streamGenerateContent" or request.query.get("alt") != "sse":
            return web.json_response(_gemini_error(404, "unknown method"), status=404)
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = GeminiRequest(
            "google",
            request.path,
            CIMultiDict(request.headers),
            body,
            f"{peer[0]}:{peer[1]}" if peer else "",
            upstream_model=model,
            query=request.query_string,
        )
        return await self._answer(request, GEMINI, recorded)

    async def _serve(self, request: web.Request, dialect: _Dialect) -> web.StreamResponse:
        """Record the request and play the scripted reply (the Responses route)."""
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = RecordedRequest(
            dialect.api,
            request.path,
            CIMultiDict(request.headers),
            body,
            f"{peer[0]}:{peer[1]}" if peer else "",
        )
        return await self._answer(request, dialect, recorded)

    async def _answer(
        self, request: web.Request, dialect: _Dialect, recorded: RecordedRequest
    ) -> web.StreamResponse:
        """The base fake's answer: error, raw body, hang or a played stream."""
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
        if reply.raw_body is not None:
            headers = {"Content-Type": reply.content_type}
            return web.Response(body=reply.raw_body.encode(), headers=headers)
        response = web.StreamResponse(headers={"Content-Type": reply.content_type})
        await response.prepare(request)
        self.in_flight += 1
        try:
            await self._play(request, response, dialect, reply, recorded.json)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        finally:
            self.in_flight -= 1
        return response


@asynccontextmanager
async def start_new_fake_upstream(*, record: bool = True) -> AsyncIterator[NewFakeUpstream]:
    """Run the Responses + Gemini fake on 127.0.0.1 for the duration of the block."""
    fake = NewFakeUpstream(record=record)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
