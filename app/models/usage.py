"""Quota counters: per user and window, what has been counted against a quota."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Float, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class UsageCounter(Base):
    """Tokens and cost of one user in one window (`d:YYYY-MM-DD` or `m:YYYY-MM`).

    Seeded from the window's answers when first needed, then changed only by atomic
    conditional updates: a reservation before a generation, its settlement at the end."""

    __tablename__ = "usage_counters"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    window: Mapped[str] = mapped_column(String(16), primary_key=True)
    tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost_usd: Mapped[float] = mapped_column(Float, nullable=False)
