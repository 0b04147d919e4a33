"""Quota windows (UTC): the day and the month a moment falls in, and when they end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Window:
    """A quota window: its counter key (`d:YYYY-MM-DD`, `m:YYYY-MM`) and its bounds."""

    key: str
    start: datetime
    end: datetime

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the window resets (at least 1): the `Retry-After`."""
        return max(1, int((self.end - now).total_seconds() + 0.999))


def day_of(now: datetime) -> Window:
    """The UTC day `now` falls in."""
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return Window(f"d:{start:%Y-%m-%d}", start, start + timedelta(days=1))


def month_of(now: datetime) -> Window:
    """The UTC month `now` falls in."""
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return Window(f"m:{start:%Y-%m}", start, end)


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
