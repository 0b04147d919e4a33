"""File queries; ownership (`user_id = :me`) is part of every one."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import StoredFile


class FileRepository:
    """Queries over uploaded files; no commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_user(self, *, user_id: uuid.UUID, file_id: uuid.UUID) -> StoredFile | None:
        """A file only if the user owns it."""
        stmt = select(StoredFile).where(StoredFile.id == file_id, StoredFile.user_id == user_id)
        return (await self.session.execute(stmt)).scalars().first()

    async def get_many(
        self, *, user_id: uuid.UUID, file_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, StoredFile]:
        """The user's files among `file_ids`, by id (missing and foreign ids are absent)."""
        if not file_ids:
            return {}
        stmt = select(StoredFile).where(
            StoredFile.user_id == user_id, StoredFile.id.in_(set(file_ids))
        )
        return {row.id: row for row in (await self.session.execute(stmt)).scalars()}

    async def existing_ids(
        self, *, user_id: uuid.UUID, file_ids: list[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of `file_ids` still exist (for marking deleted attachments)."""
        if not file_ids:
            return set()
        stmt = select(StoredFile.id).where(
            StoredFile.user_id == user_id, StoredFile.id.in_(set(file_ids))
        )
        return set((await self.session.execute(stmt)).scalars())

    async def get_by_sha256(self, *, user_id: uuid.UUID, sha256: str) -> StoredFile | None:
        """The user's file with these bytes, if any."""
        stmt = select(StoredFile).where(StoredFile.user_id == user_id, StoredFile.sha256 == sha256)
        return (await self.session.execute(stmt)).scalars().first()

    async def list_page(
        self, *, user_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[StoredFile]:
        """Newest first, keyset-paginated by (`created_at`, `id`)."""
        stmt = select(StoredFile).where(StoredFile.user_id == user_id)
        if after is not None:
            created_at, last_id = after
            stmt = stmt.where(
                or_(
                    StoredFile.created_at < created_at,
                    and_(StoredFile.created_at == created_at, StoredFile.id < last_id),
                )
            )
        stmt = stmt.order_by(StoredFile.created_at.desc(), StoredFile.id.desc()).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def all_for_user(self, *, user_id: uuid.UUID) -> list[StoredFile]:
        """Every file of the user, oldest first (for a backup)."""
        stmt = (
            select(StoredFile)
            .where(StoredFile.user_id == user_id)
            .order_by(StoredFile.created_at, StoredFile.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def storage_bytes(self, *, user_id: uuid.UUID) -> int:
        """The total size of the user's files."""
        stmt = select(func.coalesce(func.sum(StoredFile.size), 0)).where(
            StoredFile.user_id == user_id
        )
        return int((await self.session.execute(stmt)).scalar_one())

    def add(self, stored: StoredFile) -> None:
        """Stage a new file row."""
        self.session.add(stored)

    async def delete_for_user(self, *, user_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        """Delete the user's file row; False when there was none."""
        stmt = delete(StoredFile).where(StoredFile.id == file_id, StoredFile.user_id == user_id)
        result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))
