"""Conversation and message queries; ownership is always part of the WHERE clause."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ConversationRepository:
    """Queries over conversations and messages; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_user(
        self, *, user_id: uuid.UUID, conversation_id: uuid.UUID
    ) -> Conversation | None:
        """A conversation only if the user owns it."""
        stmt = select(Conversation).where(
            Conversation.id == conversation_id, Conversation.user_id == user_id
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def list_page(
        self,
        *,
        user_id: uuid.UUID,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        query: str | None,
        archived: bool | None,
    ) -> list[Conversation]:
        """Newest `updated_at` first, keyset-paginated, optionally searched."""
        stmt = select(Conversation).where(Conversation.user_id == user_id)
        if archived is not None:
            stmt = stmt.where(Conversation.archived.is_(archived))
        if after is not None:
            updated_at, last_id = after
            stmt = stmt.where(
                or_(
                    Conversation.updated_at < updated_at,
                    and_(Conversation.updated_at == updated_at, Conversation.id < last_id),
                )
            )
        if query:
            stmt = stmt.where(self._search_clause(query))
        stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    def _search_clause(self, query: str) -> Any:
        if self.session.bind is not None and self.session.bind.dialect.name == "postgresql":
            tsquery = func.websearch_to_tsquery("simple", query)
            title_match = func.to_tsvector("simple", func.coalesce(Conversation.title, "")).op(
                "@@"
            )(tsquery)
            message_match = exists().where(
                Message.conversation_id == Conversation.id,
                func.to_tsvector("simple", Message.content).op("@@")(tsquery),
            )
            return or_(title_match, message_match)
        pattern = f"%{_escape_like(query.lower())}%"
        return or_(
            func.lower(Conversation.title).like(pattern, escape="\\"),
            exists().where(
                Message.conversation_id == Conversation.id,
                func.lower(Message.content).like(pattern, escape="\\"),
            ),
        )

    async def messages(self, *, conversation_id: uuid.UUID) -> list[Message]:
        """A conversation's messages, oldest first."""
        stmt = (
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def get_message_for_user(
        self, *, user_id: uuid.UUID, message_id: uuid.UUID
    ) -> Message | None:
        """A message only if the user owns it."""
        stmt = select(Message).where(Message.id == message_id, Message.user_id == user_id)
        return (await self.session.execute(stmt)).scalars().first()

    async def update_conversation(
        self, *, conversation_id: uuid.UUID, values: dict[str, Any]
    ) -> None:
        """Write fields of one conversation."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def delete_for_user(self, *, user_id: uuid.UUID, conversation_id: uuid.UUID) -> bool:
        """Delete a conversation (messages cascade); False when it is not the user's."""
        result = await self.session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id, Conversation.user_id == user_id
            )
        )
        return bool(getattr(result, "rowcount", 0))
