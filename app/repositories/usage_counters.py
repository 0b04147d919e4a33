"""Quota counters: seeded from a window's answers, changed only by atomic conditional updates."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Table, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiUsage, Message, UsageCounter

counters: Table = UsageCounter.__table__  # type: ignore[assignment]


class UsageCounterRepository:
    """One user's counters; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seed(
        self, *, user_id: uuid.UUID, window: str, start: datetime, end: datetime
    ) -> None:
        """Create the window's counter from the answers already in it and the stateless /v1
        answers' usage rows (no-op if it exists)."""
        stateless = select(
            func.coalesce(func.sum(ApiUsage.input_tokens + ApiUsage.output_tokens), 0),
            func.coalesce(func.sum(ApiUsage.cost_usd), 0.0),
        ).where(
            ApiUsage.user_id == user_id, ApiUsage.created_at >= start, ApiUsage.created_at < end
        )
        api_tokens = stateless.with_only_columns(stateless.selected_columns[0]).scalar_subquery()
        api_cost = stateless.with_only_columns(stateless.selected_columns[1]).scalar_subquery()
        spent = select(
            literal(user_id, Message.user_id.type),
            literal(window),
            func.coalesce(func.sum(Message.input_tokens + Message.output_tokens), 0) + api_tokens,
            func.coalesce(func.sum(Message.cost_usd), 0.0) + api_cost,
        ).where(
            Message.user_id == user_id,
            Message.input_tokens.is_not(None),
            Message.created_at >= start,
            Message.created_at < end,
        )
        columns = ["user_id", "window", "tokens", "cost_usd"]
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(counters).from_select(columns, spent).on_conflict_do_nothing()
        await self.session.execute(stmt)

    async def take(
        self,
        *,
        user_id: uuid.UUID,
        window: str,
        tokens: int,
        cost_usd: float,
        max_tokens: int | None,
        max_cost_usd: float | None,
    ) -> bool:
        """Add a reservation if it fits under the limits (atomic: two requests at the edge
        cannot both pass); False when it does not fit or the budget is already spent."""
        stmt = update(counters).where(counters.c.user_id == user_id, counters.c.window == window)
        if max_tokens is not None:
            stmt = stmt.where(
                counters.c.tokens < max_tokens, counters.c.tokens + tokens <= max_tokens
            )
        if max_cost_usd is not None:
            stmt = stmt.where(
                counters.c.cost_usd < max_cost_usd, counters.c.cost_usd + cost_usd <= max_cost_usd
            )
        stmt = stmt.values(
            tokens=counters.c.tokens + tokens, cost_usd=counters.c.cost_usd + cost_usd
        )
        result = await self.session.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def adjust(
        self, *, user_id: uuid.UUID, window: str, tokens: int, cost_usd: float
    ) -> None:
        """Settle a reservation: add the difference between what was used and reserved."""
        await self.session.execute(
            update(counters)
            .where(counters.c.user_id == user_id, counters.c.window == window)
            .values(tokens=counters.c.tokens + tokens, cost_usd=counters.c.cost_usd + cost_usd)
        )

    async def get(self, *, user_id: uuid.UUID, window: str) -> tuple[int, float] | None:
        """A counter's tokens and cost, if it exists."""
        row = (
            await self.session.execute(
                select(counters.c.tokens, counters.c.cost_usd).where(
                    counters.c.user_id == user_id, counters.c.window == window
                )
            )
        ).first()
        return (int(row[0]), float(row[1])) if row else None
