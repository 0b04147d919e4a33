"""Building the SDK transport for one replica, with HTTP failures kept inside the response.

The streamable-HTTP client of the SDK runs each POST in its own task group: a refused
connection there raises through that group and tears the whole connection down. The
guarded httpx2 transport turns transport errors into JSON-RPC error responses instead,
marking the ones where the request provably never left (`NOT_SENT`), so the pool can
fail over safely and the connection survives a replica restart.

`watch_end` wraps any transport so the owner learns at once when the server side ends
(a stdio process exiting, an SSE stream dropping) instead of at the next health probe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import StdioServerParameters
from mcp.client._transport import Transport, TransportStreams
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from app.services.mcp.config import ServerConfig

# JSON-RPC codes in the implementation-defined range, minted by the guarded transport.
NOT_SENT = -32090  # the request never reached the server (connect refused / timed out)
LOST = -32091  # the request may have reached the server; its answer was lost


class GuardedStream(httpx2.AsyncByteStream):
    """A response body whose read errors become `StreamError`, which the SDK handles."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the body; a broken connection ends it with a stream error."""
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx2.TransportError as exc:
            raise httpx2.StreamError(f"connection lost while reading: {exc}") from exc

    async def aclose(self) -> None:
        """Close the inner stream, ignoring a connection that is already gone."""
        with suppress(httpx2.TransportError):
            await self._inner.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that answers with a JSON-RPC error instead of raising."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward the request; connection failures become 503/502 JSON-RPC errors."""
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            return _error_response(503, NOT_SENT, f"cannot connect: {exc or type(exc).__name__}")
        except httpx2.TransportError as exc:
            return _error_response(502, LOST, f"connection failed: {exc or type(exc).__name__}")
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = GuardedStream(response.stream)
        return response

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._inner.aclose()


def _error_response(status: int, code: int, message: str) -> httpx2.Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return httpx2.Response(
        status, headers={"content-type": "application/json"}, content=json.dumps(body).encode()
    )


def _timeout(server: ServerConfig) -> httpx2.Timeout:
    # reads may legitimately wait for a long tool call; the pool enforces per-call limits
    return httpx2.Timeout(
        server.connect_timeout_s, connect=server.connect_timeout_s, read=server.timeout_s + 300
    )


def resolve_command(command: str) -> str:
    """Find the executable: PATH first, then the running interpreter's bin directory."""
    if "/" in command or "\\" in command:
        return command
    found = shutil.which(command)
    if found:
        return found
    beside = Path(sys.executable).parent / command
    return str(beside) if beside.exists() else command


def _errlog() -> Any:
    """Where stdio servers write stderr: ours when it is a real file, else nowhere."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL
    return sys.stderr


async def enter_transport(
    stack: AsyncExitStack, server: ServerConfig, endpoint: str | None
) -> Transport:
    """A fresh SDK transport for one replica; resources it needs are closed with `stack`."""
    if server.transport == "stdio":
        assert server.command is not None
        params = StdioServerParameters(
            command=resolve_command(server.command),
            args=server.args,
            env=server.env or None,
            cwd=server.cwd,
        )
        return stdio_client(params, errlog=_errlog())
    assert endpoint is not None
    if server.transport == "sse":
        return sse_client(
            endpoint,
            headers=dict(server.headers),
            timeout=server.connect_timeout_s,
            sse_read_timeout=max(300.0, server.timeout_s * 2),
        )
    http = await stack.enter_async_context(
        httpx2.AsyncClient(
            headers=dict(server.headers), timeout=_timeout(server), transport=GuardedTransport()
        )
    )
    return streamable_http_client(endpoint, http_client=http)


class WatchedReadStream:
    """A transport read stream that reports end-of-stream (a stdio server exiting)."""

    def __init__(self, inner: Any, on_close: Callable[[], None]) -> None:
        self._inner = inner
        self._on_close = on_close

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def receive(self) -> Any:
        """The next message; end-of-stream is reported before it propagates."""
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_close()
            raise

    def __aiter__(self) -> WatchedReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> WatchedReadStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def watch_end(transport: Transport, on_close: Callable[[], None]) -> AsyncIterator[Any]:
    """`transport`, reporting through `on_close` when the server side of it ends."""
    async with transport as (read_stream, write_stream):
        streams: TransportStreams = (WatchedReadStream(read_stream, on_close), write_stream)
        yield streams
