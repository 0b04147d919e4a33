"""API key queries: the owner's list and revocation, and the per-request key check.

The key check runs on every request that carries a key, like the session check of a token
(app/repositories/principals.py): one `DirectDb` read by the key's unique prefix, joined
with its user and preferences, so a revoked key or a deactivated user fails the very next
request on every worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.db.base import utcnow
from app.db.direct import DirectDb, SingleStatement
from app.models import ApiKey, User, UserPreferences
from app.repositories.auth_sessions import Revocation, note_revocation

users = cast(Table, User.__table__)
keys = cast(Table, ApiKey.__table__)
preferences = cast(Table, UserPreferences.__table__)
# built once: executing the same statement object skips rebuilding and re-keying it
_KEY_COLUMNS = (
    select(
        users,
        keys.c.id.label("key_id"),
        keys.c.hash.label("key_hash"),
        keys.c.expires_at.label("key_expires_at"),
        keys.c.revoked_at.label("key_revoked_at"),
        preferences.c.data,
    )
    .join(keys, keys.c.user_id == users.c.id)
    .outerjoin(preferences, preferences.c.user_id == users.c.id)
)
_BY_PREFIX = _KEY_COLUMNS.where(keys.c.prefix == bindparam("prefix"))
_BY_ID = _KEY_COLUMNS.where(keys.c.id == bindparam("key_id"))
_TOUCH = (
    update(keys)
    .where(keys.c.id == bindparam("key_id"))
    .values(last_used_at=bindparam("at"))
    .returning(keys.c.id)
)
_USER_COLUMNS = tuple(users.c.keys())


@dataclass(frozen=True, slots=True)
class KeyPrincipalRow:
    """A key's user (detached) with what decides whether the key still opens the door."""

    user: User
    key_id: uuid.UUID
    key_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    preferences: dict[str, Any] | None


async def read_key_principal(db: DirectDb, *, prefix: str) -> KeyPrincipalRow | None:
    """The key with this prefix, its user and the user's preferences."""
    values = await db.first(_BY_PREFIX, {"prefix": prefix})
    return None if values is None else _key_principal(values)


async def key_is_live(session: AsyncSession, *, key_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether a key still opens the door (a stream's periodic re-check, on its own session)."""
    row = (await session.execute(_BY_ID, {"key_id": key_id})).first()
    if row is None:
        return False
    found = _key_principal(row._mapping)
    expired = found.expires_at is not None and found.expires_at <= utcnow()
    return (
        found.user.id == user_id
        and found.user.is_active
        and found.revoked_at is None
        and not expired
    )


async def touch_key(db: DirectDb, *, key_id: uuid.UUID, at: datetime) -> None:
    """Set `last_used_at` (one statement, autocommit where it can)."""
    await db.write_single(
        SingleStatement(_TOUCH, {"key_id": key_id, "at": at}, noted=lambda _info, _row: None)
    )


def _key_principal(values: Mapping[Any, Any]) -> KeyPrincipalRow:
    user = User(**{key: values[key] for key in _USER_COLUMNS})
    make_transient_to_detached(user)
    return KeyPrincipalRow(
        user=user,
        key_id=values["key_id"],
        key_hash=values["key_hash"],
        expires_at=values["key_expires_at"],
        revoked_at=values["key_revoked_at"],
        preferences=values["data"],
    )


class ApiKeyRepository:
    """Queries over a user's API keys; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, key: ApiKey) -> None:
        """Stage a new key."""
        self.session.add(key)

    async def list_active(self, *, user_id: uuid.UUID) -> list[ApiKey]:
        """The user's keys that are not revoked (expired ones included: the user sees them)."""
        stmt = (
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def get_active_for_user(self, *, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        """One of the user's keys, if it is the user's and not revoked."""
        stmt = select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
        )
        return (await self.session.execute(stmt)).scalars().first()

    async def revoke(self, *, key: ApiKey, at: datetime) -> None:
        """Mark a key revoked; open streams that run on it hear it after the commit."""
        key.revoked_at = at
        await self.session.flush()
        # the key's id stands where a token's session id would (Principal.session_id)
        note_revocation(self.session, Revocation(session_id=key.id))
