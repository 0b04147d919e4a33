"""Users as administrators query them: every account, no ownership clause.

Only the admin service uses these (its routes are admin-only); the per-user queries stay in
`UserRepository`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import User


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AdminUserRepository:
    """Queries over all users; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self, *, limit: int, after: tuple[datetime, uuid.UUID] | None, query: str | None
    ) -> list[User]:
        """Newest accounts first, keyset-paginated on (`created_at`, `id`), optionally searched
        (a case-insensitive substring of email, username or full name)."""
        stmt = select(User)
        if query:
            pattern = f"%{_escape_like(query.lower())}%"
            stmt = stmt.where(
                or_(
                    User.email.like(pattern, escape="\\"),  # stored lower-cased
                    User.username.like(pattern, escape="\\"),
                    func.lower(User.full_name).like(pattern, escape="\\"),
                )
            )
        if after is not None:
            created_at, last_id = after
            stmt = stmt.where(
                or_(
                    User.created_at < created_at,
                    and_(User.created_at == created_at, User.id < last_id),
                )
            )
        stmt = stmt.order_by(User.created_at.desc(), User.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def lock_active_admins(self, *, also: uuid.UUID) -> set[uuid.UUID]:
        """The active admins, locked with the user `also` until the transaction ends (must be
        its first statement).

        Two admins demoting each other at once must not both succeed. PostgreSQL locks the
        admins' rows and the target's in one statement, in id order (no deadlock with
        another such transaction or a chat write batch, which lock users in id order too),
        and a waiting transaction re-reads them after the first commits; SQLite takes its
        write lock with an update of no row, so the read that follows is serialised."""
        is_active_admin = and_(User.is_admin.is_(True), User.is_active.is_(True))
        if self.session.get_bind().dialect.name == "sqlite":
            await self.session.execute(
                update(User)
                .where(false())
                .values(is_admin=User.is_admin, updated_at=User.updated_at)
                .execution_options(synchronize_session=False)
            )
            stmt = select(User.id, is_active_admin).where(is_active_admin)
        else:
            stmt = (
                select(User.id, is_active_admin)
                .where(or_(is_active_admin, User.id == also))
                .order_by(User.id)
                .with_for_update()
            )
        return {row[0] for row in (await self.session.execute(stmt)).all() if row[1]}

    async def get(self, *, user_id: uuid.UUID) -> User | None:
        """A user by id, read afresh (what a locked transaction must see)."""
        stmt = select(User).where(User.id == user_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalars().first()
