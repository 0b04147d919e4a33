"""Announcements a transaction collects and hands on only once it has committed.

A repository notes what a listener must hear about (change numbers for sync push, revoked
sessions) in the session's `info` under its own key; `announce_after_commit` makes every
session of a factory pass that note to the listener right after the commit, and drop it when
the transaction rolls back or closes, so nobody is told about a write that never happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

ANNOUNCERS_KEY = "vektor.announcers"  # info: {note key: listener}


def announce_after_commit(
    factory: async_sessionmaker[AsyncSession], *, key: str, announce: Callable[[Any], None]
) -> None:
    """After each commit of a session made by `factory`, call `announce(info[key])`, if set."""
    info = dict(factory.kw.get("info") or {})
    info[ANNOUNCERS_KEY] = {**info.get(ANNOUNCERS_KEY, {}), key: announce}
    factory.configure(info=info)
    for name, hook in (("after_commit", _after_commit), ("after_transaction_end", _forget)):
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)


def _after_commit(session: Session) -> None:
    """Hand each note of the committed transaction to its listener."""
    for key, announce in session.info.get(ANNOUNCERS_KEY, {}).items():
        pending = session.info.pop(key, None)
        if pending:
            announce(pending)


def _forget(session: Session, transaction: SessionTransaction) -> None:
    """A rolled-back (or closed) transaction's notes are never announced."""
    if transaction.parent is None:
        for key in session.info.get(ANNOUNCERS_KEY, {}):
            session.info.pop(key, None)
