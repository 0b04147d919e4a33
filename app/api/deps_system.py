"""Dependencies of the operator's routes: MCP admin, health, /api/status, /api/info, metrics."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.deps import (
    AuditorDep,
    ModelsDep,
    SessionDep,
    SettingsDep,
    StateDep,
    get_admin_user,
    get_principal,
    oauth2_scheme,
)
from app.api.openapi import answers
from app.core.errors import AppError, ServiceUnavailable
from app.observability.runtime import Observability, get_observability
from app.services.adapters import AdapterTools
from app.services.admin import AdminService
from app.services.mcp import McpPool
from app.services.status import StatusReport
from app.services.system import SystemHealth
from app.services.usage.report import UsageService
from app.state import AppState


async def get_mcp_pool(request: Request) -> McpPool:
    """The lifespan-owned MCP pool (503 before the lifespan has started it: not @answers,
    a started app always has one)."""
    state: AppState | None = getattr(request.app.state, "vektor", None)
    if state is None:
        raise ServiceUnavailable("The MCP pool is not running")
    return state.mcp


McpPoolDep = Annotated[McpPool, Depends(get_mcp_pool)]


async def get_adapter_tools(state: StateDep) -> AdapterTools:
    """The declarative HTTP adapters (config/app/*.json)."""
    return state.adapters


AdapterToolsDep = Annotated[AdapterTools, Depends(get_adapter_tools)]


async def get_observability_dep(request: Request) -> Observability:
    """The app's request window and samplers."""
    return get_observability(request.app)


ObservabilityDep = Annotated[Observability, Depends(get_observability_dep)]


async def get_capabilities(state: StateDep) -> list[str]:
    """What the running parts add to /api/info's capabilities."""
    return state.capabilities


CapabilitiesDep = Annotated[list[str], Depends(get_capabilities)]


async def get_engine(state: StateDep) -> AsyncEngine:
    """The database engine (its pool's numbers for /metrics and /api/status)."""
    return state.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


async def get_system_health(state: StateDep) -> SystemHealth:
    """The checks behind /health: database, Redis when configured, optional parts."""
    return SystemHealth(
        db_health=state.db_health,
        backend=state.engine.dialect.name,
        limiter=state.limiter,
        redis_configured=bool(state.settings.redis_url),
        probes=state.health_probes,
    )


SystemHealthDep = Annotated[SystemHealth, Depends(get_system_health)]


async def get_status_report(
    state: StateDep,
    engine: EngineDep,
    health: SystemHealthDep,
    models: ModelsDep,
    observability: ObservabilityDep,
    mcp: McpPoolDep,
) -> StatusReport:
    """The /api/status report over the running parts."""
    return StatusReport(
        health=health,
        mcp=mcp,
        models=models,
        engine=engine,
        observability=observability,
        environment=state.settings.environment.value,
        started_at=state.started_at,
    )


StatusReportDep = Annotated[StatusReport, Depends(get_status_report)]


@answers(401, 403, 503)
async def require_metrics_reader(
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> None:
    """Let through `METRICS_TOKEN` (compared in constant time) or an admin's access token."""
    expected = state.settings.metrics_token
    if token and expected is not None:
        wanted = expected.get_secret_value().encode()
        if wanted and hmac.compare_digest(token.encode(), wanted):
            return
    principal = await get_principal(request, state, token)  # 401 when missing or invalid
    await get_admin_user(principal.user)  # 403 for everyone else


MetricsReader = Annotated[None, Depends(require_metrics_reader)]


async def is_admin_reader(request: Request, state: StateDep) -> bool:
    """True for an active admin's token; anyone else gets the public view (never an error,
    so the public route declares no security scheme)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        principal = await get_principal(request, state, token.strip())
    except AppError:
        return False
    return bool(principal.user.is_admin and principal.user.is_active)


AdminView = Annotated[bool, Depends(is_admin_reader)]


async def get_admin_service(
    session: SessionDep, audit: AuditorDep, state: StateDep
) -> AdminService:
    """User administration and the audit log's reader, bound to this request's session."""
    return AdminService(session=session, audit=audit, storage=state.file_storage)


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


async def get_usage_service(session: SessionDep, settings: SettingsDep) -> UsageService:
    """Usage reports, bound to this request's session."""
    return UsageService(session=session, settings=settings)


UsageServiceDep = Annotated[UsageService, Depends(get_usage_service)]
