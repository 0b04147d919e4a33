"""The `/api/status` report: health of every part, traffic, latency and this process."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from loguru import logger
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.redact import redact_tree
from app.observability import metrics
from app.observability.runtime import Observability, cluster_totals
from app.repositories.usage import UsageRepository, UsageRow
from app.services.system import SystemHealth

BAD_MCP_STATES = frozenset({"down", "degraded", "error", "unhealthy"})
TOP_USERS = 10


class ServerStatusSource(Protocol):
    """The MCP pool as the report sees it: one item per configured server."""

    def status(self) -> Sequence[Mapping[str, Any]]:
        """`[{"name", "transport", "status", "endpoints", "tools_count"}, ...]`."""
        ...


class ModelCatalog(Protocol):
    """The model registry as the report sees it."""

    def describe(self) -> Sequence[Mapping[str, Any] | BaseModel]:
        """One item per configured model (`GET /chat/models`)."""
        ...


def as_dict(item: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """A plain dict from a mapping or a pydantic model."""
    if isinstance(item, BaseModel):
        dumped: dict[str, Any] = item.model_dump(mode="json")
        return dumped
    return dict(item)


def overall_status(health_status: str, mcp: list[dict[str, Any]]) -> str:
    """`error` without the database, `degraded` when an optional part is unwell, else `ok`."""
    if health_status == "error":
        return "error"
    if health_status == "degraded" or any(s.get("status") in BAD_MCP_STATES for s in mcp):
        return "degraded"
    return "ok"


@dataclass(frozen=True)
class StatusReport:
    """Builds the report from the parts it describes."""

    health: SystemHealth
    mcp: ServerStatusSource
    models: ModelCatalog
    engine: AsyncEngine
    observability: Observability
    environment: str
    started_at: float

    def _servers(self) -> list[dict[str, Any]]:
        """The MCP servers; one `error` item when the pool cannot say."""
        try:
            return [as_dict(item) for item in self.mcp.status()]
        except Exception:
            logger.opt(exception=True).warning("status: listing mcp failed")
            return [{"name": "mcp", "status": "error", "error": "status unavailable"}]

    def _models(self) -> list[dict[str, Any]]:
        """The models; one `error` item when the registry cannot say."""
        try:
            return [as_dict(item) for item in self.models.describe()]
        except Exception:
            logger.opt(exception=True).warning("status: listing models failed")
            return [{"name": "models", "status": "error", "error": "status unavailable"}]

    async def _usage(self, *, admin: bool) -> dict[str, Any]:
        """Today's tokens and cost per model; the month's top users only for admins (the
        public view shows no user data)."""
        now = datetime.now(UTC)
        day = datetime(now.year, now.month, now.day, tzinfo=UTC)
        try:
            async with AsyncSession(self.engine) as session:
                usage = UsageRepository(session)
                today = await usage.for_instance(
                    start=day, end=day + timedelta(days=1), group_by="model"
                )
                block: dict[str, Any] = {"today_by_model": [_row(r) for r in today]}
                if admin:
                    month = datetime(now.year, now.month, 1, tzinfo=UTC)
                    users = await usage.for_instance(
                        start=month, end=day + timedelta(days=1), group_by="user"
                    )
                    users.sort(key=lambda r: (-r.cost_usd, -(r.input_tokens + r.output_tokens)))
                    block["top_users_this_month"] = [_row(r) for r in users[:TOP_USERS]]
            return block
        except Exception:
            logger.opt(exception=True).warning("status: usage unavailable")
            return {"error": "usage unavailable"}

    async def build(self, *, version: str, admin: bool = False) -> dict[str, Any]:
        """Everything the dashboard shows, as one JSON document."""
        _, health = await self.health.report()
        checks: dict[str, Any] = health["checks"]
        # anonymous readers: endpoint URLs and errors only ever in their display form
        mcp = redact_tree(self._servers())
        database = {**checks["database"], "pool": metrics.pool_usage(self.engine)}
        cluster = cluster_totals()
        local = {
            "active_streams": metrics.streams_active.value,
            "active_generations": metrics.generations_active.value,
            "awaiting_approval": metrics.awaiting_approval.value,
            "tokens_streamed": metrics.tokens_streamed.total,
        }
        totals = {key: cluster[key] for key in local} if cluster else local
        now = time.time()
        return {
            "status": overall_status(health["status"], mcp),
            "version": version,
            "environment": self.environment,
            "started_at": _iso(self.started_at),
            "generated_at": _iso(now),
            "uptime_s": round(now - self.started_at, 1),
            "database": database,
            "checks": {k: v for k, v in checks.items() if k != "database"},
            "mcp": mcp,
            "models": self._models(),
            "usage": await self._usage(admin=admin),
            "requests": self.observability.window.snapshot(),
            **totals,
            "process": self.observability.process_stats(),
            "worker": {"pid": self.observability.process.pid, **local},
            "cluster": cluster,
        }


def _row(row: UsageRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": row.cost_usd,
        "messages": row.messages,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()
