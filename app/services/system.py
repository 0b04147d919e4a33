"""Health, info and the endpoint catalogue."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI

from app.state import AppState

API_VERSION = "v1"


async def check_database(state: AppState) -> dict[str, Any]:
    """Run a short probe and time it; an answer within 1.5 s whatever the database does."""
    return {**await state.db_health.check(), "backend": state.engine.dialect.name}


async def check_redis(state: AppState) -> dict[str, Any]:
    """Ping the shared Redis (rate limits, generation mirror, sync push) and time it."""
    started = time.perf_counter()
    if not await state.limiter.healthy():
        return {"status": "error", "error": "unreachable"}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def health(state: AppState) -> tuple[int, dict[str, Any]]:
    """Overall status: error (503) without the database, degraded when an optional part is down."""
    checks: dict[str, Any] = {"database": await check_database(state)}
    if state.settings.redis_url:  # configured but down: still serving, but "degraded"
        checks["redis"] = await check_redis(state)
    for name, probe in state.health_probes.items():
        try:
            checks[name] = await probe()
        except Exception as exc:  # an optional part must never take health down with it
            checks[name] = {"status": "error", "error": type(exc).__name__}
    if checks["database"]["status"] != "ok":
        return 503, {"status": "error", "checks": checks}
    degraded = any(c.get("status") not in ("ok", "disabled") for c in checks.values())
    return 200, {"status": "degraded" if degraded else "ok", "checks": checks}


def info(state: AppState, version: str) -> dict[str, Any]:
    """Name, versions, capabilities and limits a client can adapt to."""
    settings = state.settings
    return {
        "name": "Vektor Backend",
        "version": version,
        "api_version": API_VERSION,
        "environment": settings.environment.value,
        "capabilities": ["auth", "users", "preferences", *state.capabilities],
        "limits": {
            "max_message_chars": 32000,
            "max_concurrent_generations": settings.max_concurrent_generations,
            "rate_limit_chat": settings.rate_limit_chat,
            "access_token_expire_minutes": settings.access_token_expire_minutes,
            "refresh_token_expire_days": settings.refresh_token_expire_days,
            "max_import_bytes": settings.max_import_bytes,
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
