"""A real server process (`python main.py prod`: gunicorn + uvicorn workers, and `python
main.py`: uvicorn) gets SIGTERM mid-stream: the reply is saved, every open stream ends with
`error` `server_shutdown` before its connection closes, and after a restart a re-attach gets
the saved answer."""

from __future__ import annotations

import asyncio
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
from httpx_sse import aconnect_sse

from app.schemas.events import SERVER_SHUTDOWN as SHUTDOWN_ERROR
from test.api.chat.test_shutdown_streams import after_changes
from test.support.apps import REPO_CONFIG
from test.support.auth import log_in, register_and_login
from test.support.net import free_port
from test.support.sse import Event, next_event, read_events, sse_frames

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _launch(tmp_path: Path, *mode: str) -> tuple[subprocess.Popen[bytes], str]:
    """`python main.py <mode>` on a temp SQLite database with a slow echo model, started."""
    config = tmp_path / "config"
    if not config.exists():
        config.mkdir()
        models = json.loads((REPO_CONFIG / "model_configs.json").read_text())
        models["models"].append(
            {"id": "echo-slow", "provider": "echo", "supports_tools": True, "delay_ms": 50}
        )
        (config / "model_configs.json").write_text(json.dumps(models))
        (config / "mcp_servers.json").write_text(json.dumps({"servers": {}}))
    port = free_port()
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
        [sys.executable, "main.py", *mode, "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # a cold start on a loaded 2-core machine took ~70 s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"main.py {' '.join(mode)} did not start")


@pytest.fixture
def prod_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """One gunicorn worker on a temp SQLite database, with a slow echo model."""
    proc, base = _launch(tmp_path, "prod", "--workers", "1")
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


@pytest.mark.parametrize(
    "mode", [("prod", "--workers", "1"), ("dev",)], ids=["gunicorn", "uvicorn"]
)
async def test_sigterm_ends_every_stream_with_server_shutdown_then_reattach_works(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    proc, base = _launch(tmp_path, *mode)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            h = (await register_and_login(client, "zed", "password-zed"))["headers"]
            body = {"message": " ".join(f"w{i}" for i in range(600)), "model": "echo-slow"}
            async with (
                client.stream("GET", "/sync/stream", headers=h) as sync,
                aconnect_sse(client, "POST", "/chat/stream", json=body, headers=h) as chat,
            ):
                sync_frames = sse_frames(sync)
                assert (await next_event(sync_frames))[0] == "changed"
                events = await read_events(chat, 5)
                proc.send_signal(signal.SIGTERM)
                # each stream gets its terminal event, then ends cleanly (no cut connection)
                assert await after_changes(sync_frames, timeout=5) == ("error", SHUTDOWN_ERROR)
                assert await next_event(sync_frames) == ("eof", None)
                events += await asyncio.wait_for(read_events(chat), 10)
        assert events[-1] == Event("error", events[-2].id, SHUTDOWN_ERROR)
        assert {e.name for e in events[1:-1]} == {"delta"}
        # uvicorn re-raises the signal it handled once it has shut down (-15)
        assert await asyncio.to_thread(proc.wait, 60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    message_id, last_id = events[0].data["message_id"], int(events[-1].id)

    proc, base = _launch(tmp_path, *mode)  # the same database
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            h = (await log_in(client, "zed", "password-zed"))["headers"]
            headers = {**h, "Last-Event-ID": str(last_id)}
            path = f"/chat/stream/{message_id}"
            async with aconnect_sse(client, "GET", path, headers=headers) as source:
                rest = await read_events(source)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    with sqlite3.connect(tmp_path / "prod.db") as db:
        status, content = db.execute(
            "SELECT status, content FROM messages WHERE role = 'assistant'"
        ).fetchone()
    assert status == "cancelled"
    assert [e.name for e in rest] == ["snapshot", "done"]
    assert int(rest[0].id) > last_id and int(rest[1].id) == int(rest[0].id) + 1
    assert rest[0].data["content"] == content and rest[1].data["finish_reason"] == "cancelled"
    assert content.startswith("".join(e.data["content"] for e in events if e.name == "delta"))
