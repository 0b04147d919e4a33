"""Operator routes: the status report and dashboard, and Prometheus metrics."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api.deps import StateDep, get_admin_user, get_principal, oauth2_scheme
from app.api.openapi import answers
from app.observability import metrics
from app.observability.runtime import Observability, get_observability
from app.services import status as status_service
from app.web import dashboard_html, html_security_headers

router = APIRouter(tags=["system"])


async def observability_dep(request: Request) -> Observability:
    """The app's request window and samplers."""
    return get_observability(request.app)


ObservabilityDep = Annotated[Observability, Depends(observability_dep)]


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


def prefers_html(accept: str) -> bool:
    """True when `text/html` ranks above JSON in an Accept header (browsers, not curl)."""
    ranks = {"text/html": 0.0, "application/json": 0.0, "*/*": 0.0}
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.strip().lower() in ranks:
            ranks[media.strip().lower()] = max(ranks[media.strip().lower()], quality)
    json_rank = max(ranks["application/json"], ranks["*/*"])
    return ranks["text/html"] > json_rank


def dashboard_response() -> HTMLResponse:
    """The dashboard page with a fresh CSP nonce."""
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(dashboard_html(nonce), headers=html_security_headers(nonce))


@router.get(
    "/api/status",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
    response_class=JSONResponse,
)
async def status(request: Request, state: StateDep, observability: ObservabilityDep) -> Response:
    """Service status as JSON, or the dashboard for `Accept: text/html`."""
    if prefers_html(request.headers.get("accept", "")):
        response: Response = dashboard_response()
    else:
        body = await status_service.build_status(
            state=state, observability=observability, version=__version__
        )
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
    response.headers["Vary"] = "Accept"
    return response


@router.get("/", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    """The status dashboard (HTML; refreshes itself from /api/status)."""
    return dashboard_response()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text format"}},
)
async def prometheus_metrics(
    state: StateDep, observability: ObservabilityDep, _reader: MetricsReader
) -> Response:
    """Prometheus metrics of every worker (admins or METRICS_TOKEN)."""
    await observability.refresh(engine=state.engine, mcp=state.mcp)
    payload, content_type = await run_in_threadpool(metrics.render_metrics)
    return Response(payload, media_type=content_type, headers={"Cache-Control": "no-store"})
