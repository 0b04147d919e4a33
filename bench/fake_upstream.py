"""Benchmark upstream: an OpenAI-compatible streaming server with tunable timing.

Each token's content is `~<wall-clock ns at send> `, so the load generator can count tokens
with `bytes.count(b"~")` and sample per-token lag. Timing is set with `POST /config`
`{"tokens": N, "rate": tokens_per_s, "ttft_ms": ms, "pause_after": K}` for the following
streams; `{"stop": true}` ends every open stream now (finish chunk, usage, `[DONE]`).
`pause_after` K > 0: send K tokens, then hold the stream open until a stop.

Built on bare asyncio (HTTP/1.1, keep-alive, chunked) and one timer for all streams, so that
one core serves thousands of paced streams: per token it formats one chunk and writes it.

    uv run python bench/fake_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import time
from typing import Any, cast

CONFIG: dict[str, Any] = {"tokens": 200, "rate": 50.0, "ttft_ms": 0.0, "pause_after": 0}

_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Cache-Control: no-cache\r\n"
)
_PREFIX = (
    b'data: {"id":"bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{"content":"~'
)
_SUFFIX = b' "}}]}\n\n'
_TAIL = (
    b'data: {"id":"bench","object":"chat.completion.chunk","model":"bench",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"bench","object":"chat.completion.chunk","model":"bench","choices":[],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":%d}}\n\n'
    b"data: [DONE]\n\n"
)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _token() -> bytes:
    return _chunk(_PREFIX + str(time.time_ns()).encode() + _SUFFIX)


class _Stream:
    __slots__ = ("conn", "done", "due", "interval", "left", "pause_after", "sent")

    def __init__(self, conn: _Conn, due: float, tokens: int, rate: float, pause: int) -> None:
        self.conn, self.due, self.left, self.pause_after = conn, due, tokens, pause
        self.interval = 1 / rate if rate > 0 else 0.0
        self.sent, self.done = 0, False


class _Scheduler:
    """Every paced stream in one heap, served by one re-armed timer."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Stream]] = []
        self.seq = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = float("inf")
        self.open: set[_Stream] = set()

    def add(self, stream: _Stream) -> None:
        self.open.add(stream)
        self._push(stream)

    def _push(self, stream: _Stream) -> None:
        heapq.heappush(self.heap, (stream.due, next(self.seq), stream))
        if stream.due < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            loop = asyncio.get_running_loop()
            self.timer_at = stream.due
            self.timer = loop.call_at(max(stream.due, loop.time()), self._tick)

    def _tick(self) -> None:
        self.timer, self.timer_at = None, float("inf")
        loop = asyncio.get_running_loop()
        now = loop.time()
        heap = self.heap
        while heap and heap[0][0] <= now + 0.0005:
            _, _, stream = heapq.heappop(heap)
            if stream.done:
                continue
            if stream.interval == 0:  # unpaced: everything at once
                stream.conn.write(b"".join(_token() for _ in range(stream.left)))
                stream.sent += stream.left
                stream.left = 0
            else:
                stream.conn.write(_token())
                stream.sent += 1
                stream.left -= 1
            if stream.left <= 0:
                self.finish(stream)
            elif stream.pause_after and stream.sent >= stream.pause_after:
                pass  # held until a stop
            else:
                stream.due += stream.interval
                heapq.heappush(heap, (stream.due, next(self.seq), stream))
        if heap:
            self.timer_at = heap[0][0]
            self.timer = loop.call_at(self.timer_at, self._tick)

    def finish(self, stream: _Stream) -> None:
        if stream.done:
            return
        stream.done = True
        self.open.discard(stream)
        stream.conn.write(_chunk(_TAIL % stream.sent) + b"0\r\n\r\n")
        stream.conn.response_done()

    def stop_all(self) -> int:
        streams = list(self.open)
        for stream in streams:
            self.finish(stream)
        return len(streams)


SCHEDULER = _Scheduler()
STOPPED = [False]


class _Conn(asyncio.Protocol):
    """One client connection: requests one after another (keep-alive)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.close_after = False
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        while not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])
            }
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.close_after = headers.get("connection", "").lower() == "close"
            method, path = head[0].split(" ")[:2]
            self._handle(method, path, body)

    def _handle(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path == "/config":
            values = json.loads(body or b"{}")
            # after a stop, streams requested late (a slow app) end at once, until the next
            # configuration
            STOPPED[0] = bool(values.pop("stop", False))
            if STOPPED[0]:
                values["stopped"] = SCHEDULER.stop_all()
            CONFIG.update({k: v for k, v in values.items() if k in CONFIG})
            answer = json.dumps({**CONFIG, **values}).encode()
            self.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"\r\n%b" % (len(answer), answer)
            )
            return
        if method == "POST" and path.endswith("/chat/completions"):
            self.busy = True
            self.write(_HEAD + (b"Connection: close\r\n\r\n" if self.close_after else b"\r\n"))
            loop = asyncio.get_running_loop()
            stream = _Stream(
                self,
                loop.time() + float(CONFIG["ttft_ms"]) / 1000,
                int(CONFIG["tokens"]),
                float(CONFIG["rate"]),
                int(CONFIG["pause_after"]),
            )
            if STOPPED[0]:
                SCHEDULER.finish(stream)
            else:
                SCHEDULER.add(stream)
            return
        self.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    def response_done(self) -> None:
        self.busy = False
        if self.close_after and self.transport is not None:
            self.transport.close()
            return
        self._next()


async def serve(port: int) -> None:
    """Serve until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve on 127.0.0.1."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port))
    else:
        uvloop.run(serve(args.port))


if __name__ == "__main__":
    main()
