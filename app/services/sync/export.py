"""`GET /sync/export`: the whole account as one JSON document, written while it is read.

Conversations are read in pages of `PAGE` (with their messages) and each is serialised
and sent before the next page is read, so memory stays flat however big the account is.
On PostgreSQL the export runs in one REPEATABLE READ transaction: a consistent snapshot
even while the user keeps chatting on another device.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.base import utcnow
from app.models import Conversation, Message
from app.repositories.backups import BackupRepository
from app.repositories.files import FileRepository
from app.repositories.users import UserRepository
from app.schemas.sync import BACKUP_FORMAT, BACKUP_VERSION, BackupToolCall
from app.schemas.user import Preferences, UserRead
from app.services.files.storage import Storage
from app.services.sync.backup_files import FILES_MARGIN, file_docs

PAGE = 50
TOOL_CALL_KEYS = tuple(BackupToolCall.model_fields)


def _iso(value: datetime) -> str:
    return value.isoformat()


def message_doc(message: Message) -> dict[str, Any]:
    """A message as the backup stores it (the API's `Message`, tool calls with their round)."""
    calls = message.tool_calls
    return {
        "id": str(message.id),
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "tool_calls": (
            [{k: call[k] for k in TOOL_CALL_KEYS if k in call} for call in calls] if calls else None
        ),
        "tool_call_id": message.tool_call_id,
        "usage": message.usage,
        "created_at": _iso(message.created_at),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "reasoning": message.reasoning,
        "finish_reason": message.finish_reason,
        "attachments": message.attachments,
    }


def conversation_doc(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    """A conversation with its messages (the API's `Conversation`)."""
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "pinned": conversation.pinned,
        "archived": conversation.archived,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "message_count": conversation.message_count,
        "last_message_preview": conversation.last_message_preview,
        "current_message_id": (
            str(conversation.current_message_id) if conversation.current_message_id else None
        ),
        "messages": [message_doc(m) for m in messages],
    }


async def _snapshot(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def export_document(
    *,
    factory: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID,
    storage: Storage | None = None,
    max_bytes: int = 0,
) -> AsyncIterator[bytes]:
    """The backup document of one user, in chunks; with `storage`, the user's files with
    their bytes while the whole document stays under `max_bytes` (what an import takes)."""
    async with factory() as session:
        await _snapshot(session)
        users, backups = UserRepository(session), BackupRepository(session)
        user = await users.get(user_id=user_id)
        if user is None:
            return
        prefs = await users.get_preferences(user_id=user_id)
        head = {
            "format": BACKUP_FORMAT,
            "version": BACKUP_VERSION,
            "exported_at": _iso(utcnow()),
            "user": UserRead.model_validate(user).model_dump(mode="json"),
            "preferences": Preferences.model_validate(prefs.data if prefs else {}).model_dump(),
        }
        start = json.dumps(head)[:-1].encode() + b', "conversations": ['
        written = len(start)
        yield start
        after: tuple[datetime, uuid.UUID] | None = None
        separator = b""
        while True:
            page = await backups.conversations_after(user_id=user_id, after=after, limit=PAGE)
            if not page:
                break
            grouped: dict[uuid.UUID, list[Message]] = {c.id: [] for c in page}
            for message in await backups.messages_of(conversation_ids=list(grouped)):
                grouped[message.conversation_id].append(message)
            chunk = b",".join(json.dumps(conversation_doc(c, grouped[c.id])).encode() for c in page)
            yield separator + chunk
            written += len(separator) + len(chunk)
            separator = b","
            after = (page[-1].created_at, page[-1].id)
            session.expunge_all()  # keep the identity map from growing with the account
        yield b'], "files": ['
        if storage is not None:
            rows = await FileRepository(session).all_for_user(user_id=user_id)
            budget = max_bytes - written - FILES_MARGIN
            async for chunk in file_docs(storage, rows, budget=budget):
                yield chunk
        yield b"]}"
