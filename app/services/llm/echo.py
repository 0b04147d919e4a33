"""The built-in offline model: deterministic answers from the user's text, no network.

- a normal message -> `Echo: <text>`, streamed word by word (whitespace kept);
- `/tool <qualified_name> <json arguments>` -> one tool call, finish `tool_calls`;
- `/tools [{"name": ..., "arguments": {...}}, ...]` -> several calls in one turn;
- `/think <text>` -> reasoning first (`Thinking about: <text>…`, word by word, as
  `ReasoningDelta`s), then `Echo: <text>`;
- `/error <code> [message]` -> raises `ProviderError(code)` before any event;
- after tool results -> `Tool <name> returned: <content>` (one line per result), finish `stop`;
- after a final assistant message (a `continue`) -> the rest of that echo, if it is one;
- a message with attachments -> the echo, then `Attachments: photo.png image 800x600;
  report.pdf 3 pages, 12,345 characters of text` (what the model received).
Tool commands work only when the request offers tools, as with a real model (the name is not
checked, so tests can exercise unknown tools). `max_tokens` counts words: beyond it the reply
stops with `length` (reasoning words are not counted). Each delta waits `delay_ms` (model
config) or `ECHO_DELAY_MS` (env).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from app.services.llm.base import (
    PROVIDER_ERROR_CODES,
    ChatMessage,
    Finish,
    ImagePart,
    LLMEvent,
    ModelConfig,
    Part,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    TextPart,
    ToolCallRequest,
    Usage,
)
from app.services.llm.sampling import Sampling
from app.services.llm.transport import decode_arguments
from app.services.tools import Tool

_WORD = re.compile(r"\s*\S+")
TOOL_USAGE = "usage: /tool <qualified_tool_name> <json arguments>"
TOOLS_USAGE = 'usage: /tools [{"name": "<qualified_tool_name>", "arguments": {...}}, ...]'


def split_words(text: str) -> list[str]:
    """Word-sized pieces that concatenate back to `text` (leading whitespace kept)."""
    return _WORD.findall(text)


def _described(parts: list[Part]) -> list[str]:
    """What the echo model "saw" of each attachment: an image's size, a file's text."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, ImagePart):
            out.append(f"{part.name} image {part.width}x{part.height}")
        elif isinstance(part, TextPart):
            out.append(part.summary or f"{len(part.text):,} characters of text")
    return out


def _count_words(messages: list[ChatMessage]) -> int:
    """A deterministic stand-in for prompt tokens."""
    return sum(len(message.content.split()) for message in messages)


def _tool_results_reply(messages: list[ChatMessage]) -> str:
    """Report each trailing tool result under the name of the call it answers."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls or ():
            names[call.id] = call.name
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append(message)
    lines = [
        f"Tool {names.get(m.tool_call_id or '', m.tool_call_id or 'unknown')} returned: {m.content}"
        for m in reversed(results)
    ]
    return "\n".join(lines)


def _continuation(messages: list[ChatMessage]) -> str:
    """What a cut echo still lacks: the full echo of the last question minus the prefill."""
    prefill = messages[-1].content
    question = next((m for m in reversed(messages) if m.role == "user"), None)
    full = f"Echo: {question.content}" if question is not None else ""
    return full[len(prefill) :] if full.startswith(prefill) else ""


def _parse_tool_commands(text: str) -> list[tuple[str, dict[str, Any]]] | str:
    """The calls a `/tool` or `/tools` message asks for, or a usage hint when malformed."""
    command, _, rest = text.partition(" ")
    rest = rest.strip()
    if command == "/tool":
        name, _, arguments = rest.partition(" ")
        if not name:
            return TOOL_USAGE
        return [(name, decode_arguments(arguments))]
    try:
        items = json.loads(rest)
    except ValueError:
        return TOOLS_USAGE
    if not isinstance(items, list) or not items:
        return TOOLS_USAGE
    calls: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return TOOLS_USAGE
        args = item.get("arguments") or {}
        calls.append((item["name"], args if isinstance(args, dict) else {"_raw": str(args)}))
    return calls


class EchoProvider:
    """Answers from the conversation itself; for development, demos and tests."""

    def __init__(self, *, environ: Mapping[str, str]) -> None:
        """Read `ECHO_DELAY_MS` from `environ` when a model sets no `delay_ms`."""
        self._environ = environ

    def _delay_s(self, model: ModelConfig) -> float:
        """Seconds to wait before each delta."""
        if model.delay_ms is not None:
            return model.delay_ms / 1000
        try:
            return max(0.0, float(self._environ.get("ECHO_DELAY_MS", "0") or 0) / 1000)
        except ValueError:
            return 0.0

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
        """Yield the deterministic reply for `messages` (see the module docstring)."""
        input_tokens = _count_words(messages)
        last = messages[-1] if messages else ChatMessage(role="user", content="")
        thoughts: list[str] = []
        if last.role == "tool":
            reply = _tool_results_reply(messages)
        elif last.role == "assistant":
            reply = _continuation(messages)
        else:
            text = last.content.strip()
            command = text.split(" ", 1)[0]
            if command == "/error":
                _, _, rest = text.partition(" ")
                code, _, message = rest.strip().partition(" ")
                code = code if code in PROVIDER_ERROR_CODES else "upstream_error"
                raise ProviderError(code, message.strip() or "echo: simulated failure")
            parsed = _parse_tool_commands(text) if command in ("/tool", "/tools") else None
            if isinstance(parsed, list) and tools and model.supports_tools:
                first = 1 + sum(len(m.tool_calls or ()) for m in messages)
                for offset, (name, arguments) in enumerate(parsed):
                    yield ToolCallRequest(f"call_{first + offset}", name, arguments)
                yield Usage(input_tokens, len(parsed))
                yield Finish("tool_calls")
                return
            reply = parsed if isinstance(parsed, str) else f"Echo: {last.content}"
            if last.parts:
                reply += " Attachments: " + "; ".join(_described(last.parts))
            if command == "/think":
                topic = text.removeprefix("/think").strip()
                thoughts = split_words(f"Thinking about: {topic or '(nothing)'}…")
                reply = f"Echo: {topic}"
        words = split_words(reply)
        limit = min(max_tokens or model.max_output_tokens, model.max_output_tokens)
        delay = self._delay_s(model)
        for thought in thoughts:
            await asyncio.sleep(delay)
            yield ReasoningDelta(thought)
        for word in words[:limit]:
            await asyncio.sleep(delay)  # sleep(0) still lets other tasks (and cancel) in
            yield TextDelta(word)
        yield Usage(input_tokens, len(thoughts) + min(len(words), limit))
        yield Finish("length" if len(words) > limit else "stop")
