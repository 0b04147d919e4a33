"""The per-request session check: one read of the user, the session's revocation time and
the preference document, built into a detached `User`.

Every authenticated request asks whether its session row is still live (logout revokes at
once), so this read is on every request's path: it runs as one `DirectDb` unit (on
PostgreSQL a prepared statement on the asyncpg pool, app/db/direct.py). Long-lived streams
re-check with the same statement on their own session (`get_principal`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from app.db.direct import DirectDb
from app.models import AuthSession, User, UserPreferences

users = cast(Table, User.__table__)
sessions = cast(Table, AuthSession.__table__)
preferences = cast(Table, UserPreferences.__table__)
# built once: executing the same statement object skips rebuilding and re-keying it
_STATEMENT = (
    select(users, sessions.c.revoked_at.label("session_revoked_at"), preferences.c.data)
    .join(sessions, sessions.c.user_id == users.c.id)
    .outerjoin(preferences, preferences.c.user_id == users.c.id)
    .where(sessions.c.id == bindparam("session_id"), users.c.id == bindparam("user_id"))
)
_USER_COLUMNS = tuple(users.c.keys())


@dataclass(frozen=True, slots=True)
class PrincipalRow:
    """A token's user (detached: read-only here, services load what they change)."""

    user: User
    revoked_at: datetime | None
    preferences: dict[str, Any] | None


async def read_principal(
    db: DirectDb, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> PrincipalRow | None:
    """The user behind a token with its session's revocation time and preferences."""
    values = await db.first(_STATEMENT, {"session_id": session_id, "user_id": user_id})
    return None if values is None else _principal(values)


async def get_principal(
    session: AsyncSession, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> PrincipalRow | None:
    """The same read on a request's (or a stream's) own session."""
    params = {"session_id": session_id, "user_id": user_id}
    row = (await session.execute(_STATEMENT, params)).first()
    return None if row is None else _principal(row._mapping)


def _principal(values: Mapping[Any, Any]) -> PrincipalRow:
    user = User(**{key: values[key] for key in _USER_COLUMNS})
    make_transient_to_detached(user)
    return PrincipalRow(
        user=user, revoked_at=values["session_revoked_at"], preferences=values["data"]
    )
