"""The MCP client pool: every configured server's replicas, one tool catalog, safe calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import replace
from typing import Any

from loguru import logger

from app.services.mcp.catalog import Catalog
from app.services.mcp.config import McpConfig
from app.services.mcp.connection import Replica
from app.services.mcp.group import ServerGroup
from app.services.tools import ProgressCallback, Tool, ToolOutcome
from app.services.tools.render import cap, render_result, result_images
from app.services.tools.types import ToolImage


class McpPool:
    """Connections to every enabled MCP server, opened in the lifespan and reused."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self.catalog = Catalog()
        self.groups: dict[str, ServerGroup] = {
            name: ServerGroup(config=server, on_change=self._group_changed)
            for name, server in config.servers.items()
        }
        self._started = False

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn one owner task per replica and return; servers join as they come up."""
        if self._started:
            return
        self._started = True
        for group in self.groups.values():
            for replica in group.replicas:
                replica.start()
        logger.info(
            "MCP pool started: {} enabled server(s) from {}",
            len(self.config.enabled),
            self.config.source,
        )

    async def aclose(self) -> None:
        """Close every session; stdio servers are shut down and reaped."""
        replicas = [replica for group in self.groups.values() for replica in group.replicas]
        await asyncio.gather(*(replica.stop() for replica in replicas), return_exceptions=True)
        self._started = False

    async def wait_until_ready(self, timeout_s: float) -> bool:
        """Wait until every enabled server has a usable replica (for tests and scripts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            pending = [g for g in self.groups.values() if g.config.enabled and not g.available]
            if not pending:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await pending[0].wait_changed(min(remaining, 0.5))

    # -- catalog --------------------------------------------------------------------

    def tools(
        self, *, servers: Collection[str] | None = None, include_unavailable: bool = False
    ) -> list[Tool]:
        """Tools of the enabled servers (or only `servers`), in config order."""
        result = []
        for tool in self.catalog.entries.values():
            if servers is not None and tool.server not in servers:
                continue
            if self.groups[tool.server].available:
                result.append(tool)
            elif include_unavailable:
                result.append(replace(tool, available=False))
        return result

    def available(self, *, servers: Collection[str] | None) -> list[Tool]:
        """Tools of healthy servers, limited to `servers` (None = every enabled server)."""
        return self.tools(servers=servers)

    def resolve(self, qualified_name: str) -> Tool | None:
        """The tool behind a qualified name, if the catalog knows it (whatever its health)."""
        return self.catalog.entries.get(qualified_name)

    def _group_changed(self, _group: ServerGroup) -> None:
        """Rebuild the catalog from the newest listing of every enabled server."""
        self.catalog.rebuild(
            (group.config, group.tools) for group in self.groups.values() if group.config.enabled
        )

    # -- calls ----------------------------------------------------------------------

    async def call(
        self,
        qualified_name: str,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        timeout_s: float | None = None,
    ) -> ToolOutcome:
        """Run a tool by name with failover; every failure becomes an `error` outcome."""
        tool = self.resolve(qualified_name)
        if tool is None:
            return ToolOutcome.unknown(qualified_name)
        return await self.call_tool(tool, arguments, on_progress=on_progress, timeout_s=timeout_s)

    async def call_tool(
        self,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None = None,
        timeout_s: float | None = None,
    ) -> ToolOutcome:
        """Run a tool this pool resolved, with failover (the toolbox's entry point)."""
        started = time.monotonic()
        group = self.groups[tool.server]
        group.metrics.calls += 1
        progress = _Progress(on_progress) if on_progress is not None else None
        try:
            status, text, images = await self._call_with_failover(
                group, tool, arguments, on_progress=progress, timeout_s=timeout_s
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not surface as a crashed chat turn
            logger.exception("MCP call {} failed unexpectedly", tool.qualified_name)
            status, text = "error", f"Tool {tool.qualified_name} failed: {type(exc).__name__}"
            images = ()
        finally:
            if progress is not None:
                progress.closed = True
        outcome = ToolOutcome.timed(status, text, started, images)
        if status == "error":
            group.metrics.errors += 1
        group.metrics.latency_ms_sum += (time.monotonic() - started) * 1000
        group.metrics.latency_count += 1
        return outcome

    async def _call_with_failover(
        self,
        group: ServerGroup,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        on_progress: ProgressCallback | None,
        timeout_s: float | None,
    ) -> tuple[str, str, tuple[ToolImage, ...]]:
        """Try replicas until one answers; returns (status, text for the model, images)."""
        config = group.config
        if not isinstance(arguments, dict):
            return "error", "Tool arguments must be a JSON object", ()
        limit = timeout_s or config.timeout_s  # per attempt; attempts are bounded
        idempotent = tool.name in config.idempotent_tools
        tried: dict[Replica, int] = {}
        problems: list[str] = []
        timed_out = False
        for _ in range(len(group.replicas) * 2 + 1):
            replica = await group.next_replica(tried=tried, wait_s=config.connect_timeout_s)
            if replica is None or not replica.breaker.acquire():
                break
            if tried:
                group.metrics.failovers += 1
            tried[replica] = replica.generation
            attempt, result = await replica.call(
                tool.name, arguments, timeout_s=limit, on_progress=on_progress
            )
            if attempt.kind in ("ok", "tool_error"):
                replica.breaker.record_success()
                assert result is not None
                text = cap(render_result(result), max_bytes=config.max_result_bytes)
                status = "ok" if attempt.kind == "ok" else "error"
                return status, text, result_images(result)
            if attempt.kind == "rejected":
                replica.breaker.record_success()  # it answered; the answer was bad
                replica.request_refresh()  # e.g. the tool is gone: re-list now
                return "error", f"MCP server {config.name!r}: {attempt.text}", ()
            replica.breaker.record_failure()
            problems.append(f"{replica.target}: {attempt.text}")
            timed_out = attempt.kind == "timeout"
            if timed_out:
                group.metrics.timeouts += 1
            if attempt.kind == "not_sent" or idempotent:
                continue
            if timed_out:
                return "error", f"Tool {tool.qualified_name} timed out after {limit:g}s", ()
            lost = (
                f"MCP server {config.name!r} lost the connection during the call "
                f"({attempt.text}); it may or may not have run"
            )
            return "error", lost, ()
        if timed_out:
            return "error", f"Tool {tool.qualified_name} timed out after {limit:g}s", ()
        detail = "; ".join(problems[-3:]) or _down_reasons(group)
        return "error", f"MCP server {config.name!r} is unavailable ({detail})", ()

    # -- admin ----------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """Every configured server as a GET /mcp/servers item."""
        return [
            group.status_item(len(self.catalog.by_server.get(name, [])))
            for name, group in self.groups.items()
        ]

    async def reconnect(self, name: str) -> bool:
        """Drop and reopen every connection of a server; False if it is unknown."""
        group = self.groups.get(name)
        if group is None:
            return False
        for replica in group.replicas:
            replica.request_reconnect()
        return True

    def health(self) -> dict[str, Any]:
        """For /health: degraded when an enabled server is down."""
        servers = {name: group.status for name, group in self.groups.items()}
        enabled = [status for status in servers.values() if status != "disabled"]
        overall = "disabled" if not enabled else "degraded" if "down" in enabled else "ok"
        return {"status": overall, "servers": servers}

    async def health_probe(self) -> dict[str, Any]:
        """`health()` as an async probe for `AppState.health_probes`."""
        return self.health()

    def metrics_snapshot(self) -> dict[str, Any]:
        """Per server: calls, errors, timeouts, failovers, latency sums, circuit states."""
        return {name: group.metrics_item() for name, group in self.groups.items()}


def _down_reasons(group: ServerGroup) -> str:
    errors = [f"{r.target}: {r.last_error}" for r in group.replicas if r.last_error]
    return "; ".join(errors[:3]) or "no replica is connected"


class _Progress:
    """Forwards progress reports until the call returns; a failing consumer is only logged."""

    # closed once the call returns, so a late report never follows the tool's result

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback
        self.closed = False

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        if self.closed:
            return
        try:
            await self.callback(progress, total, message)
        except Exception:
            logger.exception("MCP progress callback failed")
