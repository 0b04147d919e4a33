"""Two real app processes (`python main.py --port P`) sharing PostgreSQL and Redis.

Proves what many workers behind one URL rely on: a logout on one revokes the token on the
other at once, a generation started on A is re-attached and cancelled through B, a rate
limit is counted across both, and a change written on A is pushed to a sync stream on B.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from test.support.apps import REPO_CONFIG
from test.support.auth import TEST_PASSWORD
from test.support.factories import new_user
from test.support.net import free_port
from test.support.redis_server import REDIS_SERVER, SKIP_REASON, RedisProcess
from test.support.sse import first_events, next_event, read_events, sse_frames

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MULTI_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
LONG = " ".join(f"word{i}" for i in range(200))
LOGINS_PER_MINUTE = 6


async def _admin(sql: str) -> None:
    engine = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _unavailable() -> str | None:
    if REDIS_SERVER is None:
        return SKIP_REASON
    try:
        asyncio.run(asyncio.wait_for(_admin("SELECT 1"), timeout=5))
    except Exception as exc:
        return f"PostgreSQL unreachable at {PG_URL} ({type(exc).__name__})"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        (reason := _unavailable()) is not None, reason=reason or "services available"
    ),
]


def _start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"instance on {port} did not start:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="module")
def instances(
    tmp_path_factory: pytest.TempPathFactory, private_redis: RedisProcess
) -> Iterator[tuple[str, str]]:
    """Base URLs of instances A and B (A migrates a fresh database first; B does not)."""
    work = tmp_path_factory.mktemp("multi")
    config = work / "config"
    config.mkdir()
    models = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    models["models"].append(
        {"id": "echo-slow", "provider": "echo", "name": "Slow echo", "delay_ms": 40}
    )
    (config / "model_configs.json").write_text(json.dumps(models))
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    name = f"vektor_multi_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    private_redis.flush(12)
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": make_url(PG_URL).set(database=name).render_as_string(hide_password=False),
        "REDIS_URL": private_redis.url(12),
        "SECRET_KEY": "multi-instance-test-key-" + "k" * 40,  # both must sign alike
        "CONFIG_DIR": str(config),
        "LOG_DIR": str(work / "logs"),
        "DATA_DIR": str(work / "data"),
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_LOGIN_IP": f"{LOGINS_PER_MINUTE}/minute",
        "RATE_LIMIT_LOGIN_ACCOUNT": "1000/minute",
        "RATE_LIMIT_REGISTER": "1000/minute",
        "SSE_PING_SECONDS": "1",
    }
    processes = []
    try:
        ports = [free_port(), free_port()]
        processes.append(_start(ports[0], {**env, "DB_AUTO_MIGRATE": "true"}, work / "a.log"))
        processes.append(_start(ports[1], {**env, "DB_AUTO_MIGRATE": "false"}, work / "b.log"))
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        for process in processes:
            _stop(process)
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def ab(
    instances: tuple[str, str], private_redis: RedisProcess
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of A and B; rate-limit counters start from zero."""
    private_redis.flush(12)
    async with (
        httpx.AsyncClient(base_url=instances[0], timeout=10) as a,
        httpx.AsyncClient(base_url=instances[1], timeout=10) as b,
    ):
        yield a, b


async def test_logout_on_b_revokes_the_token_on_a_at_once(ab: Any) -> None:
    a, b = ab
    h = (await new_user(a))["headers"]
    assert (await a.get("/users/me", headers=h)).status_code == 200
    assert (await b.get("/users/me", headers=h)).status_code == 200
    assert (await b.post("/auth/logout", headers=h)).status_code == 204
    logged_out = time.monotonic()
    while True:
        response = await a.get("/users/me", headers=h)
        if response.status_code == 401:
            break
        assert time.monotonic() - logged_out < 1.0, "still accepted on A a second later"
        await asyncio.sleep(0.05)
    assert response.json()["code"] == "token_revoked"


async def test_generation_on_a_is_reattached_and_cancelled_through_b(ab: Any) -> None:
    a, b = ab
    h = (await new_user(a))["headers"]
    first = await asyncio.wait_for(
        first_events(a, h, 4, message=LONG, model="echo-slow"), timeout=10
    )
    message_id = first[0].data["message_id"]
    async with aconnect_sse(
        b, "GET", f"/chat/stream/{message_id}", headers={**h, "Last-Event-ID": first[-1].id}
    ) as source:
        assert source.response.status_code == 200
        more = await asyncio.wait_for(read_events(source, 3), timeout=10)
        assert int(more[0].id) == int(first[-1].id) + 1
        assert (await b.post(f"/chat/stream/{message_id}/cancel", headers=h)).status_code == 202
        rest = await asyncio.wait_for(read_events(source), timeout=10)
    assert rest[-1].name == "done" and rest[-1].data["finish_reason"] == "cancelled"
    page = (await b.get("/sync/changes", headers=h)).json()  # saved before `done` was sent
    assert [m["status"] for m in page["messages"] if m["id"] == message_id] == ["cancelled"]


async def test_a_rate_limit_is_shared_by_both_instances(ab: Any) -> None:
    a, b = ab
    name = (await new_user(a))["user"]["username"]  # one login so far
    codes = []
    for i in range(LOGINS_PER_MINUTE + 1):
        client = b if i % 2 == 0 else a
        response = await client.post(
            "/auth/login", json={"username": name, "password": TEST_PASSWORD}
        )
        codes.append(response.status_code)
    # each instance saw at most 4 attempts: only a shared counter reaches the limit of 6
    assert codes == [200] * (LOGINS_PER_MINUTE - 1) + [429, 429], codes
    assert int(response.headers["Retry-After"]) >= 1


async def test_a_change_on_a_is_pushed_to_a_stream_on_b(ab: Any) -> None:
    a, b = ab
    h = (await new_user(a))["headers"]
    async with b.stream("GET", "/sync/stream", headers=h) as response:
        frames = sse_frames(response)
        name, first = await next_event(frames)
        await a.put("/users/preferences", json={"theme": "dark"}, headers=h)
        name, pushed = await next_event(frames, timeout=5)  # B re-checks only every 30 s
    assert name == "changed" and pushed["cursor"] != first["cursor"]
    page = (await b.get("/sync/changes", params={"since": first["cursor"]}, headers=h)).json()
    assert page["preferences"]["theme"] == "dark" and page["cursor"] == pushed["cursor"]
