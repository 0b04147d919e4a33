"""Bounded polling: wait for a condition the test cannot be told about directly.

Prefer an event or a handshake; poll only what only shows from outside (a process, a file,
a log line, another worker's state). Each helper fails the test with what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float = 10,
    interval_s: float = 0.05,
    what: str = "the condition",
) -> None:
    """Poll `check` (plain or async) until it holds; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(interval_s)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` from synchronous code until true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
