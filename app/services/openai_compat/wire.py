"""The OpenAI wire format: `chat.completion` objects and `chat.completion.chunk` frames.

A stream's chunks differ only in their delta, so the common head (id, created, model) is
encoded once per request and each token costs one orjson encode of its text and one bytes
format, as app/core/sse.py does for /chat/stream.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from app.services.llm import ToolCallRequest

DONE_FRAME = b"data: [DONE]\n\n"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_object(
    message: str, *, status: int, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """`{"error": {message, type, code, param}}` (type from the HTTP status)."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def error_frame(message: str, *, status: int, code: str) -> bytes:
    """A failure after the stream started: `data: {"error": ...}` (the stream then ends)."""
    return b"data: %s\n\n" % orjson.dumps(error_object(message, status=status, code=code))


def tool_call_json(index: int, call: ToolCallRequest) -> dict[str, Any]:
    """One tool call as OpenAI writes it (arguments as JSON text)."""
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
    }


def usage_json(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """OpenAI's `usage` object."""
    return {
        "prompt_tokens": input_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class Completion:
    """One answer's identity (`chatcmpl-…`, created, model) and its encoders."""

    __slots__ = ("_content_head", "_head", "created", "id", "model")

    def __init__(self, *, model: str) -> None:
        self.id = "chatcmpl-" + secrets.token_urlsafe(18)
        self.created = int(time.time())
        self.model = model
        head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created}
        self._head = orjson.dumps({**head, "model": model})[:-1]  # `{...,"model":"m"`
        self._content_head = self._head + b',"choices":[{"index":0,"delta":{"content":'

    def content_frame(self, text: str) -> bytes:
        """The chunk of one piece of text (the per-token path)."""
        return b'data: %s%s},"logprobs":null,"finish_reason":null}]}\n\n' % (
            self._content_head,
            orjson.dumps(text),
        )

    def delta_frame(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """A chunk with any delta (the role, reasoning, tool calls) or the finish reason."""
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b'data: %s,"choices":%s}\n\n' % (self._head, orjson.dumps([choice]))

    def usage_frame(self, input_tokens: int, output_tokens: int) -> bytes:
        """The last chunk with `stream_options.include_usage`: no choices, the usage."""
        usage = orjson.dumps(usage_json(input_tokens, output_tokens))
        return b'data: %s,"choices":[],"usage":%s}\n\n' % (self._head, usage)

    def whole(
        self,
        *,
        text: str,
        reasoning: str,
        calls: list[ToolCallRequest],
        finish_reason: str,
        usage: tuple[int, int],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The `chat.completion` object of a non-streamed answer."""
        message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
        if reasoning:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = [tool_call_json(i, c) for i, c in enumerate(calls)]
            for call in message["tool_calls"]:
                del call["index"]
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage_json(*usage),
        }
        if extra:
            body.update(extra)
        return body
