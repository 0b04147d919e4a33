"""System routes: health, info, endpoint catalogue."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app import __version__
from app.api.deps import StateDep
from app.services import system

router = APIRouter(tags=["system"])


class HealthReport(BaseModel):
    """`/health`: the overall status and one check per part."""

    status: Literal["ok", "degraded", "error"]
    checks: dict[str, dict[str, Any]]


class ReadyReport(BaseModel):
    """`/health/ready`: whether the database answers."""

    status: Literal["ok", "error"]
    database: dict[str, Any]


def _unhealthy(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 503 of a health route: the same report, with `status: error`."""
    return {503: {"model": model, "description": "`status: error`: the database is unreachable"}}


@router.get("/health", response_model=HealthReport, responses=_unhealthy(HealthReport))
async def health(state: StateDep) -> JSONResponse:
    """Liveness of the service and its parts (503 when the database is unreachable)."""
    status_code, body = await system.health(state)
    return JSONResponse(body, status_code=status_code)


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up (for orchestrators)."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=ReadyReport, responses=_unhealthy(ReadyReport))
async def ready(state: StateDep) -> JSONResponse:
    """Ready to take traffic: the database answers."""
    db = await system.check_database(state)
    ok = db["status"] == "ok"
    return JSONResponse({"status": "ok" if ok else "error", "database": db}, 200 if ok else 503)


@router.get("/api/info")
async def info(state: StateDep) -> dict[str, Any]:
    """Name, version, capabilities and limits."""
    return system.info(state, __version__)


@router.get("/api/endpoints")
async def endpoints(request: Request) -> list[dict[str, Any]]:
    """Every route with methods, summary, tags and whether it needs auth."""
    return system.endpoints(request.app)
