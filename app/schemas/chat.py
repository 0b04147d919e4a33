"""Chat request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool

from app.schemas.common import InputModel, ReadModel, Text

MAX_MESSAGE_CHARS = 32000


class ChatStreamRequest(InputModel):
    """`POST /chat/stream`."""

    message: Annotated[Text, Field(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    conversation_id: uuid.UUID | None = None
    model: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    system_prompt: Annotated[Text, Field(max_length=MAX_MESSAGE_CHARS)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    tools: bool | list[Annotated[Text, Field(max_length=200)]] = True


class ModelRead(BaseModel):
    """A model a client may pick."""

    id: str
    name: str
    provider: str
    context_window: int
    supports_tools: bool
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
    status: Literal["ok", "error"]
    result: str | None
    duration_ms: int


class UsageRead(BaseModel):
    """Token counts of an answer."""

    input_tokens: int
    output_tokens: int


class MessageRead(ReadModel):
    """One message."""

    id: uuid.UUID
    role: Literal["user", "assistant", "tool"]
    content: str
    status: Literal["complete", "streaming", "cancelled", "error"]
    model: str | None
    tool_calls: list[ToolCallRead] | None
    tool_call_id: str | None
    usage: UsageRead | None
    reasoning: str | None = None
    created_at: datetime


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


class ConversationRead(ConversationSummary):
    """A conversation with its messages, oldest first."""

    messages: list[MessageRead]


class ConversationUpdate(InputModel):
    """`PATCH /chat/history/{id}`."""

    title: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    pinned: StrictBool | None = None
    archived: StrictBool | None = None


class ConversationPage(BaseModel):
    """A page of the history."""

    items: list[ConversationSummary]
    next_cursor: str | None = None
