"""Pure-ASGI middleware: request ids, one access-log line per request (streams included)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_logger = logger.bind(channel="api")
RequestObserver = Callable[[str, str, int, float], None]


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded cardinality), or a fixed label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class RequestContextMiddleware:
    """Adds `X-Request-ID`, logs method/path/status/duration/user/request id, feeds metrics."""

    def __init__(self, app: ASGIApp, observers: list[RequestObserver] | None = None) -> None:
        self.app = app
        self.observers = observers if observers is not None else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SAFE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message["headers"] = headers
            await send(message)

        try:
            with logger.contextualize(request_id=request_id):
                await self.app(scope, receive, send_wrapper)
        finally:
            self._finish(scope, request_id, status_holder[0], time.perf_counter() - started)

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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None
