"""One configured server: its replicas, balancer, last known tools and counters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp import types

from app.services.mcp.balancer import Balancer
from app.services.mcp.config import ServerConfig
from app.services.mcp.connection import Replica


@dataclass
class ServerMetrics:
    """Counters for /metrics."""

    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    failovers: int = 0
    latency_ms_sum: float = 0.0
    latency_count: int = 0


@dataclass
class ServerGroup:
    """The replicas of one server and what the pool knows about them."""

    config: ServerConfig
    on_change: Callable[[ServerGroup], None]
    replicas: list[Replica] = field(default_factory=list)
    tools: list[types.Tool] = field(default_factory=list)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)

    def __post_init__(self) -> None:
        self.balancer: Balancer[Replica] = Balancer(self.config.strategy)
        self._changed = asyncio.Event()
        if self.config.enabled:
            self.replicas = [
                Replica(server=self.config, index=index, on_change=self._replica_changed)
                for index in range(len(self.config.targets))
            ]

    @property
    def name(self) -> str:
        """The server's configured name."""
        return self.config.name

    @property
    def available(self) -> bool:
        """At least one replica can take a call."""
        return any(replica.usable for replica in self.replicas)

    @property
    def status(self) -> str:
        """healthy (all replicas), degraded (some), down (none) or disabled."""
        if not self.config.enabled:
            return "disabled"
        healthy = sum(1 for replica in self.replicas if replica.healthy)
        if healthy == len(self.replicas):
            return "healthy"
        return "degraded" if healthy or self.available else "down"

    async def next_replica(self, *, tried: dict[Replica, int], wait_s: float) -> Replica | None:
        """The next untried session under the strategy; waits `wait_s` for a reconnecting one."""
        # a new session of a replica that failed counts as untried
        deadline = time.monotonic() + wait_s
        while True:
            exclude = [r for r, generation in tried.items() if r.generation == generation]
            replica = self.balancer.pick(self.replicas, exclude=exclude)
            remaining = deadline - time.monotonic()
            if replica is not None or remaining <= 0 or not self.reconnecting():
                return replica
            await self.wait_changed(remaining)

    def reconnecting(self) -> bool:
        """A replica is between sessions or connecting now (not backing off after failures)."""
        return any(r.phase in ("closing", "idle", "connecting") for r in self.replicas)

    async def wait_changed(self, timeout_s: float) -> None:
        """Return when a replica changes state, or after `timeout_s`."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    def _replica_changed(self, replica: Replica) -> None:
        """Keep the newest listing, wake waiting calls and tell the pool."""
        if replica.connected and replica.tools is not None:
            self.tools = replica.tools
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        self.on_change(self)

    def status_item(self, tools_count: int) -> dict[str, Any]:
        """This server as a GET /mcp/servers item."""
        endpoints = [
            {
                "target": replica.target,
                "healthy": replica.healthy,
                "in_flight": replica.in_flight,
                "last_error": replica.last_error,
                "latency_ms": replica.latency_ms,
            }
            for replica in self.replicas
        ]
        if not self.config.enabled:
            endpoints = [
                {
                    "target": target,
                    "healthy": False,
                    "in_flight": 0,
                    "last_error": None,
                    "latency_ms": None,
                }
                for target in self.config.targets
            ]
        return {
            "name": self.name,
            "transport": self.config.transport,
            "status": self.status,
            "endpoints": endpoints,
            "tools_count": tools_count,
        }

    def metrics_item(self) -> dict[str, Any]:
        """Counters and circuit states for /metrics."""
        m = self.metrics
        return {
            "status": self.status,
            "calls": m.calls,
            "errors": m.errors,
            "timeouts": m.timeouts,
            "failovers": m.failovers,
            "latency_ms_sum": round(m.latency_ms_sum, 3),
            "latency_count": m.latency_count,
            "replicas": {
                replica.target: {
                    "circuit": replica.breaker.state,
                    "connected": replica.connected,
                    "in_flight": replica.in_flight,
                    "reconnects": replica.reconnects,
                }
                for replica in self.replicas
            },
        }
