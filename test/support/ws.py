"""`GET /ws` the way a client uses it: the real `websockets` client, JSON frames, and a raw
socket client that never reads (back-pressure tests)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from test.support.sse import Event


def ws_url(live_url: str) -> str:
    """`ws://host:port/ws` of a loopback server."""
    return live_url.replace("http://", "ws://", 1) + "/ws"


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    """Send one JSON frame."""
    await ws.send(json.dumps(frame))


async def receive(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next server frame."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


@asynccontextmanager
async def signed_in(live_url: str, token: str) -> AsyncIterator[ClientConnection]:
    """A socket past `auth` (its `ready` frame read)."""
    async with connect(ws_url(live_url), open_timeout=10) as ws:
        await send(ws, {"type": "auth", "token": token})
        ready = await receive(ws)
        assert ready["type"] == "ready", ready
        yield ws


async def close_code(ws: ClientConnection, timeout: float = 10) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def until_done(
    ws: ClientConnection, message_ids: set[str], *, timeout: float = 30
) -> dict[str, list[Event]]:
    """Every event frame until each of `message_ids` ended (done or error), per answer."""
    events: dict[str, list[Event]] = {m: [] for m in message_ids}
    open_ = set(message_ids)
    async with asyncio.timeout(timeout):
        while open_:
            frame = await receive(ws, timeout)
            if frame["type"] != "event":
                continue
            mine = events.setdefault(frame["message_id"], [])
            mine.append(Event(frame["event"], str(frame["id"]), frame["data"]))
            if frame["event"] in ("done", "error"):
                open_.discard(frame["message_id"])
    return events


async def started(ws: ClientConnection, ref: str, timeout: float = 10) -> str:
    """The message id of the answer a `chat.start` with `ref` began (its first event)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(ws, timeout)
            assert frame["type"] != "error", frame
            if frame["type"] == "event" and frame.get("ref") == ref:
                return str(frame["message_id"])


def _masked(payload: bytes) -> bytes:
    """A client text frame (clients mask theirs)."""
    mask = os.urandom(4)
    size = len(payload)
    header = bytes([0x81]) + (
        bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def deaf_socket(live_url: str, frames: list[dict[str, Any]]) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that sends `frames` and never reads
    again (after the handshake)."""
    parts = urlsplit(live_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await loop.sock_recv(sock, 1)  # byte by byte: nothing past the handshake
    assert answer.startswith(b"HTTP/1.1 101"), answer
    for frame in frames:
        await loop.sock_sendall(sock, _masked(json.dumps(frame).encode()))
    return sock


async def reset_or_closed(sock: socket.socket, timeout: float) -> bool:
    """Read what is left until the server ends the connection: True if it did in time."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            while await loop.sock_recv(sock, 1 << 20):
                pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True
