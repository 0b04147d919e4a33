"""Health, info and the endpoint catalogue."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from app.core.config import Settings
from app.core.ratelimit import RateLimiter
from app.db.health import DatabaseHealth

API_VERSION = "v1"

# an optional part's check (MCP pool, ...): `{"status": "ok" | "disabled" | ..., ...}`
HealthProbe = Callable[[], Awaitable[Mapping[str, object]]]


@dataclass(frozen=True)
class SystemHealth:
    """`/health` and `/health/ready`: the database, Redis when configured, optional parts."""

    db_health: DatabaseHealth
    backend: str  # the database dialect's name
    limiter: RateLimiter
    redis_configured: bool
    probes: Mapping[str, HealthProbe]

    async def check_database(self) -> dict[str, Any]:
        """Run a short probe and time it; an answer within 1.5 s whatever the database does."""
        return {**await self.db_health.check(), "backend": self.backend}

    async def check_redis(self) -> dict[str, Any]:
        """Ping the shared Redis (rate limits, generation mirror, sync push) and time it."""
        started = time.perf_counter()
        if not await self.limiter.healthy():
            return {"status": "error", "error": "unreachable"}
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def report(self) -> tuple[int, dict[str, Any]]:
        """Overall status: error (503) without the database, degraded when a part is down."""
        checks: dict[str, Any] = {"database": await self.check_database()}
        if self.redis_configured:  # configured but down: still serving, but "degraded"
            checks["redis"] = await self.check_redis()
        for name, probe in self.probes.items():
            try:
                checks[name] = await probe()
            except Exception as exc:  # an optional part must never take health down with it
                checks[name] = {"status": "error", "error": type(exc).__name__}
        if checks["database"]["status"] != "ok":
            return 503, {"status": "error", "checks": checks}
        degraded = any(c.get("status") not in ("ok", "disabled") for c in checks.values())
        return 200, {"status": "degraded" if degraded else "ok", "checks": checks}


def info(*, settings: Settings, capabilities: list[str], version: str) -> dict[str, Any]:
    """Name, versions, capabilities and limits a client can adapt to."""
    return {
        "name": "Vektor Backend",
        "version": version,
        "api_version": API_VERSION,
        "environment": settings.environment.value,
        "capabilities": ["auth", "users", "preferences", *capabilities],
        # open | approval | closed: whether a client offers sign-up, and what follows it
        "registration_mode": settings.registration_mode.value,
        "limits": {
            "max_message_chars": 32000,
            "max_concurrent_generations": settings.max_concurrent_generations,
            "rate_limit_chat": settings.rate_limit_chat,
            "access_token_expire_minutes": settings.access_token_expire_minutes,
            "refresh_token_expire_days": settings.refresh_token_expire_days,
            "max_import_bytes": settings.max_import_bytes,
            "max_upload_bytes": settings.max_upload_bytes,
            "user_storage_quota_bytes": settings.user_storage_quota_bytes,
            "page_size_max": 100,
        },
    }


def endpoints(app: FastAPI) -> list[dict[str, Any]]:
    """Every documented route with its methods, summary, tags and whether it needs a token.

    Read from the OpenAPI document, which already resolves included routers and marks
    routes behind the bearer scheme with `security`.
    """
    grouped: dict[str, dict[str, Any]] = {}
    for path, operations in app.openapi().get("paths", {}).items():
        for method, op in operations.items():
            entry = grouped.setdefault(
                path,
                {
                    "path": path,
                    "methods": [],
                    "name": op.get("operationId"),
                    "summary": op.get("summary"),
                    "tags": list(op.get("tags", [])),
                    "auth_required": False,
                },
            )
            entry["methods"].append(method.upper())
            entry["auth_required"] = entry["auth_required"] or bool(op.get("security"))
    return [{**entry, "methods": sorted(entry["methods"])} for _, entry in sorted(grouped.items())]
