"""`DirectStreamingResponse`: frames to the server's send, a disconnect ends the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.api.streaming import DirectStreamingResponse
from app.core.sse import SSE_HEADERS, SSE_MEDIA_TYPE
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


# Also a plain client (no server send in the scope): head, chunks and end; leaving closes the body.
class _Client:
    """The ASGI side of one streamed response: what was sent, and a way to leave."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


_SCOPE: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}}


async def test_an_event_stream_sends_its_head_chunks_and_end() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"event: a\n\n"
        yield b"event: b\n\n"

    client = _Client()
    response = DirectStreamingResponse(body(), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
    await asyncio.wait_for(response(_SCOPE, client.receive, client.send), 2)
    assert client.sent[0]["type"] == "http.response.start"
    assert (b"content-type", b"text/event-stream; charset=utf-8") in client.sent[0]["headers"]
    assert [(m["body"], m["more_body"]) for m in client.sent[1:]] == [
        (b"event: a\n\n", True),
        (b"event: b\n\n", True),
        (b"", False),
    ]


async def test_a_client_that_leaves_ends_the_stream_quietly_and_closes_its_body() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield b"event: a\n\n"
            await asyncio.sleep(60)  # an idle answer
            yield b"never"
        finally:
            closed.set()

    client = _Client()
    response = DirectStreamingResponse(body(), media_type=SSE_MEDIA_TYPE)
    sending = asyncio.create_task(response(_SCOPE, client.receive, client.send))
    await asyncio.sleep(0.01)
    client.left.set()
    await asyncio.wait_for(sending, 2)  # returns, not cancelled
    assert closed.is_set()
    assert [m.get("body") for m in client.sent[1:]] == [b"event: a\n\n"]


async def test_an_event_stream_cancelled_from_outside_stays_cancelled() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"event: a\n\n"
        await asyncio.sleep(60)
        yield b"never"

    client = _Client()
    response = DirectStreamingResponse(body(), media_type=SSE_MEDIA_TYPE)
    sending = asyncio.create_task(response(_SCOPE, client.receive, client.send))
    await asyncio.sleep(0.01)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending


async def test_a_client_that_leaves_during_a_send_gets_its_body_closed() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"event: a\n\n"
        finally:
            closed.set()

    client = _Client()
    stuck = asyncio.Event()

    async def slow_send(message: dict[str, Any]) -> None:
        client.sent.append(message)
        if len(client.sent) == 3:  # a slow client: the second chunk's send waits
            await stuck.wait()

    response = DirectStreamingResponse(body(), media_type=SSE_MEDIA_TYPE)
    sending = asyncio.create_task(response(_SCOPE, client.receive, slow_send))
    await asyncio.sleep(0.01)
    client.left.set()
    await asyncio.wait_for(sending, 2)
    assert closed.is_set()
