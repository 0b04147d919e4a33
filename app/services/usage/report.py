"""Usage reports: one aggregate query each, for one user or for the whole instance."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.db.base import utcnow
from app.models import User
from app.repositories.files import FileRepository
from app.repositories.usage import GroupBy, UsageRepository, UsageRow
from app.schemas.usage import MyUsageReport, QuotaStatus, UsageItem, UsageReport
from app.services.usage.quota import limits_for
from app.services.usage.windows import day_of, day_start, month_of

MAX_RANGE_DAYS = 366
CSV_COLUMNS = ("key", "input_tokens", "output_tokens", "cost_usd", "messages")


def date_range(start: date | None, end: date | None, *, now: datetime) -> tuple[datetime, datetime]:
    """`[from, to]` inclusive days as [start, end) instants; default: this month so far."""
    first = start or month_of(now).start.date()
    last = end or now.date()
    if last < first:
        raise InvalidInput("`to` is before `from`")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidInput(f"at most {MAX_RANGE_DAYS} days at once")
    return day_start(first), day_start(last) + timedelta(days=1)


def _report(rows: list[UsageRow]) -> UsageReport:
    items = [
        UsageItem(
            key=row.key,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost_usd=row.cost_usd,
            messages=row.messages,
        )
        for row in rows
    ]
    totals = UsageItem(
        key="total",
        input_tokens=sum(i.input_tokens for i in items),
        output_tokens=sum(i.output_tokens for i in items),
        cost_usd=round(sum(i.cost_usd for i in items), 8),
        messages=sum(i.messages for i in items),
    )
    return UsageReport(items=items, totals=totals)


def as_csv(report: UsageReport) -> str:
    """The report's groups and a `total` row, one CSV line each (header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in [*report.items, report.totals]:
        writer.writerow([getattr(item, name) for name in CSV_COLUMNS])
    return out.getvalue()


class UsageService:
    """Read-only use cases over the usage columns (no commit: nothing is written)."""

    def __init__(self, *, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.usage = UsageRepository(session)
        self.files = FileRepository(session)

    async def mine(
        self, *, user: User, start: date | None, end: date | None, group_by: GroupBy
    ) -> MyUsageReport:
        """The user's usage in the range, grouped by day or model, and their quota."""
        now = utcnow()
        first, after = date_range(start, end, now=now)
        rows = await self.usage.for_user(user_id=user.id, start=first, end=after, group_by=group_by)
        tokens_today, cost_month = await self.usage.spent(
            user_id=user.id, day_start=day_of(now).start, month_start=month_of(now).start
        )
        limits = limits_for(user, self.settings)
        report = _report(rows)
        return MyUsageReport(
            items=report.items,
            totals=report.totals,
            quota=QuotaStatus(
                tokens_per_day=limits.tokens_per_day,
                tokens_today=tokens_today,
                cost_per_month=limits.cost_per_month,
                cost_this_month=cost_month,
            ),
            storage_bytes=await self.files.storage_bytes(user_id=user.id),
            storage_quota_bytes=self.settings.user_storage_quota_bytes,
        )

    async def instance(
        self, *, start: date | None, end: date | None, group_by: GroupBy
    ) -> UsageReport:
        """Every account's usage in the range, grouped by user, model or day (admins)."""
        first, after = date_range(start, end, now=utcnow())
        return _report(await self.usage.for_instance(start=first, end=after, group_by=group_by))
