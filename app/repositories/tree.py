"""Queries over a conversation's message tree: a path, a branch's newest leaf, siblings.

A path (root → some message) is one recursive CTE walking `parent_id` upwards, on SQLite
and PostgreSQL alike, never one query per message. Every walk is bounded by the
conversation (a parent in another conversation ends it) and by `MAX_DEPTH` (bad data that
loops cannot make a query run forever).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models import Message

MAX_DEPTH = 1_000_000


class MessageTreeRepository:
    """Reads of one conversation's message tree; the caller has checked ownership."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def path(self, *, conversation_id: uuid.UUID, leaf_id: uuid.UUID) -> list[Message]:
        """The messages from the root down to `leaf_id` (empty if it is not in the
        conversation), in one query."""
        up = (
            select(Message.id, Message.parent_id, literal(0).label("depth"))
            .where(Message.id == leaf_id, Message.conversation_id == conversation_id)
            .cte("path_up", recursive=True)
        )
        parent = aliased(Message)
        up = up.union_all(
            select(parent.id, parent.parent_id, up.c.depth + 1)
            .join(up, parent.id == up.c.parent_id)
            .where(parent.conversation_id == conversation_id, up.c.depth < MAX_DEPTH)
        )
        stmt = select(Message).join(up, Message.id == up.c.id).order_by(up.c.depth.desc())
        return list((await self.session.execute(stmt)).scalars())

    async def newest_descendant(
        self, *, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The newest message below `message_id` (itself when nothing follows it; None if it
        is not in the conversation), in one query."""
        down = (
            select(Message.id, literal(0).label("depth"))
            .where(Message.id == message_id, Message.conversation_id == conversation_id)
            .cte("branch_down", recursive=True)
        )
        child = aliased(Message)
        down = down.union_all(
            select(child.id, down.c.depth + 1)
            .join(down, child.parent_id == down.c.id)
            .where(child.conversation_id == conversation_id, down.c.depth < MAX_DEPTH)
        )
        stmt = (
            select(Message.id)
            .join(down, Message.id == down.c.id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def newest(self, *, conversation_id: uuid.UUID) -> uuid.UUID | None:
        """The conversation's newest message (the leaf of a conversation that has none
        recorded, i.e. written before conversations were trees)."""
        stmt = (
            select(Message.id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def children_of(
        self, *, conversation_id: uuid.UUID, parent_ids: Iterable[uuid.UUID | None]
    ) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
        """`(id, parent_id)` of every message below these parents (None: the roots), oldest
        first, in one query."""
        wanted = set(parent_ids)
        ids = [p for p in wanted if p is not None]
        clauses: list[Any] = [Message.parent_id.in_(ids)] if ids else []
        if None in wanted:
            clauses.append(Message.parent_id.is_(None))
        if not clauses:
            return []
        stmt = (
            select(Message.id, Message.parent_id)
            .where(Message.conversation_id == conversation_id, or_(*clauses))
            .order_by(Message.created_at, Message.id)
        )
        return [(row[0], row[1]) for row in await self.session.execute(stmt)]

    async def has_streaming_child(self, *, message_id: uuid.UUID) -> bool:
        """Whether an answer below this message is still being generated."""
        stmt = select(func.count()).where(
            Message.parent_id == message_id, Message.status == "streaming"
        )
        return bool((await self.session.execute(stmt)).scalar_one())
