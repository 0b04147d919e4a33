"""Persistence of a chat turn, off the hot path: one write at start, one at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import Connection

from app.repositories.turns import TurnRepository
from app.services.chat.writer import TurnWriter

PREVIEW_CHARS = 200


@dataclass(frozen=True, slots=True)
class TurnIds:
    """The rows one chat turn writes."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    message_id: uuid.UUID


def preview(text: str) -> str:
    """A one-line preview of a message."""
    return " ".join(text.split())[:PREVIEW_CHARS]


def make_title(text: str, limit: int = 60) -> str:
    """A short title from the first user message: its first line, cut at a word boundary."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if line.startswith("/tool"):
        line = line.split(" ", 2)[1] if len(line.split(" ")) > 1 else line
    if len(line) <= limit:
        return line or "New conversation"
    cut = line[:limit].rsplit(" ", 1)[0] or line[:limit]
    return cut.rstrip(",.;:") + "…"


class TurnStore:
    """Writes the user message and assistant placeholder, checkpoints, and the final reply."""

    def __init__(self, *, writer: TurnWriter) -> None:
        self.writer = writer

    async def begin(
        self, *, ids: TurnIds, new_conversation: bool, model_id: str, text: str, now: datetime
    ) -> None:
        """Save the user message and an empty `streaming` assistant message (committed)."""
        messages = [
            {
                "id": ids.user_message_id,
                "conversation_id": ids.conversation_id,
                "user_id": ids.user_id,
                "role": "user",
                "content": text,
                "status": "complete",
                "model": None,
                "created_at": now,
                "updated_at": now,
            },
            {
                "id": ids.message_id,
                "conversation_id": ids.conversation_id,
                "user_id": ids.user_id,
                "role": "assistant",
                "content": "",
                "status": "streaming",
                "model": model_id,
                "created_at": now + timedelta(microseconds=1),
                "updated_at": now,
            },
        ]

        def write(conn: Connection) -> int:
            # sync feed: the conversation gets `seq`, the two messages the next two numbers
            repo = TurnRepository(conn)
            seq = repo.allocate(user_id=ids.user_id, count=3)
            if new_conversation:
                repo.insert_conversation(
                    values={
                        "id": ids.conversation_id,
                        "user_id": ids.user_id,
                        "model": model_id,
                        "pinned": False,
                        "archived": False,
                        "message_count": 2,
                        "last_message_preview": preview(text),
                        "created_at": now,
                        "updated_at": now,
                        "change_seq": seq,
                    }
                )
            repo.insert_messages(
                rows=[{**row, "change_seq": seq + 1 + i} for i, row in enumerate(messages)]
            )
            if not new_conversation:
                repo.update_conversation(
                    conversation_id=ids.conversation_id,
                    added_messages=2,
                    values={
                        "last_message_preview": preview(text),
                        "updated_at": now,
                        "model": model_id,
                        "change_seq": seq,
                    },
                )
            return seq + 2 if seq else 0

        await self.writer.submit(write, user_id=ids.user_id)

    async def checkpoint(
        self,
        *,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        content: str,
        last_event_id: int = 0,
    ) -> None:
        """Save the text so far of a long answer and the event id it reaches (best effort)."""
        values = {"content": content, "last_event_id": last_event_id}

        def write(conn: Connection) -> int:
            repo = TurnRepository(conn)
            seq = repo.allocate_for_message(message_id=message_id)
            repo.update_message(message_id=message_id, values={**values, "change_seq": seq})
            return seq

        try:
            await self.writer.submit(write, user_id=user_id)
        except Exception as exc:
            logger.warning("checkpoint of message {} failed: {}", message_id, exc)

    async def finish(
        self,
        *,
        ids: TurnIds,
        content: str,
        status: str,
        model_id: str,
        usage: dict[str, int] | None,
        tool_calls: list[dict[str, Any]] | None,
        title: str | None,
        now: datetime,
        error_code: str | None = None,
        last_event_id: int = 0,
    ) -> None:
        """Save the final assistant message and touch the conversation (retried once).

        `last_event_id` is the id of the stream's terminal event, `error_code` why it failed."""
        conversation_values: dict[str, Any] = {"updated_at": now}
        if content:
            conversation_values["last_message_preview"] = preview(content)
        if title:
            conversation_values["title"] = title
        message_values = {
            "content": content,
            "status": status,
            "model": model_id,
            "usage": usage,
            "tool_calls": tool_calls or None,
            "error_code": error_code,
            "last_event_id": last_event_id,
            "updated_at": now,
        }

        def write(conn: Connection) -> int:
            repo = TurnRepository(conn)
            seq = repo.allocate(user_id=ids.user_id, count=2)
            repo.update_message(
                message_id=ids.message_id, values={**message_values, "change_seq": seq}
            )
            repo.update_conversation(
                conversation_id=ids.conversation_id,
                values={**conversation_values, "change_seq": seq + 1},
            )
            return seq + 1 if seq else 0

        for attempt in (1, 2):
            try:
                await self.writer.submit(write, user_id=ids.user_id)
                return
            except Exception:
                logger.opt(exception=attempt == 2).error(
                    "saving assistant message {} failed (attempt {})", ids.message_id, attempt
                )
