"""The one "changes committed" notifier: what a transaction noted, announced after its commit.

A repository notes what a listener must hear about (change numbers for sync push, revoked
sessions) in a transaction-scoped `info` dict under its own key: the `AsyncSession`'s
`info` on the request path, the unit's `Connection.info` on `DirectDb`. The notifier hands
each note to the listener registered for its key only once the transaction has committed,
and drops the notes of a transaction that rolled back, so nobody is told about a write that
never happened. It is attached to the app's own session factory (a `Session` subclass of
its own, never the global `Session` class) and to `DirectDb`; both paths end here.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from loguru import logger
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

Listener = Callable[[Any], None]
Notes = MutableMapping[Any, Any]


class CommitNotifier:
    """Announces the notes of committed transactions to the listener of each note's key."""

    def __init__(self) -> None:
        self._listeners: dict[str, Listener] = {}

    def on(self, key: str, listener: Listener) -> None:
        """Call `listener(note)` after each commit whose transaction noted `info[key]`."""
        self._listeners[key] = listener

    def attach(self, factory: async_sessionmaker[AsyncSession]) -> None:
        """Make every session of `factory` (and only those) announce its commits here."""
        session_class = type("NotifyingSession", (Session,), {"__doc__": "Announces commits."})
        event.listen(session_class, "after_commit", self._session_committed)
        event.listen(session_class, "after_transaction_end", self._session_ended)
        factory.configure(sync_session_class=session_class)

    def forget(self, info: Notes) -> None:
        """Drop the notes in `info` (a new transaction starts, or one rolled back)."""
        for key in self._listeners:
            info.pop(key, None)

    def take(self, info: Notes) -> dict[str, Any]:
        """Move the notes out of `info` (a unit's connection) before its commit."""
        return {key: info.pop(key) for key in self._listeners if key in info}

    def committed(self, info: Notes) -> None:
        """The transaction that noted into `info` committed: announce and clear its notes."""
        for key, listener in self._listeners.items():
            note = info.pop(key, None)
            if not note:
                continue
            try:
                listener(note)
            except Exception as exc:  # a push failure must not fail a committed write
                logger.warning("commit notification ({}) failed: {}", key, exc)

    def _session_committed(self, session: Session) -> None:
        self.committed(session.info)

    def _session_ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # a rolled-back (or closed) transaction says nothing
            self.forget(session.info)
