"""In-process event log of one generation: append is O(1), readers wait on an event.

Bounded: beyond `max_events` the oldest events are dropped; a reader asking for an id that
was dropped gets a `replay_unavailable` error event instead of a silent gap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.services.chat.events import LoggedEvent, encode_frame

DEFAULT_MAX_EVENTS = 100_000


class EventLog:
    """The ordered events of one generation, readable from any event id, live."""

    def __init__(
        self, *, message_id: uuid.UUID, user_id: uuid.UUID, max_events: int = DEFAULT_MAX_EVENTS
    ) -> None:
        self.message_id = message_id
        self.user_id = user_id
        self.max_events = max_events
        self.events: list[LoggedEvent] = []
        self.next_id = 1
        self.finished_at: float | None = None
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        """Whether a terminal event was logged."""
        return self.finished_at is not None

    def append(self, name: str, data: dict[str, Any]) -> LoggedEvent:
        """Log one event and wake every reader."""
        event = LoggedEvent(self.next_id, name, encode_frame(self.next_id, name, data))
        self.next_id += 1
        self.events.append(event)
        if len(self.events) > self.max_events:  # drop the oldest half at once (amortised O(1))
            del self.events[: len(self.events) - self.max_events // 2]
        if event.terminal:
            self.finished_at = time.monotonic()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event

    def _after(self, last_id: int) -> list[LoggedEvent]:
        if not self.events:
            return []
        return self.events[max(last_id + 1 - self.events[0].id, 0) :]

    def first_available_id(self) -> int:
        """The oldest id still held (ids before it were dropped)."""
        return self.events[0].id if self.events else self.next_id

    async def follow(
        self, last_id: int, *, ping_s: float
    ) -> AsyncIterator[list[LoggedEvent] | None]:
        """Yield batches of events after `last_id` until the terminal one; None = keep-alive."""
        if last_id + 1 < self.first_available_id():
            gap = LoggedEvent(
                0,
                "error",
                encode_frame(
                    self.first_available_id() - 1,
                    "error",
                    {"code": "replay_unavailable", "message": "Events were dropped; reload."},
                ),
            )
            yield [gap]
            return
        while True:
            waiter = self._changed
            batch = self._after(last_id)
            if batch:
                yield batch
                if batch[-1].terminal:
                    return
                last_id = batch[-1].id
                continue
            try:
                # a timeout scope, not wait_for: no extra task per wait on the per-token path
                async with asyncio.timeout(ping_s):
                    await waiter.wait()
            except TimeoutError:
                yield None
