"""Push of "your data changed" to open `/sync/stream` connections, on every worker.

Writers never call the hub. `ChangeRepository.allocate` notes the numbers it hands out in
the session's `info`; a SQLAlchemy `after_commit` hook passes them here only once the
transaction has committed, so a client is never told about a change it cannot read yet.
Local streams are woken at once; with `REDIS_URL` the change is also published on one
pub/sub channel that every worker listens to. If Redis is down, local push keeps working
and remote streams catch up by their periodic check (see `stream.py`); when the listener
reconnects it wakes every local stream so that each re-reads its head.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

from app.repositories.changes import PENDING_CHANGES_KEY

CHANNEL = "vektor:sync:changed"
HUB_KEY = "vektor.sync.hub"
RETRY_MAX_S = 2.0


class Subscription:
    """One open stream's mailbox: the newest change number heard of, and a wake-up."""

    def __init__(self, user_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.latest = 0
        self.recheck = False
        self._wake = asyncio.Event()

    def notify(self, seq: int | None) -> None:
        """A change (or, with None, a reason to re-read the head from the database)."""
        if seq is None:
            self.recheck = True
        elif seq > self.latest:
            self.latest = seq
        self._wake.set()

    async def wait(self, *, seconds: float) -> bool:
        """Wait for a notification up to `seconds`; False when none came."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            return False
        self._wake.clear()
        return True


class SyncHub:
    """Fans committed changes out to this worker's streams and, via Redis, to the others."""

    def __init__(self, *, redis_url: str | None) -> None:
        self.origin = uuid.uuid4().hex
        self._subs: dict[uuid.UUID, set[Subscription]] = {}
        self._redis: Redis | None = (
            Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
            if redis_url
            else None
        )
        self._outbox: asyncio.Queue[tuple[uuid.UUID, int]] = asyncio.Queue(maxsize=100_000)
        self._tasks: list[asyncio.Task[None]] = []

    def install(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        """Make every session of this factory report its commits to this hub."""
        session_factory.configure(info={HUB_KEY: self})
        for name, hook in (("after_commit", _after_commit), ("after_transaction_end", _forget)):
            if not event.contains(Session, name, hook):
                event.listen(Session, name, hook)

    async def start(self) -> None:
        """With Redis: start the publisher and the listener."""
        if self._redis is not None:
            self._tasks = [
                asyncio.create_task(self._publish_loop(), name="sync-publisher"),
                asyncio.create_task(self._listen_loop(), name="sync-listener"),
            ]

    async def aclose(self) -> None:
        """Stop the Redis tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._redis is not None:
            await self._redis.aclose()

    def subscribe(self, user_id: uuid.UUID) -> Subscription:
        """A mailbox for one stream of this user (call `unsubscribe` when it ends)."""
        sub = Subscription(user_id)
        self._subs.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a stream's mailbox."""
        subs = self._subs.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.user_id]

    def streams(self) -> int:
        """Open streams on this worker."""
        return sum(len(s) for s in self._subs.values())

    def committed(self, changes: dict[uuid.UUID, int]) -> None:
        """Changes that just committed on this worker: wake local streams, tell the others."""
        for user_id, seq in changes.items():
            self._deliver(user_id, seq)
            if self._redis is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._outbox.put_nowait((user_id, seq))

    def _deliver(self, user_id: uuid.UUID, seq: int | None) -> None:
        for sub in self._subs.get(user_id, ()):
            sub.notify(seq)

    async def _publish_loop(self) -> None:
        assert self._redis is not None
        failing = False
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            try:
                pipe = self._redis.pipeline(transaction=False)
                for user_id, seq in batch:
                    pipe.publish(CHANNEL, f"{self.origin}|{user_id}|{seq}")
                await pipe.execute()
                failing = False
            except Exception as exc:
                if not failing:
                    logger.warning("sync push via Redis failed ({}); other workers catch up", exc)
                failing = True

    async def _listen_loop(self) -> None:
        assert self._redis is not None
        delay, lost = 0.2, False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                if lost:
                    logger.info("sync listener reconnected to Redis")
                    for user_id in list(self._subs):
                        self._deliver(user_id, None)  # may have missed changes meanwhile
                delay, lost = 0.2, False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    logger.warning("sync listener lost Redis ({}); retrying", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _on_message(self, data: Any) -> None:
        try:
            origin, user, seq = (data.decode() if isinstance(data, bytes) else data).split("|")
            if origin != self.origin:
                self._deliver(uuid.UUID(user), int(seq))
        except ValueError:
            logger.warning("ignoring a malformed sync message")


def _after_commit(session: Session) -> None:
    """Hand the transaction's changes to the hub of the app the session belongs to."""
    pending = session.info.pop(PENDING_CHANGES_KEY, None)
    hub = session.info.get(HUB_KEY)
    if pending and isinstance(hub, SyncHub):
        hub.committed(pending)


def _forget(session: Session, transaction: SessionTransaction) -> None:
    """A rolled-back (or closed) transaction's numbers are never announced."""
    if transaction.parent is None:
        session.info.pop(PENDING_CHANGES_KEY, None)
