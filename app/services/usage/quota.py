"""Quotas: tokens per UTC day and cost per UTC month, reserved before a generation starts.

A start reserves an estimate (the prompt's tokens and their price) on the user's counters in
one transaction of conditional updates, so two requests at the edge cannot both pass on the
same remaining budget (the database serialises the updates of one row on both backends);
the answer then runs to its end whatever it costs, and the difference between what it used
and the estimate is added afterwards. Without a limit for the user nothing is queried."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.errors import QuotaExceeded
from app.db.base import utcnow
from app.models import User
from app.repositories.usage_counters import UsageCounterRepository
from app.services.llm import ChatMessage, ModelConfig, estimate_tokens
from app.services.usage.windows import Window, day_of, month_of

_SETTLING: set[asyncio.Task[None]] = set()


@dataclass(frozen=True, slots=True)
class Limits:
    """A user's effective limits (None: unlimited)."""

    tokens_per_day: int | None
    cost_per_month: float | None

    @property
    def any(self) -> bool:
        """Whether a limit applies at all."""
        return self.tokens_per_day is not None or self.cost_per_month is not None


def limits_for(user: User, settings: Settings) -> Limits:
    """The user's own limits, else the `QUOTA_*` defaults."""
    tokens = user.quota_tokens_per_day
    cost = user.quota_cost_per_month
    return Limits(
        tokens_per_day=tokens if tokens is not None else settings.quota_tokens_per_day,
        cost_per_month=cost if cost is not None else settings.quota_cost_per_month,
    )


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a started generation took from which counters."""

    user_id: uuid.UUID
    windows: tuple[str, ...]
    tokens: int
    cost_usd: float


class QuotaGuard:
    """Reserves before a generation, settles after it."""

    async def reserve_for(
        self, *, user: User, model: ModelConfig, messages: list[ChatMessage]
    ) -> Reservation | None:
        """`reserve` with the prompt's estimated tokens and their price."""
        if not limits_for(user, self.settings).any:
            return None
        tokens = sum(estimate_tokens(message) for message in messages)
        pricing = model.pricing
        cost = (
            pricing.cost_usd(input_tokens=tokens, output_tokens=0, cached_input_tokens=0)
            if pricing
            else 0.0
        )
        return await self.reserve(user=user, tokens=tokens, cost_usd=cost)

    def __init__(
        self, *, settings: Settings, session_factory: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory

    async def reserve(
        self, *, user: User, tokens: int, cost_usd: float, now: datetime | None = None
    ) -> Reservation | None:
        """Take the estimate from every limited window, or raise 429 `quota_exceeded` (with
        `Retry-After` to the window's reset); None when no limit applies (no query)."""
        limits = limits_for(user, self.settings)
        wanted: list[tuple[Window, int | None, float | None]] = []
        now = now or utcnow()
        if limits.tokens_per_day is not None:
            wanted.append((day_of(now), limits.tokens_per_day, None))
        if limits.cost_per_month is not None:
            wanted.append((month_of(now), None, limits.cost_per_month))
        if not wanted:
            return None
        tokens, cost_usd = max(1, tokens), max(0.0, cost_usd)
        async with self.session_factory() as session:
            repo = UsageCounterRepository(session)
            for window, max_tokens, max_cost in wanted:
                await repo.seed(
                    user_id=user.id, window=window.key, start=window.start, end=window.end
                )
                if not await repo.take(
                    user_id=user.id,
                    window=window.key,
                    tokens=tokens,
                    cost_usd=cost_usd,
                    max_tokens=max_tokens,
                    max_cost_usd=max_cost,
                ):
                    await session.rollback()
                    what = "tokens per day" if max_tokens is not None else "cost per month"
                    raise QuotaExceeded(window.seconds_left(now), f"Usage quota exceeded ({what})")
            await session.commit()
        return Reservation(
            user_id=user.id,
            windows=tuple(window.key for window, _, _ in wanted),
            tokens=tokens,
            cost_usd=cost_usd,
        )

    def settle_later(
        self,
        reservation: Reservation | None,
        usage: dict[str, Any] | None,
        *,
        before: dict[str, Any] | None = None,
    ) -> None:
        """Replace the estimate by what the answer used, in the background (never raises);
        `before`: a continued answer's earlier usage, already counted."""
        if reservation is None:
            return
        if usage and before:
            usage = {
                key: (usage.get(key) or 0) - (before.get(key) or 0)
                if isinstance(usage.get(key), int | float)
                else usage.get(key)
                for key in ("input_tokens", "output_tokens", "cost_usd")
            }
        task = asyncio.create_task(self.settle(reservation, usage))
        _SETTLING.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(_SETTLING.discard)

    async def settle(self, reservation: Reservation, usage: dict[str, Any] | None) -> None:
        """Add used minus reserved to the reservation's counters."""
        usage = usage or {}
        used_tokens = int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)
        cost = usage.get("cost_usd")
        used_cost = float(cost) if isinstance(cost, int | float) else reservation.cost_usd
        try:
            async with self.session_factory() as session:
                repo = UsageCounterRepository(session)
                for window in reservation.windows:
                    await repo.adjust(
                        user_id=reservation.user_id,
                        window=window,
                        tokens=used_tokens - reservation.tokens,
                        cost_usd=used_cost - reservation.cost_usd,
                    )
                await session.commit()
        except Exception as exc:  # the answer is saved; only the counter is off until reset
            logger.opt(exception=exc).error("could not settle a quota reservation")
