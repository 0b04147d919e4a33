"""Prometheus metrics and the cheap helpers the chat, LLM and MCP code call.

Under gunicorn (`python main.py prod`) `gunicorn.conf.py` points `PROMETHEUS_MULTIPROC_DIR`
at a fresh directory before the workers start: each worker writes its samples there and
`/metrics`, whichever worker answers, adds them up (counters of exited workers are kept,
their gauges dropped). Without that variable the process-local default registry is used.

Hot-path helpers: `streams_active.track()`, `generations_active.track()`, `add_tokens(n)`
(or a `TokenBatch` per generation: a plain integer add per token), `observe_llm(...)`.
The MCP pool's own numbers are read from its snapshot by `app.observability.mcp_metrics`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from app.observability.request_window import method_label

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "vektor_http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "vektor_http_request_duration_seconds",
    "HTTP request duration (streams: until the end)",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
SSE_STREAMS = Gauge(
    "vektor_sse_streams_active", "Open Server-Sent Events responses", multiprocess_mode="livesum"
)
WS_CONNECTIONS = Gauge(
    "vektor_ws_connections_active", "Open authenticated WebSockets", multiprocess_mode="livesum"
)
GENERATIONS = Gauge(
    "vektor_generations_active", "Running chat generations", multiprocess_mode="livesum"
)
AWAITING_APPROVAL = Gauge(
    "vektor_generations_awaiting_approval",
    "Chat generations paused until the user approves a tool call",
    multiprocess_mode="livesum",
)
TOKENS = Counter("vektor_tokens_streamed", "Tokens streamed to clients", ["model"])
LLM_TOKENS = Counter(
    "vektor_llm_tokens",
    "Tokens the upstreams counted, by model and kind (input includes cached_input)",
    ["model", "kind"],
)
LLM_COST = Counter("vektor_llm_cost_usd", "Cost of the upstream calls in USD, by model", ["model"])
LLM_DURATION = Histogram(
    "vektor_llm_request_duration_seconds",
    "LLM upstream request duration by model",
    ["model"],
    buckets=LLM_BUCKETS,
)
LLM_FIRST_TOKEN = Histogram(
    "vektor_llm_time_to_first_token_seconds",
    "LLM upstream time to first token by model",
    ["model"],
    buckets=LLM_BUCKETS,
)
LLM_ERRORS = Counter(
    "vektor_llm_errors", "LLM upstream errors by model and kind", ["model", "kind"]
)
MCP_CALLS = Counter("vektor_mcp_calls", "MCP tool calls by server", ["server"])
MCP_ERRORS = Counter("vektor_mcp_call_errors", "Failed MCP tool calls by server", ["server"])
MCP_FAILOVERS = Counter("vektor_mcp_failovers", "MCP calls retried on another replica", ["server"])
MCP_SECONDS = Counter(
    "vektor_mcp_call_duration_seconds", "Time spent in MCP tool calls (divide by calls)", ["server"]
)
MCP_TIMEOUTS = Counter("vektor_mcp_call_timeouts", "MCP tool calls that timed out", ["server"])
MCP_TIMED = Counter(
    "vektor_mcp_timed_calls", "MCP calls in the duration sum (average = sum / this)", ["server"]
)
MCP_REPLICA_CIRCUIT = Gauge(
    "vektor_mcp_replica_circuit_state",
    "Circuit-breaker state per replica: 0 closed, 1 half-open, 2 open",
    ["server", "replica"],
    multiprocess_mode="livemax",
)
MCP_CIRCUIT = Gauge(
    "vektor_mcp_circuit_state",
    "Worst circuit-breaker state: 0 closed, 1 half-open, 2 open",
    ["server"],
    multiprocess_mode="livemax",
)
DB_POOL_SIZE = Gauge("vektor_db_pool_size", "Database pool size", multiprocess_mode="livesum")
DB_POOL_CHECKED_OUT = Gauge(
    "vektor_db_pool_checked_out", "Database connections in use", multiprocess_mode="livesum"
)


class ActiveGauge:
    """Things in progress in this process (a Prometheus gauge plus a local count)."""

    __slots__ = ("_gauge", "value")

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self.value = 0

    def inc(self) -> None:
        """One more started."""
        self.value += 1
        self._gauge.inc()

    def dec(self) -> None:
        """One finished."""
        self.value -= 1
        self._gauge.dec()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the enclosed block as active."""
        self.inc()
        try:
            yield
        finally:
            self.dec()


class TokenCounter:
    """Tokens streamed: a Prometheus counter by model plus a process total."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int, model: str = "") -> None:
        """Count `n` tokens (call once per generation or per batch, not per token)."""
        if n > 0:
            self.total += n
            TOKENS.labels(model or "unknown").inc(n)


streams_active = ActiveGauge(SSE_STREAMS)
ws_connections = ActiveGauge(WS_CONNECTIONS)
generations_active = ActiveGauge(GENERATIONS)
awaiting_approval = ActiveGauge(AWAITING_APPROVAL)
tokens_streamed = TokenCounter()


def add_usage(
    model: str, *, input_tokens: int, output_tokens: int, cached: int, cost_usd: float | None
) -> None:
    """Count one upstream call's tokens and cost (once per call, never per token)."""
    LLM_TOKENS.labels(model, "input").inc(max(0, input_tokens))
    LLM_TOKENS.labels(model, "output").inc(max(0, output_tokens))
    if cached:
        LLM_TOKENS.labels(model, "cached_input").inc(max(0, cached))
    if cost_usd:
        LLM_COST.labels(model).inc(max(0.0, cost_usd))


def add_tokens(n: int, model: str = "") -> None:
    """Count `n` streamed tokens of `model`."""
    tokens_streamed.add(n, model)


class TokenBatch:
    """Per-generation token tally: `add()` is an integer add; publishes every `flush_every`."""

    __slots__ = ("flush_every", "model", "pending")

    def __init__(self, model: str = "", flush_every: int = 256) -> None:
        self.model = model
        self.flush_every = flush_every
        self.pending = 0

    def add(self, n: int = 1) -> None:
        """Count `n` tokens."""
        self.pending += n
        if self.pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Publish what is pending (call at the end of the generation)."""
        if self.pending:
            tokens_streamed.add(self.pending, self.model)
            self.pending = 0

    def __enter__(self) -> TokenBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()


def observe_llm(model: str, seconds: float, *, error: str | None = None) -> None:
    """One upstream LLM request took `seconds`; `error` is a short bounded kind on failure."""
    LLM_DURATION.labels(model).observe(seconds)
    if error:
        LLM_ERRORS.labels(model, error).inc()


def observe_llm_first_token(model: str, seconds: float) -> None:
    """The upstream's first token arrived `seconds` after the request."""
    LLM_FIRST_TOKEN.labels(model).observe(seconds)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """The RequestContextMiddleware observer: count and time one finished request."""
    labels = (method_label(method), route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def pool_usage(engine: AsyncEngine) -> dict[str, int | None]:
    """Size and checked-out connections of an engine's pool (None where the pool has none:
    SQLite's single-connection and null pools)."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return dict.fromkeys(("size", "checked_out", "checked_in", "overflow"))
    return {
        "size": max(0, pool.size()),
        "checked_out": max(0, pool.checkedout()),
        "checked_in": max(0, pool.checkedin()),
        "overflow": max(0, pool.overflow()),
    }


def set_pool_gauges(usage: Mapping[str, int | None]) -> None:
    """Publish this process's pool usage."""
    DB_POOL_SIZE.set(usage.get("size") or 0)
    DB_POOL_CHECKED_OUT.set(usage.get("checked_out") or 0)


def multiprocess_dir() -> str | None:
    """The shared metrics directory when running under several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class WorkerFilesCollector(MultiProcessCollector):
    """Every worker's samples, skipping files a worker is creating or removing right now.

    A worker that is starting creates its file empty before it sizes it (reading it then
    fails), and one that exited may lose its live-gauge files between listing and reading;
    a scrape or `/api/status` must not fail for either."""

    def collect(self) -> Any:
        """Merge the readable files of the directory."""
        try:
            return self.merge(self._readable(), accumulate=True)  # type: ignore[no-untyped-call]
        except FileNotFoundError:  # removed while we read: list again
            return self.merge(self._readable(), accumulate=True)  # type: ignore[no-untyped-call]

    def _readable(self) -> list[str]:
        files = []
        for path in Path(self._path).glob("*.db"):
            with contextlib.suppress(OSError):
                if path.stat().st_size >= 8:  # sized and headed by its worker
                    files.append(str(path))
        return files


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition (every worker's samples in multiprocess mode)."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        WorkerFilesCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
