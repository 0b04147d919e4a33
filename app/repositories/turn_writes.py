"""A chat turn's writes as data: run now, retried later, or spooled to disk and replayed.

A turn writes three times (begin, checkpoints, finish); a continued answer starts with a
`resume` instead of a begin. Each write carries everything
needed to apply it again (app/repositories/turns.py builds its rows and says why applying it
twice is harmless), so it can wait in memory or in `DATA_DIR/spool/` while the database is
unavailable (app/services/chat/pending.py, spool.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

PREVIEW_CHARS = 200


def preview(text: str) -> str:
    """A one-line preview of a message."""
    return " ".join(text.split())[:PREVIEW_CHARS]


def usage_columns(usage: dict[str, Any] | None) -> dict[str, Any]:
    """An answer's `usage` as the message's queryable columns (alembic 0010)."""
    if not usage:
        return {}
    cost = usage.get("cost_usd")
    return {
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cached_input_tokens": int(usage.get("cached_input_tokens") or 0),
        "cost_usd": float(cost) if isinstance(cost, int | float) else None,
    }


@dataclass(slots=True)
class BeginWrite:
    """The user message and the empty `streaming` assistant message of a new turn.

    `parent_id` is the new user message's parent (null: a root). With `user_message` False
    (a regenerated answer) `user_message_id` is an existing message: only the assistant
    message is inserted, below it. Either way the new assistant message becomes the
    conversation's active leaf (`current_message_id`)."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    message_id: uuid.UUID
    new_conversation: bool
    model: str
    text: str
    now: datetime
    parent_id: uuid.UUID | None = None
    user_message: bool = True
    attachments: list[dict[str, Any]] | None = None  # the user message's files (absent: none)
    kind: Literal["begin"] = "begin"


@dataclass(slots=True)
class CheckpointWrite:
    """The text so far of an answer still being generated."""

    user_id: uuid.UUID
    message_id: uuid.UUID
    content: str
    last_event_id: int = 0
    reasoning: str | None = None  # the model's visible reasoning so far (absent in old spools)
    # set when a tool call starts or stops waiting for approval: the status and the calls
    status: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    kind: Literal["checkpoint"] = "checkpoint"


@dataclass(slots=True)
class FinishWrite:
    """The final assistant message, and the conversation it touches."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    content: str
    status: str
    model: str
    usage: dict[str, Any] | None
    tool_calls: list[dict[str, Any]] | None
    title: str | None
    now: datetime
    error_code: str | None = None
    last_event_id: int = 0
    reasoning: str | None = None  # the model's visible reasoning (absent in old spools)
    finish_reason: str | None = None
    attachments: list[dict[str, Any]] | None = None  # images its tools returned (None: keep)
    kind: Literal["finish"] = "finish"


@dataclass(slots=True)
class ResumeWrite:
    """A finished answer `streaming` again (`continue`): its text is appended to."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    message_id: uuid.UUID
    now: datetime
    kind: Literal["resume"] = "resume"


TurnWrite = BeginWrite | CheckpointWrite | FinishWrite | ResumeWrite
