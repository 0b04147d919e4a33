"""System routes: health, info, endpoint catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import __version__
from app.api.deps import SettingsDep
from app.api.deps_system import CapabilitiesDep, SystemHealthDep
from app.schemas.system import HealthReport, ReadyReport
from app.services import system

router = APIRouter(tags=["system"])


def _unhealthy(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 503 of a health route: the same report, with `status: error`."""
    return {503: {"model": model, "description": "`status: error`: the database is unreachable"}}


@router.get("/health", response_model=HealthReport, responses=_unhealthy(HealthReport))
async def health(checks: SystemHealthDep) -> JSONResponse:
    """Liveness of the service and its parts (503 when the database is unreachable)."""
    status_code, body = await checks.report()
    return JSONResponse(body, status_code=status_code)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up (for orchestrators)."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=ReadyReport, responses=_unhealthy(ReadyReport))
async def ready(checks: SystemHealthDep) -> JSONResponse:
    """Ready to take traffic: the database answers."""
    db = await checks.check_database()
    ok = db["status"] == "ok"
    return JSONResponse({"status": "ok" if ok else "error", "database": db}, 200 if ok else 503)


@router.get("/api/info")
async def info(settings: SettingsDep, capabilities: CapabilitiesDep) -> dict[str, Any]:
    """Name, version, capabilities and limits."""
    return system.info(settings=settings, capabilities=capabilities, version=__version__)


@router.get("/api/endpoints")
async def endpoints(request: Request) -> list[dict[str, Any]]:
    """Every route with methods, summary, tags and whether it needs auth."""
    return system.endpoints(request.app)
