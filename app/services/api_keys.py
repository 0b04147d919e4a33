"""Personal API keys: create, list, revoke, and resolve a `vk-` bearer into its caller."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.api_keys import ApiKeyHasher, new_api_key, stored_prefix
from app.core.errors import NotFound, Unauthorized
from app.db.base import utcnow
from app.db.direct import DirectDb
from app.models import ApiKey, User
from app.repositories.api_keys import ApiKeyRepository, read_key_principal, touch_key
from app.schemas.admin import AuditAction
from app.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.services.admin.audit import Auditor
from app.services.auth import Principal

TOUCH_EVERY_S = 60.0  # `last_used_at` is written at most this often per key and worker
TOUCHES_KEPT = 10_000


class ApiKeyService:
    """The owner's key use cases bound to one request's session."""

    def __init__(self, *, session: AsyncSession, hasher: ApiKeyHasher, audit: Auditor) -> None:
        self.session = session
        self.keys = ApiKeyRepository(session)
        self.hasher = hasher
        self.audit = audit

    async def create(self, *, user: User, data: ApiKeyCreate) -> ApiKeyCreated:
        """A new key for the user; the key itself is in the answer and nowhere else."""
        key, prefix = new_api_key()
        now = utcnow()
        expires_at = None
        if data.expires_in_days is not None:
            expires_at = now + timedelta(days=data.expires_in_days)
        row = ApiKey(
            user_id=user.id,
            name=data.name,
            prefix=prefix,
            hash=self.hasher.hash(key),
            created_at=now,
            expires_at=expires_at,
        )
        self.keys.add(row)
        await self.session.commit()
        self.audit.record(
            AuditAction.api_key_created,
            actor_id=user.id,
            target_type="api_key",
            target_id=row.id,
            details={"name": row.name, "prefix": row.prefix},
        )
        return ApiKeyCreated(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            key=key,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def list_keys(self, *, user: User) -> list[ApiKeyRead]:
        """The user's keys that are not revoked, newest first."""
        rows = await self.keys.list_active(user_id=user.id)
        return [ApiKeyRead.model_validate(row) for row in rows]

    async def revoke(self, *, user: User, key_id: uuid.UUID) -> None:
        """Revoke one of the user's keys; 404 for anyone else's (or one already revoked)."""
        row = await self.keys.get_active_for_user(user_id=user.id, key_id=key_id)
        if row is None:
            raise NotFound("API key not found")
        await self.keys.revoke(key=row, at=utcnow())
        await self.session.commit()
        self.audit.record(
            AuditAction.api_key_revoked,
            actor_id=user.id,
            target_type="api_key",
            target_id=key_id,
            details={"name": row.name, "prefix": row.prefix},
        )


class UsageThrottle:
    """Whether a key's `last_used_at` is due a write: at most once per `every_s` per key."""

    def __init__(
        self, *, every_s: float = TOUCH_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: dict[uuid.UUID, float] = {}

    def due(self, key_id: uuid.UUID) -> bool:
        """True (and noted) when this key was not written within the interval."""
        now = self.clock()
        last = self._last.get(key_id)
        if last is not None and now - last < self.every_s:
            return False
        if len(self._last) >= TOUCHES_KEPT:  # bounded: forget the oldest entries
            for stale in list(self._last)[: TOUCHES_KEPT // 10]:
                del self._last[stale]
        self._last.pop(key_id, None)
        self._last[key_id] = now
        return True


class ApiKeyAuthenticator:
    """Resolves a `vk-` bearer on every request: one direct read by prefix, no request session.

    The key row is read on every use (as a token's session row is), so a revocation or a
    deactivation committed on any worker stops the key at its next request."""

    def __init__(self, *, db: DirectDb, hasher: ApiKeyHasher, throttle: UsageThrottle) -> None:
        self.db = db
        self.hasher = hasher
        self.throttle = throttle

    async def authenticate(self, *, key: str) -> Principal:
        """The key's caller; 401 `invalid_token`, `token_expired` or `token_revoked`."""
        prefix = stored_prefix(key)
        found = None if prefix is None else await read_key_principal(self.db, prefix=prefix)
        if found is None or not self.hasher.matches(key, found.key_hash):
            raise Unauthorized("Invalid API key", code="invalid_token")
        if found.revoked_at is not None or not found.user.is_active:
            raise Unauthorized("API key has been revoked", code="token_revoked")
        now = utcnow()
        if found.expires_at is not None and found.expires_at <= now:
            raise Unauthorized("API key has expired", code="token_expired")
        if self.throttle.due(found.key_id):
            await self._touch(found.key_id, now)
        return Principal(
            user=found.user,
            session_id=found.key_id,
            preferences=found.preferences,
            api_key_id=found.key_id,
        )

    async def _touch(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            await touch_key(self.db, key_id=key_id, at=now)
        except Exception as exc:  # bookkeeping: the request it rides on must not fail for it
            logger.warning("could not record an API key's last use: {}", type(exc).__name__)
