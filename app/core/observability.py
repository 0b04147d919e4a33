"""One call wires metrics and request statistics into an app: `install_observability(app)`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI
from loguru import logger

from app.core import metrics
from app.core.mcp_metrics import McpCounters
from app.core.middleware import RequestContextMiddleware
from app.core.request_window import RequestWindow
from app.state import AppState


async def maybe_await(value: Any) -> Any:
    """The value itself, or its result when it is awaitable (sync or async providers)."""
    return await value if inspect.isawaitable(value) else value


@dataclass
class Observability:
    """Per-app observability state: the request window, MCP counter deltas, this process."""

    window: RequestWindow = field(default_factory=RequestWindow)
    mcp_counters: McpCounters = field(default_factory=McpCounters)
    process: psutil.Process = field(default_factory=psutil.Process)
    sample_interval_s: float = 5.0
    _snapshot_failed: bool = False

    async def refresh(self, state: AppState) -> None:
        """Publish this process's pool usage and MCP numbers to Prometheus."""
        metrics.set_pool_gauges(metrics.pool_usage(state.engine))
        snapshot_of = getattr(state.mcp, "metrics_snapshot", None)
        if snapshot_of is None:
            return
        try:
            self.mcp_counters.publish(await maybe_await(snapshot_of()))
            self._snapshot_failed = False
        except Exception:
            if not self._snapshot_failed:  # log once per failure streak, not every interval
                logger.opt(exception=True).warning("MCP metrics snapshot failed")
            self._snapshot_failed = True

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
    workers = len(list(Path(directory).glob("gauge_livesum_*.db")))
    return {
        "workers": workers,
        "requests_total": int(totals["requests"]),
        "server_errors": int(totals["server_errors"]),
        "active_streams": int(totals["streams"]),
        "active_generations": int(totals["generations"]),
        "tokens_streamed": int(totals["tokens"]),
    }


def get_observability(app: FastAPI) -> Observability:
    """The app's observability state (install_observability must have run)."""
    obs = getattr(app.state, "observability", None)
    if not isinstance(obs, Observability):
        raise RuntimeError("install_observability(app) was not called for this app")
    return obs


def install_observability(app: FastAPI) -> Observability:
    """Feed every request to Prometheus and the status window; sample gauges while running.

    Call once in `create_app()`, after `RequestContextMiddleware` is added and before the
    app serves; a second call returns the existing state.
    """
    existing = getattr(app.state, "observability", None)
    if isinstance(existing, Observability):
        return existing
    if app.middleware_stack is not None:
        raise RuntimeError("install_observability() must run before the app starts")
    obs = Observability()
    for middleware in app.user_middleware:
        if middleware.cls is RequestContextMiddleware:  # type: ignore[comparison-overlap]
            options: dict[str, Any] = middleware.kwargs
            observers: list[Any] = options.setdefault("observers", [])
            observers.extend([metrics.observe_request, obs.window.observe])
            break
    else:
        raise RuntimeError("add RequestContextMiddleware before install_observability()")
    _wrap_lifespan(app, obs)
    app.state.observability = obs
    return obs


def _wrap_lifespan(app: FastAPI, obs: Observability) -> None:
    """Run the gauge sampler for as long as the app's own lifespan is up."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as maybe_state:
            task = asyncio.create_task(_sample_forever(application, obs), name="metrics-sampler")
            try:
                yield maybe_state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan


async def _sample_forever(app: Any, obs: Observability) -> None:
    """Refresh the sampled gauges every few seconds (each worker publishes its own)."""
    while True:
        state = getattr(app.state, "vektor", None)
        if state is not None:
            try:
                await obs.refresh(state)
            except Exception:
                logger.opt(exception=True).warning("metrics sampling failed")
        await asyncio.sleep(obs.sample_interval_s)
