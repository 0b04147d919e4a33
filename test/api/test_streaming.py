"""`DirectStreamingResponse`: frames to the server's send, a disconnect ends the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.api.streaming import DirectStreamingResponse
from app.observability.middleware import SERVER_SEND_KEY


def _scope(server_send: Any = None) -> dict[str, Any]:
    scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}
    if server_send is not None:
        scope[SERVER_SEND_KEY] = server_send
    return scope


class Body:
    """Frames on demand; remembers whether the stream's body was closed early."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    async def __call__(self) -> AsyncIterator[bytes]:
        try:
            while (frame := await self.frames.get()) is not None:
                yield frame
        finally:
            self.closed = True


async def test_the_start_goes_through_the_layers_and_the_frames_to_the_server() -> None:
    layered: list[dict[str, Any]] = []
    direct: list[dict[str, Any]] = []
    body = Body()
    for frame in (b"a", b"b", None):
        body.frames.put_nowait(frame)

    async def wrapped(message: dict[str, Any]) -> None:
        layered.append(message)

    async def server(message: dict[str, Any]) -> None:
        direct.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        return {}

    response = DirectStreamingResponse(body(), media_type="text/event-stream")
    await response(_scope(server), receive, wrapped)
    assert [m["type"] for m in layered] == ["http.response.start"]
    assert [m.get("body") for m in direct] == [b"a", b"b", b""]
    assert direct[-1]["more_body"] is False


async def test_a_disconnect_ends_the_stream_quietly() -> None:
    sent: list[dict[str, Any]] = []
    body = Body()
    left = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "http.disconnect"}

    response = DirectStreamingResponse(body(), media_type="text/event-stream")
    serving = asyncio.create_task(response(_scope(), receive, send))
    body.frames.put_nowait(b"a")
    while len(sent) < 2:
        await asyncio.sleep(0)
    left.set()
    await asyncio.wait_for(serving, 5)  # returns normally, no CancelledError
    assert body.closed
    assert not serving.cancelled() and serving.exception() is None
    assert serving.cancelling() == 0  # nothing left to hit the caller's next await


async def test_a_cancel_from_outside_still_cancels() -> None:
    body = Body()

    async def send(message: dict[str, Any]) -> None:
        return None

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    response = DirectStreamingResponse(body(), media_type="text/event-stream")
    serving = asyncio.create_task(response(_scope(), receive, send))
    await asyncio.sleep(0.01)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    assert body.closed
