"""A streaming response whose frames skip the middleware `send` wrappers."""

from __future__ import annotations

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.observability.middleware import server_send


class DirectStreamingResponse(StreamingResponse):
    """Starlette's `StreamingResponse`; its start goes through every layer as usual, its body
    messages go straight to the server's `send` (app/observability/middleware.py says why:
    the layers in between only act on the start, and a stream sends one message a frame)."""

    _direct: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response, body messages straight to the server when it is known."""
        self._direct = server_send(scope)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        """The start through `send`; then every chunk, and the end, to the server."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        direct = self._direct or send
        async for chunk in self.body_iterator:
            if not isinstance(chunk, bytes | memoryview):
                chunk = chunk.encode(self.charset)
            await direct({"type": "http.response.body", "body": chunk, "more_body": True})
        await direct({"type": "http.response.body", "body": b"", "more_body": False})
