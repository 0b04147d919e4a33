"""Provider for the OpenAI Responses API (`POST {base_url}/responses`, streamed).

Stateless on purpose: every call sends the whole conversation with `store: false`, like the
Chat Completions provider, so nothing of a user's conversation is kept on OpenAI's side and
a fallback or another worker can take over any turn.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from app.services.llm.base import (
    ChatMessage,
    Finish,
    FinishReason,
    ImagePart,
    LLMEvent,
    ModelConfig,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallRequest,
    Usage,
)
from app.services.llm.sampling import Sampling, for_responses
from app.services.llm.sse import load_json
from app.services.llm.transport import (
    api_key,
    arguments_text,
    decode_arguments,
    join_url,
    object_schema,
    open_stream,
    redact,
)
from app.services.tools import Tool

PROVIDER = "openai_responses"
# `response.error.code` / `error` event codes (openai-python types/responses/response_error.py)
_ERROR_CODES = {
    "rate_limit_exceeded": "upstream_rate_limited",
    "server_error": "upstream_unavailable",
    "vector_store_timeout": "upstream_timeout",
    "invalid_prompt": "upstream_bad_request",
    "invalid_request_error": "upstream_bad_request",
    "context_length_exceeded": "upstream_bad_request",
    "insufficient_quota": "upstream_rate_limited",
    "invalid_api_key": "upstream_auth",
}
_CONTENT_FILTERED = "content_filter"


def build_input(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """System text for `instructions`, the rest as Responses input items (the tool loop as
    `function_call` / `function_call_output` items)."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.content:
                system.append(message.content)
        elif message.role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.tool_call_id or "",
                    "output": message.content,
                }
            )
        elif message.role == "assistant":
            if message.content:
                items.append({"role": "assistant", "content": message.content})
            for call in message.tool_calls or ():
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.name,
                        "arguments": arguments_text(call.arguments),
                    }
                )
        elif message.parts:
            items.append({"role": "user", "content": _input_parts(message)})
        else:
            items.append({"role": "user", "content": message.content})
    return "\n\n".join(system), items


def _input_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A user message with attachments as `input_text` / `input_image` parts."""
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": message.content}]
    for part in message.parts or ():
        if isinstance(part, ImagePart):
            url = f"data:{part.media_type};base64,{b64encode(part.data).decode()}"
            parts.append({"type": "input_image", "image_url": url})
        elif isinstance(part, TextPart):
            parts.append({"type": "input_text", "text": part.text})
    return parts


def build_request(
    *,
    model: ModelConfig,
    messages: list[ChatMessage],
    tools: list[Tool],
    temperature: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """The JSON body of one streaming Responses request."""
    instructions, items = build_input(messages)
    body: dict[str, Any] = {
        "model": model.model,
        "input": items,
        "stream": True,
        "store": False,
        "max_output_tokens": min(max_tokens or model.max_output_tokens, model.max_output_tokens),
    }
    if instructions:
        body["instructions"] = instructions
    effort = model.reasoning.effort if model.reasoning else None
    if effort:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
    else:  # reasoning models refuse `temperature` ("Unsupported parameter")
        temp = temperature if temperature is not None else model.temperature
        if temp is not None:
            body["temperature"] = temp
    if tools and model.supports_tools:
        body["tools"] = [
            {
                "type": "function",
                "name": tool.qualified_name,
                "description": tool.description,
                "parameters": object_schema(tool.input_schema),
                # strict mode demands every property required and no extra ones, which
                # arbitrary MCP schemas do not promise
                "strict": False,
            }
            for tool in tools
        ]
    return body


class _Call:
    """A function call being assembled from its output item and argument deltas."""

    __slots__ = ("arguments", "call_id", "done", "name")

    def __init__(self, call_id: str, name: str) -> None:
        """Start from the `response.output_item.added` item."""
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []
        self.done: str | None = None  # the full text of `.arguments.done`, when it came


class EventReader:
    """State of one stream: text and reasoning out, function calls gathered, the end kept."""

    __slots__ = ("_calls", "_key", "_summary", "emitted", "finished", "incomplete", "usage")

    def __init__(self, key: str | None) -> None:
        """Nothing seen yet."""
        self._key = key
        self._calls: dict[str, _Call] = {}  # by output item id, in arrival order
        self._summary: tuple[str, int] | None = None  # (item id, summary index) last shown
        self.emitted = False
        self.finished = False
        self.incomplete: str | None = None
        self.usage: Usage | None = None

    def handle(self, data: bytes) -> LLMEvent | None:
        """Apply one event; return the text or reasoning delta it carried, if any."""
        if data == b"[DONE]":  # some compatible servers end like Chat Completions
            return None
        event = load_json(data)
        kind = event.get("type")
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                self.emitted = True
                return TextDelta(delta)
        elif kind == "response.reasoning_summary_text.delta":
            return self._reasoning(event)
        elif kind == "response.function_call_arguments.delta":
            call = self._calls.get(str(event.get("item_id")))
            if call is not None:
                call.arguments.append(str(event.get("delta") or ""))
        elif kind == "response.function_call_arguments.done":
            call = self._calls.get(str(event.get("item_id")))
            if call is not None and isinstance(event.get("arguments"), str):
                call.done = event["arguments"]
        elif kind in ("response.output_item.added", "response.output_item.done"):
            self._item(event.get("item") or {}, event.get("output_index"))
        elif kind in ("response.completed", "response.incomplete"):
            self._finish(event.get("response") or {})
        elif kind == "response.failed":
            response = event.get("response") or {}
            raise self._error(response.get("error") or {}, "failed")
        elif kind == "error":
            raise self._error(event, "error mid-stream")
        return None

    def _reasoning(self, event: dict[str, Any]) -> ReasoningDelta | None:
        """A reasoning summary piece; a new summary part starts on a new paragraph."""
        delta = event.get("delta")
        if not isinstance(delta, str) or not delta:
            return None
        where = (str(event.get("item_id")), int(event.get("summary_index") or 0))
        if self._summary is not None and where != self._summary:
            delta = "\n\n" + delta
        self._summary = where
        self.emitted = True
        return ReasoningDelta(delta)

    def _item(self, item: dict[str, Any], index: Any) -> None:
        """Register a function call item (added), or complete it from the final item (done)."""
        if item.get("type") != "function_call":
            return
        item_id = str(item.get("id") or f"output_{index}")
        call = self._calls.get(item_id)
        if call is None:
            call_id = str(item.get("call_id") or "") or _call_id(item_id)
            call = self._calls[item_id] = _Call(call_id, str(item.get("name") or ""))
        if item.get("name") and not call.name:
            call.name = str(item["name"])
        arguments = item.get("arguments")
        if isinstance(arguments, str) and arguments and item.get("status") == "completed":
            call.done = arguments

    def _finish(self, response: dict[str, Any]) -> None:
        """The closing response: usage and why it stopped."""
        self.finished = True
        details = response.get("incomplete_details") or {}
        self.incomplete = details.get("reason") if isinstance(details, dict) else None
        if response.get("status") == "incomplete" and not self.incomplete:
            self.incomplete = "max_output_tokens"
        usage = response.get("usage")
        if isinstance(usage, dict):
            details = usage.get("input_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self.usage = Usage(
                int(usage.get("input_tokens") or 0),
                int(usage.get("output_tokens") or 0),
                int(cached or 0),
            )

    def _error(self, error: dict[str, Any], how: str) -> ProviderError:
        """A `response.failed` or `error` event as a ProviderError (the key never quoted)."""
        code = str(error.get("code") or error.get("type") or "")
        detail = redact(str(error.get("message") or code or "no details"), key=self._key)
        return ProviderError(
            _ERROR_CODES.get(code, "upstream_error"), f"{PROVIDER} upstream {how}: {detail}"
        )

    def final_events(self) -> list[LLMEvent]:
        """The tool calls, usage and finish that close the stream."""
        if not self.finished:
            raise ProviderError(
                "upstream_protocol", f"{PROVIDER} upstream stream ended before the answer finished"
            )
        if self.incomplete == _CONTENT_FILTERED and not self.emitted and not self._calls:
            raise ProviderError(
                "upstream_error", f"{PROVIDER} upstream withheld the answer (content_filter)"
            )
        reason: FinishReason = "length" if self.incomplete == "max_output_tokens" else "stop"
        events: list[LLMEvent] = []
        if reason != "length":  # a truncated call is not safe to run
            for call in self._calls.values():
                if call.name:
                    text = call.done if call.done is not None else "".join(call.arguments)
                    events.append(ToolCallRequest(call.call_id, call.name, decode_arguments(text)))
        if events:
            reason = "tool_calls"
        if self.usage is not None:
            events.append(self.usage)
        events.append(Finish(reason))
        return events


def _call_id(item_id: str) -> str:
    """A call id for an item that came without one (stable for the same item)."""
    return "call_" + hashlib.sha256(item_id.encode()).hexdigest()[:24]


class OpenAIResponsesProvider:
    """Streams from `POST {base_url}/responses` over a shared aiohttp session."""

    def __init__(self, *, session: aiohttp.ClientSession, environ: Mapping[str, str]) -> None:
        """Use the lifespan-owned `session`; read keys from `environ` at call time."""
        self._session = session
        self._environ = environ

    async def stream(
        self,
        *,
        model: ModelConfig,
        messages: list[ChatMessage],
        tools: list[Tool],
        temperature: float | None,
        max_tokens: int | None,
        sampling: Sampling | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Yield text and reasoning deltas as they arrive, then tool calls, usage, finish."""
        key = api_key(model=model, environ=self._environ)
        url = join_url(model.base_url, "/responses")
        body = build_request(
            model=model,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        for_responses(body, sampling)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        reader = EventReader(key)
        async with open_stream(
            self._session,
            url=url,
            body=body,
            headers=headers,
            model=model,
            provider=PROVIDER,
            key=key,
        ) as payloads:
            async for data in payloads:
                if not reader.finished and (event := reader.handle(data)) is not None:
                    yield event
            final = reader.final_events()
        for event in final:
            yield event
