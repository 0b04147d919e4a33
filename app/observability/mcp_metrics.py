"""Turns the MCP pool's `metrics_snapshot()` into Prometheus counters and gauges.

The source is typed (`runtime.McpMetricsSource`); its snapshot is data, read defensively:
`{server: {"calls", "errors", "timeouts", "failovers", "latency_ms_sum", "latency_count",
"replicas": {target: {"circuit": "closed" | "half_open" | "open", ...}}}}` (what
`McpPool.metrics_snapshot()` returns); lists of `{"name": ...}` also work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from app.core.redact import display_url
from app.observability.metrics import (
    MCP_CALLS,
    MCP_CIRCUIT,
    MCP_ERRORS,
    MCP_FAILOVERS,
    MCP_REPLICA_CIRCUIT,
    MCP_SECONDS,
    MCP_TIMED,
    MCP_TIMEOUTS,
)

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}


class McpCounters:
    """Turns the MCP pool's cumulative per-server numbers into counter increments."""

    FIELDS = (
        ("calls", MCP_CALLS, ("calls", "calls_total", "requests"), 1.0),
        ("errors", MCP_ERRORS, ("errors", "errors_total", "failures"), 1.0),
        ("failovers", MCP_FAILOVERS, ("failovers", "failovers_total", "retries"), 1.0),
        ("timeouts", MCP_TIMEOUTS, ("timeouts", "timeouts_total"), 1.0),
        ("timed", MCP_TIMED, ("latency_count", "latency_samples"), 1.0),
        ("seconds", MCP_SECONDS, ("latency_sum_s", "latency_s_sum", "latency_seconds_sum"), 1.0),
        ("millis", MCP_SECONDS, ("latency_sum_ms", "latency_ms_sum", "latency_ms_total"), 0.001),
    )

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}

    def publish(self, snapshot: object) -> None:
        """Add what changed since the previous snapshot; set each server's circuit state."""
        for server, entry in _servers(snapshot):
            for field, counter, keys, scale in self.FIELDS:
                value = _first_number(entry, keys)
                if value is None:
                    continue
                previous = self._last.get((server, field), 0.0)
                self._last[(server, field)] = value
                delta = value - previous if value >= previous else value  # the pool restarted
                if delta > 0:
                    counter.labels(server).inc(delta * scale)
            level = circuit_level(entry)
            if level is not None:
                MCP_CIRCUIT.labels(server).set(level)
            for replica, state in _replicas(entry):
                if (replica_level := circuit_level(state)) is not None:
                    # a label is public to every scraper: never a URL's credentials
                    MCP_REPLICA_CIRCUIT.labels(server, display_url(replica)).set(replica_level)


def _servers(snapshot: object) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(name, numbers) pairs from `{name: {...}}` or `[{"name": ..., ...}]`."""
    if isinstance(snapshot, Mapping):
        for name, entry in snapshot.items():
            if isinstance(entry, Mapping):
                yield str(name), entry
    elif isinstance(snapshot, list | tuple):
        for entry in snapshot:
            if isinstance(entry, Mapping) and (entry.get("name") or entry.get("server")):
                yield str(entry.get("name") or entry.get("server")), entry


def _replicas(entry: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(target, replica entry) pairs from `{target: {...}}` or `[{"target": ...}]`."""
    replicas = entry.get("replicas") or entry.get("endpoints") or []
    if isinstance(replicas, Mapping):
        yield from ((str(target), value) for target, value in replicas.items())
    elif isinstance(replicas, list | tuple):
        for value in replicas:
            if isinstance(value, Mapping) and value.get("target"):
                yield str(value["target"]), value


def _first_number(entry: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def circuit_level(entry: Any) -> int | None:
    """The worst circuit-breaker state (0 closed, 1 half-open, 2 open) found in an entry."""
    if isinstance(entry, str):
        return CIRCUIT_STATES.get(entry.strip().lower().replace(" ", "_"))
    levels: list[int] = []
    if isinstance(entry, Mapping):
        for key in ("circuit", "circuit_state", "breaker", "state"):
            raw = entry.get(key)
            if isinstance(raw, Mapping):
                levels += [lv for v in raw.values() if (lv := circuit_level(v)) is not None]
            elif raw is not None and (level := circuit_level(raw)) is not None:
                levels.append(level)
        replicas = entry.get("replicas") or entry.get("endpoints") or []
        if isinstance(replicas, Mapping):
            replicas = list(replicas.values())
        for replica in replicas if isinstance(replicas, list | tuple) else []:
            if isinstance(replica, Mapping) and (level := circuit_level(replica)) is not None:
                levels.append(level)
    return max(levels) if levels else None
