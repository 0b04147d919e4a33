"""Usage aggregates over the answers' token and cost columns (alembic 0010).

Every query is one `GROUP BY` over the partial indexes on (user_id, created_at) and
(created_at): only answers with counted tokens (`input_tokens IS NOT NULL`) are read. An
answer counts in the window its generation started in (`created_at`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Date, String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Message

GroupBy = Literal["day", "model", "user"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group's totals."""

    key: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    messages: int


def _day(dialect: str) -> ColumnElement[Any]:
    """`YYYY-MM-DD` (UTC) of an answer's start."""
    if dialect == "postgresql":  # a date (cheap per row); the text is made once per group
        return cast(func.timezone("UTC", Message.created_at), Date)
    return func.substr(cast(Message.created_at, String), 1, 10)  # SQLite stores UTC text


class UsageRepository:
    """Aggregate reads only; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _key(self, group_by: GroupBy) -> Any:
        if group_by == "day":
            return _day(self.session.get_bind().dialect.name)
        if group_by == "model":
            return func.coalesce(Message.model, "")
        return Message.user_id  # a UUID (SQLite stores it without dashes)

    async def _aggregate(
        self, *, start: datetime, end: datetime, group_by: GroupBy, user_id: uuid.UUID | None
    ) -> list[UsageRow]:
        key = self._key(group_by).label("key")
        stmt = select(
            key,
            func.coalesce(func.sum(Message.input_tokens), 0),
            func.coalesce(func.sum(Message.output_tokens), 0),
            func.coalesce(func.sum(Message.cost_usd), 0.0),
            func.count(),
        ).where(
            Message.input_tokens.is_not(None),
            Message.created_at >= start,
            Message.created_at < end,
        )
        if user_id is not None:
            stmt = stmt.where(Message.user_id == user_id)
        rows = await self.session.execute(stmt.group_by(key).order_by(key))
        return [
            UsageRow(
                key=str(row[0])[:10] if group_by == "day" else str(row[0]),
                input_tokens=int(row[1]),
                output_tokens=int(row[2]),
                cost_usd=round(float(row[3]), 8),
                messages=int(row[4]),
            )
            for row in rows
        ]

    async def for_user(
        self, *, user_id: uuid.UUID, start: datetime, end: datetime, group_by: GroupBy
    ) -> list[UsageRow]:
        """One user's answers in [start, end), grouped by day or model."""
        return await self._aggregate(start=start, end=end, group_by=group_by, user_id=user_id)

    async def for_instance(
        self, *, start: datetime, end: datetime, group_by: GroupBy
    ) -> list[UsageRow]:
        """Every account's answers in [start, end) (admin routes only)."""
        return await self._aggregate(start=start, end=end, group_by=group_by, user_id=None)

    async def by_users(
        self, *, user_ids: list[uuid.UUID], start: datetime
    ) -> dict[uuid.UUID, tuple[int, float]]:
        """Tokens and cost since `start` of each of these users (an admin's page of users)."""
        if not user_ids:
            return {}
        stmt = (
            select(
                Message.user_id,
                func.coalesce(func.sum(Message.input_tokens + Message.output_tokens), 0),
                func.coalesce(func.sum(Message.cost_usd), 0.0),
            )
            .where(
                Message.user_id.in_(user_ids),
                Message.input_tokens.is_not(None),
                Message.created_at >= start,
            )
            .group_by(Message.user_id)
        )
        rows = await self.session.execute(stmt)
        return {row[0]: (int(row[1] or 0), round(float(row[2] or 0), 8)) for row in rows}

    async def spent(
        self, *, user_id: uuid.UUID, day_start: datetime, month_start: datetime
    ) -> tuple[int, float]:
        """One user's tokens since `day_start` and cost since `month_start` (one query)."""
        today = Message.created_at >= day_start
        tokens = Message.input_tokens + Message.output_tokens
        stmt = select(
            func.coalesce(func.sum(tokens).filter(today), 0),
            func.coalesce(func.sum(Message.cost_usd), 0.0),
        ).where(
            Message.user_id == user_id,
            Message.input_tokens.is_not(None),
            Message.created_at >= month_start,
        )
        row = (await self.session.execute(stmt)).one()
        return int(row[0] or 0), round(float(row[1] or 0), 8)
