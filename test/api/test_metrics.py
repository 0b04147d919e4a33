"""/metrics: who may read it, what it counts, and correct totals across gunicorn workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import timeit
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.api import deps_system
from app.db.migrate import upgrade_head
from app.observability import metrics
from test.support.apps import make_settings, offline_config, running
from test.support.auth import make_admin, register_and_login
from test.support.net import free_port
from test.support.redis_server import private_redis_url
from test.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "static-metrics-token-for-tests-0123456789"
TOKEN_HEADERS = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture(scope="module")
async def observed(
    database_url: str, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with METRICS_TOKEN set and rate limits off."""
    settings = make_settings(
        database_url,
        log_dir,
        metrics_token=METRICS_TOKEN,
        rate_limit_enabled=False,
        config_dir=offline_config(tmp_path_factory.mktemp("config")),
    )
    async with running(settings) as pair:
        yield pair


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


async def scrape(client: httpx.AsyncClient) -> str:
    """Read /metrics with the static token."""
    response = await client.get("/metrics", headers=TOKEN_HEADERS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_need_credentials(observed: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = observed
    missing = await client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["code"] == "not_authenticated"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_token"
    assert "vektor_http" not in wrong.text


async def test_users_are_forbidden_and_admins_allowed(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = observed
    user = await register_and_login(client, f"ops{uuid.uuid4().hex[:8]}")
    denied = await client.get("/metrics", headers=user["headers"])
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"
    await make_admin(app.state.vektor, user["user"]["id"])
    allowed = await client.get("/metrics", headers=user["headers"])
    assert allowed.status_code == 200
    assert "vektor_http_requests_total" in allowed.text


@pytest.mark.slow
async def test_requests_counted_by_route_template_and_status(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = observed
    before = await scrape(client)
    for _ in range(7):
        assert (await client.get("/health/live")).status_code == 200
    for _ in range(3):
        assert (await client.get("/no/such/page")).status_code == 404
    session_id = uuid.uuid4()
    assert (await client.delete(f"/auth/sessions/{session_id}")).status_code == 401
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    live = {"method": "GET", "route": "/health/live", "status": "200"}
    assert delta("vektor_http_requests_total", **live) == 7
    assert delta("vektor_http_request_duration_seconds_count", **live) == 7
    assert delta("vektor_http_requests_total", route="<unmatched>", status="404") == 3
    templated = {"route": "/auth/sessions/{session_id}", "status": "401"}
    assert delta("vektor_http_requests_total", **templated) == 1
    assert str(session_id) not in after and "/no/such/page" not in after  # bounded labels
    assert sample(after, "vektor_db_pool_size") >= 1


@pytest.mark.slow
async def test_chat_helpers_reach_metrics_and_status(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = observed
    model = f"model-{uuid.uuid4().hex[:6]}"
    before = await scrape(client)
    status_before = (await client.get("/api/status")).json()
    with metrics.streams_active.track(), metrics.generations_active.track():
        during = await scrape(client)
        status = (await client.get("/api/status")).json()
    for gauge in ("vektor_sse_streams_active", "vektor_generations_active"):
        assert sample(during, gauge) == sample(before, gauge) + 1
    assert status["active_streams"] == status_before["active_streams"] + 1
    assert status["active_generations"] == status_before["active_generations"] + 1

    with metrics.TokenBatch(model, flush_every=10) as batch:
        for _ in range(25):
            batch.add()
        assert batch.pending == 5  # 20 already published, the rest on exit
    metrics.add_tokens(5, model)
    metrics.observe_llm(model, 0.2)
    metrics.observe_llm(model, 1.5, error="timeout")
    metrics.observe_llm_first_token(model, 0.05)
    after = await scrape(client)
    assert sample(after, "vektor_tokens_streamed_total", model=model) == 30
    assert sample(after, "vektor_llm_request_duration_seconds_count", model=model) == 2
    assert sample(after, "vektor_llm_errors_total", model=model, kind="timeout") == 1
    assert sample(after, "vektor_llm_time_to_first_token_seconds_count", model=model) == 1
    assert sample(after, "vektor_sse_streams_active") == sample(before, "vektor_sse_streams_active")
    final = (await client.get("/api/status")).json()
    assert final["tokens_streamed"] == status_before["tokens_streamed"] + 30


class StubPool:
    """Stands in for the MCP pool: cumulative numbers per server, as the pool keeps them."""

    def __init__(self, snapshot: Any) -> None:
        self.snapshot = snapshot

    def metrics_snapshot(self) -> Any:
        if isinstance(self.snapshot, Exception):
            raise self.snapshot
        return self.snapshot


@pytest.mark.slow
async def test_mcp_pool_numbers_become_counters(
    observed: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = observed
    search, clock = f"search-{uuid.uuid4().hex[:6]}", f"time-{uuid.uuid4().hex[:6]}"
    # the shape McpPool.metrics_snapshot() returns (cumulative numbers per server) ...
    numbers = {"calls": 10, "errors": 2, "timeouts": 1, "failovers": 1, "latency_ms_sum": 1500.0}
    replicas = {"http://a/mcp": {"circuit": "closed"}, "http://b/mcp": {"circuit": "closed"}}
    # ... and a list-of-endpoints variant, in case the pool reports that way
    endpoints = [{"target": "a", "circuit": "closed"}, {"target": "b", "circuit": "open"}]
    pool = StubPool(
        {
            search: {"status": "healthy", **numbers, "latency_count": 9, "replicas": replicas},
            clock: {"calls": 4, "errors": 0, "latency_s_sum": 0.4, "endpoints": endpoints},
        }
    )
    app.dependency_overrides[deps_system.get_mcp_pool] = lambda: pool
    try:
        text = await scrape(client)
        assert sample(text, "vektor_mcp_calls_total", server=search) == 10
        assert sample(text, "vektor_mcp_call_errors_total", server=search) == 2
        assert sample(text, "vektor_mcp_failovers_total", server=search) == 1
        assert sample(text, "vektor_mcp_call_duration_seconds_total", server=search) == 1.5
        assert sample(text, "vektor_mcp_call_duration_seconds_total", server=clock) == 0.4
        assert sample(text, "vektor_mcp_call_timeouts_total", server=search) == 1
        assert sample(text, "vektor_mcp_timed_calls_total", server=search) == 9
        assert sample(text, "vektor_mcp_circuit_state", server=search) == 0
        assert sample(text, "vektor_mcp_circuit_state", server=clock) == 2  # worst replica
        assert sample(text, "vektor_mcp_replica_circuit_state", server=clock, replica="b") == 2

        pool.snapshot[search]["calls"] = 15
        replicas["http://b/mcp"]["circuit"] = "half_open"
        text = await scrape(client)
        assert sample(text, "vektor_mcp_calls_total", server=search) == 15  # no double count
        assert sample(text, "vektor_mcp_circuit_state", server=search) == 1
        half_open = {"server": search, "replica": "http://b/mcp"}
        assert sample(text, "vektor_mcp_replica_circuit_state", **half_open) == 1

        pool.snapshot[search]["calls"] = 3  # the pool restarted: counters never go back
        text = await scrape(client)
        assert sample(text, "vektor_mcp_calls_total", server=search) == 18

        for broken in (RuntimeError("pool is closing"), ["junk", {"name": 3, "calls": "x"}], None):
            pool.snapshot = broken
            assert (await client.get("/metrics", headers=TOKEN_HEADERS)).status_code == 200
    finally:
        del app.dependency_overrides[deps_system.get_mcp_pool]


def test_token_batch_costs_well_under_a_microsecond_per_token() -> None:
    batch = metrics.TokenBatch("bench", flush_every=256)
    count = 100_000
    per_token = min(timeit.repeat(batch.add, number=count, repeat=5)) / count
    batch.flush()
    assert per_token < 1e-6, f"{per_token * 1e9:.0f} ns per token"


# --- several gunicorn workers ------------------------------------------------------------


def server_command(port: int, tmp_path: Path) -> list[str]:
    """The production entry point with two workers (the port comes from PORT)."""
    return [sys.executable, "main.py", "prod", "--workers", "2"]


@pytest.mark.slow
def test_totals_add_up_across_gunicorn_workers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'vektor.db'}"
    upgrade_head(url)  # once, before the workers (which must not migrate concurrently)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by an earlier run")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS", "VEKTOR"))}
    env.update(
        DATABASE_URL=url, DB_AUTO_MIGRATE="false", ENVIRONMENT="development",
        SECRET_KEY="multi-worker-test-" + "k" * 40, METRICS_TOKEN=METRICS_TOKEN,
        LOG_DIR=str(tmp_path / "logs"), DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO",
        HOST="127.0.0.1", PORT=str(port), REDIS_URL=private_redis_url(10),
        RATE_LIMIT_ENABLED="false",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), GRACEFUL_TIMEOUT="10",
        CONFIG_DIR=str(offline_config(tmp_path / "config")),
    )  # fmt: skip
    output = (tmp_path / "server.out").open("wb")
    proc = subprocess.Popen(
        server_command(port, tmp_path),
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: nothing outlives the test
    )
    base = f"http://127.0.0.1:{port}"
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    try:
        with httpx.Client(base_url=base, timeout=10, limits=no_keepalive) as client:

            def live() -> bool:
                assert proc.poll() is None, (tmp_path / "server.out").read_text()[-3000:]
                try:
                    return client.get("/health/live").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(live, 120, "the server to start")
            assert not (metrics_dir / "counter_999999.db").exists()  # stale samples wiped

            def status(_: int) -> int:
                response = client.get("/api/status", headers={"Accept": "application/json"})
                assert response.status_code == 200
                return int(response.json()["worker"]["pid"])

            # the second worker may still be booting when the first answers; keep asking
            # (bounded) until the kernel has handed connections to both
            sent, pids = 0, set()
            deadline = time.monotonic() + 90
            with ThreadPoolExecutor(max_workers=8) as pool:
                while len(pids) < 2 and time.monotonic() < deadline:
                    pids.update(pool.map(status, range(20)))
                    sent += 20
                    if len(pids) < 2:
                        time.sleep(0.5)
            assert len(pids) == 2, f"{sent} requests in 90 s never reached a second worker"

            def total(name: str) -> float:
                text = client.get("/metrics", headers=TOKEN_HEADERS).text
                return sample(text, name, route="/api/status")

            wait_for(lambda: total("vektor_http_requests_total") >= sent, 10, "the totals")
            assert total("vektor_http_requests_total") == sent
            assert total("vektor_http_request_duration_seconds_count") == sent
            cluster = client.get("/api/status").json()["cluster"]
            sent += 1
            assert cluster["workers"] == 2
            assert cluster["requests_total"] >= sent - 1

            victim = min(pids)
            os.kill(victim, signal.SIGTERM)  # the worker exits; gunicorn starts another
            live_file = metrics_dir / f"gauge_livesum_{victim}.db"
            wait_for(lambda: not live_file.exists(), 30, "child_exit to drop its live gauges")
            wait_for(live, 60, "a replacement worker")
            assert total("vektor_http_requests_total") == sent  # the dead worker's counts stay
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        output.close()
    lines = [json.loads(line) for line in (tmp_path / "logs" / "api.log").read_text().splitlines()]
    logged = {line["pid"] for line in lines if line.get("route") == "/api/status"}
    assert pids <= logged, "every worker's access lines reach the master's single api.log"
