"""`GET /ws`: the frames a client sends (the server's are built in app/api/ws/frames.py).

Every client frame is a JSON object with a `type`; any frame may carry a `ref` (a string
the server echoes in the `error` it answers with, and in the events of a `chat.start`).
`chat.start` is `{type, ref?, ...}` with the body of `POST /chat/stream` (`ChatStreamRequest`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field

from app.schemas.common import InputModel, Text

Ref = Annotated[Text, Field(max_length=128)]


class ClientFrame(InputModel):
    """What every frame has."""

    type: str
    ref: Ref | None = None


class AuthFrame(ClientFrame):
    """The first frame: an access token or a `vk-` API key."""

    type: Literal["auth"]
    token: Annotated[str, Field(min_length=1, max_length=4096)]


class AttachFrame(ClientFrame):
    """Follow an answer from after `last_event_id` (as `GET /chat/stream/{id}`)."""

    type: Literal["chat.attach"]
    message_id: uuid.UUID
    last_event_id: Annotated[int, Field(ge=0)] = 0


class CancelFrame(ClientFrame):
    """Stop a running answer (as `POST /chat/stream/{id}/cancel`)."""

    type: Literal["chat.cancel"]
    message_id: uuid.UUID


class ToolDecisionFrame(ClientFrame):
    """Approve or deny a tool call that waits for the user."""

    type: Literal["tool.approve", "tool.deny"]
    message_id: uuid.UUID
    call_id: Annotated[Text, Field(min_length=1, max_length=256)]
    reason: Annotated[Text, Field(max_length=2000)] | None = None


class SubscribeFrame(ClientFrame):
    """`sync.changed` frames from now on (as `GET /sync/stream`)."""

    type: Literal["sync.subscribe"]
