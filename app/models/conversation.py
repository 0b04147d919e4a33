"""Conversations and their messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.status import MessageStatus
from app.db.base import Base, UTCDateTime, new_uuid, utcnow


class Conversation(Base):
    """A chat thread. `message_count` and `last_message_preview` are kept denormalised so the
    history list is one indexed query without joins."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_updated", "user_id", "updated_at", "id"),
        Index("ix_conversations_user_change_seq", "user_id", "change_seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    message_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_message_preview: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    change_seq: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"), nullable=False
    )
    # the leaf of the active branch (no foreign key: see alembic 0005)
    current_message_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class Message(Base):
    """One message. Assistant messages carry their tool calls (with results) as JSON.

    Messages form a tree through `parent_id` (null for a conversation's first message); the
    application keeps it whole (no foreign key: see alembic 0005)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_user", "user_id"),
        Index("ix_messages_user_change_seq", "user_id", "change_seq"),
        Index("ix_messages_parent", "parent_id"),
        # usage aggregates (alembic 0010): only answers with counted tokens are indexed
        Index(
            "ix_messages_usage_user_created",
            "user_id",
            "created_at",
            postgresql_where=text("input_tokens IS NOT NULL"),
            sqlite_where=text("input_tokens IS NOT NULL"),
        ),
        Index(
            "ix_messages_usage_created",
            "created_at",
            postgresql_where=text("input_tokens IS NOT NULL"),
            sqlite_where=text("input_tokens IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, default="", nullable=False)
    status: Mapped[str] = mapped_column(String(32), default=MessageStatus.COMPLETE, nullable=False)
    model: Mapped[str | None] = mapped_column(String(200))
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    tool_call_id: Mapped[str | None] = mapped_column(String(200))
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # `usage` again as queryable columns, written by the same finish write (alembic 0010)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_input_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    # the highest SSE event id sent for this answer: a rebuilt stream continues above it
    last_event_id: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0"), nullable=False
    )
    # why an answer ended with status "error" (upstream_timeout, interrupted, ...)
    error_code: Mapped[str | None] = mapped_column(String(64))
    # the model's visible reasoning (never part of `content`, never shown to another model)
    reasoning: Mapped[str | None] = mapped_column(Text)
    # why an answer ended: stop, length, cancelled, tool_limit, error (`continue` needs it)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    # user messages: the files sent with it, as they were then (`{id, name, content_type,
    # kind, ...}`, in order); null when none. A snapshot, so a deleted file still has a name
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    change_seq: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0"), nullable=False
    )
