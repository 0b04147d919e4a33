"""Provider for any OpenAI-compatible Chat Completions streaming API (OpenAI, vLLM, Ollama, ...)."""

from __future__ import annotations

import json
import uuid
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
from app.services.llm.sampling import Sampling, for_openai
from app.services.llm.sse import load_json
from app.services.llm.transport import (
    api_key,
    arguments_text,
    code_for_status,
    decode_arguments,
    error_text,
    join_url,
    object_schema,
    open_stream,
    redact,
)
from app.services.tools import Tool

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
_DONE = b"[DONE]"


def build_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Serialise the conversation in Chat Completions form."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            out.append(
                {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
            )
        elif message.role == "assistant" and message.tool_calls:
            calls = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
                }
                for call in message.tool_calls
            ]
            out.append(
                {"role": "assistant", "content": message.content or None, "tool_calls": calls}
            )
        elif message.parts and message.role == "user":
            out.append({"role": "user", "content": content_parts(message)})
        else:
            out.append({"role": message.role, "content": message.content})
    return out


def content_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """A user message with attachments as Chat Completions content parts."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
    for part in message.parts or ():
        if isinstance(part, ImagePart):
            url = f"data:{part.media_type};base64,{b64encode(part.data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
    return parts


def build_request(
    *,
    model: ModelConfig,
    messages: list[ChatMessage],
    tools: list[Tool],
    temperature: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    """The JSON body of one streaming Chat Completions request.

    With `reasoning.effort` (OpenAI reasoning models): `reasoning_effort`, the limit as
    `max_completion_tokens` (those models reject `max_tokens`; reasoning counts towards it)
    and no temperature (they accept only the default)."""
    limit = min(max_tokens or model.max_output_tokens, model.max_output_tokens)
    body: dict[str, Any] = {
        "model": model.model,
        "messages": build_messages(messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    effort = model.reasoning.effort if model.reasoning else None
    temp = temperature if temperature is not None else model.temperature
    if effort:
        body["reasoning_effort"] = effort
        body["max_completion_tokens"] = limit
    else:
        body["max_tokens"] = limit
        if temp is not None:
            body["temperature"] = temp
    if tools and model.supports_tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.qualified_name,
                    "description": tool.description,
                    "parameters": object_schema(tool.input_schema),
                },
            }
            for tool in tools
        ]
    return body


class _PendingCall:
    """A tool call being assembled from deltas."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str) -> None:
        """Start with what the first delta carried."""
        self.id = call_id
        self.name = ""
        self.arguments: list[str] = []


class ChunkReader:
    """State of one stream: turns each `data:` payload into text or reasoning (`reasoning_content`:
    DeepSeek, vLLM; `reasoning`: OpenRouter, Ollama), gathering everything else."""

    __slots__ = ("_by_index", "_calls", "_key", "done", "finish", "usage")

    def __init__(self, key: str | None) -> None:
        """Nothing seen yet."""
        self._key = key
        self._calls: list[_PendingCall] = []
        self._by_index: dict[Any, _PendingCall] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.done = False

    def handle(self, data: bytes) -> str | ReasoningDelta | tuple[LLMEvent, ...] | None:
        """Apply one chunk; return its text delta or reasoning delta (both, in a chunk that
        carries both), if any (the hot path: keep it lean)."""
        if data == _DONE:
            self.done = True
            return None
        chunk = load_json(data)
        text = reasoning = None
        choices = chunk.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                calls = delta.get("tool_calls")
                if calls:
                    self._add_calls(calls)
            reason = choice.get("finish_reason")
            if reason:
                self.finish = reason
        usage = chunk.get("usage")
        if usage:
            details = usage.get("prompt_tokens_details")
            cached = details.get("cached_tokens") if isinstance(details, dict) else None
            self.usage = Usage(
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
                int(cached or 0),
            )
        error = chunk.get("error")
        if error:
            status = error.get("code") if isinstance(error, dict) else None
            code = code_for_status(status) if isinstance(status, int) else "upstream_error"
            message = redact(error_text(chunk), key=self._key)
            raise ProviderError(code, f"openai upstream error mid-stream: {message}")
        if reasoning and reasoning.__class__ is str:
            if text and text.__class__ is str:
                return ReasoningDelta(reasoning), TextDelta(text)
            return ReasoningDelta(reasoning)
        return text if text.__class__ is str else None

    def _add_calls(self, parts: list[dict[str, Any]]) -> None:
        """Merge tool-call deltas by index (a new id at a used index starts a new call)."""
        for part in parts:
            index = part.get("index", len(self._calls) if part.get("id") else -1)
            call_id = part.get("id") or ""
            entry = self._by_index.get(index)
            if index == -1 and entry is None and self._calls:
                entry = self._calls[-1]
            if entry is None or (call_id and entry.id and call_id != entry.id):
                entry = _PendingCall(call_id)
                self._by_index[index] = entry
                self._calls.append(entry)
            elif call_id and not entry.id:
                entry.id = call_id
            function = part.get("function")
            if function:
                name = function.get("name")
                if name and not entry.name:
                    entry.name = name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    entry.arguments.append(arguments)
                elif isinstance(arguments, dict):
                    entry.arguments.append(json.dumps(arguments))

    def final_events(self) -> list[LLMEvent]:
        """The tool calls, usage and finish that close the stream."""
        if self.finish is None and not self.done:
            raise ProviderError(
                "upstream_protocol", "openai upstream stream ended before the answer finished"
            )
        reason: FinishReason = _FINISH.get(self.finish or "stop", "stop")
        events: list[LLMEvent] = []
        if reason != "length":  # a truncated call is not safe to run
            for call in self._calls:
                if call.name:
                    events.append(
                        ToolCallRequest(
                            id=call.id or f"call_{uuid.uuid4().hex[:24]}",
                            name=call.name,
                            arguments=decode_arguments("".join(call.arguments)),
                        )
                    )
        if events:
            reason = "tool_calls"
        elif reason == "tool_calls":
            reason = "stop"
        if self.usage is not None:
            events.append(self.usage)
        events.append(Finish(reason))
        return events


class OpenAIProvider:
    """Streams from `POST {base_url}/chat/completions` over a shared aiohttp session."""

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
        """Yield text and reasoning deltas as they arrive, then tool calls, usage and the
        finish reason."""
        key = api_key(model=model, environ=self._environ)
        url = join_url(model.base_url, "/chat/completions")
        body = build_request(
            model=model,
            messages=messages,
            tools=tools,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        for_openai(body, sampling)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        reader = ChunkReader(key)
        async with open_stream(
            self._session,
            url=url,
            body=body,
            headers=headers,
            model=model,
            provider="openai",
            key=key,
        ) as payloads:
            async for data in payloads:
                if reader.done or not (out := reader.handle(data)):
                    continue
                if isinstance(out, str):
                    yield TextDelta(out)
                elif isinstance(out, ReasoningDelta):
                    yield out
                else:
                    for event in out:
                        yield event
            final = reader.final_events()
        for event in final:
            yield event
