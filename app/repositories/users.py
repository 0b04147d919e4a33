"""User and preference queries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.base import utcnow
from app.models import User, UserPreferences
from app.repositories.auth_sessions import Revocation, note_revocation


class UserRepository:
    """Queries over users; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, *, user_id: uuid.UUID) -> User | None:
        """A user by id."""
        return await self.session.get(User, user_id)

    async def get_by_login(self, *, identifier: str) -> User | None:
        """A user by username or email (already lower-cased)."""
        stmt = select(User).where(or_(User.username == identifier, User.email == identifier))
        return (await self.session.execute(stmt)).scalars().first()

    async def find_taken(
        self, *, email: str | None, username: str | None, exclude_id: uuid.UUID | None = None
    ) -> tuple[bool, bool]:
        """Whether the email / username already belong to another user."""
        conditions = []
        if email:
            conditions.append(User.email == email)
        if username:
            conditions.append(User.username == username)
        if not conditions:
            return False, False
        stmt = select(User.email, User.username).where(or_(*conditions))
        if exclude_id is not None:
            stmt = stmt.where(User.id != exclude_id)
        rows = (await self.session.execute(stmt)).all()
        return (
            any(row.email == email for row in rows),
            any(row.username == username for row in rows),
        )

    async def record_login(self, *, user_id: uuid.UUID, at: datetime) -> None:
        """Note a login's time (the audit writer does, off the login's path; a login is not a
        profile change: `updated_at` stays)."""
        await self.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(last_login_at=at, updated_at=User.updated_at)
            .execution_options(synchronize_session=False)
        )

    def add(self, user: User) -> None:
        """Stage a new user."""
        self.session.add(user)

    async def delete(self, *, user_id: uuid.UUID) -> None:
        """Delete a user; foreign keys cascade to everything the user owns, sessions included."""
        await self.session.execute(delete(User).where(User.id == user_id))
        note_revocation(self.session, Revocation(user_id=user_id))

    async def get_preferences(self, *, user_id: uuid.UUID) -> UserPreferences | None:
        """The stored preference row, if any."""
        return await self.session.get(UserPreferences, user_id)

    async def lock_preferences(self, *, user_id: uuid.UUID) -> UserPreferences:
        """The preference row, created if missing and locked until the transaction ends.

        Two devices saving at once must neither collide on the first insert (a 500) nor
        overwrite each other's fields: the insert is a no-op when the row exists, and it
        takes SQLite's write lock; PostgreSQL locks the row with `FOR UPDATE`.
        """
        values = {"user_id": user_id, "data": {}, "updated_at": utcnow()}
        dialect = self.session.get_bind().dialect.name
        if dialect == "postgresql":
            pg_insert = postgresql.insert(UserPreferences).values(values)
            await self.session.execute(pg_insert.on_conflict_do_nothing(index_elements=["user_id"]))
        elif dialect == "sqlite":
            lite_insert = sqlite.insert(UserPreferences).values(values)
            await self.session.execute(
                lite_insert.on_conflict_do_nothing(index_elements=["user_id"])
            )
        stmt = (
            select(UserPreferences)
            .where(UserPreferences.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(stmt)).scalars().first()
        if row is None:  # a dialect without an insert-or-ignore: create it here
            row = UserPreferences(user_id=user_id, data={})
            self.session.add(row)
        return row

    def add_preferences(self, prefs: UserPreferences) -> None:
        """Stage a preference row."""
        self.session.add(prefs)
