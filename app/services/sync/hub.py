"""Push of "your data changed" to open `/sync/stream` connections, on every worker.

Writers never call the hub. The change-number statements (app/repositories/changes.py) note
the numbers they hand out in the transaction's `info` (the request session's, or a DirectDb
unit's connection's); the app's one commit notifier (app/db/commits.py) passes them here
only once the transaction has committed, so a client is never told about a change it cannot
read yet.
Local streams are woken at once; with `REDIS_URL` the change is also published on one
channel of the worker's push bus (`app/services/pushbus.py`) that every worker listens to.
If Redis is down, local push keeps working and remote streams catch up by their periodic
check (see `stream.py`); when the listener reconnects it wakes every local stream so that
each re-reads its head.
"""

from __future__ import annotations

import asyncio
import uuid

from app.db.commits import CommitNotifier
from app.repositories.changes import PENDING_CHANGES_KEY
from app.services.pushbus import PushBus

CHANNEL = "vektor:sync:changed"


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
    """Fans committed changes out to this worker's streams and, via the bus, to the others."""

    def __init__(self, *, bus: PushBus) -> None:
        self._subs: dict[uuid.UUID, set[Subscription]] = {}
        self._bus = bus
        bus.on(CHANNEL, handler=self._on_message, on_reconnect=self._recheck_all)

    def install(self, commits: CommitNotifier) -> None:
        """Hear the change numbers of every committed transaction of this process."""
        commits.on(PENDING_CHANGES_KEY, self.committed)

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
            self._bus.publish(CHANNEL, f"{user_id}|{seq}")

    def _deliver(self, user_id: uuid.UUID, seq: int | None) -> None:
        for sub in self._subs.get(user_id, ()):
            sub.notify(seq)

    def _recheck_all(self) -> None:
        """After a Redis outage: every local stream re-reads its head (and its session)."""
        for user_id in list(self._subs):
            self._deliver(user_id, None)

    def _on_message(self, payload: str) -> None:
        """Another worker's change (`ValueError` when malformed)."""
        user, seq = payload.split("|")
        self._deliver(uuid.UUID(user), int(seq))
