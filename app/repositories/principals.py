"""The per-request session check as one synchronous Core read, run on `DirectDb`.

Every authenticated request asks whether its session row is still live (logout revokes at
once), so this read is on every request's path: one statement for the user, the session's
revocation time and the preference document, built into a detached `User`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import make_transient_to_detached

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


class PrincipalRepository:
    """The session check; no writes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, *, session_id: uuid.UUID, user_id: uuid.UUID) -> PrincipalRow | None:
        """The user behind a token with its session's revocation time and preferences."""
        row = self.conn.execute(_STATEMENT, {"session_id": session_id, "user_id": user_id}).first()
        if row is None:
            return None
        values = row._mapping
        user = User(**{key: values[key] for key in _USER_COLUMNS})
        make_transient_to_detached(user)
        return PrincipalRow(
            user=user, revoked_at=values["session_revoked_at"], preferences=values["data"]
        )
