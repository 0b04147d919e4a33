"""Whether the database answers: a bounded probe, and one log line per outage.

An outage starts with the first failure that means "unavailable" (`is_unavailable`): one
ERROR line says so, and from then on new PostgreSQL connections are not even tried (the
breaker in `app.db.availability.harden`): every request answers `503 database_unavailable`
at once instead of each waiting `DB_TIMEOUT_SECONDS`. A watcher probes the database with
backoff on its own connection; the first probe that succeeds ends the outage with one INFO
line and wakes whoever waits for it (the retry of unsaved chat turns).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

from app.db.availability import is_unavailable

Probe = Callable[[], Coroutine[Any, Any, None]]
HEALTH_WAIT_S = 1.5  # /health and /health/ready answer within 2 s whatever the database does
WATCH_FIRST_S = 0.25
WATCH_MAX_S = 2.0


class DatabaseHealth:
    """The outage state of one process's database, its watcher and its probe."""

    def __init__(self, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._probe: Probe = _unattached
        self._watch_probe: Probe = _unattached
        self._close: Probe = _nothing
        self.down = False
        self._since = 0.0
        self._watcher: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._recovered: list[Callable[[], None]] = []

    def attach(self, *, probe: Probe, watch_probe: Probe, close: Probe) -> None:
        """The probes (`app.db.session.database_probes`): the engine needs this object first."""
        self._probe, self._watch_probe, self._close = probe, watch_probe, close

    def on_recovered(self, callback: Callable[[], None]) -> None:
        """Call `callback` (synchronously, on the event loop) when an outage ends."""
        self._recovered.append(callback)

    def failed(self, exc: BaseException) -> None:
        """Record a failure; the first of an outage is logged (once) and starts the watcher."""
        if self.down or not is_unavailable(exc):
            return
        self.down = True
        self._since = time.monotonic()
        logger.error(
            "database unavailable ({}): requests answer 503 database_unavailable and unsaved "
            "answers are kept for retry until it is back",
            describe(exc),
        )
        with contextlib.suppress(RuntimeError):  # no running loop (a script): nothing to watch
            if self._watcher is None or self._watcher.done():
                self._watcher = asyncio.get_running_loop().create_task(
                    self._watch(), name="database-watcher"
                )

    async def check(self) -> dict[str, Any]:
        """The `/health` entry: within HEALTH_WAIT_S, whatever the database does."""
        if self.down:
            return {"status": "error", "error": "unavailable"}
        started = time.perf_counter()
        # one probe at a time: a frozen database must not collect a probe per health call
        if self._probing is None or self._probing.done():
            self._probing = asyncio.create_task(self._probe(), name="database-probe")
            self._probing.add_done_callback(self._probe_done)
        probe = self._probing  # a concurrent call may start the next one meanwhile
        done, _ = await asyncio.wait({probe}, timeout=HEALTH_WAIT_S)
        if not done:
            return {"status": "error", "error": "timeout"}
        exc = probe.exception()
        if exc is not None:
            return {"status": "error", "error": type(exc).__name__}
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    def _probe_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failed(task.exception())  # type: ignore[arg-type]

    async def _watch(self) -> None:
        delay = WATCH_FIRST_S
        while self.down:
            await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(self._watch_probe(), timeout=self.timeout_s + 1)
            except Exception:
                delay = min(delay * 2, WATCH_MAX_S)
                continue
            self.down = False
            logger.info("database reachable again after {:.1f} s", time.monotonic() - self._since)
            for callback in self._recovered:
                try:
                    callback()
                except Exception as exc:  # a listener must not keep the outage open
                    logger.warning("database recovery listener failed: {}", exc)

    async def aclose(self) -> None:
        """Stop the watcher and any probe still waiting."""
        for task in (self._watcher, self._probing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await self._close()


async def _unattached() -> None:
    raise RuntimeError("no database probe attached")


async def _nothing() -> None:
    return None


def describe(exc: BaseException) -> str:
    """A one-line reason without statement or parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig if orig is not None else exc).__name__}: {text[0] if text else ''}"[:300]
