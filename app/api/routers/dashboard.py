"""Operator routes: the status report and dashboard, and Prometheus metrics."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api.deps_system import (
    AdminView,
    EngineDep,
    McpPoolDep,
    MetricsReader,
    ObservabilityDep,
    StatusReportDep,
)
from app.observability import metrics
from app.web import dashboard_html, html_security_headers

router = APIRouter(tags=["system"])


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
async def status(request: Request, report: StatusReportDep, admin: AdminView) -> Response:
    """Service status as JSON (an admin's token adds the top users), or the dashboard for
    `Accept: text/html`."""
    if prefers_html(request.headers.get("accept", "")):
        response: Response = dashboard_response()
    else:
        body = await report.build(version=__version__, admin=admin)
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
    engine: EngineDep, observability: ObservabilityDep, mcp: McpPoolDep, _reader: MetricsReader
) -> Response:
    """Prometheus metrics of every worker (admins or METRICS_TOKEN)."""
    await observability.refresh(engine=engine, mcp=mcp)
    payload, content_type = await run_in_threadpool(metrics.render_metrics)
    return Response(payload, media_type=content_type, headers={"Cache-Control": "no-store"})
