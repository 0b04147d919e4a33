"""Pure-ASGI middleware: request ids, one access-log line per request (streams included).

`RequestContextMiddleware` is the app's outermost layer (app/main.py puts it around the
stack FastAPI builds), so it is handed the server's own `send`. It is also where CORS is
dispatched: a request without an `Origin` header (every API client but a browser) never
enters the CORS layer.

A response's body messages need none of the `send` wrappers in between (FastAPI's error
middlewares, this one, CORS: they all act on `http.response.start` only), and a stream
sends one body message per frame. So the server's `send` is kept in the scope
(`server_send`) for a streaming response to send its frames straight to the server once
its start has gone through the layers. A middleware that rewrites bodies (compression,
for instance) must not be added while streams do that.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SERVER_SEND_KEY = "vektor.server_send"
access_logger = logger.bind(channel="api")
RequestObserver = Callable[[str, str, int, float], None]


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded cardinality), or a fixed label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


def server_send(scope: Scope) -> Send | None:
    """The server's own `send` for a response's body messages (None outside the app)."""
    send: Send | None = scope.get(SERVER_SEND_KEY)
    return send


class RequestContextMiddleware:
    """Adds `X-Request-ID`, logs method/path/status/duration/user/request id, feeds metrics;
    hands requests that carry an `Origin` to the CORS layer (`cors`) when there is one."""

    def __init__(
        self,
        app: ASGIApp,
        observers: list[RequestObserver] | None = None,
        *,
        cors: ASGIApp | None = None,
    ) -> None:
        self.app = app
        self.cors = cors
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # a socket drops a client that stopped reading
                scope[SERVER_SEND_KEY] = send
            await self.app(scope, receive, send)
            return
        incoming, has_origin = None, False
        for key, value in scope["headers"]:
            if key == b"x-request-id" and incoming is None:
                incoming = value
            elif key == b"origin":
                has_origin = True
        request_id = _request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        scope[SERVER_SEND_KEY] = send
        encoded_id = request_id.encode("ascii")
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                # the 500 handler sets it itself (app/core/errors.py)
                if not any(key.lower() == b"x-request-id" for key, _ in headers):
                    headers.append((b"x-request-id", encoded_id))
                message["headers"] = headers
            await send(message)

        target = self.cors if has_origin and self.cors is not None else self.app
        try:
            with logger.contextualize(request_id=request_id):
                await target(scope, receive, send_wrapper)
        finally:
            self._finish(scope, request_id, status, time.perf_counter() - started)

    def _finish(self, scope: Scope, request_id: str, status: int, elapsed: float) -> None:
        state: dict[str, Any] = scope.get("state", {})
        template = route_template(scope)
        access_logger.info(
            "{} {} {} {:.1f}ms",
            scope["method"],
            scope["path"],
            status,
            elapsed * 1000,
            method=scope["method"],
            path=scope["path"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            user_id=state.get("user_id"),
            request_id=request_id,
        )
        for observe in self.observers:
            observe(scope["method"], template, status, elapsed)


def _request_id(incoming: bytes | None) -> str:
    """The client's id when it is safe to log and echo, else a new one."""
    if incoming is not None:
        text = incoming.decode("latin-1")  # any byte decodes; the pattern admits ASCII only
        if _SAFE_ID.match(text):
            return text
    return uuid.uuid4().hex
