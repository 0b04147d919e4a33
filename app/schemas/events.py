"""The Server-Sent Events of the chat and sync streams: one `TypedDict` per event's data.

Names and fields are the API contract (API.md). TypedDicts cost nothing at run time: the
agent builds plain dict displays that mypy checks against these, and `app/core/sse.py`
encodes them once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal, TypedDict

from app.core.status import MessageStatus


class FinishReason(StrEnum):
    """Why an answer ended (`done.finish_reason`)."""

    STOP = "stop"
    LENGTH = "length"
    CANCELLED = "cancelled"
    TOOL_LIMIT = "tool_limit"
    ERROR = "error"


# -- chat (`POST /chat/stream`, `GET /chat/stream/{message_id}`) -------------------------


class StartEvent(TypedDict):
    """`start`: always first; `message_id` is the assistant message."""

    conversation_id: str
    user_message_id: str
    message_id: str
    model: str


class DeltaEvent(TypedDict):
    """`delta`: a piece of the assistant text."""

    content: str


class ReasoningEvent(TypedDict):
    """`reasoning`: a piece of the model's visible reasoning (never part of the text)."""

    content: str


class ToolCallEvent(TypedDict):
    """`tool_call`: the model called a tool."""

    call_id: str
    server: str
    tool: str
    arguments: dict[str, Any]


class ToolProgressEvent(TypedDict):
    """`tool_progress`: a running tool reported progress."""

    call_id: str
    progress: float
    total: float | None
    message: str | None


class ToolResultEvent(TypedDict):
    """`tool_result`: a tool call's outcome."""

    call_id: str
    status: Literal["ok", "error"]
    content: str
    duration_ms: int


class ToolApprovalEvent(TypedDict):
    """`tool_approval`: a call waits for the user's approval until `expires_at` (ISO 8601)."""

    call_id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    expires_at: str


class ToolApprovalDecidedEvent(TypedDict):
    """`tool_approval_decided`: a waiting call was approved, denied or timed out."""

    call_id: str
    decision: Literal["approved", "denied", "timeout"]
    reason: str | None


class UsageEvent(TypedDict):
    """`usage`: tokens the upstream counted."""

    input_tokens: int
    output_tokens: int


class TitleEvent(TypedDict):
    """`title`: a new conversation got its title."""

    conversation_id: str
    title: str


class ModelEvent(TypedDict):
    """`model`: a fallback model answers from now on."""

    message_id: str
    model: str


class SnapshotEvent(TypedDict):
    """`snapshot`: replace what you have for this message with this."""

    message_id: str
    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None
    status: MessageStatus


class DoneEvent(TypedDict):
    """`done`: always last on success or cancel."""

    message_id: str
    finish_reason: FinishReason


class ErrorEvent(TypedDict):
    """`error`: the stream ends after it (chat and sync)."""

    code: str
    message: str


ChatEventName = Literal[
    "start",
    "delta",
    "reasoning",
    "tool_call",
    "tool_progress",
    "tool_result",
    "tool_approval",
    "tool_approval_decided",
    "usage",
    "title",
    "model",
    "snapshot",
    "done",
    "error",
]
ChatEventData = (
    StartEvent
    | DeltaEvent
    | ReasoningEvent
    | ToolCallEvent
    | ToolProgressEvent
    | ToolResultEvent
    | ToolApprovalEvent
    | ToolApprovalDecidedEvent
    | UsageEvent
    | TitleEvent
    | ModelEvent
    | SnapshotEvent
    | DoneEvent
    | ErrorEvent
)
TERMINAL_EVENTS: Final = frozenset({"done", "error"})
# the events that make up a message's content; the rest (start, model, tool_progress, usage,
# title, and the terminal one) are metadata or the outcome, sent after a snapshot if needed
CONTENT_EVENTS: Final = frozenset(
    {
        "delta",
        "reasoning",
        "tool_call",
        "tool_result",
        "tool_approval",
        "tool_approval_decided",
        "snapshot",
    }
)

# -- sync (`GET /sync/stream`) ---------------------------------------------------------


class ChangedEvent(TypedDict):
    """`changed`: the user's data changed; `cursor` says how far the server is."""

    cursor: str


# -- both --------------------------------------------------------------------------------

SERVER_SHUTDOWN: Final[ErrorEvent] = {
    "code": "server_shutdown",
    "message": "The server is restarting; reconnect (re-attach) to continue.",
}
TOKEN_REVOKED: Final[ErrorEvent] = {"code": "token_revoked", "message": "Session has been revoked"}
