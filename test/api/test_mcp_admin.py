"""The /mcp admin routes on the real app: 401 without a token, 403 for users, data for admins."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from test.support.apps import in_process_client
from test.support.auth import make_admin, register_and_login


async def test_mcp_routes_are_admin_only(
    client: httpx.AsyncClient, state: Any, alice: dict
) -> None:
    for path in ("/mcp/servers", "/mcp/tools"):
        assert (await client.get(path)).status_code == 401
        forbidden = await client.get(path, headers=alice["headers"])
        assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    reconnect = await client.post("/mcp/servers/time/reconnect", headers=alice["headers"])
    assert reconnect.status_code == 403

    admin = await register_and_login(client, "root")
    await make_admin(state, admin["user"]["id"])
    servers = await client.get("/mcp/servers", headers=admin["headers"])
    assert servers.status_code == 200 and isinstance(servers.json(), list)
    tools = await client.get("/mcp/tools", headers=admin["headers"])
    assert tools.status_code == 200
    unknown = await client.post("/mcp/servers/nope/reconnect", headers=admin["headers"])
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


@pytest.mark.slow
async def test_health_is_degraded_while_an_mcp_server_is_down(
    app: Any, database_url: str, log_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    import json
    import socket

    from asgi_lifespan import LifespanManager

    from app.main import create_app
    from test.support.apps import REPO_CONFIG, make_settings

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    (tmp_path / "model_configs.json").write_text((config_dir / "model_configs.json").read_text())
    servers = {
        "time": json.loads((REPO_CONFIG / "mcp_servers.json").read_text())["servers"]["time"],
        "ghost": {
            "transport": "streamable_http",
            "endpoints": [f"http://127.0.0.1:{dead_port}/mcp"],
            "connect_timeout_s": 1,
            "health_interval_s": 1,
        },
    }
    (tmp_path / "mcp_servers.json").write_text(json.dumps({"servers": servers}))
    application = create_app(make_settings(database_url, log_dir, config_dir=tmp_path))
    async with LifespanManager(application, startup_timeout=60):
        pool = application.state.vektor.mcp
        for _ in range(100):  # the time server joins within a few seconds
            if pool.health()["servers"].get("time") == "healthy":
                break
            await asyncio.sleep(0.1)
        async with in_process_client(application) as client:
            health = await client.get("/health")
            assert health.status_code == 200
            body = health.json()
            assert body["status"] == "degraded"
            assert body["checks"]["mcp"]["servers"] == {"time": "healthy", "ghost": "down"}
            assert body["checks"]["database"]["status"] == "ok"
