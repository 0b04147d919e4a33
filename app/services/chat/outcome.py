"""How a generation ended: the finish reason (and error) its agent loop stops with."""

from __future__ import annotations

import asyncio

from loguru import logger

from app.core.status import MessageStatus
from app.schemas.events import FinishReason


class StopTurn(Exception):
    """Ends the loop with a finish reason or an error."""

    def __init__(self, reason: FinishReason, *, code: str | None = None, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason, self.code, self.message = reason, code, message


def outcome_of(work: asyncio.Task[StopTurn]) -> StopTurn:
    """The loop's outcome: its own, or `internal_error` for anything unexpected."""
    exc = work.exception()
    if exc is None:
        return work.result()
    if isinstance(exc, StopTurn):
        return exc
    logger.opt(exception=exc).error("generation failed")
    return StopTurn(
        FinishReason.ERROR, code="internal_error", message="The answer failed unexpectedly."
    )


INTERRUPTED = StopTurn(
    FinishReason.ERROR,
    code="interrupted",
    message="The server restarted while a tool call awaited approval.",
)
STATUS_OF = {
    FinishReason.CANCELLED: MessageStatus.CANCELLED,
    FinishReason.ERROR: MessageStatus.ERROR,
}
