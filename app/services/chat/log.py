"""In-process event log of one generation: append is O(1), readers wait on an event.

Bounded: beyond `max_events` the oldest events are dropped. The log also keeps the message
its content events add up to (text parts and tool calls: a list append per token), so a
reader asking for an id that was dropped, or for one the log never sent, gets a `snapshot`
of it and goes on from there: never a silent gap.

Only the encoded frames are kept (ids are implied by position): bytes are not tracked by
the garbage collector, so thousands of retained events add nothing to a collection pass.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from app.schemas.events import CONTENT_EVENTS, ChatEventData, ChatEventName
from app.services.chat.events import LoggedEvent, encode_frame
from app.services.chat.snapshot import SnapshotState

DEFAULT_MAX_EVENTS = 100_000


class EventLog:
    """The ordered events of one generation, readable from any event id, live."""

    def __init__(
        self,
        *,
        message_id: uuid.UUID,
        user_id: uuid.UUID,
        max_events: int = DEFAULT_MAX_EVENTS,
        first_id: int = 1,
    ) -> None:
        self.message_id = message_id
        self.user_id = user_id
        self.max_events = max_events
        self.frames: list[bytes] = []
        self.first_id = first_id  # the id of frames[0]
        self.next_id = first_id
        self.finished_at: float | None = None
        self.state = SnapshotState()  # what the content events so far add up to
        self.content_id = 0  # the id of the newest content event
        self._waiters: list[asyncio.Future[None]] = []  # readers waiting for the next event

    @property
    def done(self) -> bool:
        """Whether a terminal event was logged."""
        return self.finished_at is not None

    def append(self, name: ChatEventName, data: ChatEventData) -> LoggedEvent:
        """Log one event and wake every reader."""
        event = LoggedEvent(self.next_id, name, encode_frame(self.next_id, name, data))
        self.next_id += 1
        self.frames.append(event.frame)
        if name in CONTENT_EVENTS:
            self.state.apply(name, data)
            self.content_id = event.id
        if len(self.frames) > self.max_events:  # drop the oldest half at once (amortised O(1))
            dropped = len(self.frames) - self.max_events // 2
            del self.frames[:dropped]
            self.first_id += dropped
        if event.terminal:
            self.finished_at = time.monotonic()
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():  # a reader that left meanwhile
                    waiter.set_result(None)
        return event

    def first_available_id(self) -> int:
        """The oldest id still held (ids before it were dropped)."""
        return self.first_id

    def resync(self) -> tuple[bytes, int]:
        """A snapshot of the message and the id it stands for (read on after that id).

        Running: it stands for the newest event. Finished: for the newest content event, so
        the outcome (usage, title, done/error) still follows from the log."""
        point = max(self.content_id, self.first_id - 1) if self.done else self.next_id - 1
        return self.state.frame(point, self.message_id), point

    async def follow(self, last_id: int, *, ping_s: float) -> AsyncIterator[list[bytes] | None]:
        """Yield batches of frames after `last_id` until the terminal one; None = keep-alive,
        due `ping_s` after the reader last got something.

        On the per-token path a wait is one future: no timeout scope per wait. One timer per
        reader is armed for when a keep-alive would be due; when it fires after frames went
        out meanwhile, it is armed again from the last of them."""
        if last_id + 1 < self.first_id or last_id >= self.next_id:  # dropped, or never sent
            snapshot, last_id = self.resync()
            yield [snapshot]
        loop = asyncio.get_running_loop()
        sent_at = loop.time()  # when this reader last got something
        armed_for = -1.0  # the `sent_at` the timer was armed from
        timer: asyncio.TimerHandle | None = None
        waiter: asyncio.Future[None] | None = None

        def due() -> None:
            nonlocal timer
            timer = None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
                self._waiters.remove(waiter)  # not left behind by an idle log's pings

        try:
            while True:
                batch = self.frames[max(last_id + 1 - self.first_id, 0) :]
                if batch:
                    yield batch
                    last_id += len(batch)
                    if self.done and last_id >= self.next_id - 1:  # the terminal event was sent
                        return
                    sent_at = loop.time()
                    continue
                if self.done:  # asked from after the terminal event: nothing more will come
                    return
                if timer is None:
                    if armed_for == sent_at:  # it fired and nothing went out since: ping
                        yield None
                        sent_at = loop.time()
                        continue
                    armed_for = sent_at
                    timer = loop.call_at(sent_at + ping_s, due)
                waiter = loop.create_future()
                self._waiters.append(waiter)
                await waiter
                waiter = None
        finally:
            if timer is not None:
                timer.cancel()
