"""Usage aggregates over the answers' token and cost columns (alembic 0010) and the usage
rows of stateless /v1 answers (alembic 0011).

Every query is one `GROUP BY` per source, merged here: over the partial indexes on
(user_id, created_at) and (created_at) of the answers (only those with counted tokens,
`input_tokens IS NOT NULL`), and over the same indexes of `api_usage`. The answers' query is
the same as before the second source (its plans are measured in bench/README.md). An answer
counts in the window its generation started in (`created_at`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Date, String, cast, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiUsage, Message

GroupBy = Literal["day", "model", "user"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group's totals."""

    key: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    messages: int


@dataclass(frozen=True, slots=True)
class Source:
    """A table with counted usage: its columns and which of its rows count."""

    user_id: Any
    created_at: Any
    model: Any
    input_tokens: Any
    output_tokens: Any
    cost_usd: Any
    counted: ColumnElement[bool]


ANSWERS = Source(
    Message.user_id, Message.created_at, Message.model, Message.input_tokens,
    Message.output_tokens, Message.cost_usd, Message.input_tokens.is_not(None),
)  # fmt: skip
STATELESS = Source(
    ApiUsage.user_id, ApiUsage.created_at, ApiUsage.model, ApiUsage.input_tokens,
    ApiUsage.output_tokens, ApiUsage.cost_usd, true(),
)  # fmt: skip
SOURCES = (ANSWERS, STATELESS)


def _day(dialect: str, created_at: Any) -> ColumnElement[Any]:
    """`YYYY-MM-DD` (UTC) of an answer's start."""
    if dialect == "postgresql":  # a date (cheap per row); the text is made once per group
        return cast(func.timezone("UTC", created_at), Date)
    return func.substr(cast(created_at, String), 1, 10)  # SQLite stores UTC text


def _merged(rows: list[UsageRow]) -> list[UsageRow]:
    """Rows of the same key (from both sources) added up, ordered by key."""
    totals: dict[str, UsageRow] = {}
    for row in rows:
        seen = totals.get(row.key)
        totals[row.key] = (
            row
            if seen is None
            else UsageRow(
                key=row.key,
                input_tokens=seen.input_tokens + row.input_tokens,
                output_tokens=seen.output_tokens + row.output_tokens,
                cost_usd=round(seen.cost_usd + row.cost_usd, 8),
                messages=seen.messages + row.messages,
            )
        )
    return [totals[key] for key in sorted(totals)]


class UsageRepository:
    """Aggregate reads only; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _key(self, group_by: GroupBy, source: Source) -> Any:
        if group_by == "day":
            return _day(self.session.get_bind().dialect.name, source.created_at)
        if group_by == "model":
            return func.coalesce(source.model, "")
        return source.user_id  # a UUID (SQLite stores it without dashes)

    async def _aggregate(
        self, *, start: datetime, end: datetime, group_by: GroupBy, user_id: uuid.UUID | None
    ) -> list[UsageRow]:
        rows: list[UsageRow] = []
        for source in SOURCES:
            rows += await self._aggregate_one(
                source, start=start, end=end, group_by=group_by, user_id=user_id
            )
        return _merged(rows)

    async def _aggregate_one(
        self,
        source: Source,
        *,
        start: datetime,
        end: datetime,
        group_by: GroupBy,
        user_id: uuid.UUID | None,
    ) -> list[UsageRow]:
        key = self._key(group_by, source).label("key")
        stmt = select(
            key,
            func.coalesce(func.sum(source.input_tokens), 0),
            func.coalesce(func.sum(source.output_tokens), 0),
            func.coalesce(func.sum(source.cost_usd), 0.0),
            func.count(),
        ).where(
            source.counted,
            source.created_at >= start,
            source.created_at < end,
        )
        if user_id is not None:
            stmt = stmt.where(source.user_id == user_id)
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
        out: dict[uuid.UUID, tuple[int, float]] = {}
        for source in SOURCES:
            stmt = (
                select(
                    source.user_id,
                    func.coalesce(func.sum(source.input_tokens + source.output_tokens), 0),
                    func.coalesce(func.sum(source.cost_usd), 0.0),
                )
                .where(source.user_id.in_(user_ids), source.counted, source.created_at >= start)
                .group_by(source.user_id)
            )
            for row in await self.session.execute(stmt):
                tokens, cost = out.get(row[0], (0, 0.0))
                out[row[0]] = (tokens + int(row[1] or 0), round(cost + float(row[2] or 0), 8))
        return out

    async def spent(
        self, *, user_id: uuid.UUID, day_start: datetime, month_start: datetime
    ) -> tuple[int, float]:
        """One user's tokens since `day_start` and cost since `month_start` (a query each
        source)."""
        tokens_today, cost = 0, 0.0
        for source in SOURCES:
            today = source.created_at >= day_start
            tokens = source.input_tokens + source.output_tokens
            stmt = select(
                func.coalesce(func.sum(tokens).filter(today), 0),
                func.coalesce(func.sum(source.cost_usd), 0.0),
            ).where(source.user_id == user_id, source.counted, source.created_at >= month_start)
            row = (await self.session.execute(stmt)).one()
            tokens_today += int(row[0] or 0)
            cost += float(row[1] or 0)
        return tokens_today, round(cost, 8)
