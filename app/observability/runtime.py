"""Per-app observability: the request window, the gauge sampler, this process's numbers.

`create_app()` builds one `Observability`, hands its observers to `RequestContextMiddleware`
and keeps it on `app.state.observability`; the main lifespan starts its sampler once the
engine and the MCP pool exist and stops it at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil
from fastapi import FastAPI
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from app.observability import metrics
from app.observability.mcp_metrics import McpCounters
from app.observability.middleware import RequestObserver
from app.observability.request_window import RequestWindow


class McpMetricsSource(Protocol):
    """What the sampler reads from the MCP pool: its cumulative per-server numbers."""

    def metrics_snapshot(self) -> object:
        """`{server: {"calls", "errors", ..., "replicas": {target: {"circuit"}}}}`."""
        ...


@dataclass
class Observability:
    """Per-app observability state: the request window, MCP counter deltas, this process."""

    window: RequestWindow = field(default_factory=RequestWindow)
    mcp_counters: McpCounters = field(default_factory=McpCounters)
    process: psutil.Process = field(default_factory=psutil.Process)
    sample_interval_s: float = 5.0
    _snapshot_failed: bool = False
    _sampler: asyncio.Task[None] | None = None

    @property
    def observers(self) -> list[RequestObserver]:
        """What `RequestContextMiddleware` calls after each request."""
        return [metrics.observe_request, self.window.observe]

    async def refresh(self, *, engine: AsyncEngine, mcp: McpMetricsSource | None) -> None:
        """Publish this process's pool usage and MCP numbers to Prometheus."""
        metrics.set_pool_gauges(metrics.pool_usage(engine))
        if mcp is None:
            return
        try:
            self.mcp_counters.publish(mcp.metrics_snapshot())
            self._snapshot_failed = False
        except Exception:
            if not self._snapshot_failed:  # log once per failure streak, not every interval
                logger.opt(exception=True).warning("MCP metrics snapshot failed")
            self._snapshot_failed = True

    def start(self, *, engine: AsyncEngine, mcp: McpMetricsSource | None) -> None:
        """Refresh the sampled gauges every few seconds until `aclose()` (the lifespan's)."""
        if self._sampler is None:
            self._sampler = asyncio.create_task(
                self._sample_forever(engine, mcp), name="metrics-sampler"
            )

    async def aclose(self) -> None:
        """Stop the sampler."""
        task, self._sampler = self._sampler, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_forever(self, engine: AsyncEngine, mcp: McpMetricsSource | None) -> None:
        """Each worker publishes its own gauges."""
        while True:
            try:
                await self.refresh(engine=engine, mcp=mcp)
            except Exception:
                logger.opt(exception=True).warning("metrics sampling failed")
            await asyncio.sleep(self.sample_interval_s)

    def process_stats(self) -> dict[str, Any]:
        """CPU (since the previous call) and memory of this process."""
        proc = self.process
        with proc.oneshot():
            memory = proc.memory_info()
            stats: dict[str, Any] = {
                "pid": proc.pid,
                "cpu_percent": round(proc.cpu_percent(None), 1),
                "rss_bytes": memory.rss,
                "memory_percent": round(proc.memory_percent(), 2),
                "threads": proc.num_threads(),
            }
            with contextlib.suppress(AttributeError, psutil.Error):
                stats["open_fds"] = proc.num_fds()
        return stats


def cluster_totals() -> dict[str, Any] | None:
    """Totals over every worker from the multiprocess files (None with a single process)."""
    directory = metrics.multiprocess_dir()
    if not directory:
        return None
    totals = {"requests": 0.0, "server_errors": 0.0, "streams": 0.0, "generations": 0.0}
    totals["awaiting"] = 0.0
    totals["tokens"] = 0.0
    collector = metrics.WorkerFilesCollector(None, path=directory)  # type: ignore[no-untyped-call]
    for family in collector.collect():
        for sample in family.samples:
            if sample.name == "vektor_http_requests_total":
                totals["requests"] += sample.value
                if sample.labels.get("status", "").startswith("5"):
                    totals["server_errors"] += sample.value
            elif sample.name == "vektor_tokens_streamed_total":
                totals["tokens"] += sample.value
            elif sample.name == "vektor_sse_streams_active":
                totals["streams"] += sample.value
            elif sample.name == "vektor_generations_active":
                totals["generations"] += sample.value
            elif sample.name == "vektor_generations_awaiting_approval":
                totals["awaiting"] += sample.value
    workers = len(list(Path(directory).glob("gauge_livesum_*.db")))
    return {
        "workers": workers,
        "requests_total": int(totals["requests"]),
        "server_errors": int(totals["server_errors"]),
        "active_streams": int(totals["streams"]),
        "active_generations": int(totals["generations"]),
        "awaiting_approval": int(totals["awaiting"]),
        "tokens_streamed": int(totals["tokens"]),
    }


def get_observability(app: FastAPI) -> Observability:
    """The app's observability state (set by `create_app()`)."""
    obs = getattr(app.state, "observability", None)
    if not isinstance(obs, Observability):
        raise RuntimeError("this app has no Observability (build it with create_app())")
    return obs
