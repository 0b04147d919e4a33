"""The two ends of a `GET /ws` connection: the `auth` frame, and closing.

The first frame must be `{"type": "auth", "token"}` within `AUTH_TIMEOUT_S`; the token (an
access token or a `vk-` API key) goes through the HTTP routes' own check
(`deps.authenticate`). Otherwise the socket is closed with 4401 and a reason naming why.
"""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.deps import authenticate
from app.api.ws.frames import parse_frame
from app.core.errors import InvalidInput, Unauthorized
from app.db.availability import is_unavailable
from app.observability.middleware import server_send
from app.schemas.ws import AuthFrame
from app.services.auth import Principal
from app.state import AppState

AUTH_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 1.0  # a close frame that cannot be sent by then: the connection is aborted
CLOSE_UNAUTHORIZED = 4401  # no or bad `auth` frame; the session or API key was revoked
CLOSE_UNAVAILABLE = 1013  # the database could not check the credentials


async def first_frame_principal(websocket: WebSocket, state: AppState) -> Principal | None:
    """The caller named by the first frame, or None once the socket is closed."""
    reason = "auth_timeout"
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        frame = AuthFrame.model_validate(parse_frame(message.get("text"), message.get("bytes")))
        return await authenticate(state, frame.token)
    except TimeoutError:
        pass
    except (InvalidInput, ValidationError):
        reason = "auth_required"
    except Unauthorized as exc:
        reason = exc.code
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        await close(websocket, CLOSE_UNAVAILABLE, "database_unavailable")
        return None
    await close(websocket, CLOSE_UNAUTHORIZED, reason)
    return None


async def close(websocket: WebSocket, code: int, reason: str | None = None) -> None:
    """Send a close frame; abort the connection when it cannot go out in time."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)
    except TimeoutError:
        abort(websocket)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client is gone already


def abort(websocket: WebSocket) -> None:
    """Reset the connection of a client that reads nothing (not even a close frame).

    Only uvicorn's protocol objects are reachable (its `send` is a bound method with a
    `transport`); with another server the connection is left to the server's timeouts."""
    protocol = getattr(server_send(websocket.scope), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is not None:
        transport.abort()
