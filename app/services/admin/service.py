"""User administration use cases and the audit log's reader (admins only)."""

from __future__ import annotations

import uuid
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.db.base import utcnow
from app.models import User
from app.repositories.admin_users import AdminUserRepository
from app.repositories.audit import AuditRepository
from app.repositories.auth_sessions import AuthSessionRepository
from app.repositories.usage import UsageRepository
from app.repositories.users import UserRepository
from app.schemas.admin import (
    AdminUserPage,
    AdminUserRead,
    AdminUserUpdate,
    AuditAction,
    AuditEventPage,
    UsageThisMonth,
)
from app.services.admin.audit import Auditor
from app.services.admin.cursor import decode_cursor, encode_cursor
from app.services.files.storage import Storage, delete_user_files
from app.services.usage.windows import month_of

LAST_ADMIN = "The last active administrator cannot be removed, demoted or deactivated"


class AdminService:
    """Owns the transaction of each administration use case; records each in the audit log."""

    def __init__(
        self, *, session: AsyncSession, audit: Auditor, storage: Storage | None = None
    ) -> None:
        self.session = session
        self.audit = audit
        self.storage = storage
        self.admin_users = AdminUserRepository(session)
        self.users = UserRepository(session)
        self.sessions = AuthSessionRepository(session)

    async def list_users(self, *, limit: int, cursor: str | None, query: str | None) -> Any:
        """A page of accounts, newest first, optionally searched."""
        rows = await self.admin_users.page(
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
            query=(query or "").strip() or None,
        )
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if more and page else None
        return AdminUserPage(
            items=await self._with_usage(page),
            next_cursor=encode_cursor(last.created_at, last.id) if last else None,
        )

    async def get_user(self, *, user_id: uuid.UUID) -> AdminUserRead:
        """One account; 404 if there is none."""
        return (await self._with_usage([await self._user(user_id)]))[0]

    async def update_user(
        self, *, actor: User, user_id: uuid.UUID, data: AdminUserUpdate
    ) -> AdminUserRead:
        """Activate/deactivate, grant/revoke admin, set quotas; deactivation signs out at once."""
        changes = data.model_dump(exclude_unset=True)
        for flag in ("is_active", "is_admin"):
            if flag in changes and changes[flag] is None:
                raise InvalidInput(f"{flag} cannot be null")
        admins = await self._lock_admins(actor, user_id)
        user = await self._user(user_id)
        before = {key: getattr(user, key) for key in changes}
        changed = {key: value for key, value in changes.items() if before[key] != value}
        if user.id in admins and (
            changed.get("is_active") is False or changed.get("is_admin") is False
        ):
            self._keep_one_admin(admins, user.id)
        for key, value in changed.items():
            setattr(user, key, value)
        if changed.get("is_active") is False:  # every access and refresh token dies with them
            await self.sessions.revoke_for_user(user_id=user.id, reason="deactivated")
        if changed:
            user.updated_at = utcnow()
        await self.session.commit()
        if changed:
            self.audit.record(
                AuditAction.admin_user_updated,
                actor_id=actor.id,
                target_type="user",
                target_id=user.id,
                details={
                    "before": {key: before[key] for key in changed},
                    "after": changed,
                },
            )
            logger.info("admin updated user", user_id=str(user.id), fields=sorted(changed))
        return (await self._with_usage([user]))[0]

    async def revoke_sessions(self, *, actor: User, user_id: uuid.UUID) -> None:
        """Sign a user out everywhere (tokens stop working at once)."""
        user = await self._user(user_id)
        await self.sessions.revoke_for_user(user_id=user.id, reason="admin")
        await self.session.commit()
        self.audit.record(
            AuditAction.admin_sessions_revoked,
            actor_id=actor.id,
            target_type="user",
            target_id=user.id,
        )

    async def delete_user(self, *, actor: User, user_id: uuid.UUID) -> None:
        """Delete an account and everything it owns (as `DELETE /users/me`, no password)."""
        admins = await self._lock_admins(actor, user_id)
        user = await self._user(user_id)
        if user.id in admins:
            self._keep_one_admin(admins, user.id)
        gone = {"email": user.email, "username": user.username, "is_admin": user.is_admin}
        await self.users.delete(user_id=user.id)
        await self.session.commit()
        await delete_user_files(self.storage, user_id=user.id)
        self.audit.record(
            AuditAction.admin_user_deleted,
            actor_id=actor.id,
            target_type="user",
            target_id=user_id,
            details={"before": gone},
        )
        logger.info("admin deleted user", user_id=str(user_id))

    async def list_audit(
        self,
        *,
        limit: int,
        cursor: str | None,
        action: AuditAction | None,
        actor_id: uuid.UUID | None,
        target_id: uuid.UUID | None,
    ) -> AuditEventPage:
        """A page of audit events, newest first, optionally filtered."""
        rows = await AuditRepository(self.session).page(
            limit=limit + 1,
            after=decode_cursor(cursor) if cursor else None,
            action=action.value if action else None,
            actor_id=actor_id,
            target_id=target_id,
        )
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if more and page else None
        return AuditEventPage.model_validate(
            {"items": page, "next_cursor": encode_cursor(last.at, last.id) if last else None},
            from_attributes=True,
        )

    async def _with_usage(self, users: list[User]) -> list[AdminUserRead]:
        """The users as admins see them, with this month's usage (one query for all)."""
        spent = await UsageRepository(self.session).by_users(
            user_ids=[user.id for user in users], start=month_of(utcnow()).start
        )
        items = []
        for user in users:
            item = AdminUserRead.model_validate(user)
            tokens, cost = spent.get(user.id, (0, 0.0))
            item.usage_this_month = UsageThisMonth(tokens=tokens, cost_usd=cost)
            items.append(item)
        return items

    async def _user(self, user_id: uuid.UUID) -> User:
        user = await self.admin_users.get(user_id=user_id)
        if user is None:
            raise NotFound("User not found")
        return user

    async def _lock_admins(self, actor: User, user_id: uuid.UUID) -> set[uuid.UUID]:
        """The active admins, locked with the target; the actor must still be one of them (a
        concurrent request may have just demoted or deactivated them)."""
        admins = await self.admin_users.lock_active_admins(also=user_id)
        if actor.id not in admins:
            raise Forbidden("Administrator access required")
        return admins

    @staticmethod
    def _keep_one_admin(admins: set[uuid.UUID], leaving: uuid.UUID) -> None:
        if not admins - {leaving}:
            raise Conflict(LAST_ADMIN, code="last_admin")
