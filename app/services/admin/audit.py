"""The audit log's writer: `record` never waits and never fails the request that calls it.

A request only puts the event on an in-process queue (microseconds); one writer task per
worker appends whatever has queued up within `LINGER_S` in one transaction (a batch), off
every request's path: a burst of logins costs one commit, not one each. The same batch
notes each user's newest login in `users.last_login_at` (bookkeeping that need not delay a
login either). A batch the database cannot take right now (an outage) is retried with
backoff for up to `RETRY_FOR_S` while new events queue behind it; a batch that still fails,
or fails for another reason (a bug), is logged to error.log with every event in it (one
line), so nothing is lost silently and the requests that recorded them have long
succeeded. A second task prunes events older than `AUDIT_RETENTION_DAYS` once an hour.

Trade-off (README, Decisions): an event recorded in the last moments before a crash can be
lost, where writing it in the action's own transaction could not; in exchange, no request
ever waits for it or fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.availability import is_unavailable
from app.db.base import new_uuid, utcnow
from app.repositories.audit import AuditRepository
from app.repositories.users import UserRepository
from app.schemas.admin import AuditAction

MAX_BATCH = 200
LINGER_S = 0.2  # how long the first event of a batch waits for company
MAX_QUEUED = 10_000
RETRY_FOR_S = 600.0  # an outage shorter than this loses no event (if the queue holds them)
RETRY_MAX_DELAY_S = 30.0
PRUNE_EVERY_S = 3600.0
PRUNE_FIRST_AFTER_S = 120.0


class AuditLog:
    """Queues events and appends them in batches; prunes old ones (one per worker)."""

    def __init__(
        self, *, session_factory: async_sessionmaker[AsyncSession], retention_days: int
    ) -> None:
        self.factory = session_factory
        self.retention = timedelta(days=retention_days)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=MAX_QUEUED)
        self._tasks: list[asyncio.Task[None]] = []
        self._hurry = asyncio.Event()  # flush or close: write now, do not linger
        self._closing = False  # closing: no more waiting out an outage

    async def start(self) -> None:
        """Start the writer and the pruner."""
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="audit-writer"),
            asyncio.create_task(self._prune_loop(), name="audit-pruner"),
        ]

    async def aclose(self) -> None:
        """Write what is queued (bounded wait), then stop."""
        self._hurry.set()
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout=5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        leftover = []
        while not self._queue.empty():
            leftover.append(self._queue.get_nowait())
        if leftover:
            _lost(leftover, "stopped before they could be written")

    def record(self, event: dict[str, Any]) -> None:
        """Queue one event (never blocks, never raises)."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            _lost([event], "the audit queue is full")

    async def flush(self) -> None:
        """Wait until every queued event has been written (or logged as lost)."""
        self._hurry.set()
        await self._queue.join()

    async def write(self, events: list[dict[str, Any]]) -> None:
        """Append a batch and note the logins in it, in one transaction."""
        logins: dict[uuid.UUID, datetime] = {}
        for event in events:
            if event["action"] == AuditAction.login.value and event["actor_id"] is not None:
                logins[event["actor_id"]] = max(
                    event["at"], logins.get(event["actor_id"], event["at"])
                )
        async with self.factory() as session:
            users = UserRepository(session)
            for user_id in sorted(logins):  # rows locked in one order by every writer
                await users.record_login(user_id=user_id, at=logins[user_id])
            await AuditRepository(session).insert_many(rows=events)
            await session.commit()

    async def prune(self, *, now: datetime | None = None) -> int:
        """Delete events older than the retention period; returns how many."""
        async with self.factory() as session:
            pruned = await AuditRepository(session).prune(before=(now or utcnow()) - self.retention)
            await session.commit()
        return pruned

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), LINGER_S)
            self._hurry.clear()
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write_retrying(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write_retrying(self, batch: list[dict[str, Any]]) -> None:
        """Write a batch, waiting out an outage; log it as lost when that fails."""
        delay, deadline = 0.5, time.monotonic() + RETRY_FOR_S
        while True:
            try:
                await self.write(batch)
                return
            except Exception as exc:  # the events are logged instead; the writer carries on
                retry = is_unavailable(exc) and not self._closing
                if not retry or time.monotonic() + delay > deadline:
                    _lost(batch, f"{type(exc).__name__}: {exc}")
                    return
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                _lost(batch, "stopped while the database was unavailable")
                raise
            delay = min(delay * 2, RETRY_MAX_DELAY_S)

    async def _prune_loop(self) -> None:
        await asyncio.sleep(PRUNE_FIRST_AFTER_S)
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    logger.info("pruned {} audit event(s) past the retention period", pruned)
            except Exception as exc:
                logger.warning("pruning the audit log failed: {}", exc)
            await asyncio.sleep(PRUNE_EVERY_S)


def _lost(events: list[dict[str, Any]], why: str) -> None:
    logger.error(
        "{} audit event(s) not saved ({}): {}", len(events), why, json.dumps(events, default=str)
    )


@dataclass(frozen=True, slots=True)
class Auditor:
    """The audit log as one request sees it: its client's address and user agent attached."""

    log: AuditLog | None = None  # None: record nothing (operator scripts, tests below the API)
    ip: str | None = None
    user_agent: str | None = None

    def record(
        self,
        action: AuditAction,
        *,
        actor_id: uuid.UUID | None = None,
        target_type: str | None = None,
        target_id: uuid.UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queue an event stamped now (never blocks, never raises)."""
        if self.log is None:
            return
        self.log.record(
            {
                "id": new_uuid(),
                "at": utcnow(),
                "actor_id": actor_id,
                "action": action.value,
                "target_type": target_type,
                "target_id": target_id,
                "ip": (self.ip or "")[:64] or None,
                "user_agent": (self.user_agent or "")[:512] or None,
                "details": details,
            }
        )


NO_AUDIT = Auditor()
