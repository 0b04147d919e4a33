"""Auth use cases: register, login, refresh rotation with reuse detection, logout, sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from loguru import logger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import RegistrationMode, Settings
from app.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from app.core.ratelimit import RateLimiter
from app.core.security import PasswordHasher, TokenClaims, TokenCodec, new_jti
from app.db.base import utcnow
from app.db.direct import DirectDb
from app.models import AuthSession, User
from app.repositories.auth_sessions import AuthSessionRepository
from app.repositories.principals import read_principal
from app.repositories.users import UserRepository
from app.schemas.admin import AuditAction
from app.schemas.auth import RegisterRequest, SessionRead, TokenPair
from app.services.admin.audit import NO_AUDIT, Auditor


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: the user (detached), the token's session, the preferences."""

    user: User
    session_id: uuid.UUID
    preferences: dict[str, Any] | None = None


class TokenAuthenticator:
    """Resolves an access token on every request: one direct read, no request session."""

    def __init__(self, *, db: DirectDb, tokens: TokenCodec) -> None:
        self.db = db
        self.tokens = tokens

    async def authenticate(self, *, access_token: str) -> Principal:
        """The token's caller, rejecting revoked sessions and disabled users at once."""
        return await self.resolve(self.tokens.decode(access_token, expected="access"))

    async def resolve(self, claims: TokenClaims) -> Principal:
        """The caller behind verified claims, if their session is still live."""
        found = await read_principal(self.db, session_id=claims.session_id, user_id=claims.user_id)
        if found is None:
            raise Unauthorized("Session no longer exists", code="token_revoked")
        if found.revoked_at is not None or not found.user.is_active:
            raise Unauthorized("Session has been revoked", code="token_revoked")
        return Principal(
            user=found.user, session_id=claims.session_id, preferences=found.preferences
        )


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login comes from (shown in the device list)."""

    user_agent: str | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """The rate limits of the auth use cases (`"5/minute"` strings from the settings)."""

    register: str
    login_ip: str
    login_account: str
    refresh: str

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthLimits:
        """From the `RATE_LIMIT_*` settings."""
        return cls(
            register=settings.rate_limit_register,
            login_ip=settings.rate_limit_login_ip,
            login_account=settings.rate_limit_login_account,
            refresh=settings.rate_limit_refresh,
        )


class AuthService:
    """Owns the transaction and the rate limits of each auth use case."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        limiter: RateLimiter,
        limits: AuthLimits,
        registration: RegistrationMode = RegistrationMode.open,
        audit: Auditor = NO_AUDIT,
    ) -> None:
        self.session = session
        self.hasher = hasher
        self.tokens = tokens
        self.limiter = limiter
        self.limits = limits
        self.registration = registration
        self.audit = audit
        self.users = UserRepository(session)
        self.sessions = AuthSessionRepository(session)

    async def register(self, *, data: RegisterRequest, ip: str) -> User:
        """Create an account (inactive until approved in `approval` mode); 409 when the email
        or username is taken, 403 `registration_closed` in `closed` mode."""
        if self.registration is RegistrationMode.closed:
            raise Forbidden("Registration is closed", code="registration_closed")
        await self.limiter.hit(self.limits.register, "register", ip, fail_closed=True)
        email, username = data.email.lower(), data.username.lower()
        await self._ensure_free(email=email, username=username)
        user = User(
            email=email,
            username=username,
            full_name=data.full_name,
            password_hash=await self.hasher.hash(data.password),
            is_active=self.registration is not RegistrationMode.approval,
        )
        self.users.add(user)
        try:
            await self.session.commit()
        except IntegrityError as exc:  # lost a race with a concurrent registration
            await self.session.rollback()
            await self._ensure_free(email=email, username=username)
            raise Conflict("Email or username already taken") from exc
        logger.info("user registered", user_id=str(user.id))
        self.audit.record(
            AuditAction.registered,
            actor_id=user.id,
            target_type="user",
            target_id=user.id,
            details={"pending": not user.is_active},
        )
        return user

    async def _ensure_free(
        self, *, email: str | None, username: str | None, exclude_id: uuid.UUID | None = None
    ) -> None:
        email_taken, username_taken = await self.users.find_taken(
            email=email, username=username, exclude_id=exclude_id
        )
        if email_taken:
            raise Conflict("This email is already registered", code="email_taken")
        if username_taken:
            raise Conflict("This username is already taken", code="username_taken")

    async def login(
        self,
        *,
        identifier: str,
        password: str,
        client: ClientInfo,
        ip: str,
    ) -> TokenPair:
        """Check the password (same cost for unknown users) and open a device session.

        Each attempt counts against the IP and against the account, one budget whether it is
        addressed by username or by email (an unknown name is its own key). An inactive account
        (awaiting approval, or deactivated) is 403 `account_pending`, and only after its
        password was verified, so it reveals nothing to someone without the password."""
        limiter, limits = self.limiter, self.limits
        await limiter.hit(limits.login_ip, "login-ip", ip, fail_closed=True)
        name = identifier.strip().lower()
        user = await self.users.get_by_login(identifier=name)
        account = str(user.id) if user else name
        await limiter.hit(limits.login_account, "login-account", ip, account, fail_closed=True)
        ok = await self.hasher.verify(password, user.password_hash if user else None)
        if user is None or not ok:
            logger.info("login failed")
            self.audit.record(
                AuditAction.login_failed,
                target_type="user" if user else None,
                target_id=user.id if user else None,
                details={"identifier": name[:320]},
            )
            raise Unauthorized("Incorrect username or password", code="invalid_credentials")
        if not user.is_active:
            self.audit.record(
                AuditAction.login_failed,
                target_type="user",
                target_id=user.id,
                details={"identifier": name[:320], "reason": "account_pending"},
            )
            raise Forbidden(
                "This account is not active yet: an administrator must activate it",
                code="account_pending",
            )
        pair = await self.open_session(user=user, client=client)
        logger.info("login", user_id=str(user.id))
        self.audit.record(
            AuditAction.login, actor_id=user.id, target_type="user", target_id=user.id
        )
        return pair

    async def open_session(self, *, user: User, client: ClientInfo) -> TokenPair:
        """Create a session row and its first token pair (commits)."""
        jti = new_jti()
        now = utcnow()
        auth_session = AuthSession(
            user_id=user.id,
            refresh_jti=jti,
            user_agent=(client.user_agent or "")[:512] or None,
            ip=client.ip,
            created_at=now,
            last_used_at=now,
            expires_at=now + self.tokens.refresh_ttl,
        )
        self.sessions.add(auth_session)
        await self.session.commit()
        return self._pair(user_id=user.id, session_id=auth_session.id, refresh_jti=jti)

    def _pair(self, *, user_id: uuid.UUID, session_id: uuid.UUID, refresh_jti: str) -> TokenPair:
        return TokenPair(
            access_token=self.tokens.issue(
                user_id=user_id, session_id=session_id, token_type="access", jti=new_jti()
            ),
            refresh_token=self.tokens.issue(
                user_id=user_id, session_id=session_id, token_type="refresh", jti=refresh_jti
            ),
            expires_in=int(self.tokens.access_ttl.total_seconds()),
            refresh_expires_in=int(self.tokens.refresh_ttl.total_seconds()),
        )

    async def refresh(self, *, refresh_token: str, ip: str) -> TokenPair:
        """Spend a refresh token for a new pair; a replayed one revokes its whole session."""
        await self.limiter.hit(self.limits.refresh, "refresh", ip, fail_closed=True)
        claims = self.tokens.decode(refresh_token, expected="refresh")
        now = utcnow()
        next_jti = new_jti()
        if await self.sessions.rotate(
            session_id=claims.session_id,
            user_id=claims.user_id,
            old_jti=claims.jti,
            new_jti=next_jti,
            now=now,
        ):
            await self.session.commit()
            return self._pair(
                user_id=claims.user_id, session_id=claims.session_id, refresh_jti=next_jti
            )
        row = await self.sessions.get(session_id=claims.session_id)
        if row is None:
            raise Unauthorized("Session no longer exists", code="token_revoked")
        if row.user_id != claims.user_id:  # signed with our key, yet not this session's user
            raise Unauthorized("Invalid token", code="invalid_token")
        if row.revoked_at is not None:
            raise Unauthorized("Session has been revoked", code="token_revoked")
        if row.expires_at <= now:
            raise Unauthorized("Session has expired", code="token_expired")
        # The token is genuine but already spent: someone replayed it. Kill the family.
        await self.sessions.revoke(session_id=row.id, reason="reuse")
        await self.session.commit()
        self.audit.record(
            AuditAction.refresh_reused,
            actor_id=row.user_id,
            target_type="session",
            target_id=row.id,
        )
        logger.warning("refresh token reuse detected; session revoked", session_id=str(row.id))
        raise Unauthorized("Refresh token was already used", code="token_reused")

    async def logout(self, *, principal: Principal, all_devices: bool) -> None:
        """Revoke the current session, or every session of the user."""
        user_id = principal.user.id
        if all_devices:
            await self.sessions.revoke_for_user(user_id=user_id, reason="logout_all")
        else:
            await self.sessions.revoke(session_id=principal.session_id, reason="logout")
        await self.session.commit()
        if all_devices:
            self.audit.record(
                AuditAction.logout_all, actor_id=user_id, target_type="user", target_id=user_id
            )
        else:
            self.audit.record(
                AuditAction.logout,
                actor_id=user_id,
                target_type="session",
                target_id=principal.session_id,
            )

    async def list_sessions(self, *, principal: Principal) -> list[SessionRead]:
        """The user's active device sessions, marking the caller's."""
        rows = await self.sessions.list_active(user_id=principal.user.id, now=utcnow())
        return [
            SessionRead.model_validate(row).model_copy(
                update={"current": row.id == principal.session_id}
            )
            for row in rows
        ]

    async def revoke_session(self, *, principal: Principal, session_id: uuid.UUID) -> None:
        """Revoke one of the user's sessions; 404 for anyone else's."""
        row = await self.sessions.get_for_user(user_id=principal.user.id, session_id=session_id)
        if row is None or row.revoked_at is not None:
            raise NotFound("Session not found")
        await self.sessions.revoke(session_id=session_id, reason="revoked")
        await self.session.commit()
        self.audit.record(
            AuditAction.session_revoked,
            actor_id=principal.user.id,
            target_type="session",
            target_id=session_id,
        )
