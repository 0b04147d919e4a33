"""The change feed's bookkeeping: per-user change numbers, tombstones, and the feed queries.

Why the feed never skips a change
---------------------------------
Every write that changes a user's conversations, messages or preferences first runs
`UPDATE users SET change_seq = change_seq + n WHERE id = :user RETURNING change_seq`
inside its own transaction and stamps each row it writes with one of the `n` numbers it got.
That UPDATE takes the user's row lock and keeps it until the transaction ends, so a second
writer of the same user waits at this statement until the first has committed (or rolled
back, which also rolls the counter back). Hence, per user:

* numbers are unique (every changed row gets its own), and
* numbers are handed out in commit order: a transaction can only obtain number `s` after
  every transaction holding a number below `s` has finished.

A reader first reads the committed counter `head` and then returns only rows with
`since < change_seq <= head`. Every number up to `head` belongs to a committed transaction,
and no transaction can ever obtain a number `<= head` later; so a cursor at `head` has
nothing left below it to miss. A transaction that began first but commits last simply gets
the higher number (it waited for the lock), so "commits out of order" cannot happen within
one user, and other users' transactions use other counters. Whatever commits between the
reader's statements is harmless: a row that moved to a newer number than `head` is returned
by the next call. This holds on PostgreSQL under READ COMMITTED and on SQLite (one writer).

Lock order: the user row is always the first lock a writing transaction takes (allocate
before touching any other row), which keeps the per-user writers deadlock-free.

Deletions are recorded as tombstones with their own number. Tombstones are pruned after a
retention period; the user's `sync_floor_seq` then remembers the newest pruned number, and a
cursor below it can no longer be served incrementally (the client must resync).
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Conversation, Message, SyncTombstone, User, UserPreferences

# the key of the change numbers a transaction noted (app.db.commits announces them to sync push)
PENDING_CHANGES_KEY = "vektor.sync.pending"

_users = cast(Table, User.__table__)
_messages = cast(Table, Message.__table__)
# The change-number statements, defined once for every path (the request's AsyncSession,
# DirectDb's Core units, the asyncpg units). Both return `(user id, newest number)`.
ALLOCATE = (
    update(_users)
    .where(_users.c.id == bindparam("b_user_id"))
    # keep `updated_at` (its onupdate is for profile edits, not for data changes)
    .values(change_seq=_users.c.change_seq + bindparam("b_count"), updated_at=_users.c.updated_at)
    .returning(_users.c.id, _users.c.change_seq)
)
ALLOCATE_FOR_MESSAGE = (
    update(_users)
    .where(
        _users.c.id
        == select(_messages.c.user_id)
        .where(_messages.c.id == bindparam("b_message_id"))
        .scalar_subquery()
    )
    .values(change_seq=_users.c.change_seq + 1, updated_at=_users.c.updated_at)
    .returning(_users.c.id, _users.c.change_seq)
)


def record_changes(info: MutableMapping[Any, Any], *, user_id: uuid.UUID, last: int) -> None:
    """Note that the transaction of the session or connection whose `info` this is stamped
    change numbers up to `last` for `user_id` (announced after its commit: app.db.commits)."""
    pending: dict[uuid.UUID, int] = info.setdefault(PENDING_CHANGES_KEY, {})
    pending[user_id] = max(pending.get(user_id, 0), last)


def allocated(info: MutableMapping[Any, Any], row: Any, *, count: int, note: bool = True) -> int:
    """The first of `count` numbers an ALLOCATE row reserved (0 without a row); noted for
    the commit notifier unless `note` is False (the caller notes it if it used it)."""
    if row is None:
        return 0
    if note:
        record_changes(info, user_id=row[0], last=int(row[1]))
    return int(row[1]) - count + 1


class ChangeRepository:
    """Change numbers, tombstones and the feed's reads; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def allocate(self, *, user_id: uuid.UUID, count: int = 1) -> int:
        """Reserve `count` consecutive change numbers; returns the first (0 if no such user).

        Must be the first write of the transaction: it locks the user row until commit."""
        params = {"b_user_id": user_id, "b_count": count}
        row = (await self.session.execute(ALLOCATE, params)).first()
        return allocated(self.session.info, row, count=count)

    async def allocate_for_message(self, *, message_id: uuid.UUID) -> int:
        """One change number for the owner of a message (0 if it is gone), in one statement."""
        row = (
            await self.session.execute(ALLOCATE_FOR_MESSAGE, {"b_message_id": message_id})
        ).first()
        return allocated(self.session.info, row, count=1)

    async def add_tombstone(
        self, *, user_id: uuid.UUID, entity_type: str, entity_id: uuid.UUID, seq: int
    ) -> None:
        """Record a deletion at change number `seq`."""
        await self.session.execute(
            insert(SyncTombstone).values(
                user_id=user_id, change_seq=seq, entity_type=entity_type, entity_id=entity_id
            )
        )

    async def add_tombstones(
        self, *, user_id: uuid.UUID, entity_type: str, entity_ids: list[uuid.UUID], first_seq: int
    ) -> None:
        """Record several deletions, numbered `first_seq`, `first_seq + 1`, ... in one insert."""
        if not entity_ids:
            return
        rows = [
            {
                "user_id": user_id,
                "change_seq": first_seq + i,
                "entity_type": entity_type,
                "entity_id": entity_id,
            }
            for i, entity_id in enumerate(entity_ids)
        ]
        await self.session.execute(insert(SyncTombstone), rows)

    async def head(self, *, user_id: uuid.UUID) -> tuple[int, int] | None:
        """The user's committed counter and tombstone floor."""
        stmt = select(User.change_seq, User.sync_floor_seq).where(User.id == user_id)
        row = (await self.session.execute(stmt)).first()
        return (int(row[0]), int(row[1])) if row is not None else None

    async def conversations(
        self, *, user_id: uuid.UUID, after: int, upto: int, limit: int
    ) -> list[Conversation]:
        """Conversations changed in `(after, upto]`, oldest change first."""
        stmt = (
            select(Conversation)
            .where(
                Conversation.user_id == user_id,
                Conversation.change_seq > after,
                Conversation.change_seq <= upto,
            )
            .order_by(Conversation.change_seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def messages(
        self, *, user_id: uuid.UUID, after: int, upto: int, limit: int
    ) -> list[Message]:
        """Messages changed in `(after, upto]`, oldest change first."""
        stmt = (
            select(Message)
            .where(
                Message.user_id == user_id, Message.change_seq > after, Message.change_seq <= upto
            )
            .order_by(Message.change_seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def preferences(
        self, *, user_id: uuid.UUID, after: int, upto: int
    ) -> UserPreferences | None:
        """The preference row if it changed in `(after, upto]`."""
        stmt = select(UserPreferences).where(
            UserPreferences.user_id == user_id,
            UserPreferences.change_seq > after,
            UserPreferences.change_seq <= upto,
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def tombstones(
        self, *, user_id: uuid.UUID, after: int, upto: int, limit: int
    ) -> list[SyncTombstone]:
        """Deletions in `(after, upto]`, oldest first."""
        stmt = (
            select(SyncTombstone)
            .where(
                SyncTombstone.user_id == user_id,
                SyncTombstone.change_seq > after,
                SyncTombstone.change_seq <= upto,
            )
            .order_by(SyncTombstone.change_seq)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def expired_tombstones(
        self, *, before: datetime, limit: int
    ) -> list[tuple[uuid.UUID, int]]:
        """`(user_id, newest change number)` of users with tombstones older than `before`."""
        stmt = (
            select(SyncTombstone.user_id, func.max(SyncTombstone.change_seq))
            .where(SyncTombstone.deleted_at < before)
            .group_by(SyncTombstone.user_id)
            .limit(limit)
        )
        return [(row[0], int(row[1])) for row in await self.session.execute(stmt)]

    async def prune_tombstones(self, *, user_id: uuid.UUID, upto: int) -> None:
        """Drop a user's tombstones up to `upto` and raise the floor to it (users row first)."""
        await self.session.execute(
            update(User)
            .where(User.id == user_id, User.sync_floor_seq < upto)
            .values(sync_floor_seq=upto, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(
            delete(SyncTombstone).where(
                SyncTombstone.user_id == user_id, SyncTombstone.change_seq <= upto
            )
        )
