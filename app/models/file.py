"""Uploaded files: the bytes live in storage (app/services/files/storage.py), the facts here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, new_uuid, utcnow


class StoredFile(Base):
    """One upload of one user. Identical bytes are stored once per user (`sha256` unique).

    `storage_key` (and `text_key`, the extracted text stored beside it) are made from ids
    only, never from the client's file name."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", name="uq_files_user_sha256"),
        Index("ix_files_user_created", "user_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # image, document, text
    pages: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(200), nullable=False)
    # documents: the extracted text's key; null for images and for text files (their bytes
    # are their text)
    text_key: Mapped[str | None] = mapped_column(String(200))
    text_chars: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # false for a scanned PDF (pages, no text layer) and for images: tell the model so
    has_text: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    # for the change feed once files sync (numbered like every other synced row)
    change_seq: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"), nullable=False
    )
