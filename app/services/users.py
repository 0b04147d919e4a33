"""User use cases: profile, password, account deletion, preferences."""

from __future__ import annotations

import json
from typing import Any

from loguru import logger
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, InvalidInput, Unauthorized
from app.core.security import PasswordHasher
from app.db.base import utcnow
from app.models import User
from app.repositories.auth_sessions import AuthSessionRepository
from app.repositories.changes import ChangeRepository
from app.repositories.users import UserRepository
from app.schemas.admin import AuditAction
from app.schemas.user import Preferences, PreferencesUpdate, UserUpdate
from app.services.admin.audit import NO_AUDIT, Auditor
from app.services.files.storage import Storage, delete_user_files

MAX_EXTRA_BYTES = 16 * 1024


class UserService:
    """Owns the transaction of each user use case."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        hasher: PasswordHasher,
        storage: Storage | None = None,
        audit: Auditor = NO_AUDIT,
    ) -> None:
        self.session = session
        self.hasher = hasher
        self.storage = storage
        self.audit = audit
        self.users = UserRepository(session)
        self.sessions = AuthSessionRepository(session)

    async def update_profile(self, *, user: User, data: UserUpdate) -> User:
        """Apply the fields sent; 409 when the new email/username is someone else's."""
        changes = data.model_dump(exclude_unset=True)
        if "email" in changes and changes["email"] is not None:
            changes["email"] = changes["email"].lower()
        if "username" in changes and changes["username"] is not None:
            changes["username"] = changes["username"].lower()
        for required in ("email", "username"):
            if required in changes and changes[required] is None:
                raise InvalidInput(f"{required} cannot be empty")
        email_taken, username_taken = await self.users.find_taken(
            email=changes.get("email"), username=changes.get("username"), exclude_id=user.id
        )
        if email_taken:
            raise Conflict("This email is already registered", code="email_taken")
        if username_taken:
            raise Conflict("This username is already taken", code="username_taken")
        user = await self._row_of(user)
        for key, value in changes.items():
            setattr(user, key, value)
        user.updated_at = utcnow()
        try:
            await self.session.commit()
        except IntegrityError as exc:
            await self.session.rollback()
            raise Conflict("Email or username already taken") from exc
        return user

    async def _row_of(self, user: User) -> User:
        """The caller's row in this session (the request's user is a detached snapshot)."""
        row = await self.users.get(user_id=user.id)
        if row is None:
            raise Unauthorized("Session no longer exists", code="token_revoked")
        return row

    async def _require_password(self, *, user: User, password: str) -> None:
        if not await self.hasher.verify(password, user.password_hash):
            raise Unauthorized("Incorrect password", code="invalid_credentials")

    async def change_password(
        self, *, user: User, current_session_id: Any, current_password: str, new_password: str
    ) -> None:
        """Replace the password and revoke every other session of the user."""
        await self._require_password(user=user, password=current_password)
        user = await self._row_of(user)
        user.password_hash = await self.hasher.hash(new_password)
        user.password_changed_at = utcnow()
        await self.sessions.revoke_for_user(
            user_id=user.id, reason="password_changed", keep=current_session_id
        )
        await self.session.commit()
        logger.info("password changed", user_id=str(user.id))
        self.audit.record(
            AuditAction.password_changed, actor_id=user.id, target_type="user", target_id=user.id
        )

    async def delete_account(self, *, user: User, password: str) -> None:
        """Delete the user and, by cascade, everything the user owns."""
        await self._require_password(user=user, password=password)
        await self.users.delete(user_id=user.id)
        await self.session.commit()
        logger.info("account deleted", user_id=str(user.id))
        await delete_user_files(self.storage, user_id=user.id)
        self.audit.record(
            AuditAction.account_deleted,
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details={"before": {"email": user.email, "username": user.username}},
        )

    async def get_preferences(self, *, user: User) -> Preferences:
        """The stored preferences with defaults for anything missing."""
        row = await self.users.get_preferences(user_id=user.id)
        return Preferences.model_validate(row.data if row else {})

    async def update_preferences(self, *, user: User, data: PreferencesUpdate) -> Preferences:
        """Replace the fields sent, keep the others; `notifications` merges field by field."""
        # the sync feed's change number first: the user row is every writer's first lock
        seq = await ChangeRepository(self.session).allocate(user_id=user.id)
        row = await self.users.lock_preferences(user_id=user.id)
        current = Preferences.model_validate(row.data or {}).model_dump()
        changes = data.model_dump(exclude_unset=True)
        if "notifications" in changes and changes["notifications"] is not None:
            sent = {k: v for k, v in changes["notifications"].items() if v is not None}
            changes["notifications"] = {**current["notifications"], **sent}
        if "extra" in changes and changes["extra"] is None:
            changes["extra"] = {}
        if "auto_approve_tools" in changes and changes["auto_approve_tools"] is None:
            changes["auto_approve_tools"] = []
        merged = {**current, **changes}
        try:
            prefs = Preferences.model_validate(merged)
        except ValidationError as exc:
            field = ".".join(str(part) for part in exc.errors()[0]["loc"])
            raise InvalidInput(f"Invalid value for preference '{field}'") from exc
        if len(json.dumps(prefs.extra)) > MAX_EXTRA_BYTES:
            raise InvalidInput(f"'extra' must be at most {MAX_EXTRA_BYTES} bytes of JSON")
        row.data = prefs.model_dump()
        row.updated_at = utcnow()
        row.change_seq = seq
        await self.session.commit()
        return prefs
