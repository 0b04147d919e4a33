"""One replica connection, owned by its own task.

The owner task enters the SDK `Client` (and so every transport task group) and keeps
it open: it probes health every `health_interval_s`, refreshes the tool listing,
and reconnects with exponential backoff and jitter. Callers only await the session's
request streams from their own tasks, so a dying server ends in an `MCPError` for
them, never in a cancellation of the caller or the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Literal, cast

import anyio
from loguru import logger
from mcp import Client, MCPError, types
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import CONNECTION_CLOSED
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from app import __version__
from app.services.mcp.breaker import CircuitBreaker
from app.services.mcp.config import ServerConfig
from app.services.mcp.errors import classify, describe
from app.services.mcp.transport import enter_transport, watch_end
from app.services.mcp.types import Attempt
from app.services.tools import ProgressCallback

Phase = Literal["idle", "connecting", "connected", "closing", "backoff", "stopped"]
BACKOFF_FIRST_S = 0.2
MAX_LIST_PAGES = 50
STOP_GRACE_S = 8.0
DRAIN_S = 5.0
WRITE_GRACE_S = 5.0
CLIENT_INFO = types.Implementation(name="vektor-backend", version=__version__)


def _closed(exc: Exception) -> bool:
    """The session's connection is gone."""
    if isinstance(exc, MCPError):
        return exc.code == CONNECTION_CLOSED
    return isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError)


class Replica:
    """A connection to one replica of one server, and its health."""

    def __init__(
        self, *, server: ServerConfig, index: int, on_change: Callable[[Replica], None]
    ) -> None:
        self.server = server
        self.index = index
        self.target = server.targets[index]
        self.endpoint = server.endpoints[index] if server.transport != "stdio" else None
        self.breaker = CircuitBreaker(
            failures=server.breaker_failures, reset_after_s=server.reset_after_s
        )
        self.phase: Phase = "idle"
        self.in_flight = 0
        self.last_error: str | None = None
        self.latency_ms: float | None = None
        self.tools: list[types.Tool] | None = None
        self.generation = 0  # bumps on every successful connect
        self.reconnects = 0
        self._on_change = on_change
        self._client: Client | None = None
        self._closed_stream = False
        self._stop = asyncio.Event()
        self._broken = asyncio.Event()
        self._refresh = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned = False  # a "down" warning was logged since the last connect
        self._idle = asyncio.Event()

    @property
    def connected(self) -> bool:
        """A live session exists."""
        return self.phase == "connected" and self._client is not None and not self._closed_stream

    @property
    def usable(self) -> bool:
        """Connected, and the circuit lets a request through."""
        return self.connected and self.breaker.available()

    @property
    def healthy(self) -> bool:
        """Connected with a closed circuit (what the admin view calls healthy)."""
        return self.connected and self.breaker.state == "closed"

    def start(self) -> None:
        """Spawn the owner task."""
        if self._task is None:
            name = f"mcp-owner:{self.server.name}#{self.index}"
            self._task = asyncio.create_task(self._own(), name=name)

    async def stop(self) -> None:
        """Close the session (stdio servers exit cleanly) and end the owner task."""
        self._stop.set()
        self._wake.set()
        self._idle.set()
        task = self._task
        if task is None or task.done():
            return
        if self.phase != "connected":
            task.cancel()  # nothing to close gracefully; stop a connect or a backoff wait now
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except asyncio.CancelledError:
            if not task.done():  # we were cancelled, not the owner: don't leave it running
                task.cancel()
                raise

    def request_reconnect(self) -> None:
        """Drop the session and connect again now."""
        self._wake.set()
        self._broken.set()
        if self.phase == "connected":
            self.phase = "closing"
        self._on_change(self)

    def request_refresh(self) -> None:
        """Probe and re-list tools now (a call hit a tool the server no longer knows)."""
        self._refresh.set()

    def mark_broken(self, reason: str) -> None:
        """The connection is gone: stop routing to it and reconnect."""
        self.last_error = reason
        self.breaker.trip()
        self._broken.set()
        if self.phase == "connected":
            self.phase = "closing"
        self._on_change(self)

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout_s: float,
        on_progress: ProgressCallback | None,
    ) -> tuple[Attempt, types.CallToolResult | None]:
        """Run one tool call on this replica and say what happened."""
        client = self._client
        if client is None or not self.connected:
            return Attempt("not_sent", f"{self.target} is not connected"), None
        self.in_flight += 1
        try:
            # the SDK's clock starts after the request is written; this also bounds the write
            async with asyncio.timeout(timeout_s + WRITE_GRACE_S):
                result = await client.call_tool(
                    tool,
                    arguments,
                    read_timeout_seconds=timeout_s,
                    progress_callback=cast("ProgressFnT | None", on_progress),
                )
        except TimeoutError:
            return Attempt("timeout", f"timed out after {timeout_s:g}s"), None
        except Exception as exc:
            # calls are refused above once the stream has ended, so a close seen here
            # happened while the request was out: it may have run
            current = self._client is client
            attempt = classify(exc, closed_before=False)
            if attempt.kind == "timeout":
                return Attempt("timeout", f"timed out after {timeout_s:g}s"), None
            if current and (attempt.kind in ("not_sent", "lost") or _closed(exc)):
                self.mark_broken(attempt.text)  # never a newer session than the one used
            return attempt, None
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
        return Attempt("tool_error" if result.is_error else "ok"), result

    # -- the owner task -------------------------------------------------------------

    async def _own(self) -> None:
        """Connect, serve, and reconnect until stopped."""
        delay = 0.0
        max_delay = max(0.5, self.server.health_interval_s)
        while not self._stop.is_set():
            if delay:
                self.phase = "backoff"
                await self._sleep(delay * random.uniform(0.5, 1.0))
                if self._stop.is_set():
                    break
            generation = self.generation
            try:
                await self._session()
            except asyncio.CancelledError:
                if self._stop.is_set():
                    break
                raise
            except BaseException as exc:  # transport task groups raise ExceptionGroups
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self.last_error = describe(exc)
            finally:
                self._client = None
                if self.phase != "stopped":
                    self.phase = "idle"
                self._on_change(self)
            self._log_end(came_up=self.generation != generation)
            # a session that came up reconnects at once; failed attempts back off
            if self.generation != generation:
                delay = 0.0
            else:
                delay = min(max_delay, max(BACKOFF_FIRST_S, delay * 2))
            if self._wake.is_set():
                self._wake.clear()
                delay = 0.0
        self.phase = "stopped"

    def _log_end(self, *, came_up: bool) -> None:
        """Warn when a replica goes down or first fails to connect; stay quiet on retries."""
        if self._stop.is_set():
            return
        log = logger.bind(server=self.server.name)
        if came_up or not self._warned:
            self._warned = True
            log.warning("MCP {} is down: {}", self.target, self.last_error or "connection closed")
        else:
            log.debug("MCP {} still down: {}", self.target, self.last_error)

    async def _sleep(self, seconds: float) -> None:
        """Wait, unless stopped or asked to reconnect now."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _session(self) -> None:
        """One connection: connect, list tools, then probe until broken or stopped."""
        self.phase = "connecting"
        self._broken.clear()
        self._closed_stream = False
        async with AsyncExitStack() as stack:
            transport = await enter_transport(stack, self.server, self.endpoint)
            client = Client(
                watch_end(transport, self._on_stream_closed),
                mode=self.server.protocol,
                read_timeout_seconds=self.server.connect_timeout_s,
                cache=None,
                client_info=CLIENT_INFO,
                message_handler=self._on_message,
            )
            async with client:
                started = time.monotonic()
                tools = await self._list_tools(client)
                self.latency_ms = round((time.monotonic() - started) * 1000, 2)
                self._client = client
                self.tools = tools
                self.generation += 1
                if self.generation > 1:
                    self.reconnects += 1
                self.phase = "connected"
                self.last_error = None
                self._warned = False
                self.breaker.record_success()
                logger.bind(server=self.server.name).info(
                    "MCP {} connected ({} tools, protocol {})",
                    self.target,
                    len(tools),
                    client.protocol_version,
                )
                self._on_change(self)
                await self._serve(client)

    async def _serve(self, client: Client) -> None:
        """Probe and refresh until the connection breaks or the pool stops."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._health_loop, client)
            caps = client.server_capabilities.tools
            modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
            if caps is not None and caps.list_changed and modern:
                tg.start_soon(self._listen_loop, client)
            stop = asyncio.ensure_future(self._stop.wait())
            broken = asyncio.ensure_future(self._broken.wait())
            try:
                await asyncio.wait({stop, broken}, return_when=asyncio.FIRST_COMPLETED)
                if not self._stop.is_set():
                    await self._drain()
            finally:
                stop.cancel()
                broken.cancel()
                tg.cancel_scope.cancel()
        if self._stop.is_set():
            self.phase = "stopped"

    async def _drain(self) -> None:
        """Let calls already on this session finish (bounded) before closing it."""
        # Closing first would fail them with "connection closed" although most were never
        # delivered (a dead HTTP server refuses the connection); drained, they come back
        # as "not sent" and fail over cleanly.
        deadline = time.monotonic() + min(DRAIN_S, self.server.connect_timeout_s)
        while self.in_flight and not self._stop.is_set() and time.monotonic() < deadline:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), deadline - time.monotonic())

    async def _health_loop(self, client: Client) -> None:
        """List tools every `health_interval_s` (or on list_changed) as the health probe."""
        interval = self.server.health_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh.wait(), interval)
            self._refresh.clear()
            started = time.monotonic()
            try:
                tools = await self._list_tools(client)
            except Exception as exc:
                self.last_error = f"health probe failed: {describe(exc)}"
                self.breaker.record_failure()
                gone = classify(exc, closed_before=True).kind == "not_sent"
                if gone or self.breaker.state == "open" or self._closed_stream:
                    self.mark_broken(self.last_error)
                else:
                    self._on_change(self)
                continue
            self.latency_ms = round((time.monotonic() - started) * 1000, 2)
            was_healthy = self.healthy
            self.breaker.record_success()
            self.last_error = None
            if tools != self.tools or not was_healthy:
                self.tools = tools
                self._on_change(self)

    async def _listen_loop(self, client: Client) -> None:
        """Refresh the listing when a 2026-era server announces a change (re-listens)."""
        while True:
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    async for _event in subscription:
                        self._refresh.set()
            except Exception as exc:  # an optimisation only: the probe refreshes anyway
                logger.debug("MCP {}: list_changed stream ended: {}", self.target, describe(exc))
            await asyncio.sleep(self.server.health_interval_s)
            self._refresh.set()  # changes may have been missed while not listening

    async def _list_tools(self, client: Client) -> list[types.Tool]:
        """Every page of tools/list."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def _on_message(self, message: Any) -> None:
        """Legacy servers announce list changes as notifications."""
        if isinstance(message, types.ToolListChangedNotification):
            self._refresh.set()

    def _on_stream_closed(self) -> None:
        """The server side of the transport ended (a stdio process exited, SSE dropped)."""
        if not self._closed_stream:
            self._closed_stream = True
            if not self._stop.is_set() and not self._broken.is_set():
                self.mark_broken("the server closed the connection")
