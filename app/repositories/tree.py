"""Queries over a conversation's message tree: a path, a branch's newest leaf, siblings.

A path (root → some message) is one recursive CTE walking `parent_id` upwards, on SQLite
and PostgreSQL alike, never one query per message. Only rows of the conversation are
returned (a parent elsewhere, which only bad data has, is left out), and a walk uses
`UNION`, not `UNION ALL`: a row already
found is not walked again, so bad data that loops ends the walk instead of running forever.
A path is ordered by `created_at`: a message is always newer than its parent (a turn writes
below an existing message; imports keep their documents' order).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.models import Message


def _path_up(conversation_id: uuid.UUID, leaf_id: uuid.UUID) -> Any:
    """A recursive CTE of the `(id, parent_id)` of `leaf_id` and all its ancestors."""
    up = (
        select(Message.id, Message.parent_id)
        .where(Message.id == leaf_id, Message.conversation_id == conversation_id)
        .cte("path_up", recursive=True)
    )
    # each step is a primary-key lookup (the conversation is checked on the rows found:
    # filtering here lets a planner with stale statistics scan the conversation per step)
    parent = aliased(Message)
    return up.union(select(parent.id, parent.parent_id).join(up, parent.id == up.c.parent_id))


class MessageTreeRepository:
    """Reads of one conversation's message tree; the caller has checked ownership."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def path(self, *, conversation_id: uuid.UUID, leaf_id: uuid.UUID) -> list[Message]:
        """The messages from the root down to `leaf_id` (empty if it is not in the
        conversation), in one query."""
        up = _path_up(conversation_id, leaf_id)
        stmt = (
            select(Message)
            .join(up, Message.id == up.c.id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def branch(
        self, *, conversation_id: uuid.UUID, leaf_id: uuid.UUID
    ) -> tuple[list[Message], list[tuple[uuid.UUID, uuid.UUID | None]]]:
        """The path root → `leaf_id` (as `path`), and `(id, parent_id)` of every message
        beside it (the roots and every child of a path message, the path's own included),
        oldest first: one query, one walk up the tree."""
        up = _path_up(conversation_id, leaf_id)
        stmt = (
            select(Message, up.c.id)
            .outerjoin(up, Message.id == up.c.id)
            .where(
                Message.conversation_id == conversation_id,
                or_(Message.parent_id.in_(select(up.c.id)), Message.parent_id.is_(None)),
            )
            .order_by(Message.created_at, Message.id)
        )
        rows = list(await self.session.execute(stmt))
        on_path = [row[0] for row in rows if row[1] is not None]
        return on_path, [(row[0].id, row[0].parent_id) for row in rows]

    async def newest_descendant(
        self, *, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> uuid.UUID | None:
        """The newest message below `message_id` (itself when nothing follows it; None if it
        is not in the conversation), in one query."""
        down = (
            select(Message.id)
            .where(Message.id == message_id, Message.conversation_id == conversation_id)
            .cte("branch_down", recursive=True)
        )
        child = aliased(Message)  # each step an index lookup by parent (see `_path_up`)
        down = down.union(select(child.id).join(down, child.parent_id == down.c.id))
        stmt = (
            select(Message.id)
            .join(down, Message.id == down.c.id)
            .where(Message.conversation_id == conversation_id)
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

    async def has_streaming_child(self, *, message_id: uuid.UUID) -> bool:
        """Whether an answer below this message is still being generated."""
        stmt = select(func.count()).where(
            Message.parent_id == message_id, Message.status == "streaming"
        )
        return bool((await self.session.execute(stmt)).scalar_one())
