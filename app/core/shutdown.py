"""Shutdown ends every open stream with an event, before its connection closes.

On SIGTERM/SIGINT uvicorn (alone or as gunicorn's worker) stops accepting connections and
waits up to its graceful timeout for the open responses, then cancels them: a stream cut
that way ends without a terminal event, and a client cannot tell it from a network fault.
The lifespan chains a handler to the server's own signal handlers, so the app learns of the
shutdown at once and, before uvicorn's timeout, ends each stream itself:
- streams that carry no answer (`/sync/stream`) at once (the client reconnects elsewhere);
- chat streams when their answer ends, or `SHUTDOWN_GRACE_SECONDS` minus a margin after
  the signal (the answer then goes on elsewhere or is cancelled and saved).
Either way the last thing written is the stream's terminal frame (`error` `server_shutdown`),
then the response completes normally and uvicorn closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

MAX_MARGIN_S = 1.0  # chat streams end this long (at most half the grace) before the timeout
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _OpenStream:
    """One guarded stream: its task, whether it waits for its body, whether to stop it."""

    __slots__ = ("at_once", "cancelled", "stopping", "task", "waiting")

    def __init__(self, *, at_once: bool) -> None:
        self.at_once = at_once
        self.task = asyncio.current_task()
        self.waiting = False  # suspended in the body's `__anext__` (only there)
        self.stopping = False
        self.cancelled = False  # we cancelled the task to interrupt that wait

    def stop(self) -> None:
        """End the stream: interrupt its wait for the next chunk now, or stop before it."""
        self.stopping = True
        if self.waiting and not self.cancelled and self.task is not None:
            self.cancelled = True
            self.task.cancel()

    async def next_chunk(self, chunks: AsyncIterator[bytes]) -> bytes | None:
        """The body's next chunk; None when it ended or `stop` interrupted it."""
        self.waiting = True
        try:
            return await anext(chunks)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if not self.cancelled:
                raise
            return None
        finally:
            self.waiting = False
            if self.cancelled and self.task is not None:
                self.cancelled = False
                if self.task.uncancel() > 0:  # someone else cancelled the task too
                    raise asyncio.CancelledError


class StreamShutdown:
    """Knows when shutdown began and ends the guarded streams in time."""

    def __init__(self, *, grace_s: float = 30.0) -> None:
        self.grace_s = grace_s
        self.started_at: float | None = None
        self.closing = False  # every stream ends now
        self._open: set[_OpenStream] = set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def margin_s(self) -> float:
        """How long before the end of the grace chat streams are ended."""
        return min(MAX_MARGIN_S, self.grace_s / 2)

    def begin(self) -> None:
        """Shutdown started: end the streams without an answer now, the others later."""
        if self.started_at is not None:
            return
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        for stream in list(self._open):
            if stream.at_once:
                stream.stop()
        self._timer = loop.call_later(self.grace_s - self.margin_s, self.close_all)

    def close_all(self) -> None:
        """End every open stream now."""
        self.closing = True
        for stream in list(self._open):
            stream.stop()

    def remaining(self) -> float:
        """Seconds left of the grace (0 when shutdown has not begun by a signal)."""
        if self.started_at is None:
            return 0.0
        elapsed = asyncio.get_running_loop().time() - self.started_at
        return max(self.grace_s - elapsed, 0.0)

    async def guard(
        self,
        body: AsyncIterator[bytes],
        *,
        terminal: Callable[[bytes | None], bytes],
        at_once: bool = False,
    ) -> AsyncIterator[bytes]:
        """`body`, ended with `terminal(last chunk)` when shutdown stops it.

        Stopping cancels the stream's task only while it waits for the body's next chunk (a
        chunk being sent is never cut) and takes that cancellation back at once (`uncancel`),
        as `asyncio.timeout` does; on the token path this costs two attribute writes."""
        stream = _OpenStream(at_once=at_once)
        stream.stopping = self.closing or (at_once and self.started_at is not None)
        self._open.add(stream)
        chunks = aiter(body)
        last: bytes | None = None
        try:
            while not stream.stopping:
                chunk = await stream.next_chunk(chunks)
                if chunk is None:
                    if not stream.stopping:
                        return  # the body ended by itself
                    break
                last = chunk
                yield chunk
            yield terminal(last)
        finally:
            self._open.discard(stream)
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    def install_signal_handlers(self) -> Callable[[], None]:
        """Chain `begin` to the server's SIGTERM/SIGINT handlers; returns the undo.

        Only handlers that are Python callables are chained (the server's); a default or
        ignored disposition is left alone, and outside the main thread nothing changes."""
        loop = asyncio.get_running_loop()
        installed: dict[int, tuple[Any, Any]] = {}
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def chained(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self.begin)
                previous(signum, frame)

            try:
                signal.signal(sig, chained)
            except ValueError:  # not the main thread
                return lambda: None
            installed[sig] = (chained, previous)

        def restore() -> None:
            for sig, (chained, previous) in installed.items():
                if signal.getsignal(sig) is chained:
                    signal.signal(sig, previous)

        return restore
