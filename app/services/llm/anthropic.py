"""Provider for the Anthropic Messages streaming API."""

from __future__ import annotations

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
    ReasoningBlock,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallRequest,
    Usage,
)
from app.services.llm.sampling import Sampling, for_anthropic
from app.services.llm.sse import load_json
from app.services.llm.transport import (
    api_key,
    decode_arguments,
    join_url,
    object_schema,
    open_stream,
    redact,
)
from app.services.tools import Tool

ANTHROPIC_VERSION = "2023-06-01"
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}
_ERROR_CODES = {
    "authentication_error": "upstream_auth",
    "permission_error": "upstream_auth",
    "rate_limit_error": "upstream_rate_limited",
    "overloaded_error": "upstream_unavailable",
    "api_error": "upstream_unavailable",
    "invalid_request_error": "upstream_bad_request",
    "not_found_error": "upstream_bad_request",
    "request_too_large": "upstream_bad_request",
    "timeout_error": "upstream_timeout",
}


def _replayed(blocks: list[ReasoningBlock], model_id: str) -> list[dict[str, Any]]:
    """The thinking blocks of this model that the API must see again (signed or redacted)."""
    out: list[dict[str, Any]] = []
    for block in blocks:
        if block.model_id != model_id:
            continue  # another model's reasoning is never shown to this one
        if block.redacted is not None:
            out.append({"type": "redacted_thinking", "data": block.redacted})
        elif block.signature:
            out.append({"type": "thinking", "thinking": block.text, "signature": block.signature})
    return out


def _user_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    """A user message's text, then its attachments: base64 `image` blocks, text blocks."""
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for part in message.parts or ():
        if isinstance(part, ImagePart):
            source = {
                "type": "base64",
                "media_type": part.media_type,
                "data": b64encode(part.data).decode(),
            }
            blocks.append({"type": "image", "source": source})
        elif isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
    return blocks


def build_messages(
    messages: list[ChatMessage], *, model_id: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """Split out the system text; tool results become user `tool_result` blocks; merge turns.

    An assistant turn of the running tool loop starts with its thinking blocks, as the API
    requires when thinking is on (only those `model_id` produced)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks: list[dict[str, Any]] = []
        role = "user"
        if message.role == "system":
            system.append(message.content)
            continue
        if message.role == "tool":
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": message.content,
                }
            )
        elif message.role == "assistant":
            role = "assistant"
            if message.reasoning_blocks:
                blocks += _replayed(message.reasoning_blocks, model_id)
            if message.content.strip():
                blocks.append({"type": "text", "text": message.content})
            for call in message.tool_calls or ():
                blocks.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                )
        else:
            blocks += _user_blocks(message)
        if not blocks:
            continue  # the API rejects empty turns
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # the API wants strictly alternating roles
        else:
            out.append({"role": role, "content": blocks})
    return "\n\n".join(part for part in system if part), out


def build_request(
    *,
    model: ModelConfig,
    messages: list[ChatMessage],
    tools: list[Tool],
    temperature: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """The JSON body of one streaming Messages request.

    With `reasoning.budget_tokens` (extended thinking): `thinking` is sent, `max_tokens` is
    the budget plus the answer's limit (thinking counts towards it and the API wants it above
    the budget), and no temperature (thinking accepts only the default)."""
    system, turns = build_messages(messages, model_id=model.id)
    answer_tokens = min(max_tokens or model.max_output_tokens, model.max_output_tokens)
    budget = model.reasoning.budget_tokens if model.reasoning else None
    body: dict[str, Any] = {
        "model": model.model,
        "max_tokens": answer_tokens + (budget or 0),
        "messages": turns,
        "stream": True,
    }
    if system:
        body["system"] = system
    temp = temperature if temperature is not None else model.temperature
    if budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    elif temp is not None:
        body["temperature"] = min(temp, 1.0)  # Anthropic's range is 0..1
    if tools and model.supports_tools:
        body["tools"] = [
            {
                "name": tool.qualified_name,
                "description": tool.description,
                "input_schema": object_schema(tool.input_schema),
            }
            for tool in tools
        ]
    return body


class EventReader:
    """State of one stream: text and thinking deltas out, tool-use blocks assembled, thinking
    signatures kept until their block closes, usage and stop kept."""

    __slots__ = (
        "_cached_tokens",
        "_input_tokens",
        "_key",
        "_output_tokens",
        "_signatures",
        "_tools",
        "done",
        "stop_reason",
    )

    def __init__(self, key: str | None) -> None:
        """Nothing seen yet."""
        self._key = key
        self._tools: dict[int, tuple[str, str, list[str]]] = {}
        self._signatures: dict[int, str] = {}  # open thinking blocks: index -> signature
        self._input_tokens: int | None = None
        self._cached_tokens = 0
        self._output_tokens = 0
        self.stop_reason: str | None = None
        self.done = False

    def handle(self, data: bytes) -> str | ToolCallRequest | ReasoningDelta | None:
        """Apply one event; return its text delta, a thinking delta, a closed thinking block's
        signature or a completed tool call (the hot path)."""
        event = load_json(data)
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event["delta"]
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                text: str = delta.get("text", "")
                return text
            if delta_type == "thinking_delta":
                thinking = delta.get("thinking")
                return ReasoningDelta(thinking) if thinking else None
            if delta_type == "input_json_delta":
                self._tools[event["index"]][2].append(delta.get("partial_json", ""))
            elif delta_type == "signature_delta":  # the last one counts
                self._signatures[event.get("index", -1)] = str(delta.get("signature") or "")
            return None
        if kind == "content_block_start":
            return self._start(event)
        if kind == "content_block_stop":
            index = event.get("index", -1)
            tool = self._tools.pop(index, None)
            if tool is not None:
                return ToolCallRequest(tool[0], tool[1], decode_arguments("".join(tool[2])))
            signature = self._signatures.pop(index, None)
            if signature:
                return ReasoningDelta("", signature=signature)
        elif kind == "message_start":
            self._count(event.get("message", {}).get("usage"))
        elif kind == "message_delta":
            self.stop_reason = event.get("delta", {}).get("stop_reason") or self.stop_reason
            self._count(event.get("usage"))
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = event.get("error") or {}
            code = _ERROR_CODES.get(error.get("type", ""), "upstream_error")
            detail = redact(str(error.get("message") or error.get("type") or ""), key=self._key)
            raise ProviderError(code, f"anthropic upstream error mid-stream: {detail}")
        return None

    def _start(self, event: dict[str, Any]) -> str | ReasoningDelta | None:
        """A content block opens: a tool call to assemble, a thinking block, or text."""
        block = event["content_block"]
        block_type = block.get("type")
        if block_type == "tool_use":
            self._tools[event["index"]] = (block["id"], block["name"], [])
        elif block_type == "thinking":
            self._signatures[event.get("index", -1)] = str(block.get("signature") or "")
            if block.get("thinking"):
                return ReasoningDelta(str(block["thinking"]))
        elif block_type == "redacted_thinking":
            return ReasoningDelta("", redacted=str(block.get("data") or ""))
        elif block_type == "text" and block.get("text"):
            return str(block["text"])
        return None

    def _count(self, usage: dict[str, Any] | None) -> None:
        """Keep the latest counts; cached prompt tokens count as input too."""
        if not usage:
            return
        if usage.get("input_tokens") is not None:
            # cache writes are billed as input here (Anthropic: 1.25x; README, Decisions)
            self._cached_tokens = int(usage.get("cache_read_input_tokens") or 0)
            self._input_tokens = (
                int(usage.get("input_tokens") or 0)
                + int(usage.get("cache_creation_input_tokens") or 0)
                + self._cached_tokens
            )
        if usage.get("output_tokens") is not None:
            self._output_tokens = int(usage["output_tokens"])

    def final_events(self, *, emitted_tools: bool) -> list[LLMEvent]:
        """The usage and finish that close the stream."""
        if not self.done and self.stop_reason is None:
            raise ProviderError(
                "upstream_protocol", "anthropic upstream stream ended before the answer finished"
            )
        reason: FinishReason = _FINISH.get(self.stop_reason or "end_turn", "stop")
        if reason == "tool_calls" and not emitted_tools:
            reason = "stop"
        elif emitted_tools and reason == "stop":
            reason = "tool_calls"
        events: list[LLMEvent] = []
        if self._input_tokens is not None or self._output_tokens:
            events.append(Usage(self._input_tokens or 0, self._output_tokens, self._cached_tokens))
        events.append(Finish(reason))
        return events


class AnthropicProvider:
    """Streams from `POST {base_url}/v1/messages` over a shared aiohttp session."""

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
        """Yield text and thinking deltas as they arrive, tool calls as their blocks close, then
        usage and finish."""
        key = api_key(model=model, environ=self._environ)
        url = join_url(model.base_url, "/v1/messages")
        body = build_request(
            model=model,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        for_anthropic(body, sampling)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if key:
            headers["x-api-key"] = key
        emitted_tools = False
        reader = EventReader(key)
        async with open_stream(
            self._session,
            url=url,
            body=body,
            headers=headers,
            model=model,
            provider="anthropic",
            key=key,
        ) as payloads:
            async for data in payloads:
                out = None if reader.done else reader.handle(data)
                if out is None:
                    continue
                if isinstance(out, str):
                    if out:
                        yield TextDelta(out)
                else:
                    emitted_tools = emitted_tools or isinstance(out, ToolCallRequest)
                    yield out
            final = reader.final_events(emitted_tools=emitted_tools)
        for event in final:
            yield event
