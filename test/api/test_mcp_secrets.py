"""Credentials in MCP endpoint URLs never show: status, dashboard, admin routes, metrics, logs.

Two real MCP servers (streamable HTTP and SSE) are configured with URLs that carry a password
(`user:password@`), an `api_key` and a `token` (one from `${VAR}`), next to a replica that is
down from the start. The test connects, calls tools through chat, kills both servers so calls
fail and errors are logged, lets them come back, then reads every surface and every log file:
none holds a secret, while the pool demonstrably connected with the full URL.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from test.api.test_metrics import METRICS_TOKEN, TOKEN_HEADERS
from test.services.mcp.conftest import FAST, ServerProcess
from test.support.apps import in_process_client, make_settings
from test.support.auth import make_admin, register_and_login
from test.support.logs import read_logs
from test.support.net import free_port
from test.support.sse import stream_chat
from test.support.waiting import eventually

PASSWORD = "pw-" + secrets.token_hex(8)
API_KEY = "ak-" + secrets.token_hex(8)
TOKEN = "tk-" + secrets.token_hex(8)
SECRETS = (PASSWORD, API_KEY, TOKEN)
TOKEN_VAR = "VEKTOR_TEST_MCP_TOKEN"
BROWSER = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"


def url_of(server: ServerProcess, query: str) -> str:
    """The server's URL with a password in its userinfo and `query` appended."""
    return server.url.replace("http://", f"http://vk:{PASSWORD}@") + f"?{query}"


def shown(server: ServerProcess, query: str) -> str:
    """What the operator surfaces must show for `url_of(server, query)`."""
    return f"{server.url}?{query}"


@pytest.fixture(scope="module")
def mcp_servers() -> Any:
    """A streamable-HTTP and an SSE test server."""
    pair = (ServerProcess("H"), ServerProcess("S", transport="sse"))
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        server.kill()


def write_config(
    directory: Path, config_dir: Path, http: ServerProcess, sse: ServerProcess
) -> None:
    """Models as in the suite; two MCP servers whose URLs carry credentials."""
    (directory / "model_configs.json").write_text((config_dir / "model_configs.json").read_text())
    servers = {
        "vault": {
            "transport": "streamable_http",
            "endpoints": [
                url_of(http, f"api_key={API_KEY}&token=${{{TOKEN_VAR}}}&region=eu"),
                f"http://vk:{PASSWORD}@127.0.0.1:{free_port()}/mcp?key={API_KEY}",  # down
            ],
            "strategy": "failover",
            **FAST,
        },
        "vaultsse": {
            "transport": "sse",
            "endpoints": [url_of(sse, f"api_key={API_KEY}&access_token={TOKEN}")],
            **FAST,
        },
    }
    (directory / "mcp_servers.json").write_text(json.dumps({"servers": servers}))


async def surfaces(client: httpx.AsyncClient, admin: dict[str, Any]) -> dict[str, str]:
    """Everything a person or a scraper can read, as text."""
    h = admin["headers"]
    reads = {
        "status": await client.get("/api/status"),
        "status.html": await client.get("/api/status", headers={"Accept": BROWSER}),
        "dashboard": await client.get("/"),
        "health": await client.get("/health"),
        "mcp/servers": await client.get("/mcp/servers", headers=h),
        "mcp/tools": await client.get("/mcp/tools", headers=h),
        "metrics": await client.get("/metrics", headers=TOKEN_HEADERS),
        "export": await client.get("/sync/export", headers=h),
    }
    for name, response in reads.items():
        assert response.status_code == 200, (name, response.text[:300])
    return {name: response.text for name, response in reads.items()}


async def tool_turn(client: httpx.AsyncClient, h: dict[str, str], tool: str) -> str:
    """Ask the echo model to call `tool`; returns the tool result's content."""
    events = await stream_chat(
        client, h, model="vektor-echo", message=f'/tool {tool} {{"text": "hi"}}'
    )
    results = [e.data for e in events if e.name == "tool_result"]
    assert results, [e.name for e in events]
    return str(results[0]["content"])


@pytest.mark.slow
async def test_credentials_in_endpoint_urls_never_show(
    mcp_servers: tuple[ServerProcess, ServerProcess],
    database_url: str,
    log_dir: Path,
    config_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    http, sse = mcp_servers
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    write_config(tmp_path, config_dir, http, sse)
    settings = make_settings(
        database_url, log_dir, config_dir=tmp_path, metrics_token=METRICS_TOKEN
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        pool = app.state.vektor.mcp
        assert await pool.wait_until_ready(30), pool.status()
        # the connection itself uses the full URL: the server saw the key, the expanded
        # ${VAR} token and the password (as HTTP basic auth)
        basic = "Basic " + base64.b64encode(f"vk:{PASSWORD}".encode()).decode()
        seen = json.loads((await pool.call("vault__request_info", {})).content)
        assert f"api_key={API_KEY}" in seen["query"] and f"token={TOKEN}" in seen["query"]
        assert seen["authorization"] == basic
        seen_sse = json.loads((await pool.call("vaultsse__request_info", {})).content)
        assert seen_sse["authorization"] == basic

        async with in_process_client(app) as client:
            admin = await register_and_login(client, "root")
            await make_admin(app.state.vektor, admin["user"]["id"])
            h = admin["headers"]
            assert await tool_turn(client, h, "vault__echo") == "hi"
            assert await tool_turn(client, h, "vaultsse__echo") == "hi"

            # both servers die: calls fail (the error text is what a model would read)
            failures = []
            for server, name in ((http, "vault"), (sse, "vaultsse")):
                server.kill()
                await eventually(lambda name=name: not pool.groups[name].available, timeout_s=20)
                failed = await pool.call(f"{name}__echo", {"text": "hi"})
                assert failed.status == "error" and "unavailable" in failed.content, failed
                failures.append(failed.content)
                server.start()
            assert await pool.wait_until_ready(30), pool.status()

            seen_by = await surfaces(client, admin)
            seen_by["tool errors"] = "\n".join(failures)
            history = await client.get("/chat/history", headers=h)
            for item in history.json()["items"]:
                conversation = await client.get(f"/chat/history/{item['id']}", headers=h)
                seen_by[f"history {item['id']}"] = conversation.text

    status = json.loads(seen_by["status"])
    targets = [e["target"] for s in status["mcp"] for e in s["endpoints"]]
    assert shown(http, "api_key=***&token=***&region=eu") in targets, targets
    assert shown(sse, "api_key=***&access_token=***") in targets, targets
    assert shown(http, "api_key=***&token=***&region=eu") in seen_by["metrics"]
    logs = await read_logs(log_dir, must_exist=True)
    assert shown(http, "api_key=***&token=***&region=eu") in logs["app.log"]
    leaks = {
        (where, secret[:3])
        for where, text in {**seen_by, **logs}.items()
        for secret in SECRETS
        if secret in text
    }
    assert not leaks, f"secrets shown: {sorted(leaks)}"
