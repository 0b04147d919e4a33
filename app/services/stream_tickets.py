"""Stream tickets: how a browser's `EventSource`, which cannot send headers, opens a stream.

`POST /auth/stream-ticket` gives the caller a ticket: a signed token of type `stream` (never
accepted as an access or refresh token, nor the reverse) naming the caller's user and
session, valid for 60 s. `GET /chat/stream/{id}?ticket=…` and `GET /sync/stream?ticket=…`
accept it instead of the `Authorization` header.

Single use, and EventSource's automatic reconnection. A ticket opens exactly one stream:
its first use binds it to that stream (the request path). EventSource reconnects by itself,
to the same URL, with the id of the last event it saw as `Last-Event-ID`; so within the
ticket's 60 s the same ticket is accepted again only as such a *resumption*: the same path,
a `Last-Event-ID` header, and no other connection open with it. Anything else is a reuse and
answers `401 invalid_token`: another stream, a fresh open without `Last-Event-ID`, a second
connection while the first is open. A revoked session stops its tickets at once
(`token_revoked`), an expired ticket is `token_expired`. After 60 s a dropped stream cannot
resume with its ticket: the browser's reconnect gets 401, EventSource closes, and the page
fetches a fresh ticket (README, "Browser clients").

The ledger of used tickets lives in Redis with `REDIS_URL` (one Lua script claims a ticket
atomically, so two workers can never both open a stream with it; an unreachable Redis fails
closed with 503), else in this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from loguru import logger
from redis.asyncio import Redis

from app.core.errors import ServiceUnavailable, Unauthorized
from app.core.security import STREAM_TICKET_TTL, TokenCodec, new_jti
from app.db.direct import DirectDb
from app.schemas.auth import StreamTicketRead
from app.services.auth import Principal, TokenAuthenticator

Outcome = Literal["first", "resumed", "used", "in_use"]
KEY_PREFIX = "vektor:stream-ticket:"
LEDGER_MARGIN_S = 5.0  # kept a little past the ticket's expiry (clock skew between workers)
SWEEP_ABOVE = 1024

# KEYS[1] the ticket; ARGV: path, ms to keep, "1" when the request resumes (Last-Event-ID)
_CLAIM = """
local path = redis.call('HGET', KEYS[1], 'path')
if not path then
  redis.call('HSET', KEYS[1], 'path', ARGV[1], 'open', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 'first'
end
if ARGV[3] ~= '1' or path ~= ARGV[1] then return 'used' end
if redis.call('HGET', KEYS[1], 'open') == '1' then return 'in_use' end
redis.call('HSET', KEYS[1], 'open', '1')
return 'resumed'
"""
_RELEASE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'open', '0') end
return 1
"""


class Ledger(Protocol):
    """Which tickets were used, for which stream, and whether a connection holds them."""

    async def claim(self, jti: str, *, path: str, resume: bool, keep_s: float) -> Outcome:
        """Use a ticket for `path` (atomically)."""

    async def release(self, jti: str) -> None:
        """The connection opened with the ticket has ended."""

    async def aclose(self) -> None:
        """Close connections."""


@dataclass
class _Use:
    path: str
    open: bool
    until: float  # monotonic


class LocalLedger:
    """The ledger of one process (one worker: without Redis there is only one)."""

    def __init__(self) -> None:
        self._uses: dict[str, _Use] = {}

    async def claim(self, jti: str, *, path: str, resume: bool, keep_s: float) -> Outcome:
        """Use a ticket for `path` (no await inside: atomic on the event loop)."""
        now = time.monotonic()
        if len(self._uses) > SWEEP_ABOVE:
            self._uses = {k: u for k, u in self._uses.items() if u.until > now}
        use = self._uses.get(jti)
        if use is None or use.until <= now:
            self._uses[jti] = _Use(path=path, open=True, until=now + keep_s)
            return "first"
        if not resume or use.path != path:
            return "used"
        if use.open:
            return "in_use"
        use.open = True
        return "resumed"

    async def release(self, jti: str) -> None:
        """The connection opened with the ticket has ended."""
        use = self._uses.get(jti)
        if use is not None:
            use.open = False

    async def aclose(self) -> None:
        """Nothing to close."""


class RedisLedger:
    """The ledger shared by every worker and instance."""

    def __init__(self, redis_url: str) -> None:
        self._redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        self._claim: Any = self._redis.register_script(_CLAIM)
        self._release: Any = self._redis.register_script(_RELEASE)

    async def claim(self, jti: str, *, path: str, resume: bool, keep_s: float) -> Outcome:
        """Use a ticket for `path` in one Lua script."""
        args = [path, max(1, int(keep_s * 1000)), "1" if resume else "0"]
        result = await self._claim(keys=[KEY_PREFIX + jti], args=args)
        return cast(Outcome, result.decode() if isinstance(result, bytes) else result)

    async def release(self, jti: str) -> None:
        """The connection opened with the ticket has ended."""
        await self._release(keys=[KEY_PREFIX + jti])

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


@dataclass
class Redeemed:
    """A ticket accepted for one connection; `release` when the connection ends."""

    principal: Principal
    jti: str
    ledger: Ledger

    async def release(self) -> None:
        """Let an EventSource reconnect with the same ticket (within its lifetime)."""
        try:
            await self.ledger.release(self.jti)
        except Exception as exc:  # the ticket then stays held until it expires: safe
            logger.warning("could not release a stream ticket: {}", type(exc).__name__)


class StreamTickets:
    """Issues stream tickets and redeems them, once per stream."""

    def __init__(self, *, db: DirectDb, tokens: TokenCodec, redis_url: str | None) -> None:
        self._tokens = tokens
        self._authenticator = TokenAuthenticator(db=db, tokens=tokens)
        self._ledger: Ledger = RedisLedger(redis_url) if redis_url else LocalLedger()

    def issue(self, *, principal: Principal) -> StreamTicketRead:
        """A fresh ticket for the caller's user and session."""
        ticket = self._tokens.issue(
            user_id=principal.user.id,
            session_id=principal.session_id,
            token_type="stream",
            jti=new_jti(),
        )
        return StreamTicketRead(ticket=ticket, expires_in=int(STREAM_TICKET_TTL.total_seconds()))

    async def redeem(self, *, ticket: str, path: str, resume: bool) -> Redeemed:
        """The ticket's caller for a connection to `path`; 401 when it may not open it."""
        claims = self._tokens.decode(ticket, expected="stream")
        principal = await self._authenticator.resolve(claims)
        keep_s = (claims.expires_at - datetime.now(UTC)).total_seconds() + LEDGER_MARGIN_S
        try:
            outcome = await self._ledger.claim(claims.jti, path=path, resume=resume, keep_s=keep_s)
        except Exception as exc:  # Redis unreachable: never let a ticket through unchecked
            logger.warning("stream-ticket ledger unavailable: {}", type(exc).__name__)
            raise ServiceUnavailable(
                "Stream tickets cannot be checked right now; try again shortly"
            ) from exc
        if outcome == "used":
            raise Unauthorized("This stream ticket was already used", code="invalid_token")
        if outcome == "in_use":
            raise Unauthorized("This stream ticket is in use", code="invalid_token")
        return Redeemed(principal=principal, jti=claims.jti, ledger=self._ledger)

    async def aclose(self) -> None:
        """Close the ledger's connections."""
        await self._ledger.aclose()
