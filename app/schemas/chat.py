"""Chat request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

from app.schemas.common import InputModel, ReadModel, Text
from app.schemas.files import AttachmentRead

MAX_MESSAGE_CHARS = 32000
MAX_ATTACHMENTS = 10


class ChatStreamRequest(InputModel):
    """`POST /chat/stream`."""

    message: Annotated[Text, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    conversation_id: uuid.UUID | None = None
    model: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    system_prompt: Annotated[Text, Field(max_length=MAX_MESSAGE_CHARS)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    tools: bool | list[Annotated[Text, Field(max_length=200)]] = True
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="the message to answer below (default: the active leaf); an older one "
        "forks a new branch. Without `conversation_id`, its conversation is continued",
    )
    attachments: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="ids of the user's files sent with the message (images, documents, text)",
    )


class TurnOptions(InputModel):
    """`POST /chat/messages/{id}/regenerate` and `/continue`: how to answer (all optional)."""

    model: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    tools: bool | list[Annotated[Text, Field(max_length=200)]] = True


class EditRequest(TurnOptions):
    """`POST /chat/messages/{id}/edit`: the new text of a user message, then its answer."""

    content: Annotated[Text, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    attachments: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_ATTACHMENTS,
        description="the new message's files; omitted: those of the edited message",
    )


class ToolDecision(InputModel):
    """`POST /chat/stream/{id}/tools/{call_id}/approve` or `/deny` (the body is optional)."""

    reason: Annotated[Text, Field(max_length=2000)] | None = Field(
        default=None, description="why (a denial's reason reaches the model)"
    )


# a tool call's id as the model gave it (`tool_call` and `tool_approval` events)
ToolCallId = Annotated[Text, Field(min_length=1, max_length=200)]


class ModelRead(BaseModel):
    """A model a client may pick."""

    id: str
    name: str
    provider: str
    context_window: int
    supports_tools: bool
    supports_vision: bool = False
    available: bool
    default: bool


class ModelList(BaseModel):
    """`GET /chat/models`."""

    items: list[ModelRead]


class ToolCallRead(BaseModel):
    """A tool call made while answering, with its result."""

    id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    # `awaiting_approval`: not run yet, the user is asked (`expires_at`: when it is denied)
    status: Literal["ok", "error", "awaiting_approval"]
    result: str | None
    duration_ms: int
    expires_at: datetime | None = Field(default=None, exclude_if=lambda value: value is None)


class UsageRead(BaseModel):
    """Token counts of an answer and what they cost (null: the model has no pricing)."""

    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cost_usd: float | None = None


class StoredMessage(ReadModel):
    """One message as stored (the sync feed's messages; `MessageRead` adds its siblings)."""

    id: uuid.UUID
    parent_id: uuid.UUID | None = Field(description="the message it answers or follows")
    role: Literal["user", "assistant", "tool"]
    content: str
    reasoning: str | None
    status: Literal["complete", "streaming", "awaiting_approval", "cancelled", "error"]
    model: str | None
    tool_calls: list[ToolCallRead] | None
    tool_call_id: str | None
    usage: UsageRead | None
    attachments: list[AttachmentRead] = Field(
        default_factory=list, description="user messages: the files sent with it, in order"
    )
    created_at: datetime

    @field_validator("attachments", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        """Stored as null when a message has none."""
        return [] if value is None else value


class MessageRead(StoredMessage):
    """One message of a conversation, with its place in the tree."""

    sibling_ids: list[uuid.UUID] = Field(
        description="every message with the same parent, oldest first, itself included"
    )


class ConversationSummary(ReadModel):
    """A conversation in the history list."""

    id: uuid.UUID
    title: str | None
    model: str | None
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_message_preview: str | None
    current_message_id: uuid.UUID | None


class ConversationRead(ConversationSummary):
    """A conversation with the messages of one branch (or all of them), oldest first."""

    messages: list[MessageRead]


class ConversationUpdate(InputModel):
    """`PATCH /chat/history/{id}`."""

    title: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    pinned: StrictBool | None = None
    archived: StrictBool | None = None


class BranchSwitch(InputModel):
    """`PUT /chat/history/{id}/current`."""

    message_id: uuid.UUID


class ConversationPage(BaseModel):
    """A page of the history."""

    items: list[ConversationSummary]
    next_cursor: str | None = None
