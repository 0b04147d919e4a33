"""Group commit for chat-turn writes: one writer task, one transaction per batch.

When many answers start or end at once, their writes share a transaction instead of
queueing for SQLite's single writer lock (or paying one commit each on PostgreSQL). If a
batch fails, each write is retried alone so one bad write never sinks the others.
Writes carry their user id and a batch runs them sorted by it: every write locks its user's
row first (sync change numbers), so two workers' batches always lock rows in the same order
and cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

WriteOp = Callable[[AsyncSession], Awaitable[None]]
_Item = tuple[str, WriteOp, asyncio.Future[None]]
MAX_BATCH = 200


class TurnWriter:
    """Serialises and batches small write transactions."""

    def __init__(self, *, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

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

    async def submit(self, op: WriteOp, *, user_key: str) -> None:
        """Run `op` (which writes for `user_key`) in a possibly shared transaction; wait for
        the commit."""
        if self._task is None or self._task.done():  # not started (scripts, some tests)
            await self._commit_alone(op)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((user_key, op, future))
        await asyncio.shield(future)

    async def _commit_alone(self, op: WriteOp) -> None:
        async with self.session_factory() as session:
            await op(session)
            await session.commit()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[_Item]) -> None:
        batch.sort(key=lambda item: item[0])  # one lock order for every worker
        try:
            async with self.session_factory() as session:
                for _, op, _ in batch:
                    await op(session)
                await session.commit()
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][2], exc)
                return
            logger.warning("batched write of {} failed ({}); retrying one by one", len(batch), exc)
            for _, op, future in batch:
                try:
                    await self._commit_alone(op)
                except Exception as single:
                    _settle(future, single)
                else:
                    _settle(future, None)
            return
        for _, _, future in batch:
            _settle(future, None)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
