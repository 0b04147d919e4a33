"""Device-session queries: rotation is a single conditional UPDATE (no lost races).

Every revocation is also noted in the session's `info` (`note_revocation`); the session
revocation notifier (`app/services/revocations.py`) announces it once the transaction has
committed, so open streams of a revoked session end at once on every worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.models import AuthSession

PENDING_REVOCATIONS_KEY = "vektor.auth.revoked"


@dataclass(frozen=True, slots=True)
class Revocation:
    """Sessions a transaction revoked: one (`session_id`), or all of `user_id` except `keep`."""

    session_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    keep: uuid.UUID | None = None

    def covers(self, *, user_id: uuid.UUID, session_id: uuid.UUID) -> bool:
        """Whether the session `session_id` of `user_id` is among the revoked ones."""
        if self.session_id is not None:
            return self.session_id == session_id
        return self.user_id == user_id and self.keep != session_id


def note_revocation(session: AsyncSession, revocation: Revocation) -> None:
    """Remember a revocation of this transaction; it is announced only after the commit."""
    pending: list[Revocation] = session.info.setdefault(PENDING_REVOCATIONS_KEY, [])
    pending.append(revocation)


class AuthSessionRepository:
    """Queries over `auth_sessions`; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, auth_session: AuthSession) -> None:
        """Stage a new session."""
        self.session.add(auth_session)

    async def get(self, *, session_id: uuid.UUID) -> AuthSession | None:
        """A session by id (any state)."""
        return await self.session.get(AuthSession, session_id)

    async def rotate(
        self,
        *,
        session_id: uuid.UUID,
        user_id: uuid.UUID,
        old_jti: str,
        new_jti: str,
        now: datetime,
    ) -> bool:
        """Swap the live refresh token id only if `old_jti` is still the live one of the user."""
        stmt = (
            update(AuthSession)
            .where(
                AuthSession.id == session_id,
                AuthSession.user_id == user_id,
                AuthSession.refresh_jti == old_jti,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .values(
                refresh_jti=new_jti,
                rotation_count=AuthSession.rotation_count + 1,
                last_used_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def revoke(self, *, session_id: uuid.UUID, reason: str) -> None:
        """Revoke one session (idempotent)."""
        await self._revoke_where(AuthSession.id == session_id, reason=reason)
        note_revocation(self.session, Revocation(session_id=session_id))

    async def revoke_for_user(
        self, *, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None
    ) -> None:
        """Revoke every active session of a user, optionally sparing one."""
        conditions = [AuthSession.user_id == user_id]
        if keep is not None:
            conditions.append(AuthSession.id != keep)
        await self._revoke_where(*conditions, reason=reason)
        note_revocation(self.session, Revocation(user_id=user_id, keep=keep))

    async def _revoke_where(self, *conditions: object, reason: str) -> None:
        stmt = (
            update(AuthSession)
            .where(*conditions, AuthSession.revoked_at.is_(None))  # type: ignore[arg-type]
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(stmt)

    async def list_active(self, *, user_id: uuid.UUID, now: datetime) -> list[AuthSession]:
        """A user's sessions that can still be used, most recently used first."""
        stmt = (
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_used_at.desc())
        )
        return list((await self.session.execute(stmt)).scalars())

    async def get_for_user(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID
    ) -> AuthSession | None:
        """A session only if it belongs to the user."""
        stmt = select(AuthSession).where(
            AuthSession.id == session_id, AuthSession.user_id == user_id
        )
        return (await self.session.execute(stmt)).scalars().first()
