"""MCP over HTTP does not flood app.log: the HTTP client's request lines are DEBUG, not INFO.

A real server process (`python main.py`) with an MCP server over streamable HTTP (a real
test server on loopback): the pool connects and probes it, a chat answer calls one of its
tools; then the log files are read. At LOG_LEVEL=INFO there is no "HTTP Request:" line; at
LOG_LEVEL=DEBUG the lines are there, at level DEBUG.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from test.services.mcp.conftest import ServerProcess
from test.support.server import ROOT, running_server, server_env

pytestmark = pytest.mark.slow

REQUEST_LINE = "HTTP Request:"


def _config(base: Path, url: str) -> Path:
    """Shipped models, one MCP server over HTTP probed twice a second."""
    config = base / "config"
    config.mkdir()
    shutil.copy(ROOT / "config" / "model_configs.json", config / "model_configs.json")
    remote = {"transport": "streamable_http", "endpoints": [url], "health_interval_s": 0.5}
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {"remote": remote}}))
    return config


def _call_a_tool_over_http(base_url: str) -> None:
    """Register, log in, and let the echo model call `remote__echo` (an MCP HTTP call)."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        user = {"email": "log@example.com", "username": "log", "password": "correct horse"}
        assert client.post("/auth/register", json=user).status_code == 201
        login = client.post("/auth/login", json={"username": "log", "password": "correct horse"})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        deadline = time.monotonic() + 30
        while client.get("/health").json()["status"] != "ok":  # "degraded" until MCP is up
            assert time.monotonic() < deadline, "the MCP server never became healthy"
            time.sleep(0.2)
        message = '/tool remote__echo {"text": "over http"}'
        answer = client.post("/chat/stream", headers=headers, json={"message": message})
    results = [
        json.loads(line[5:])
        for line in answer.text.splitlines()
        if line.startswith("data:") and '"call_id"' in line and '"status"' in line
    ]
    assert [(r["status"], r["content"]) for r in results] == [("ok", "over http")], answer.text


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_mcp_http_requests_are_logged_at_debug_only(tmp_path: Path, level: str) -> None:
    mcp = ServerProcess("remote")
    mcp.start()
    try:
        env = server_env(
            tmp_path,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'vektor.db'}",
            CONFIG_DIR=str(_config(tmp_path, mcp.url)),
            LOG_LEVEL=level,
            LOG_FORMAT="structured",
        )
        with running_server([sys.executable, "main.py"], env) as server:
            _call_a_tool_over_http(server.base_url)
            time.sleep(1.2)  # a few health probes (POSTs) as well
            server.stop()
    finally:
        mcp.kill()
    lines = [
        json.loads(line)
        for line in (tmp_path / "logs" / "app.log").read_text().splitlines()
        if REQUEST_LINE in line
    ]
    if level == "INFO":
        assert lines == []
    else:
        assert lines, "at DEBUG the HTTP client's request lines are kept"
        assert {line["level"] for line in lines} == {"DEBUG"}
        assert any("POST" in line["msg"] for line in lines)
