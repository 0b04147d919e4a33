"""In-process request statistics: a rolling window per route and a 10-second history ring.

Fed by the request observer (one call per request, on the event loop, so no locks) and
read by `/api/status`. Numbers are per process; Prometheus (`/metrics`) has the totals of
every worker.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_ROUTES = 256  # route templates are bounded already; this guards against surprises


def method_label(method: str) -> str:
    """The method, or `OTHER` for anything a client made up (bounded label values)."""
    return method if method in KNOWN_METHODS else "OTHER"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class RouteStats:
    """Counts since start and the latest latency samples of one method + route."""

    samples: deque[tuple[float, float]]
    count: int = 0
    client_errors: int = 0
    server_errors: int = 0


@dataclass
class Bucket:
    """Requests that finished within one history interval."""

    index: int
    count: int = 0
    errors: int = 0
    seconds_sum: float = 0.0
    seconds_max: float = 0.0


@dataclass
class RequestWindow:
    """Rolling latency window by route plus a fixed-interval history of rate and latency."""

    window_s: float = 300.0
    bucket_s: int = 10
    history_buckets: int = 60
    max_samples: int = 1024
    clock: Callable[[], float] = time.time
    total: int = 0
    server_errors: int = 0
    routes: dict[tuple[str, str], RouteStats] = field(default_factory=dict)
    history: deque[Bucket] = field(init=False)

    def __post_init__(self) -> None:
        """Size the history ring."""
        self.history = deque(maxlen=self.history_buckets)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request (the RequestContextMiddleware observer signature)."""
        now = self.clock()
        key = (method_label(method), route)
        stats = self.routes.get(key)
        if stats is None:
            if len(self.routes) >= MAX_ROUTES:
                key = (key[0], "<other>")
                stats = self.routes.get(key)
            if stats is None:
                stats = RouteStats(samples=deque(maxlen=self.max_samples))
                self.routes[key] = stats
        stats.count += 1
        stats.samples.append((now, seconds))
        self.total += 1
        is_error = status >= 500
        if is_error:
            stats.server_errors += 1
            self.server_errors += 1
        elif status >= 400:
            stats.client_errors += 1
        bucket = self._bucket(now)
        bucket.count += 1
        bucket.errors += is_error
        bucket.seconds_sum += seconds
        bucket.seconds_max = max(bucket.seconds_max, seconds)

    def _bucket(self, now: float) -> Bucket:
        index = int(now // self.bucket_s)
        if not self.history or self.history[-1].index != index:
            self.history.append(Bucket(index=index))
        return self.history[-1]

    def snapshot(self) -> dict[str, Any]:
        """Totals, window rate and percentiles by route, and the history for the chart."""
        now = self.clock()
        since = now - self.window_s
        routes: list[dict[str, Any]] = []
        window_all: list[float] = []
        for (method, route), stats in self.routes.items():
            recent = sorted(s for t, s in stats.samples if t >= since)
            window_all.extend(recent)
            routes.append(
                {
                    "method": method,
                    "route": route,
                    "count": stats.count,
                    "client_errors": stats.client_errors,
                    "server_errors": stats.server_errors,
                    "window_count": len(recent),
                    **_latency_summary(recent),
                }
            )
        routes.sort(key=lambda r: (-r["count"], r["route"], r["method"]))
        window_all.sort()
        window_errors = sum(b.errors for b in self.history if b.index * self.bucket_s >= since)
        return {
            "total": self.total,
            "server_errors": self.server_errors,
            "error_rate": round(self.server_errors / self.total, 4) if self.total else 0.0,
            "window_s": self.window_s,
            "window": {
                "count": len(window_all),
                "rps": round(len(window_all) / self.window_s, 3),
                "error_rate": round(window_errors / len(window_all), 4) if window_all else 0.0,
                **_latency_summary(window_all),
            },
            "routes": routes,
            "history": self.history_points(now),
        }

    def history_points(self, now: float | None = None) -> list[dict[str, Any]]:
        """One point per interval for the last `history_buckets` intervals, gaps as zeros."""
        now = self.clock() if now is None else now
        last = int(now // self.bucket_s)
        by_index = {b.index: b for b in self.history}
        points = []
        for index in range(last - self.history_buckets + 1, last + 1):
            bucket = by_index.get(index) or Bucket(index=index)
            # the current interval is still filling: divide by the part that has passed
            span = (now - index * self.bucket_s) if index == last else self.bucket_s
            points.append(
                {
                    "t": index * self.bucket_s,
                    "requests": bucket.count,
                    "rps": round(bucket.count / max(span, 1.0), 3),
                    "errors": bucket.errors,
                    "avg_ms": _ms(bucket.seconds_sum / bucket.count) if bucket.count else 0.0,
                    "max_ms": _ms(bucket.seconds_max),
                }
            )
        return points


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _latency_summary(sorted_seconds: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _ms(percentile(sorted_seconds, 0.50)),
        "p95_ms": _ms(percentile(sorted_seconds, 0.95)),
        "p99_ms": _ms(percentile(sorted_seconds, 0.99)),
        "max_ms": _ms(sorted_seconds[-1]) if sorted_seconds else 0.0,
    }
