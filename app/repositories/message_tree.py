"""Queries over a conversation's message tree: a subtree, a path, a branch's newest leaf.

Each walk is one recursive CTE over `messages.parent_id` (indexed), so its cost does not
grow with the number of round trips, only with the rows it visits. Every walk stays inside
one conversation; the caller has checked that the user owns it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CTE, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models import Message


def _subtree(*, conversation_id: uuid.UUID, message_id: uuid.UUID) -> CTE:
    """The ids of a message and all its descendants."""
    top = (
        select(Message.id)
        .where(Message.id == message_id, Message.conversation_id == conversation_id)
        .cte("subtree", recursive=True)
    )
    child = aliased(Message)
    return top.union_all(
        select(child.id).where(
            child.parent_id == top.c.id, child.conversation_id == conversation_id
        )
    )


class MessageTreeRepository:
    """Tree walks and the subtree delete; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def subtree(
        self, *, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, str]]:
        """`(id, status)` of a message and every descendant, oldest first."""
        ids = _subtree(conversation_id=conversation_id, message_id=message_id)
        stmt = (
            select(Message.id, Message.status)
            .where(Message.id.in_(select(ids.c.id)))
            .order_by(Message.created_at, Message.id)
        )
        return [(row[0], row[1]) for row in await self.session.execute(stmt)]

    async def delete_subtree(self, *, conversation_id: uuid.UUID, message_id: uuid.UUID) -> int:
        """Delete a message and all its descendants in one statement; the rows deleted."""
        ids = _subtree(conversation_id=conversation_id, message_id=message_id)
        result = await self.session.execute(
            delete(Message)
            .where(Message.id.in_(select(ids.c.id)))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def newest_leaf(
        self, *, conversation_id: uuid.UUID, message_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        """The newest descendant of a message (itself when it has none); with None, the
        conversation's newest message. None when there is no such message."""
        stmt = select(Message.id).where(Message.conversation_id == conversation_id)
        if message_id is not None:
            ids = _subtree(conversation_id=conversation_id, message_id=message_id)
            stmt = stmt.where(Message.id.in_(select(ids.c.id)))
        stmt = stmt.order_by(Message.created_at.desc(), Message.id.desc()).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def path_to(self, *, conversation_id: uuid.UUID, leaf_id: uuid.UUID) -> list[Message]:
        """The messages from the root down to `leaf_id`, root first."""
        up = (
            select(Message.id, Message.parent_id, literal(0).label("depth"))
            .where(Message.id == leaf_id, Message.conversation_id == conversation_id)
            .cte("path", recursive=True)
        )
        parent = aliased(Message)
        up = up.union_all(
            select(parent.id, parent.parent_id, up.c.depth + 1).where(
                parent.id == up.c.parent_id, parent.conversation_id == conversation_id
            )
        )
        stmt = select(Message).join(up, Message.id == up.c.id).order_by(up.c.depth.desc())
        return list((await self.session.execute(stmt)).scalars())

    async def count(self, *, conversation_id: uuid.UUID) -> int:
        """How many messages a conversation holds."""
        stmt = select(func.count()).where(Message.conversation_id == conversation_id)
        return int((await self.session.execute(stmt)).scalar_one())
