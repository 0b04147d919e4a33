"""Reading Gemini's streamed `GenerateContentResponse` chunks into provider events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.services.llm.base import Finish, FinishReason, LLMEvent, ProviderError, ToolCallRequest
from app.services.llm.base import Usage as UsageEvent
from app.services.llm.sse import load_json
from app.services.llm.transport import code_for_status, decode_arguments, redact

PROVIDER = "google"
# finishReason values that end an answer normally; every other one (SAFETY, RECITATION,
# BLOCKLIST, PROHIBITED_CONTENT, SPII, MALFORMED_FUNCTION_CALL, ...) withheld or broke it
_NORMAL: dict[str, FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length"}
_STATUS_CODES = {  # google.rpc status names, for errors that come without an HTTP code
    "UNAUTHENTICATED": "upstream_auth",
    "PERMISSION_DENIED": "upstream_auth",
    "RESOURCE_EXHAUSTED": "upstream_rate_limited",
    "UNAVAILABLE": "upstream_unavailable",
    "INTERNAL": "upstream_unavailable",
    "DEADLINE_EXCEEDED": "upstream_timeout",
    "INVALID_ARGUMENT": "upstream_bad_request",
    "NOT_FOUND": "upstream_bad_request",
    "FAILED_PRECONDITION": "upstream_bad_request",
}
Piece = tuple[bool, str]  # (is a thought, text)
MakeId = Callable[[str | None, int, str], str]


class ChunkReader:
    """State of one stream: text and thoughts out, calls, usage and the finish reason kept."""

    __slots__ = ("_key", "_make_id", "_response_id", "calls", "emitted", "finish", "usage")

    def __init__(self, key: str | None, *, make_id: MakeId) -> None:
        """Nothing seen yet; `make_id(response_id, index, name)` names calls without an id."""
        self._key = key
        self._make_id = make_id
        self._response_id: str | None = None
        self.calls: list[tuple[ToolCallRequest, str | None]] = []  # with thought signatures
        self.emitted = False
        self.finish: str | None = None
        self.usage: UsageEvent | None = None

    def handle(self, data: bytes) -> list[Piece]:
        """Apply one chunk; return its text and thought pieces in order."""
        chunk = load_json(data)
        if "error" in chunk:
            raise self._error(chunk["error"])
        self._response_id = self._response_id or chunk.get("responseId")
        usage = chunk.get("usageMetadata")
        if usage:
            self.usage = UsageEvent(
                int(usage.get("promptTokenCount") or 0),
                # thoughts are billed as output: count them like OpenAI's output_tokens do
                int(usage.get("candidatesTokenCount") or 0)
                + int(usage.get("thoughtsTokenCount") or 0),
                int(usage.get("cachedContentTokenCount") or 0),
            )
        candidates = chunk.get("candidates")
        if not candidates:
            blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                raise ProviderError(
                    "upstream_bad_request", f"{PROVIDER} upstream refused the prompt ({blocked})"
                )
            return []
        candidate = candidates[0]
        pieces: list[Piece] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            text = part.get("text")
            if isinstance(text, str) and text:
                pieces.append((part.get("thought") is True, text))
            elif "functionCall" in part:
                self._call(part["functionCall"], part.get("thoughtSignature"))
        if pieces:
            self.emitted = True
        reason = candidate.get("finishReason")
        if reason and reason != "FINISH_REASON_UNSPECIFIED":
            self.finish = str(reason)
        return pieces

    def _call(self, call: dict[str, Any], signature: Any) -> None:
        """One whole function call (Gemini does not stream their arguments)."""
        name = str(call.get("name") or "")
        if not name:
            return
        ident = call.get("id") or self._make_id(self._response_id, len(self.calls), name)
        args = call.get("args")
        arguments = args if isinstance(args, dict) else decode_arguments(str(args or ""))
        request = ToolCallRequest(str(ident), name, arguments)
        self.calls.append((request, signature if isinstance(signature, str) else None))

    def _error(self, error: Any) -> ProviderError:
        """An error object inside the stream."""
        if not isinstance(error, dict):
            error = {"message": str(error)}
        status = error.get("code")
        code = (
            code_for_status(status)
            if isinstance(status, int)
            else _STATUS_CODES.get(str(error.get("status")), "upstream_error")
        )
        detail = redact(str(error.get("message") or error.get("status") or ""), key=self._key)
        return ProviderError(code, f"{PROVIDER} upstream error mid-stream: {detail}")

    def final_events(self) -> list[LLMEvent]:
        """The tool calls, usage and finish that close the stream."""
        if self.finish is None:
            raise ProviderError(
                "upstream_protocol", f"{PROVIDER} upstream stream ended before the answer finished"
            )
        reason = _NORMAL.get(self.finish)
        if reason is None:
            if not self.emitted and not self.calls:
                raise ProviderError(
                    "upstream_error", f"{PROVIDER} upstream withheld the answer ({self.finish})"
                )
            reason = "stop"
        events: list[LLMEvent] = []
        if reason != "length":  # like the other providers: a cut answer runs no tools
            events.extend(call for call, _ in self.calls)
        if events:
            reason = "tool_calls"
        if self.usage is not None:
            events.append(self.usage)
        events.append(Finish(reason))
        return events
