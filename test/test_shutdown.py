"""`python main.py prod` (gunicorn + uvicorn workers): SIGTERM during a stream saves the reply."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test.conftest import REPO_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prod_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """One gunicorn worker on a temp SQLite database, with a slow echo model."""
    config = tmp_path / "config"
    config.mkdir()
    models = json.loads((REPO_CONFIG / "model_configs.json").read_text())
    models["models"].append(
        {"id": "echo-slow", "provider": "echo", "supports_tools": True, "delay_ms": 50}
    )
    (config / "model_configs.json").write_text(json.dumps(models))
    (config / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/prod.db",
        "CONFIG_DIR": str(config),
        "LOG_DIR": str(tmp_path / "logs"),
        "DATA_DIR": str(tmp_path / "data"),
        "BCRYPT_ROUNDS": "4",
        "SHUTDOWN_GRACE_SECONDS": "1",
        "REDIS_URL": "",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "main.py", "prod", "--workers", "1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("gunicorn did not start")
    yield proc, base, tmp_path / "prod.db"
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_sigterm_during_a_stream_saves_the_partial_reply(prod_server) -> None:  # type: ignore[no-untyped-def]
    proc, base, db_path = prod_server
    with httpx.Client(base_url=base, timeout=30) as client:
        client.post(
            "/auth/register",
            json={"email": "z@example.com", "username": "zed", "password": "password-zed"},
        ).raise_for_status()
        token = client.post(
            "/auth/login", json={"username": "zed", "password": "password-zed"}
        ).json()["access_token"]
        words = " ".join(f"w{i}" for i in range(600))  # 50 ms a word: ~30 s
        received = 0
        with client.stream(
            "POST",
            "/chat/stream",
            json={"message": words, "model": "echo-slow"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            try:
                for line in response.iter_lines():
                    if line.startswith("event: delta"):
                        received += 1
                        if received == 5:
                            proc.send_signal(signal.SIGTERM)
            except httpx.RemoteProtocolError:
                pass  # the worker closed the stream after the grace period: expected
    assert proc.wait(timeout=60) == 0
    with sqlite3.connect(db_path) as db:
        status, content = db.execute(
            "SELECT status, content FROM messages WHERE role = 'assistant'"
        ).fetchone()
    assert status == "cancelled"
    assert received <= len(content.split()) < 600
