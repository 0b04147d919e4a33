"""/api/status and the dashboard page, health checks, and CORS as a browser sees them."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app import __version__
from app.api import deps, deps_system
from app.observability.request_window import RequestWindow, percentile
from test.support.apps import make_settings, offline_config, running

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ALLOWED_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
async def observed(
    database_url: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with the status routes (CORS for one origin, no MCP servers)."""
    settings = make_settings(
        database_url,
        log_dir,
        backend_cors_origins=[ALLOWED_ORIGIN],
        config_dir=offline_config(tmp_path_factory.mktemp("config")),
    )
    async with running(settings) as pair:
        yield pair


# --- the rolling window --------------------------------------------------------------------


def test_percentiles_use_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile(values, 0.99) == 99
    assert percentile([], 0.5) == 0


def test_window_keeps_recent_latency_and_ten_second_history() -> None:
    now = [1_000_000.0]
    window = RequestWindow(window_s=60, bucket_s=10, history_buckets=6, clock=lambda: now[0])
    window.observe("GET", "/old", 200, 9.0)
    now[0] += 120  # older than the window: counted, but not in the percentiles
    for ms in range(1, 11):
        window.observe("GET", "/chat/history", 200, ms / 1000)
    window.observe("POST", "/chat/stream", 500, 0.5)
    window.observe("BREW", "/chat/stream", 404, 0.1)
    now[0] += 10
    snap = window.snapshot()
    assert snap["total"] == 13
    assert snap["server_errors"] == 1
    routes = {(r["method"], r["route"]): r for r in snap["routes"]}
    history = routes[("GET", "/chat/history")]
    assert (history["count"], history["p50_ms"], history["p95_ms"], history["max_ms"]) == (
        10, 5.0, 10.0, 10.0,
    )  # fmt: skip
    assert routes[("GET", "/old")]["window_count"] == 0
    assert routes[("OTHER", "/chat/stream")]["client_errors"] == 1  # made-up methods are bounded
    assert snap["window"]["count"] == 12
    points = snap["history"]
    assert len(points) == 6
    assert [p["requests"] for p in points] == [0, 0, 0, 0, 12, 0]
    assert points[4]["errors"] == 1 and points[4]["rps"] == 1.2
    assert points[4]["max_ms"] == 500.0


# --- /api/status ---------------------------------------------------------------------------


async def test_status_reports_every_part(observed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = observed
    for _ in range(3):
        await client.get("/health/live")
    response = await client.get("/api/status")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["uptime_s"] >= 0
    assert body["database"]["status"] == "ok" and body["database"]["latency_ms"] >= 0
    assert body["database"]["pool"]["size"] >= 1
    assert isinstance(body["mcp"], list) and isinstance(body["models"], list)
    for key in ("active_streams", "active_generations", "tokens_streamed"):
        assert isinstance(body[key], int)
    assert body["process"]["rss_bytes"] > 0 and body["process"]["cpu_percent"] >= 0
    requests = body["requests"]
    live = next(r for r in requests["routes"] if r["route"] == "/health/live")
    assert live["count"] >= 3
    assert 0 < live["p50_ms"] <= live["p95_ms"] <= live["p99_ms"] <= live["max_ms"]
    assert len(requests["history"]) == 60 and requests["history"][-1]["requests"] >= 3
    assert 0 <= requests["error_rate"] <= 1


class ModelInfo(BaseModel):
    id: str
    name: str
    provider: str
    available: bool
    default: bool = False


@dataclass
class FakeParts:
    """Stands in for the MCP pool and the model registry."""

    servers: list[dict[str, Any]]

    def status(self) -> list[dict[str, Any]]:
        return self.servers

    def describe(self) -> list[ModelInfo]:
        return [ModelInfo(id="echo", name="Echo", provider="echo", available=True, default=True)]


class Broken:
    def status(self) -> list[dict[str, Any]]:
        raise RuntimeError("pool is restarting")


async def test_status_lists_mcp_servers_and_models(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = observed
    overrides = app.dependency_overrides

    def use(mcp: Any, models: Any = None) -> None:
        overrides[deps_system.get_mcp_pool] = lambda: mcp
        if models is not None:
            overrides[deps.get_models] = lambda: models

    healthy = {"name": "time", "transport": "stdio", "status": "healthy", "endpoints": []}
    down = {"name": "search", "transport": "streamable_http", "status": "down", "tools_count": 0}
    try:
        parts = FakeParts([healthy])
        use(parts, parts)
        body = (await client.get("/api/status")).json()
        assert body["status"] == "ok"
        assert body["mcp"] == [healthy]
        assert body["models"][0] == {
            "id": "echo", "name": "Echo", "provider": "echo", "available": True, "default": True,
        }  # fmt: skip
        use(FakeParts([healthy, down]))
        body = (await client.get("/api/status")).json()
        assert body["status"] == "degraded"  # an optional part is down; still served
        assert [s["status"] for s in body["mcp"]] == ["healthy", "down"]
        use(Broken())
        body = (await client.get("/api/status")).json()
        assert body["mcp"][0]["status"] == "error"
    finally:
        overrides.pop(deps_system.get_mcp_pool, None)
        overrides.pop(deps.get_models, None)


@pytest.mark.slow
async def test_status_and_metrics_show_a_real_mcp_server(
    database_url: str, log_dir: Path, tmp_path: Path
) -> None:
    # the real pool with one stdio server (mcp-server-time): the shapes of its status()
    # and metrics_snapshot() reach /api/status and /metrics
    config = offline_config(tmp_path / "config")
    server = {"transport": "stdio", "command": sys.executable, "args": ["-m", "mcp_server_time"]}
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {"clock": server}}))
    token = "status-test-metrics-token-0123456789"
    settings = make_settings(database_url, log_dir, config_dir=config, metrics_token=token)
    async with running(settings) as (_, client):

        async def clock() -> dict[str, Any]:
            body = (await client.get("/api/status")).json()
            return next(s for s in body["mcp"] if s["name"] == "clock")

        deadline = time.monotonic() + 60
        while (await clock())["status"] != "healthy" and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        entry = await clock()
        assert entry["status"] == "healthy" and entry["transport"] == "stdio"
        assert len(entry["endpoints"]) == 1 and entry["endpoints"][0]["healthy"] is True
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert 'vektor_mcp_circuit_state{server="clock"} 0.0' in scraped.text


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html", True),
        (BROWSER_ACCEPT, True),
    ],
)
async def test_status_negotiates_html_or_json(
    observed: tuple[FastAPI, httpx.AsyncClient], accept: str | None, html: bool
) -> None:
    _, client = observed
    headers = {"Accept": accept} if accept else {}
    response = await client.get("/api/status", headers=headers)
    assert response.status_code == 200
    assert "Accept" in response.headers["vary"]
    kind = "text/html" if html else "application/json"
    assert response.headers["content-type"].startswith(kind)


@pytest.mark.parametrize("path", ["/", "/api/status"])
async def test_dashboard_is_self_contained_and_hardened(
    observed: tuple[FastAPI, httpx.AsyncClient], path: str
) -> None:
    _, client = observed
    response = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    page = response.text
    csp = response.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([A-Za-z0-9_-]+)'", csp)
    assert nonce, csp
    assert f'<script nonce="{nonce.group(1)}">' in page
    assert f'<style nonce="{nonce.group(1)}">' in page
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    # nothing is loaded from elsewhere: no external scripts, styles, fonts or images
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    again = await client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert again.headers["content-security-policy"] != csp  # a fresh nonce per response


# --- health ----------------------------------------------------------------------------------


async def test_health_endpoints(observed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = observed
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_database_is_503_but_status_still_answers(
    log_dir: Path, tmp_path: Path
) -> None:
    # PostgreSQL that is down (nothing listens on the port): the app must still start,
    # say so on /health and /health/ready, stay live, and show it on the dashboard.
    url = f"postgresql+asyncpg://vektor:secret@127.0.0.1:{closed_port()}/vektor"
    config = offline_config(tmp_path / "config")
    settings = make_settings(url, log_dir, db_auto_migrate=False, config_dir=config)
    async with running(settings) as (_, client):
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "error"
        assert health.json()["checks"]["database"]["status"] == "error"
        assert "secret" not in health.text
        ready = await client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "error"
        assert (await client.get("/health/live")).status_code == 200
        status = await client.get("/api/status")
        assert status.status_code == 200
        assert status.json()["status"] == "error"
        assert status.json()["database"]["status"] == "error"
        assert (await client.get("/", headers={"Accept": BROWSER_ACCEPT})).status_code == 200


# --- CORS --------------------------------------------------------------------------------------


async def test_cors_allows_the_configured_origin_with_credentials(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = observed
    response = await client.get("/api/info", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_cors_ignores_other_origins(observed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = observed
    for origin in ("https://evil.example.com", "https://app.example.com.evil.net", "null"):
        response = await client.get("/api/info", headers={"Origin": origin})
        assert response.status_code == 200
        # without Access-Control-Allow-Origin the browser keeps the response from the page
        assert "access-control-allow-origin" not in response.headers


async def test_cors_preflight(observed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = observed
    preflight = {
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    ok = await client.options("/users/me", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "PUT" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    denied = await client.options(
        "/users/me", headers={"Origin": "https://evil.example.com", **preflight}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers


@pytest.mark.parametrize(
    ("origin", "extra", "failed"),
    [
        ("https://evil.example.com", {}, "origin"),
        ("null", {}, "origin"),
        (ALLOWED_ORIGIN, {"Access-Control-Request-Private-Network": "true"}, "private-network"),
    ],
)
async def test_a_rejected_cors_preflight_answers_json(
    observed: tuple[FastAPI, httpx.AsyncClient], origin: str, extra: dict[str, str], failed: str
) -> None:
    _, client = observed
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST", **extra}
    denied = await client.options("/chat/stream", headers=preflight)
    assert denied.status_code == 400
    assert denied.headers["content-type"] == "application/json"
    body = denied.json()
    assert set(body) == {"detail", "code"} and body["code"] == "cors_rejected"
    assert failed in body["detail"] and "BACKEND_CORS_ORIGINS" in body["detail"]
    assert int(denied.headers["content-length"]) == len(denied.content)
    if failed == "origin":
        assert "access-control-allow-origin" not in denied.headers
    assert denied.headers["x-request-id"]
    # an allowed preflight is unchanged: 200, Starlette's "OK", the CORS headers
    ok = await client.options(
        "/chat/stream", headers={"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert (ok.status_code, ok.text) == (200, "OK")
    assert ok.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
