"""Group commit for chat-turn writes: one writer task, one transaction per batch.

When many answers start or end at once, their writes share a transaction instead of
queueing for SQLite's single writer lock (or paying one commit each on PostgreSQL). A batch
is one unit of work on `DirectDb` (on a SQLite file: inline when small, else one thread hop). If
a batch fails, each write is retried alone so one bad write never sinks the others.
Writes carry their user id and a batch runs them sorted by it: every write locks its user's
row first (sync change numbers), so two workers' batches always lock rows in the same order
and cannot deadlock. A write is a unit from app/repositories (it builds and writes its rows);
what it notes reaches the sync hub through `DirectDb`'s commit notifier after the commit.
A lone write with a one-statement form (`single`) runs as that statement when `DirectDb`
has a faster path for it (PostgreSQL: one round trip in autocommit).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from loguru import logger
from sqlalchemy import Connection

from app.db.direct import DirectDb, SingleStatement

WriteOp = Callable[[Connection], object]


@runtime_checkable
class HasSingle(Protocol):
    """A write that can also run as one statement (app.repositories.turns.TurnUnit)."""

    def single(self) -> SingleStatement | None:
        """The one-statement form of this write, or None if it has none."""


_Item = tuple[uuid.UUID, WriteOp, asyncio.Future[None]]
MAX_BATCH = 200
# On a SQLite file a write can run inline on the event loop (~0.3-0.5 ms each): at most
# INLINE_BUDGET writes per INLINE_WINDOW_S; beyond that (a burst of answers starting or
# ending together) writes go to the write thread, so the loop keeps relaying tokens.
INLINE_BUDGET = 4
INLINE_WINDOW_S = 0.01


class TurnWriter:
    """Serialises and batches small write transactions."""

    def __init__(
        self,
        *,
        db: DirectDb,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self._clock = clock  # the inline budget's time (tests pass a fake one)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a write (batch or direct) is in progress
        self._window_start = 0.0
        self._window_used = 0

    async def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="turn-writer")

    async def aclose(self) -> None:
        """Finish queued writes, then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=10)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, op: WriteOp, *, user_id: uuid.UUID) -> None:
        """Run `op` (which writes for `user_id`) in a possibly shared transaction; wait for
        the commit. An `op` with a one-statement form (`HasSingle`) may run as that."""
        if self._task is None or self._task.done():  # not started (scripts, some tests)
            await self.db.write(op)
            return
        if not self._busy and self._queue.empty():  # nothing to batch with: write now?
            single = op.single() if self.db.runs_single and isinstance(op, HasSingle) else None
            if single is not None:  # PostgreSQL: one round trip, not a transaction later
                await self._alone(self.db.write_single(single))
                return
            if self._inline_budget(1):
                # SQLite runs it inline: no hand-off to the writer task and back (two loop
                # iterations on a chat's first token)
                await self._alone(self.db.write(op))
                return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((user_id, op, future))
        # a cancelled caller cancels only its wait: the write is in the batch regardless
        await future

    async def _alone(self, write: Awaitable[object]) -> None:
        """Run one write outside the writer task; later writes batch up meanwhile."""
        self._busy = True
        try:
            await write
        finally:
            self._busy = False

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._busy = True
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                self._busy = False
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Item]) -> None:
        batch.sort(key=lambda item: item[0].hex)  # one lock order for every worker
        ops = [op for _, op, _ in batch]
        try:
            await self.db.write(
                lambda conn: [op(conn) for op in ops], inline=self._inline_budget(len(ops))
            )
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][2], exc)
                return
            logger.warning("batched write of {} failed ({}); retrying one by one", len(batch), exc)
            for _, op, future in batch:
                try:
                    await self.db.write(op)
                except Exception as alone:
                    _settle(future, alone)
                else:
                    _settle(future, None)
            return
        for _, _, future in batch:
            _settle(future, None)

    def _inline_budget(self, writes: int) -> bool:
        """Whether `writes` more writes may run inline now (and count them if so)."""
        if not self.db.inline:
            return False
        now = self._clock()
        if now - self._window_start > INLINE_WINDOW_S:
            self._window_start, self._window_used = now, 0
        if self._window_used + writes > INLINE_BUDGET:
            return False
        self._window_used += writes
        return True


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
