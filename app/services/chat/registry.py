"""Generations in flight: their event logs, tasks, cancel signals and per-user counts.

One process keeps everything in memory. With Redis (`REDIS_URL`) each log is mirrored to a
Redis Stream by a background writer (local readers never wait for Redis), ownership and
state live in a hash, and cancel and catch-up requests travel over pub/sub, so any worker
can re-attach to or cancel a generation running on another. When no log can replay exactly,
a reader gets a snapshot: from the local log, from the owning worker, or (`rebuild`) from
the saved message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from loguru import logger

from app.core.errors import Conflict
from app.core.sse import PING_FRAME
from app.observability import metrics
from app.schemas.events import ChatEventData, ChatEventName
from app.services.chat.approvals import ApprovalDesk
from app.services.chat.events import LoggedEvent
from app.services.chat.log import EventLog
from app.services.chat.redis_mirror import Catchup, RedisMirror, ReplayLost

# a rebuilt stream from the saved message, given the last id the reader holds
Rebuild = Callable[[int], AsyncIterator[bytes]]
MAX_CATCHUPS = 3


class CancelRequest:
    """A request to stop a generation: set once, awaited by its agent as one future.

    Held by every open generation, so it is small: no `asyncio.Event` (a deque and a dict
    each) and no task to wait on it; the future exists only once the agent asks for it."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None
        self._set = False

    def set(self) -> None:
        """Ask the generation to stop (again: no effect)."""
        self._set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def future(self) -> asyncio.Future[None]:
        """Done once a stop is asked for (at once if it already was)."""
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
            if self._set:
                self._future.set_result(None)
        return self._future

    async def wait(self) -> None:
        """Until a stop is asked for."""
        await asyncio.shield(self.future())


@dataclass(slots=True)
class Generation:
    """A running (or recently finished) generation on this worker."""

    log: EventLog
    cancel_requested: CancelRequest = field(default_factory=CancelRequest)
    task: asyncio.Task[None] | None = None
    paused: bool = False  # a tool call waits for approval (not counted as running)
    interrupted: bool = False  # stopped by a shutdown while paused: saved as `interrupted`


class GenerationRegistry:
    """Create, find, follow and cancel generations."""

    def __init__(
        self,
        *,
        retention_s: float = 300.0,
        ping_s: float = 15.0,
        redis_url: str | None = None,
        max_generation_s: float = 600.0,
    ) -> None:
        self.retention_s = retention_s
        self.ping_s = ping_s
        self._local: dict[uuid.UUID, Generation] = {}
        # running (not yet terminal) generations per user: the concurrency cap is checked on
        # every chat request, so it must not scan every retained log
        self._running: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._mirror = (
            RedisMirror(
                redis_url,
                retention_s=retention_s,
                max_generation_s=max_generation_s,
                on_cancel=self._cancel_local,
                on_catchup=self._catchup_local,
                on_decision=lambda data: self.approvals.on_published(data),
            )
            if redis_url
            else None
        )
        self.approvals = ApprovalDesk(
            redis=self._mirror.redis if self._mirror is not None else None,
            keep_s=max_generation_s + retention_s,
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the retention sweeper and, with Redis, the mirror."""
        self._sweeper = asyncio.create_task(self._sweep(), name="generation-sweeper")
        if self._mirror is not None:
            await self._mirror.start()

    async def aclose(self, *, grace_s: float = 30.0) -> None:
        """Let running generations finish for up to `grace_s`, then cancel (they save); one
        paused for approval is stopped at once and saved as `interrupted`."""
        for gen in self._local.values():
            if gen.paused and not gen.log.done:
                gen.interrupted = True
                gen.cancel_requested.set()
        running = [g.task for g in self._local.values() if g.task and not g.task.done()]
        if running:
            logger.info("waiting for {} running generation(s) to finish", len(running))
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for gen in self._local.values():
                if gen.task in pending:
                    gen.cancel_requested.set()
            if pending:
                await asyncio.wait(pending, timeout=10)
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._mirror is not None:
            await self._mirror.aclose()

    def create(
        self, *, message_id: uuid.UUID, user_id: uuid.UUID, first_event_id: int = 1
    ) -> Generation:
        """Register a new generation and its empty log (its first event gets
        `first_event_id`); 409 `generation_running` while one for this message runs here."""
        running = self._local.get(message_id)
        if running is not None and not running.log.done:
            raise Conflict("This answer is still being generated", code="generation_running")
        log = EventLog(message_id=message_id, user_id=user_id, first_id=first_event_id)
        gen = Generation(log=log)
        self._local[message_id] = gen
        self._running.setdefault(user_id, set()).add(message_id)
        if self._mirror is not None:
            self._mirror.register(log)
        return gen

    def started_after(self, message_id: uuid.UUID) -> int:
        """The event id just before a local generation's first (0 for a new answer)."""
        gen = self._local.get(message_id)
        return gen.log.first_id - 1 if gen is not None else 0

    def publish(self, gen: Generation, name: ChatEventName, data: ChatEventData) -> LoggedEvent:
        """Append an event to a generation's log (and queue it for the mirror)."""
        event = gen.log.append(name, data)
        if event.terminal:
            self.set_paused(gen, paused=False)  # (no-op unless it ended while paused)
            self._stopped(gen.log)
        if self._mirror is not None:
            self._mirror.push(gen.log, event)
        return event

    def _stopped(self, log: EventLog) -> None:
        running = self._running.get(log.user_id)
        if running is not None:
            running.discard(log.message_id)
            if not running:
                del self._running[log.user_id]

    def set_paused(self, gen: Generation, *, paused: bool) -> None:
        """A generation waiting for approval does not count towards its user's running
        answers (MAX_CONCURRENT_GENERATIONS); it counts again once it goes on."""
        if gen.paused == paused or (paused and gen.log.done):
            return
        gen.paused = paused
        log = gen.log
        if paused:
            self._stopped(log)
            metrics.awaiting_approval.inc()
        else:
            self._running.setdefault(log.user_id, set()).add(log.message_id)
            metrics.awaiting_approval.dec()
        if self._mirror is not None:
            self._mirror.set_paused(log, paused=paused)

    def running(self) -> int:
        """Generations running on this worker."""
        return sum(1 for g in self._local.values() if not g.log.done)

    async def running_for(self, user_id: uuid.UUID) -> int:
        """Running generations of a user (on every worker when Redis is shared)."""
        if self._mirror is not None:
            with contextlib.suppress(Exception):
                return await self._mirror.running_for(user_id)
        return len(self._running.get(user_id, ()))

    async def cancel(self, *, message_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Ask a running generation of this user to stop, wherever it runs."""
        gen = self._local.get(message_id)
        if gen is not None:
            if gen.log.user_id != user_id or gen.log.done:
                return False
            gen.cancel_requested.set()
            return True
        if self._mirror is not None:
            return await self._mirror.request_cancel(message_id=message_id, user_id=user_id)
        return False

    def _cancel_local(self, message_id: uuid.UUID) -> None:
        gen = self._local.get(message_id)
        if gen is not None and not gen.log.done:
            gen.cancel_requested.set()

    def _catchup_local(self, message_id: uuid.UUID, after: int) -> Catchup | None:
        """For a reader on another worker: the local events after `after`, or a snapshot."""
        gen = self._local.get(message_id)
        if gen is None:
            return None
        log = gen.log
        head = b""
        if not log.first_id - 1 <= after < log.next_id:  # dropped, or never sent
            head, after = log.resync()
        tail = b"".join(log.frames[after + 1 - log.first_id :])
        return Catchup(head + tail, log.next_id - 1, log.done)

    async def states(self, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, str] | None:
        """Per generation: `running` (here, or on a live worker), `orphaned` (its process is
        gone) or `unknown` (no record). Without Redis this process is the only one, so
        whatever does not run here is orphaned; None when Redis cannot be asked."""
        here = {m for m in message_ids if (g := self._local.get(m)) and not g.log.done}
        if self._mirror is None:
            return {m: "running" if m in here else "orphaned" for m in message_ids}
        try:
            remote = await self._mirror.states(message_ids)
        except Exception as exc:
            logger.warning("cannot ask Redis which generations still run: {}", exc)
            return None
        return {m: "running" if m in here else remote.get(m, "unknown") for m in message_ids}

    async def owner_known(self, *, message_id: uuid.UUID, user_id: uuid.UUID) -> bool | None:
        """True/False when some worker holds this log (owned by the user or not); None if none."""
        gen = self._local.get(message_id)
        if gen is not None:
            return gen.log.user_id == user_id
        if self._mirror is not None:
            owner = await self._mirror.owner(message_id)
            if owner is not None:
                return owner == user_id
        return None

    async def follow(
        self, *, message_id: uuid.UUID, last_event_id: int, rebuild: Rebuild | None = None
    ) -> AsyncIterator[bytes]:
        """SSE bytes after `last_event_id`, live, ending after the terminal event.

        A reader of a remote log that lost events is caught up by the log's owner; if none
        answers, `rebuild` ends the stream from the saved message."""
        gen = self._local.get(message_id)
        if gen is not None:
            async for batch in gen.log.follow(last_event_id, ping_s=self.ping_s):
                yield PING_FRAME if batch is None else b"".join(batch)
            return
        if self._mirror is None:
            return
        last = last_event_id
        for _ in range(MAX_CATCHUPS):
            try:
                async for chunk in self._mirror.follow(
                    message_id=message_id, last_event_id=last, ping_s=self.ping_s
                ):
                    yield chunk
                return
            except ReplayLost as lost:
                last = lost.last_id
            catchup = await self._mirror.request_catchup(message_id, last)
            logger.debug(
                "mirror of {} lost events after {}; owner caught the reader up: {}",
                message_id,
                last,
                catchup is not None,
            )
            if catchup is None:
                break
            yield catchup.frames
            if catchup.done:
                return
            last = catchup.last_id
        if rebuild is not None:
            async for chunk in rebuild(last):
                yield chunk

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, max(self.retention_s / 4, 0.05)))
            now = time.monotonic()
            for key, gen in list(self._local.items()):
                finished = gen.log.finished_at
                if finished is not None and now - finished > self.retention_s:
                    del self._local[key]
                    self._stopped(gen.log)
                    self.approvals.forget(key)
