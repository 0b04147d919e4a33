"""Audit-log queries: batch insert, the newest-first page with filters, pruning by age.

Admin queries: no ownership clause (only admins reach them, through the admin service)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditEvent

audit_events = cast(Table, AuditEvent.__table__)


class AuditRepository:
    """Queries over `audit_events`; no commits, no updates (the table is append-only)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, *, rows: Sequence[dict[str, Any]]) -> None:
        """Append events (one executemany)."""
        if rows:
            await self.session.execute(insert(audit_events), list(rows))

    async def page(
        self,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
        action: str | None,
        actor_id: uuid.UUID | None,
        target_id: uuid.UUID | None,
    ) -> list[AuditEvent]:
        """Newest first, keyset-paginated on (`at`, `id`), optionally filtered."""
        stmt = select(AuditEvent)
        if action is not None:
            stmt = stmt.where(AuditEvent.action == action)
        if actor_id is not None:
            stmt = stmt.where(AuditEvent.actor_id == actor_id)
        if target_id is not None:
            stmt = stmt.where(AuditEvent.target_id == target_id)
        if after is not None:
            at, last_id = after
            stmt = stmt.where(
                or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < last_id))
            )
        stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def prune(self, *, before: datetime) -> int:
        """Delete the events older than `before`; returns how many."""
        result = await self.session.execute(delete(audit_events).where(audit_events.c.at < before))
        return int(getattr(result, "rowcount", 0) or 0)
