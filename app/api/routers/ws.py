"""`GET /ws`: one WebSocket for every answer, cancel, tool decision and sync push (API.md)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.api.ws.session import SocketSession
from app.state import AppState

router = APIRouter()


async def socket(websocket: WebSocket) -> None:
    """Authenticate with the first frame, then serve the client's frames until it leaves."""
    state: AppState = websocket.app.state.vektor
    await SocketSession(websocket, state).run()


# a plain Starlette route: the socket has no dependencies to solve, and an idle socket then
# holds none of FastAPI's per-request exit stacks (measured: ~4 KiB per socket)
router.add_websocket_route("/ws", socket)
