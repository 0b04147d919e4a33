"""Queries of backup and restore: a user's conversations in a stable order, id ownership."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message, UserPreferences

ID_CHUNK = 500
INSERT_CHUNK = 1000


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BackupRepository:
    """Reads for export, ownership lookups and bulk inserts for import; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def conversations_after(
        self, *, user_id: uuid.UUID, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Conversation]:
        """The user's conversations, oldest first, keyset-paginated."""
        stmt = select(Conversation).where(Conversation.user_id == user_id)
        if after is not None:
            created_at, last_id = after
            stmt = stmt.where(
                or_(
                    Conversation.created_at > created_at,
                    and_(Conversation.created_at == created_at, Conversation.id > last_id),
                )
            )
        stmt = stmt.order_by(Conversation.created_at, Conversation.id).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def messages_of(self, *, conversation_ids: list[uuid.UUID]) -> list[Message]:
        """The messages of some conversations, each conversation's oldest first."""
        if not conversation_ids:
            return []
        stmt = (
            select(Message)
            .where(Message.conversation_id.in_(conversation_ids))
            .order_by(Message.conversation_id, Message.created_at, Message.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def conversation_owners(self, *, ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        """`{conversation id: owner}` for those of `ids` that exist (anyone's)."""
        owners: dict[uuid.UUID, uuid.UUID] = {}
        for chunk in _chunks(ids, ID_CHUNK):
            stmt = select(Conversation.id, Conversation.user_id).where(Conversation.id.in_(chunk))
            owners.update({row[0]: row[1] for row in await self.session.execute(stmt)})
        return owners

    async def message_owners(
        self, *, ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]:
        """`{message id: (owner, conversation id)}` for those of `ids` that exist (anyone's)."""
        owners: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
        for chunk in _chunks(ids, ID_CHUNK):
            stmt = select(Message.id, Message.user_id, Message.conversation_id).where(
                Message.id.in_(chunk)
            )
            owners.update({row[0]: (row[1], row[2]) for row in await self.session.execute(stmt)})
        return owners

    async def has_preferences(self, *, user_id: uuid.UUID) -> bool:
        """Whether the user ever saved preferences."""
        stmt = select(UserPreferences.user_id).where(UserPreferences.user_id == user_id)
        return (await self.session.execute(stmt)).first() is not None

    async def insert_conversations(self, *, rows: list[dict[str, Any]]) -> None:
        """Insert conversation rows in batches."""
        for chunk in _chunks(rows, INSERT_CHUNK):
            await self.session.execute(insert(Conversation), chunk)

    async def insert_messages(self, *, rows: list[dict[str, Any]]) -> None:
        """Insert message rows in batches."""
        for chunk in _chunks(rows, INSERT_CHUNK):
            await self.session.execute(insert(Message), chunk)

    async def add_messages_to(
        self, *, conversation_id: uuid.UUID, added: int, change_seq: int
    ) -> None:
        """Count messages imported into an existing conversation and stamp the change."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(message_count=Conversation.message_count + added, change_seq=change_seq)
            .execution_options(synchronize_session=False)
        )

    async def insert_preferences(
        self, *, user_id: uuid.UUID, data: dict[str, Any], change_seq: int, now: datetime
    ) -> None:
        """Create the preference row."""
        await self.session.execute(
            insert(UserPreferences).values(
                user_id=user_id, data=data, change_seq=change_seq, updated_at=now
            )
        )
