"""`snapshot` events: "replace what you have for this message with this".

A re-attach that cannot replay exactly from the client's `Last-Event-ID` (the live log
expired or dropped events, the server restarted, the mirror lost them, the id is unknown)
sends one snapshot and goes on from there. Its id is the event it is equivalent to, so a
later re-attach with that id resumes exactly, and ids never go below what the client had.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.status import IN_PROGRESS, MessageStatus
from app.models import Message
from app.schemas.events import DoneEvent, ErrorEvent, FinishReason, SnapshotEvent
from app.services.chat.events import encode_frame

_TOOL_CALL_FIELDS = ("id", "server", "tool", "arguments", "status", "result", "duration_ms")
_COMPLETE_REASONS = frozenset({FinishReason.STOP, FinishReason.LENGTH, FinishReason.TOOL_LIMIT})
ERROR_MESSAGES = {
    "interrupted": "The answer was interrupted before it finished; its text so far is saved.",
}


@dataclass
class SnapshotState:
    """A message rebuilt by applying its content events in order (a live one: `streaming`)."""

    parts: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: MessageStatus = MessageStatus.STREAMING

    def apply(self, name: str, data: Mapping[str, Any]) -> None:
        """Fold one content event into the state."""
        if name == "delta":
            self.parts.append(data["content"])
        elif name == "reasoning":
            self.reasoning.append(data["content"])
        elif name == "snapshot":  # a continued answer starts from its saved text
            self.parts = [data["content"]]
            self.reasoning = [data["reasoning"]] if data["reasoning"] else []
            self.tool_calls = [dict(call) for call in data["tool_calls"] or ()]
        elif name == "tool_call":
            self.tool_calls.append(
                {
                    "id": data["call_id"],
                    "server": data["server"],
                    "tool": data["tool"],
                    "arguments": data["arguments"],
                    "status": "error",  # until its result arrives (as the agent records it)
                    "result": None,
                    "duration_ms": 0,
                }
            )
        elif name == "tool_approval":
            self._call(data["call_id"], status="awaiting_approval", expires_at=data["expires_at"])
            self.status = MessageStatus.AWAITING_APPROVAL
        elif name == "tool_approval_decided":
            self._call(data["call_id"], status="error", expires_at=None)
            self._still_waiting()
        elif name == "tool_result":
            for call in self.tool_calls:
                if call["id"] == data["call_id"]:
                    call.update(
                        status=data["status"],
                        result=data["content"],
                        duration_ms=data["duration_ms"],
                    )

    def _call(self, call_id: str, **values: Any) -> None:
        """Update the recorded call with this id."""
        for call in self.tool_calls:
            if call["id"] == call_id:
                call.update(values)

    def _still_waiting(self) -> None:
        """`awaiting_approval` while any call still waits, else `streaming` again."""
        waiting = any(call.get("status") == "awaiting_approval" for call in self.tool_calls)
        self.status = MessageStatus.AWAITING_APPROVAL if waiting else MessageStatus.STREAMING

    def frame(self, event_id: int, message_id: uuid.UUID) -> bytes:
        """The snapshot event of this state."""
        return snapshot_frame(
            event_id,
            message_id=message_id,
            content="".join(self.parts),
            reasoning="".join(self.reasoning) or None,
            tool_calls=self.tool_calls,
            status=self.status,
        )


def snapshot_frame(
    event_id: int,
    *,
    message_id: uuid.UUID,
    content: str,
    reasoning: str | None,
    tool_calls: list[dict[str, Any]] | None,
    status: MessageStatus,
) -> bytes:
    """One `snapshot` event: `{message_id, content, reasoning, tool_calls, status}`."""
    calls = [_shown(call) for call in tool_calls or ()] or None
    data: SnapshotEvent = {
        "message_id": str(message_id),
        "content": content,
        "reasoning": reasoning,
        "tool_calls": calls,
        "status": status,
    }
    return encode_frame(event_id, "snapshot", data)


def _shown(call: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call as snapshots show it (`expires_at` while it awaits approval)."""
    shown = {key: call.get(key) for key in _TOOL_CALL_FIELDS}
    if call.get("expires_at"):
        shown["expires_at"] = call["expires_at"]
    return shown


def outcome_frame(
    event_id: int,
    *,
    message_id: uuid.UUID,
    status: MessageStatus,
    error_code: str | None,
    finish_reason: str | None = None,
) -> bytes:
    """How a saved answer ended: `done` with its finish reason, or `error` with its code."""
    if status in IN_PROGRESS:  # no worker runs it any more: its process died
        error_code = "interrupted"
    if status in IN_PROGRESS or status == MessageStatus.ERROR:
        code = error_code or "error"
        message = ERROR_MESSAGES.get(code, f"The answer ended with an error ({code}).")
        error: ErrorEvent = {"code": code, "message": message}
        return encode_frame(event_id, "error", error)
    reason = FinishReason.CANCELLED if status == MessageStatus.CANCELLED else FinishReason.STOP
    if status == MessageStatus.COMPLETE and finish_reason in _COMPLETE_REASONS:
        reason = FinishReason(finish_reason)  # `length` tells the client it may continue
    done: DoneEvent = {"message_id": str(message_id), "finish_reason": reason}
    return encode_frame(event_id, "done", done)


def rebuilt_frames(message: Message, client_last_id: int) -> bytes:
    """A saved answer whose live log is gone: snapshot, then its outcome, with ids above both
    the highest the generation sent and the client's `Last-Event-ID`."""
    base = max(message.last_event_id, client_last_id)
    status = MessageStatus(message.status)
    snapshot = snapshot_frame(
        base + 1,
        message_id=message.id,
        content=message.content,
        reasoning=message.reasoning,
        tool_calls=message.tool_calls,
        status=status,
    )
    return snapshot + outcome_frame(
        base + 2,
        message_id=message.id,
        status=status,
        error_code=message.error_code,
        finish_reason=message.finish_reason,
    )
