"""One `GET /ws` connection: authentication, the client's frames, the answers it follows.

The connection's own task reads client frames and answers each one in turn; each followed
answer is a task reading its generation's event log (exactly what an SSE response reads);
one writer task sends every outgoing frame (app/api/ws/outbox.py). Every use case is a
call to the service the HTTP route calls: `ChatService.start/attach/cancel/decide_tool`,
the sync feed's `change_signals`, the session revocation watch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

from loguru import logger
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.deps import chat_service
from app.api.ws.frames import (
    changed_frame,
    error_frame,
    event_prefix,
    parse_frame,
    ready_frame,
    ref_of,
    relayed,
    validation_detail,
)
from app.api.ws.handshake import CLOSE_UNAUTHORIZED, close, first_frame_principal
from app.api.ws.outbox import Outbox
from app.core.errors import AppError, Conflict, InvalidInput
from app.db.availability import is_unavailable
from app.observability import metrics
from app.schemas.chat import ChatStreamRequest
from app.schemas.ws import AttachFrame, CancelFrame, SubscribeFrame, ToolDecisionFrame
from app.services.auth import Principal
from app.services.chat.service import ChatService
from app.services.sync.stream import change_signals
from app.state import AppState

CLOSE_STALLED = 1013  # the client stopped reading ("try again later")
MAX_FOLLOWED = 32  # answers one socket follows at once

CLOSE_FAILED = 1011  # a send failed (the client is normally gone by then)
Handler = Callable[["SocketSession", dict[str, Any], str | None], Awaitable[None]]


class SocketSession:
    """The state of one connection, from `auth` to close."""

    __slots__ = (
        "_chat",
        "_task",
        "close_code",
        "followed",
        "outbox",
        "principal",
        "state",
        "sync_task",
        "ws",
    )

    principal: Principal  # set by `run` once the `auth` frame is accepted

    def __init__(self, websocket: WebSocket, state: AppState) -> None:
        self.ws = websocket
        self.state = state
        self.close_code: int | None = None
        self.followed: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.sync_task: asyncio.Task[None] | None = None
        self._chat: ChatService | None = None
        self._task = asyncio.current_task()
        settings = state.settings
        self.outbox = Outbox(
            send=websocket.send_text,
            limit=settings.ws_send_buffer_bytes,
            stall_s=settings.ws_stall_seconds,
            on_stall=partial(self.end, CLOSE_STALLED),
            on_failed=partial(self.end, CLOSE_FAILED),
        )

    async def run(self) -> None:
        """Accept, authenticate, serve frames until the client leaves or is closed."""
        await self.ws.accept()
        principal = await first_frame_principal(self.ws, self.state)
        if principal is None:
            return
        self.principal = principal
        watch = self.state.revocations.watch(
            user_id=principal.user.id,
            session_id=principal.session_id,
            on_revoked=partial(self.end, CLOSE_UNAUTHORIZED),
        )
        metrics.ws_connections.inc()
        try:
            await self._serve_until_closed()
        finally:
            self._task = None  # closing: `end` cancels nothing from here on
            self.state.revocations.unwatch(watch)
            for task in [*self.followed.values(), self.sync_task]:
                if task is not None:
                    task.cancel()
            await self.outbox.aclose()
            if self.close_code is not None:
                await close(self.ws, self.close_code)
            metrics.ws_connections.dec()

    async def _serve_until_closed(self) -> None:
        """Read frames until the client leaves or `end` closes the socket."""
        try:
            await self.ws.send_text(ready_frame(self.principal.user.id))  # nothing queued yet
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                await self._handle(message.get("text"), message.get("bytes"))
        except WebSocketDisconnect:
            return  # a send found the client gone
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.close_code is None or task is None or task.uncancel() > 0:
                raise  # cancelled by someone else as well

    def end(self, code: int) -> None:
        """Close the socket with `code` (the first reason wins)."""
        if self.close_code is None:
            self.close_code = code
            if self._task is not None:
                self._task.cancel()

    async def _handle(self, text: str | None, data: bytes | None) -> None:
        """Answer one client frame; a bad one is an `error` frame, never the end."""
        ref = None
        try:
            frame = parse_frame(text, data)
            ref = ref_of(frame)
            handler = HANDLERS.get(frame["type"])
            if handler is None:
                raise InvalidInput(f"Unknown frame type {frame['type'][:64]!r}", code="bad_frame")
            await handler(self, frame, ref)
        except ValidationError as exc:
            await self._error("validation_error", validation_detail(exc), ref)
        except AppError as exc:
            await self._error(exc.code, exc.detail, ref, getattr(exc, "retry_after", None))
        except Exception as exc:
            if is_unavailable(exc):
                await self._error("database_unavailable", "The database is unavailable", ref)
                return
            logger.exception("a WebSocket frame failed")
            await self._error("internal_error", "Internal server error", ref)

    async def _error(
        self, code: str, detail: str, ref: str | None, retry_after: int | None = None
    ) -> None:
        await self.outbox.put([error_frame(code, detail, ref=ref, retry_after=retry_after)])

    @property
    def chat(self) -> ChatService:
        """The chat use cases, wired as for the HTTP routes (built on first use)."""
        if self._chat is None:
            self._chat = chat_service(self.state, models=self.state.models, tools=self.state.tools)
        return self._chat

    async def _start(self, frame: dict[str, Any], ref: str | None) -> None:
        """`chat.start`: `POST /chat/stream`'s body, started and followed."""
        body = ChatStreamRequest.model_validate(
            {key: value for key, value in frame.items() if key not in ("type", "ref")}
        )
        self._check_room(None)
        principal, chat = self.principal, self.chat
        async with self.state.chat_admission:  # as the HTTP route (deps.start_chat)
            await asyncio.sleep(0)
            message_id = await chat.start(
                user=principal.user, preferences=principal.preferences, body=body
            )
        self._follow(message_id, chat.follow(message_id=message_id), ref)

    async def _attach(self, frame: dict[str, Any], ref: str | None) -> None:
        """`chat.attach`: as `GET /chat/stream/{id}` with `Last-Event-ID`."""
        request = AttachFrame.model_validate(frame)
        self._check_room(request.message_id)
        frames = await self.chat.attach(
            user=self.principal.user,
            message_id=request.message_id,
            last_event_id=request.last_event_id,
        )
        self._follow(request.message_id, frames, ref)

    async def _cancel(self, frame: dict[str, Any], _ref: str | None) -> None:
        """`chat.cancel`: as `POST /chat/stream/{id}/cancel`."""
        request = CancelFrame.model_validate(frame)
        await self.chat.cancel(user=self.principal.user, message_id=request.message_id)

    async def _decide(self, frame: dict[str, Any], _ref: str | None) -> None:
        """`tool.approve` / `tool.deny`."""
        request = ToolDecisionFrame.model_validate(frame)
        await self.chat.decide_tool(
            user=self.principal.user,
            message_id=request.message_id,
            call_id=request.call_id,
            approve=request.type == "tool.approve",
            reason=request.reason,
        )

    async def _subscribe(self, frame: dict[str, Any], _ref: str | None) -> None:
        """`sync.subscribe`: `sync.changed` frames from now on (again: no effect)."""
        SubscribeFrame.model_validate(frame)
        if self.sync_task is None:
            self.sync_task = asyncio.create_task(self._sync(), name="ws-sync")

    def _check_room(self, message_id: uuid.UUID | None) -> None:
        if len(self.followed) >= MAX_FOLLOWED and message_id not in self.followed:
            raise Conflict(
                f"A socket follows at most {MAX_FOLLOWED} answers at once",
                code="too_many_streams",
            )

    def _follow(self, message_id: uuid.UUID, frames: AsyncIterator[bytes], ref: str | None) -> None:
        """Relay an answer's events in a task of its own (a re-attach replaces the old one)."""
        previous = self.followed.pop(message_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._relay(message_id, frames, ref), name="ws-follow")
        self.followed[message_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self.followed.get(message_id) is done:
                del self.followed[message_id]

        task.add_done_callback(forget)

    async def _relay(
        self, message_id: uuid.UUID, frames: AsyncIterator[bytes], ref: str | None
    ) -> None:
        prefix = event_prefix(message_id, ref)
        try:
            async for chunk in frames:
                out = relayed(chunk, prefix)
                if out and not await self.outbox.put(out):
                    return
        except Exception:
            logger.exception("relaying answer {} to a WebSocket failed", message_id)
            await self._error("internal_error", "The answer's events stopped; attach again", ref)

    async def _sync(self) -> None:
        principal = self.principal
        user_id = principal.user.id
        signals = change_signals(
            hub=self.state.sync.hub,
            revocations=self.state.revocations,
            factory=self.state.session_factory,
            principal=principal,
            ping_s=self.state.settings.sse_ping_seconds,
        )
        async with aclosing(signals):
            async for signal in signals:
                if isinstance(signal, int):
                    if not await self.outbox.put([changed_frame(user_id=user_id, seq=signal)]):
                        return
                elif signal is not None:  # revoked
                    self.end(CLOSE_UNAUTHORIZED)
                    return
        # it ended at once: the database could not be asked; the client may subscribe again
        self.sync_task = None
        await self._error("database_unavailable", "The database is unavailable", None)


# one table for every socket (bound methods per socket would cost each idle one ~1 KiB)
HANDLERS: dict[str, Handler] = {
    "chat.start": SocketSession._start,
    "chat.attach": SocketSession._attach,
    "chat.cancel": SocketSession._cancel,
    "tool.approve": SocketSession._decide,
    "tool.deny": SocketSession._decide,
    "sync.subscribe": SocketSession._subscribe,
}
