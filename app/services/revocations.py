""" "This session was revoked": a signal for long-lived connections (SSE streams, WebSockets).

Every request checks its session, but a stream is one request that can last for hours. So a
connection `watch`es its session, and revocations reach the watchers promptly:

* Writers never call the notifier. `AuthSessionRepository` (logout, all devices, one
  device, password change, refresh-token replay, admin actions) and `UserRepository.delete`
  note each revocation in the session's `info`; the commit notifier (app/db/commits.py)
  hands them here only once the transaction has committed (a rolled-back one never is).
* Watchers on this worker are called at once; with `REDIS_URL` the revocation also goes out
  on the worker's push bus (one pub/sub connection per worker, shared with sync push), so
  watchers on every other worker and instance hear it too.

A watcher must keep a periodic session check as its safety net: a message published while
Redis was unreachable is lost (the sync hub asks every stream to re-check when the bus
reconnects).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from app.db.commits import CommitNotifier
from app.repositories.auth_sessions import PENDING_REVOCATIONS_KEY, Revocation
from app.services.pushbus import PushBus

CHANNEL = "vektor:auth:revoked"


class SessionWatch:
    """One connection's interest in its session: `revoked` turns true, then `on_revoked` runs."""

    def __init__(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, on_revoked: Callable[[], None]
    ) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.revoked = False
        self._on_revoked = on_revoked

    def fire(self) -> None:
        """Mark the session revoked and tell the connection (once)."""
        if not self.revoked:
            self.revoked = True
            self._on_revoked()


class SessionRevocations:
    """Tells open connections, on every worker, that their session was revoked."""

    def __init__(self, *, bus: PushBus) -> None:
        self._by_user: dict[uuid.UUID, set[SessionWatch]] = {}
        self._by_session: dict[uuid.UUID, set[SessionWatch]] = {}
        self._bus = bus
        bus.on(CHANNEL, handler=self._on_message)

    def install(self, commits: CommitNotifier) -> None:
        """Hear the revocations of every committed transaction of this process."""
        commits.on(PENDING_REVOCATIONS_KEY, self.announce)

    def watch(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, on_revoked: Callable[[], None]
    ) -> SessionWatch:
        """Call `on_revoked` (on the event loop) when this session is revoked; `unwatch` after."""
        watch = SessionWatch(user_id=user_id, session_id=session_id, on_revoked=on_revoked)
        self._by_user.setdefault(user_id, set()).add(watch)
        self._by_session.setdefault(session_id, set()).add(watch)
        return watch

    def unwatch(self, watch: SessionWatch) -> None:
        """Forget a watch (the connection ended)."""
        for index, key in ((self._by_user, watch.user_id), (self._by_session, watch.session_id)):
            watches = index.get(key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del index[key]

    def watching(self) -> int:
        """Open watches on this worker."""
        return sum(len(w) for w in self._by_session.values())

    def announce(self, revocations: Iterable[Revocation]) -> None:
        """Revocations that just committed on this worker: fire local watches, tell the others."""
        for revocation in revocations:
            self._deliver(revocation)
            self._bus.publish(CHANNEL, encode(revocation))

    def _deliver(self, revocation: Revocation) -> None:
        if revocation.session_id is not None:
            candidates = self._by_session.get(revocation.session_id, set())
        elif revocation.user_id is not None:
            candidates = self._by_user.get(revocation.user_id, set())
        else:
            return
        for watch in list(candidates):
            if revocation.covers(user_id=watch.user_id, session_id=watch.session_id):
                watch.fire()

    def _on_message(self, payload: str) -> None:
        """Another worker's revocation (`ValueError` when malformed)."""
        self._deliver(decode(payload))


def encode(revocation: Revocation) -> str:
    """`session|user|keep`, `-` for an absent id."""
    return "|".join(
        str(part) if part is not None else "-"
        for part in (revocation.session_id, revocation.user_id, revocation.keep)
    )


def decode(payload: str) -> Revocation:
    """The inverse of `encode` (`ValueError` when malformed)."""
    session, user, keep = (None if part == "-" else uuid.UUID(part) for part in payload.split("|"))
    if session is None and user is None:
        raise ValueError("a revocation names a session or a user")
    return Revocation(session_id=session, user_id=user, keep=keep)
