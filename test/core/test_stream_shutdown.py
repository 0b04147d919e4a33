"""`StreamShutdown.guard`: shutdown ends a stream with its terminal frame, interrupting a
wait for the next chunk but never a chunk, and leaves the task's cancel state as it was."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from app.core.shutdown import StreamShutdown


async def _body(queue: asyncio.Queue[bytes], closed: list[bool]) -> AsyncIterator[bytes]:
    try:
        while True:
            yield await queue.get()
    finally:
        closed.append(True)


def _terminal(last: bytes | None) -> bytes:
    return b"END after " + (last or b"nothing")


async def _collect(stream: AsyncIterator[bytes], out: list[bytes]) -> int:
    async for chunk in stream:
        out.append(chunk)
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


async def test_a_waiting_stream_is_ended_with_its_terminal_frame_at_the_deadline() -> None:
    shutdown = StreamShutdown(grace_s=0.2)  # margin 0.1 s: chat streams end 0.1 s in
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    closed: list[bool] = []
    out: list[bytes] = []
    reader = asyncio.create_task(
        _collect(shutdown.guard(_body(queue, closed), terminal=_terminal), out)
    )
    queue.put_nowait(b"one")
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    began = loop.time()
    shutdown.begin()
    queue.put_nowait(b"two")  # still delivered: the answer goes on until the deadline
    assert await asyncio.wait_for(reader, 1) == 0  # the task's cancel request was taken back
    assert 0.08 < loop.time() - began < 0.5
    assert out == [b"one", b"two", b"END after two"]
    assert closed == [True]


async def test_streams_without_an_answer_end_at_once_and_new_ones_never_start() -> None:
    shutdown = StreamShutdown(grace_s=30)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    out: list[bytes] = []
    body = shutdown.guard(_body(queue, []), terminal=_terminal, at_once=True)
    reader = asyncio.create_task(_collect(body, out))
    await asyncio.sleep(0.01)
    shutdown.begin()
    await asyncio.wait_for(reader, 1)
    assert out == [b"END after nothing"]
    late: list[bytes] = []
    await _collect(shutdown.guard(_body(queue, []), terminal=_terminal, at_once=True), late)
    assert late == [b"END after nothing"]


async def test_a_cancel_from_elsewhere_still_cancels_the_stream() -> None:
    shutdown = StreamShutdown(grace_s=0)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    reader = asyncio.create_task(_collect(shutdown.guard(_body(queue, []), terminal=_terminal), []))
    await asyncio.sleep(0.01)
    shutdown.close_all()  # our cancel request ...
    reader.cancel()  # ... and the server's, in the same loop iteration
    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_sigterm_reaches_the_server_handler_and_begins_the_shutdown() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        shutdown = StreamShutdown(grace_s=30)
        restore = shutdown.install_signal_handlers()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert seen == [signal.SIGTERM] and shutdown.started_at is not None
        restore()
        assert signal.getsignal(signal.SIGTERM) is not None
        os.kill(os.getpid(), signal.SIGTERM)  # the server's handler alone again
        await asyncio.sleep(0.05)
        assert seen == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
