"""One page of the change feed (the reasoning is in app/repositories/changes.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Unauthorized
from app.repositories.changes import ChangeRepository
from app.schemas.sync import SyncChanges
from app.schemas.user import Preferences
from app.services.sync.cursor import ResyncRequired, decode_cursor, encode_cursor


@dataclass(frozen=True, slots=True)
class _Item:
    seq: int
    kind: str
    row: Any


async def read_changes(
    *, session: AsyncSession, user_id: uuid.UUID, since: str | None, limit: int
) -> SyncChanges:
    """The changes after `since` (everything without it), at most `limit` items, in order.

    Every change number is unique per user, so the first `limit` items of the merged
    per-table lists (each fetched up to `limit`) are exactly the first `limit` changes, and
    the page can end between any two of them. Without `since` the page lists what exists at
    head `H`, so tombstones are left out, and the rest of that first sync only needs those
    after `H` (the cursor's `base`); otherwise they come in the same order as the rest.
    """
    repo = ChangeRepository(session)
    bounds = await repo.head(user_id=user_id)
    if bounds is None:
        raise Unauthorized("Account no longer exists", code="token_revoked")
    head, floor = bounds
    after, base = -1, head  # a full sync includes rows stamped 0 (none after migration 0003)
    if since is not None:
        after, base = decode_cursor(since, user_id=user_id)
        if base < floor:
            raise ResyncRequired("Deletions this old have been forgotten; resync from scratch")
        if base > head:
            raise ResyncRequired("This cursor is ahead of the server; resync from scratch")
    fetch = limit + 1  # one more than asked tells whether there is more
    conversations = await repo.conversations(user_id=user_id, after=after, upto=head, limit=fetch)
    items = [_Item(c.change_seq, "conversation", c) for c in conversations]
    messages = await repo.messages(user_id=user_id, after=after, upto=head, limit=fetch)
    items += [_Item(m.change_seq, "message", m) for m in messages]
    prefs = await repo.preferences(user_id=user_id, after=after, upto=head)
    if prefs is not None:
        items.append(_Item(prefs.change_seq, "preferences", prefs))
    if since is not None:
        tombs = await repo.tombstones(user_id=user_id, after=base, upto=head, limit=fetch)
        items += [_Item(t.change_seq, "deleted", t) for t in tombs]
        # pruning raises the floor before it deletes, in one transaction: if it committed
        # while we read, the floor shows it and the tombstones we got may be incomplete
        latest = await repo.head(user_id=user_id)
        if latest is None or base < latest[1]:
            raise ResyncRequired("Deletions this old have been forgotten; resync from scratch")
    items.sort(key=lambda item: item.seq)
    has_more = len(items) > limit
    page = items[:limit]
    if has_more:  # mid-way: a full sync keeps its base (see cursor.py)
        cursor = encode_cursor(user_id=user_id, seq=page[-1].seq, base=max(base, page[-1].seq))
    else:
        cursor = encode_cursor(user_id=user_id, seq=head)
    result = _page(page, cursor=cursor)
    if since is None and prefs is None:
        result.preferences = Preferences()  # never saved: a fresh copy starts from the defaults
    result.has_more = has_more
    return result


def _page(page: list[_Item], *, cursor: str) -> SyncChanges:
    """The response body of one page."""
    preferences: Preferences | None = None
    by_kind: dict[str, list[Any]] = {"conversation": [], "message": [], "deleted": []}
    for item in page:
        if item.kind == "preferences":
            preferences = Preferences.model_validate(item.row.data or {})
        else:
            by_kind[item.kind].append(item.row)
    return SyncChanges.model_validate(
        {
            "conversations": by_kind["conversation"],
            "messages": by_kind["message"],
            "preferences": preferences,
            "deleted": [{"type": t.entity_type, "id": t.entity_id} for t in by_kind["deleted"]],
            "cursor": cursor,
            "has_more": False,
        },
        from_attributes=True,
    )
