"""A chat turn's writes as data: run now, retried later, or spooled to disk and replayed.

Each write carries everything needed to apply it again, and applying it again is harmless:
- `begin` inserts the user message and the `streaming` placeholder (skipped on a retry if
  the placeholder exists: the first try may have committed before its answer was lost);
- `checkpoint` saves the text so far, only while the message is still `streaming`;
- `finish` writes the final message whatever its status: a finished answer always wins over
  an `interrupted` mark some other process put on it meanwhile.
`last_event_id` only ever grows, whatever order retries land in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter
from sqlalchemy import Connection

from app.repositories.turns import TurnRepository

PREVIEW_CHARS = 200
_ONE_MICROSECOND = timedelta(microseconds=1)


def preview(text: str) -> str:
    """A one-line preview of a message."""
    return " ".join(text.split())[:PREVIEW_CHARS]


@dataclass(slots=True)
class BeginWrite:
    """The user message and the empty `streaming` assistant message of a new turn."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    message_id: uuid.UUID
    new_conversation: bool
    model: str
    text: str
    now: datetime
    kind: Literal["begin"] = "begin"


@dataclass(slots=True)
class CheckpointWrite:
    """The text so far of an answer still being generated."""

    user_id: uuid.UUID
    message_id: uuid.UUID
    content: str
    last_event_id: int = 0
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
    usage: dict[str, int] | None
    tool_calls: list[dict[str, Any]] | None
    title: str | None
    now: datetime
    error_code: str | None = None
    last_event_id: int = 0
    kind: Literal["finish"] = "finish"


TurnWrite = BeginWrite | CheckpointWrite | FinishWrite
_Tagged = Annotated[TurnWrite, Field(discriminator="kind")]


@dataclass(slots=True)
class SpoolDocument:
    """What one spool file holds: the write, and which database it belongs to."""

    write: _Tagged
    database: str = ""  # app.services.chat.spool.database_key of the DATABASE_URL
    format: Literal["vektor-turn-write"] = "vektor-turn-write"
    version: Literal[1] = 1


_DOCUMENT = TypeAdapter(SpoolDocument)


def encode(document: SpoolDocument) -> bytes:
    """A spool file's JSON."""
    return _DOCUMENT.dump_json(document)


def decode(raw: bytes) -> SpoolDocument:
    """A spool file's document (`ValueError` if it is not one)."""
    return _DOCUMENT.validate_json(raw)


def apply_write(conn: Connection, *, write: TurnWrite, retry: bool) -> int:
    """Run one write in the caller's transaction; the newest change number it stamped.

    `retry`: the write may have committed before (its first try's answer was lost)."""
    if isinstance(write, BeginWrite):
        return _begin(conn, write, retry=retry)
    if isinstance(write, CheckpointWrite):
        return _checkpoint(conn, write)
    return _finish(conn, write)


def _begin(conn: Connection, w: BeginWrite, *, retry: bool) -> int:
    repo = TurnRepository(conn)
    if retry and repo.message_exists(message_id=w.message_id):
        return 0
    # sync feed: the conversation gets `seq`, the two messages the next two numbers
    seq = repo.allocate(user_id=w.user_id, count=3)
    if w.new_conversation:
        repo.insert_conversation(
            values={
                "id": w.conversation_id,
                "user_id": w.user_id,
                "model": w.model,
                "pinned": False,
                "archived": False,
                "message_count": 2,
                "last_message_preview": preview(w.text),
                "created_at": w.now,
                "updated_at": w.now,
                "change_seq": seq,
            }
        )
    common = {"conversation_id": w.conversation_id, "user_id": w.user_id, "updated_at": w.now}
    repo.insert_messages(
        rows=[
            {
                **common,
                "id": w.user_message_id,
                "role": "user",
                "content": w.text,
                "status": "complete",
                "model": None,
                "created_at": w.now,
                "change_seq": seq + 1,
            },
            {
                **common,
                "id": w.message_id,
                "role": "assistant",
                "content": "",
                "status": "streaming",
                "model": w.model,
                "created_at": w.now + _ONE_MICROSECOND,
                "change_seq": seq + 2,
            },
        ]
    )
    if not w.new_conversation:
        repo.update_conversation(
            conversation_id=w.conversation_id,
            added_messages=2,
            values={
                "last_message_preview": preview(w.text),
                "updated_at": w.now,
                "model": w.model,
                "change_seq": seq,
            },
        )
    return seq + 2 if seq else 0


def _checkpoint(conn: Connection, w: CheckpointWrite) -> int:
    repo = TurnRepository(conn)
    seq = repo.allocate_for_message(message_id=w.message_id)
    saved = repo.update_streaming_message(
        message_id=w.message_id,
        values={"content": w.content, "change_seq": seq},
        last_event_id=w.last_event_id,
    )
    return seq if saved else 0


def _finish(conn: Connection, w: FinishWrite) -> int:
    repo = TurnRepository(conn)
    seq = repo.allocate(user_id=w.user_id, count=2)
    repo.update_message(
        message_id=w.message_id,
        values={
            "content": w.content,
            "status": w.status,
            "model": w.model,
            "usage": w.usage,
            "tool_calls": w.tool_calls or None,
            "error_code": w.error_code,
            "updated_at": w.now,
            "change_seq": seq,
        },
        last_event_id=w.last_event_id,
    )
    conversation: dict[str, Any] = {"updated_at": w.now, "change_seq": seq + 1}
    if w.content:
        conversation["last_message_preview"] = preview(w.content)
    if w.title:
        conversation["title"] = w.title
    repo.update_conversation(conversation_id=w.conversation_id, values=conversation)
    return seq + 1 if seq else 0


def mark_interrupted(
    conn: Connection, *, user_id: uuid.UUID, message_id: uuid.UUID, now: datetime
) -> int:
    """End a `streaming` message whose generation died with it: `error`/`interrupted`, the
    text of its last checkpoint kept (nothing if it finished meanwhile)."""
    repo = TurnRepository(conn)
    seq = repo.allocate(user_id=user_id, count=1)
    saved = repo.update_streaming_message(
        message_id=message_id,
        values={
            "status": "error",
            "error_code": "interrupted",
            "updated_at": now,
            "change_seq": seq,
        },
    )
    return seq if saved else 0
