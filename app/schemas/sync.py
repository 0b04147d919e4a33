"""Sync and backup bodies: the change feed page, the backup document, the import result."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.schemas.chat import ConversationSummary, StoredMessage
from app.schemas.common import Count, NoBoolOrText, TextOnly, UtcDateTime
from app.schemas.events import FinishReason
from app.schemas.user import Preferences

BACKUP_FORMAT = "vektor-backup"
BACKUP_VERSION = 3  # 2: the tree (parent_id, current_message_id), reasoning, finish_reason;
# 3: message attachments and the files themselves (base64)


class SyncMessage(StoredMessage):
    """A message in the feed, with the conversation it belongs to."""

    conversation_id: uuid.UUID


class Deleted(BaseModel):
    """Something that no longer exists. A deleted conversation takes all its messages along."""

    type: Literal["conversation", "message"]
    id: uuid.UUID


class SyncChanges(BaseModel):
    """`GET /sync/changes`: what changed after `since`, up to `cursor`."""

    conversations: list[ConversationSummary]
    messages: list[SyncMessage]
    preferences: Preferences | None = Field(description="the whole document when it changed")
    deleted: list[Deleted]
    cursor: str = Field(description="pass as `since` next time (opaque)")
    has_more: bool = Field(description="true: ask again at once with the new cursor")


class ImportResult(BaseModel):
    """`POST /sync/import`."""

    conversations_imported: int
    messages_imported: int
    skipped: int = Field(description="conversations and messages that were already there")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackupToolCall(_Strict):
    """A tool call as stored with its assistant message."""

    id: Annotated[str, Field(max_length=200)]
    server: Annotated[str, Field(max_length=200)]
    tool: Annotated[str, Field(max_length=200)]
    qualified_name: Annotated[str, Field(max_length=200)] | None = None
    arguments: dict[str, Any]
    status: Literal["ok", "error", "awaiting_approval"]
    result: str | None
    duration_ms: Count
    round: Count | None = None
    expires_at: Annotated[str, Field(max_length=64)] | None = None  # while it awaits approval


class BackupUsage(_Strict):
    """Token counts and their cost."""

    input_tokens: Count
    output_tokens: Count
    cached_input_tokens: Count = 0
    cost_usd: Annotated[float, Field(ge=0, le=1e9)] | None = None


class BackupAttachment(_Strict):
    """A file as a message keeps it."""

    id: uuid.UUID
    name: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(max_length=100)]
    kind: Literal["image", "document", "text"]
    size: Count | None = None
    pages: Count | None = None
    width: Count | None = None
    height: Count | None = None


class BackupFile(_Strict):
    """A file of the account with its bytes (base64); `data` null when the export left it
    out (over the backup's size cap, or its bytes were missing)."""

    id: uuid.UUID
    name: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(max_length=100)]
    size: Count
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    created_at: UtcDateTime
    data: str | None = None


class BackupMessage(_Strict):
    """One message of a backed-up conversation."""

    id: uuid.UUID
    role: Literal["user", "assistant", "tool"]
    content: Annotated[str, Field(max_length=1_000_000)]
    status: Literal["complete", "streaming", "awaiting_approval", "cancelled", "error"]
    model: Annotated[str, Field(max_length=200)] | None = None
    tool_calls: list[BackupToolCall] | None = None
    tool_call_id: Annotated[str, Field(max_length=200)] | None = None
    usage: BackupUsage | None = None
    created_at: UtcDateTime
    parent_id: uuid.UUID | None = Field(
        default=None, description="version 2: a message of the same conversation, or null"
    )
    reasoning: Annotated[str, Field(max_length=1_000_000)] | None = None
    finish_reason: FinishReason | None = None
    attachments: list[BackupAttachment] | None = Field(
        default=None, description="version 3: a user message's files, as they were sent"
    )


class BackupConversation(_Strict):
    """A conversation with its messages, oldest first."""

    id: uuid.UUID
    title: Annotated[str, Field(max_length=200)] | None = None
    model: Annotated[str, Field(max_length=200)] | None = None
    pinned: StrictBool = False
    archived: StrictBool = False
    created_at: UtcDateTime
    updated_at: UtcDateTime
    message_count: Annotated[int, NoBoolOrText] | None = Field(
        default=None, description="ignored: recounted"
    )
    last_message_preview: Annotated[str, Field(max_length=200)] | None = None
    current_message_id: uuid.UUID | None = Field(
        default=None, description="version 2: the active leaf, one of `messages`"
    )
    messages: list[BackupMessage]


class BackupDocument(_Strict):
    """The whole account as exported by `GET /sync/export`."""

    format: Literal["vektor-backup"]
    version: Annotated[Literal[1, 2, 3], NoBoolOrText] = Field(
        description="3: attachments and files; 2: messages form a tree; 1 (older exports): "
        "one linear branch in order"
    )
    exported_at: Annotated[datetime, TextOnly]
    user: dict[str, Any] | None = Field(default=None, description="informational; not imported")
    preferences: Preferences | None = None
    conversations: list[BackupConversation]
    files: list[BackupFile] = Field(
        default_factory=list, description="version 3: the account's files, bytes in base64"
    )
