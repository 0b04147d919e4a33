"""`GET /sync/stream`: Server-Sent Events saying "your data changed, here is the new cursor".

The first event is sent at once with the current cursor, so a client that (re)connects
learns right away whether it missed something. The event's cursor only says how far the
server is; the client still fetches `/sync/changes?since=<its own cursor>`.
When the stream's session is revoked (logout, all devices, one device, password change,
account deletion, a replayed refresh token, an admin action) the revocation notifier fires
and the stream ends at once, on whichever worker it runs, with a last event
`error` `{code: "token_revoked", message}` so the client knows why and does not reconnect
with the same credentials. As a safety net (a revocation published while Redis was down is
lost) the stream also re-reads the head from the database every `REVALIDATE_S` (and
whenever the hub asks, e.g. after a Redis outage): a missed push is caught up there and the
session is checked again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.sse import PING_FRAME, encode_sse, retry_frame
from app.db.availability import is_unavailable
from app.repositories.api_keys import key_is_live
from app.repositories.changes import ChangeRepository
from app.repositories.principals import get_principal
from app.schemas.events import SERVER_SHUTDOWN, TOKEN_REVOKED, ChangedEvent
from app.services.auth import Principal
from app.services.revocations import SessionRevocations
from app.services.sync.cursor import encode_cursor
from app.services.sync.hub import SyncHub

REVALIDATE_S = 30.0
RETRY_FRAME = retry_frame(3000)
# sync frames keep `json.dumps`' default spacing (`{"code": ...}`): their bytes predate the
# shared encoder, and clients may compare them
REVOKED_FRAME = encode_sse("error", json.dumps(TOKEN_REVOKED))
_SHUTDOWN_FRAME = encode_sse("error", json.dumps(SERVER_SHUTDOWN))


def shutdown_frame(_last_chunk: bytes | None) -> bytes:
    """`error` `server_shutdown`: the server stops; reconnect (sync events carry no id)."""
    return _SHUTDOWN_FRAME


def changed_frame(*, user_id: uuid.UUID, seq: int) -> bytes:
    """One `changed` event; its id (the change number) lets a browser's EventSource resume
    with a stream ticket (it reconnects with `Last-Event-ID`, see stream_tickets.py)."""
    data: ChangedEvent = {"cursor": encode_cursor(user_id=user_id, seq=seq)}
    return encode_sse("changed", json.dumps(data), event_id=seq)


async def _head_if_signed_in(
    factory: async_sessionmaker[AsyncSession],
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    api_key: bool,
) -> int | None:
    """The user's change head, or None once the session (or API key) is revoked or expired,
    or the account gone."""
    async with factory() as session:
        if api_key:  # `session_id` is the key's id (Principal)
            if not await key_is_live(session, key_id=session_id, user_id=user_id):
                return None
        else:
            found = await get_principal(session, session_id=session_id, user_id=user_id)
            if found is None or found.revoked_at is not None or not found.user.is_active:
                return None
        bounds = await ChangeRepository(session).head(user_id=user_id)
        return bounds[0] if bounds is not None else None


# what `change_signals` yields besides a change number: nothing new within `ping_s`
# (None), or the session was revoked (the last signal)
REVOKED: Final = "revoked"
ChangeSignal = int | None | Literal["revoked"]


async def change_signals(
    *,
    hub: SyncHub,
    revocations: SessionRevocations,
    factory: async_sessionmaker[AsyncSession],
    principal: Principal,
    ping_s: float,
) -> AsyncGenerator[ChangeSignal]:
    """The caller's change head (first at once, then each newer one), None when `ping_s`
    passed without one, `REVOKED` last when the session (or API key) is revoked; the
    transport (SSE, WebSocket) encodes them. Ends empty when the database is down at first."""
    user_id, session_id = principal.user.id, principal.session_id
    api_key = principal.api_key_id is not None
    sub = hub.subscribe(user_id)  # before reading the head: nothing falls in between
    watch = revocations.watch(
        user_id=user_id, session_id=session_id, on_revoked=lambda: sub.notify(None)
    )
    try:
        try:
            head = await _head_if_signed_in(
                factory, user_id=user_id, session_id=session_id, api_key=api_key
            )
        except Exception as exc:  # the database went away since the request was authorised
            if not is_unavailable(exc):
                raise
            return  # an empty stream: the client reconnects and gets the 503
        if head is None or watch.revoked:
            yield REVOKED
            return
        sent = max(head, sub.latest)
        yield sent
        next_check = time.monotonic() + REVALIDATE_S
        while True:
            woke = await sub.wait(seconds=ping_s)
            if watch.revoked:
                yield REVOKED
                return
            if sub.recheck or time.monotonic() >= next_check:
                sub.recheck = False
                next_check = time.monotonic() + REVALIDATE_S
                try:
                    head = await _head_if_signed_in(
                        factory, user_id=user_id, session_id=session_id, api_key=api_key
                    )
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    # an outage: keep the stream (pushes still arrive), check again soon
                    head, next_check = sub.latest, time.monotonic() + ping_s
                if head is None:
                    yield REVOKED
                    return
                sub.latest = max(sub.latest, head)
            if sub.latest > sent:
                sent = sub.latest
                yield sent
            elif not woke:
                yield None
    finally:
        revocations.unwatch(watch)
        hub.unsubscribe(sub)


async def change_stream(
    *, user_id: uuid.UUID, signals: AsyncGenerator[ChangeSignal]
) -> AsyncIterator[bytes]:
    """`changed` events for one user, with keep-alives, until the client goes away or the
    session is revoked."""
    first = True
    async with aclosing(signals):
        async for signal in signals:
            if signal is None:
                yield PING_FRAME
            elif isinstance(signal, int):
                frame = changed_frame(user_id=user_id, seq=signal)
                yield RETRY_FRAME + frame if first else frame
                first = False
            else:
                yield REVOKED_FRAME
