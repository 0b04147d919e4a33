"""A socket's outgoing frames: bounded, sent in order by one writer task.

Producers (the answers a socket follows, its sync feed, replies to its frames) `put` frames
and never send themselves, so one client's slow network never blocks another's. While the
buffer holds more than `limit` characters a producer waits for the writer; when the writer
made no room for `stall_s` (the client stopped reading: the server's send buffer is full)
`on_stall` is called and the socket is dropped. The answers go on: they belong to the
generation registry, not to the socket, and can be re-attached from any device.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable


class Outbox:
    """Frames waiting for the socket, and the task that sends them (started with the first)."""

    __slots__ = (
        "_bytes",
        "_frames",
        "_room",
        "_send",
        "_wake",
        "limit",
        "on_failed",
        "on_stall",
        "stall_s",
        "task",
    )

    def __init__(
        self,
        *,
        send: Callable[[str], Awaitable[None]],
        limit: int,
        stall_s: float,
        on_stall: Callable[[], None],
        on_failed: Callable[[], None],
    ) -> None:
        self._send = send
        self.limit = limit
        self.stall_s = stall_s
        self.on_stall = on_stall
        self.on_failed = on_failed
        self._frames: deque[str] | None = None  # made with the first frame (~0.7 KiB)
        self._bytes = 0
        self._wake: asyncio.Future[None] | None = None  # the writer waits for frames
        self._room: asyncio.Future[None] | None = None  # producers wait for room
        self.task: asyncio.Task[None] | None = None

    async def put(self, frames: list[str]) -> bool:
        """Queue frames after the ones already waiting; False once the client was dropped."""
        while self._bytes > self.limit:
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self.stall_s):
                    await asyncio.shield(self._room)
            except TimeoutError:
                self.on_stall()
                return False
        if self._frames is None:  # the first frame: an idle socket holds no writer task
            self._frames = deque(frames)
            self.task = asyncio.create_task(self._write(), name="ws-writer")
            self.task.add_done_callback(self._writer_done)
        else:
            self._frames.extend(frames)
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
        self._bytes += sum(len(frame) for frame in frames)
        return True

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        """The writer stopped on its own: a send failed, the client is gone."""
        if not task.cancelled():
            task.exception()  # retrieved: the connection's own task sees the disconnect
            self.on_failed()

    async def _write(self) -> None:
        frames, loop = self._frames, asyncio.get_running_loop()
        assert frames is not None  # started by the first `put`
        while True:
            if not frames:
                self._wake = loop.create_future()
                await self._wake
                self._wake = None
                continue
            frame = frames.popleft()
            self._bytes -= len(frame)
            room = self._room
            if room is not None and self._bytes <= self.limit:
                self._room = None
                room.set_result(None)
            await self._send(frame)

    async def aclose(self) -> None:
        """Stop the writer (frames still waiting are dropped)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait((self.task,))
