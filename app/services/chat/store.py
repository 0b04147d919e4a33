"""Persistence of a chat turn, off the hot path: one write at start, checkpoints, one at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger

from app.db.writer import TurnWriter
from app.repositories.turn_writes import (
    BeginWrite,
    CheckpointWrite,
    FinishWrite,
    ResumeWrite,
    TurnWrite,
    preview,
)
from app.repositories.turns import TurnUnit
from app.services.chat.pending import PendingWrites

__all__ = ["TurnIds", "TurnStore", "make_title", "preview"]


@dataclass(frozen=True, slots=True)
class TurnIds:
    """The rows one chat turn writes."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    message_id: uuid.UUID


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
    """Writes the user message and assistant placeholder, checkpoints, and the final reply.

    A write that fails because the database is unavailable does not fail the turn: it goes
    to `PendingWrites`, which retries it with backoff and spools it to disk if it must
    (app/services/chat/pending.py). The stream never waits for those retries."""

    def __init__(self, *, writer: TurnWriter, pending: PendingWrites | None = None) -> None:
        self.writer = writer
        self.pending = pending

    async def _save(self, write: TurnWrite) -> None:
        if self.pending is not None:
            await self.pending.submit(write)
        else:  # scripts and tests without the lifespan: no retries
            await self.writer.submit(TurnUnit(write), user_id=write.user_id)

    async def begin(
        self,
        *,
        ids: TurnIds,
        new_conversation: bool,
        model_id: str,
        text: str,
        now: datetime,
        parent_id: uuid.UUID | None = None,
        user_message: bool = True,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """Save the user message (below `parent_id`; none when `user_message` is False) and
        an empty `streaming` assistant message (committed, or kept for retry while the
        database is unavailable)."""
        await self._save(
            BeginWrite(
                user_id=ids.user_id,
                conversation_id=ids.conversation_id,
                user_message_id=ids.user_message_id,
                message_id=ids.message_id,
                new_conversation=new_conversation,
                model=model_id,
                text=text,
                now=now,
                parent_id=parent_id,
                user_message=user_message,
                attachments=attachments,
            )
        )

    async def resume(self, *, ids: TurnIds, now: datetime) -> None:
        """Mark a finished answer `streaming` again (`continue`)."""
        await self._save(
            ResumeWrite(
                user_id=ids.user_id,
                conversation_id=ids.conversation_id,
                message_id=ids.message_id,
                now=now,
            )
        )

    async def checkpoint(
        self,
        *,
        user_id: uuid.UUID,
        message_id: uuid.UUID,
        content: str,
        last_event_id: int = 0,
        reasoning: str | None = None,
        status: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Save the text (and reasoning) so far of a long answer (best effort); with
        `status`, also the status and tool calls (a pause for tool approval starts or ends)."""
        write = CheckpointWrite(
            user_id=user_id,
            message_id=message_id,
            content=content,
            last_event_id=last_event_id,
            reasoning=reasoning,
            status=status,
            # copies: the calls go on changing while the write waits for its turn
            tool_calls=[dict(c) for c in tool_calls] if tool_calls is not None else None,
        )
        try:
            await self._save(write)
        except Exception as exc:
            logger.warning("checkpoint of message {} failed: {}", message_id, exc)

    async def finish(
        self,
        *,
        ids: TurnIds,
        content: str,
        status: str,
        model_id: str,
        usage: dict[str, Any] | None,
        tool_calls: list[dict[str, Any]] | None,
        title: str | None,
        now: datetime,
        error_code: str | None = None,
        last_event_id: int = 0,
        reasoning: str | None = None,
        finish_reason: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """Save the final assistant message and touch the conversation (retried with backoff
        while the database is unavailable; never raises)."""
        write = FinishWrite(
            user_id=ids.user_id,
            conversation_id=ids.conversation_id,
            message_id=ids.message_id,
            content=content,
            status=status,
            model=model_id,
            usage=usage,
            tool_calls=tool_calls or None,
            title=title,
            now=now,
            error_code=error_code,
            last_event_id=last_event_id,
            reasoning=reasoning,
            finish_reason=finish_reason,
            attachments=attachments,
        )
        try:
            await self._save(write)
        except Exception:
            logger.opt(exception=True).error("saving assistant message {} failed", ids.message_id)
