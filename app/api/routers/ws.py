"""`GET /ws`: one WebSocket for every answer, cancel, tool decision and sync push (API.md)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.api.ws.session import SocketSession
from app.state import AppState

router = APIRouter(tags=["chat"])


@router.websocket("/ws")
async def socket(websocket: WebSocket) -> None:
    """Authenticate with the first frame, then serve the client's frames until it leaves."""
    state: AppState = websocket.app.state.vektor
    await SocketSession(websocket, state).run()
