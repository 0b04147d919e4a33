"""The `/api/status` report: health of every part, traffic, latency and this process."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from app.core.redact import redact_tree
from app.observability import metrics
from app.observability.runtime import Observability, cluster_totals
from app.services import system
from app.state import AppState

BAD_MCP_STATES = frozenset({"down", "degraded", "error", "unhealthy"})


async def maybe_await(value: Any) -> Any:
    """The value itself, or its result when it is awaitable (sync or async providers)."""
    return await value if inspect.isawaitable(value) else value


def as_dict(item: Any) -> dict[str, Any]:
    """A plain dict from a dict, pydantic model or dataclass (anything else: its repr)."""
    if isinstance(item, Mapping):
        return dict(item)
    if hasattr(item, "model_dump"):
        dumped: dict[str, Any] = item.model_dump(mode="json")
        return dumped
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    return {"name": repr(item)}


async def _describe(part: Any, method: str, what: str) -> list[dict[str, Any]]:
    """`part.<method>()` as a list of dicts; [] when the part is absent or fails."""
    describe = getattr(part, method, None)
    if describe is None:
        return []
    try:
        items = await maybe_await(describe())
    except Exception:
        logger.opt(exception=True).warning("status: listing {} failed", what)
        return [{"name": what, "status": "error", "error": "status unavailable"}]
    if isinstance(items, Mapping):  # {name: {...}}
        return [{"name": name, **as_dict(value)} for name, value in items.items()]
    return [as_dict(item) for item in items or []]


def overall_status(health_status: str, mcp: list[dict[str, Any]]) -> str:
    """`error` without the database, `degraded` when an optional part is unwell, else `ok`."""
    if health_status == "error":
        return "error"
    if health_status == "degraded" or any(s.get("status") in BAD_MCP_STATES for s in mcp):
        return "degraded"
    return "ok"


async def build_status(
    *, state: AppState, observability: Observability, version: str
) -> dict[str, Any]:
    """Everything the dashboard shows, as one JSON document."""
    _, health = await system.health(state)
    checks: dict[str, Any] = health["checks"]
    # anonymous readers: endpoint URLs and errors only ever in their display form
    mcp = redact_tree(await _describe(state.mcp, "status", "mcp"))
    models = await _describe(state.models, "describe", "models")
    database = {**checks["database"], "pool": metrics.pool_usage(state.engine)}
    cluster = cluster_totals()
    requests = observability.window.snapshot()
    local = {
        "active_streams": metrics.streams_active.value,
        "active_generations": metrics.generations_active.value,
        "tokens_streamed": metrics.tokens_streamed.total,
    }
    totals = {key: cluster[key] for key in local} if cluster else local
    now = time.time()
    return {
        "status": overall_status(health["status"], mcp),
        "version": version,
        "environment": state.settings.environment.value,
        "started_at": _iso(state.started_at),
        "generated_at": _iso(now),
        "uptime_s": round(now - state.started_at, 1),
        "database": database,
        "checks": {k: v for k, v in checks.items() if k != "database"},
        "mcp": mcp,
        "models": models,
        "requests": requests,
        **totals,
        "process": observability.process_stats(),
        "worker": {"pid": observability.process.pid, **local},
        "cluster": cluster,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
