"""Tombstones: what the change feed reports for rows that no longer exist."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class SyncTombstone(Base):
    """A deleted conversation (its messages went with it), at the change number of the delete.

    Keyed by `(user_id, change_seq)`: change numbers are unique per user, and that key is
    also the index the feed reads. Pruned after the retention period; the user's
    `sync_floor_seq` then records the newest pruned number, so an older cursor is refused.
    """

    __tablename__ = "sync_tombstones"
    __table_args__ = (Index("ix_sync_tombstones_deleted_at", "deleted_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    change_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entity_type: Mapped[str] = mapped_column(String(16), nullable=False)
    entity_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
