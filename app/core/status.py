"""How a message stands: stored in `messages.status` and sent as it is in JSON."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """A message's status; the values are the stored strings (a `StrEnum` equals them)."""

    COMPLETE = "complete"
    STREAMING = "streaming"  # an answer still being generated (or whose worker died)
    CANCELLED = "cancelled"
    ERROR = "error"
    AWAITING_APPROVAL = "awaiting_approval"  # paused until the user approves a tool call


# an answer whose generation has not ended (or whose worker died before it could end it)
IN_PROGRESS = (MessageStatus.STREAMING, MessageStatus.AWAITING_APPROVAL)
