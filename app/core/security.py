"""JWT issuing/verification and bcrypt password hashing (always off the event loop)."""

from __future__ import annotations

import os
import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import bcrypt
import jwt
from anyio import CapacityLimiter, to_thread

from app.core.errors import Unauthorized
from app.core.text import unstorable

ALGORITHM = "HS256"
ALLOWED_ALGORITHMS = [ALGORITHM]  # strict: never "none", never an asymmetric confusion
MAX_PASSWORD_BYTES = 72
TokenType = Literal["access", "refresh", "stream"]
TOKEN_TYPES: tuple[TokenType, ...] = ("access", "refresh", "stream")
STREAM_TICKET_TTL = timedelta(seconds=60)  # API.md v1.1: a stream ticket is valid for 60 s
VERIFIED_TOKENS_KEPT = 4096
MAX_JTI_CHARS = 64
MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of a token."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    token_type: TokenType
    expires_at: datetime


def password_too_long(password: str) -> bool:
    """bcrypt only reads 72 bytes; longer passwords are refused, never silently truncated."""
    return len(password.encode("utf-8")) > MAX_PASSWORD_BYTES


def _hash_sync(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def _verify_sync(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False


class PasswordHasher:
    """bcrypt with a fixed cost; a dummy hash makes unknown-user logins cost the same."""

    def __init__(self, *, rounds: int, max_threads: int | None = None) -> None:
        self.rounds = rounds
        self._dummy_hash = _hash_sync(secrets.token_urlsafe(16), rounds)
        # One bcrypt per CPU at a time: more threads would not log anyone in sooner, but
        # would take CPU from the event loop (every other request) and fill anyio's pool.
        self._max_threads = max_threads or os.cpu_count() or 1
        self._limiter: CapacityLimiter | None = None

    def _thread_limiter(self) -> CapacityLimiter:
        if self._limiter is None:  # made lazily: it belongs to the running event loop
            self._limiter = CapacityLimiter(self._max_threads)
        return self._limiter

    async def hash(self, password: str) -> str:
        """Hash in a worker thread (≈250 ms at cost 12 would otherwise stall every request)."""
        if password_too_long(password):
            raise ValueError("password longer than 72 bytes")
        return await to_thread.run_sync(
            _hash_sync, password, self.rounds, limiter=self._thread_limiter()
        )

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check a password; with no hash, burn the same time against the dummy and fail."""
        limiter = self._thread_limiter()
        if hashed is None or password_too_long(password):
            await to_thread.run_sync(_verify_sync, "x", self._dummy_hash, limiter=limiter)
            return False
        return await to_thread.run_sync(_verify_sync, password, hashed, limiter=limiter)


class TokenCodec:
    """Issues and verifies HS256 JWTs with a `typ` claim and a session id (`sid`).

    Three types, never accepted for one another: `access`, `refresh`, and `stream` (a
    short-lived ticket that opens one SSE stream, see app/services/stream_tickets.py)."""

    def __init__(self, *, key: str, access_ttl: timedelta, refresh_ttl: timedelta) -> None:
        self._key = key
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: OrderedDict[str, TokenClaims] = OrderedDict()  # LRU of good tokens

    def issue(
        self, *, user_id: uuid.UUID, session_id: uuid.UUID, token_type: TokenType, jti: str
    ) -> str:
        """Sign a token of the given type."""
        now = datetime.now(UTC)
        ttl = {"access": self.access_ttl, "refresh": self.refresh_ttl}.get(
            token_type, STREAM_TICKET_TTL
        )
        payload = {
            "sub": str(user_id),
            "sid": str(session_id),
            "jti": jti,
            "typ": token_type,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def decode(self, token: str, *, expected: TokenType) -> TokenClaims:
        """Verify signature, algorithm, expiry and type; `Unauthorized` with a precise code.

        Every request decodes its token, and a client reuses one access token for many
        requests: a verified token's claims are kept (a signature's validity never changes)
        and only its type and expiry are checked again on each use."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            self._verified[token] = claims
            if len(self._verified) > VERIFIED_TOKENS_KEPT:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        if claims.token_type != expected:
            raise Unauthorized(f"Not a valid {expected} token", code="invalid_token")
        if claims.expires_at <= datetime.now(UTC):
            raise Unauthorized("Token has expired", code="token_expired")
        return claims

    def _verify(self, token: str) -> TokenClaims:
        try:
            # the time claims are checked below: PyJWT takes "123" for 123 and has no range
            payload = jwt.decode(
                token,
                self._key,
                algorithms=ALLOWED_ALGORITHMS,
                options={
                    "require": ["exp", "iat", "sub", "sid", "jti", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: text that is not UTF-8
            raise Unauthorized("Invalid token", code="invalid_token") from exc
        token_type = payload.get("typ")
        if token_type not in TOKEN_TYPES:
            raise Unauthorized("Invalid token", code="invalid_token")
        now = int(datetime.now(UTC).timestamp())
        exp, iat = _numeric_date(payload, "exp"), _numeric_date(payload, "iat")
        nbf = _numeric_date(payload, "nbf") if "nbf" in payload else None
        jti = payload["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS or unstorable(jti):
            raise Unauthorized("Invalid token", code="invalid_token")  # it is queried
        if iat > now or (nbf is not None and nbf > now):  # not valid yet
            raise Unauthorized("Invalid token", code="invalid_token")
        if exp <= now:
            raise Unauthorized("Token has expired", code="token_expired")
        try:
            return TokenClaims(
                user_id=uuid.UUID(str(payload["sub"])),
                session_id=uuid.UUID(str(payload["sid"])),
                jti=jti,
                token_type=token_type,
                expires_at=datetime.fromtimestamp(exp, UTC),
            )
        except (ValueError, TypeError) as exc:
            raise Unauthorized("Invalid token", code="invalid_token") from exc


def _numeric_date(payload: dict[str, Any], claim: str) -> int:
    """A time claim: an integer number of seconds within what a datetime can hold."""
    value = payload.get(claim)
    if type(value) is not int or not 0 <= value <= MAX_NUMERIC_DATE:
        raise Unauthorized("Invalid token", code="invalid_token")
    return value


def new_jti() -> str:
    """A fresh unguessable token id."""
    return secrets.token_urlsafe(18)
