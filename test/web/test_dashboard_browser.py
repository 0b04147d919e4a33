"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

Needs the Debian `chromium` package (or CHROMIUM_BIN); skips when no browser exists.
`UPDATE_SCREENSHOT=1` also writes the screenshot to docs/dashboard.png.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import ClientConnection, connect

from app.core.observability import get_observability
from app.main import create_app
from test.api.test_metrics import free_port, offline_config, wait_for
from test.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
BROWSER_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0",
]  # fmt: skip


def find_browser() -> str | None:
    """A Chromium binary: CHROMIUM_BIN, or one on PATH."""
    configured = os.environ.get("CHROMIUM_BIN")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary (apt-get install chromium, or set CHROMIUM_BIN)"
)


class StubParts:
    """An MCP pool and a model registry in every state the dashboard distinguishes."""

    def status(self) -> list[dict[str, Any]]:
        def replica(target: str, healthy: bool, ms: float, error: str | None = None) -> dict:
            return {
                "target": target, "healthy": healthy, "in_flight": 0 if healthy else 1,
                "last_error": error, "latency_ms": ms,
            }  # fmt: skip

        return [
            {"name": "time", "transport": "stdio", "status": "healthy", "tools_count": 2,
             "endpoints": [replica("stdio:mcp-server-time #1", True, 3.1),
                           replica("stdio:mcp-server-time #2", True, 2.7)]},
            {"name": "search", "transport": "streamable_http", "status": "degraded",
             "tools_count": 4,
             "endpoints": [replica("http://10.0.0.5:8000/mcp", True, 41.0),
                           replica("http://10.0.0.6:8000/mcp", False, 5000.0, "ConnectTimeout")]},
            {"name": "files", "transport": "sse", "status": "down", "tools_count": 0,
             "endpoints": [replica("http://10.0.0.9:9000/sse", False, 0.0, "<b>refused</b>")]},
        ]  # fmt: skip

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": "vektor-echo", "name": "Offline echo", "provider": "echo",
             "context_window": 32000, "supports_tools": True, "available": True, "default": True},
            {"id": "gpt-4o-mini", "name": "GPT-4o mini", "provider": "openai",
             "context_window": 128000, "supports_tools": True, "available": False},
        ]  # fmt: skip


def demo_traffic(app: Any) -> None:
    """Ten minutes of past requests in the status window, so the chart has a shape."""
    window = get_observability(app).window
    real_clock, now = window.clock, time.time()
    try:
        for i in range(600, 0, -2):
            window.clock = lambda t=now - i: t
            for j in range(1 + (i // 40) % 4):
                status = 500 if (i % 170 == 0 and j == 0) else 200
                window.observe("GET", "/chat/history", status, 0.012 + (i % 50) / 2000)
            window.observe("POST", "/chat/stream", 200, 1.2 + (i % 30) / 40)
    finally:
        window.clock = real_clock


@pytest.fixture
def server(database_url: str, log_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The app on a loopback port (uvicorn in a thread) with stub MCP servers and models."""
    config = offline_config(tmp_path / "config")
    app = create_app(make_settings(database_url, log_dir, config_dir=config))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    uv_server = uvicorn.Server(config)
    thread = threading.Thread(target=uv_server.run, name="dashboard-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: uv_server.started, 60, "uvicorn to start")
        state = app.state.vektor
        saved = state.mcp, state.models
        state.mcp = state.models = StubParts()
        demo_traffic(app)
        yield f"http://127.0.0.1:{config.port}"
        state.mcp, state.models = saved  # the lifespan closes the real ones
    finally:
        uv_server.should_exit = True
        thread.join(timeout=30)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 20, **params: Any) -> dict[str, Any]:
        """Send a command and wait (bounded) for its result; events are kept."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")


@contextmanager
def devtools_session(profile: Path, *extra_flags: str) -> Iterator[DevTools]:
    """A fresh headless Chromium (own profile) and a DevTools session on its page."""
    assert BROWSER is not None
    proc = subprocess.Popen(
        [BROWSER, *BROWSER_FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        wait_for(lambda: port_file.exists() and port_file.read_text().strip() != "", 60, "Chromium")
        port = port_file.read_text().split()[0]
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as ws:
            devtools = DevTools(ws)
            for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
                devtools.call(domain)
            yield devtools
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium and a DevTools session on its page."""
    with devtools_session(tmp_path / "profile") as devtools:
        yield devtools


READ_PAGE = """(() => { try { return JSON.stringify({
  updates: Number(document.body.dataset.updates || 0),
  overall: document.getElementById('overall').dataset.status,
  database: document.getElementById('database').dataset.state,
  dbText: document.getElementById('db-status').textContent,
  mcp: Object.fromEntries([...document.querySelectorAll('.mcp-server')]
        .map(e => [e.dataset.name, e.dataset.state])),
  models: Object.fromEntries([...document.querySelectorAll('.model')]
        .map(e => [e.dataset.id, e.dataset.state])),
  updated: document.getElementById('last-updated').textContent,
  requests: document.getElementById('req-total').textContent,
  bars: document.querySelectorAll('#chart rect.bar').length,
  injected: document.querySelectorAll('#mcp-list b').length,
  banner: document.getElementById('banner').hidden,
}) } catch (e) { return null } })()"""  # null while the page is still loading


def test_dashboard_renders_and_updates(server: str, browser: DevTools, tmp_path: Path) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    browser.call("Page.navigate", url=f"{server}/?refresh=1")

    def read() -> dict[str, Any]:
        raw = browser.evaluate(READ_PAGE)
        value: dict[str, Any] = json.loads(raw) if raw else {"updates": 0}
        return value

    wait_for(lambda: read()["updates"] >= 1, 30, "the first refresh")
    first = read()
    assert first["banner"] is True  # no "cannot reach" banner
    assert first["database"] == "ok" and first["dbText"] == "ok"
    assert first["overall"] == "degraded"  # one MCP server is down
    assert first["mcp"] == {"time": "ok", "search": "warn", "files": "bad"}
    assert first["models"] == {"vektor-echo": "ok", "gpt-4o-mini": "bad"}
    assert first["injected"] == 0  # server strings are text, never markup
    assert first["bars"] > 10  # the chart is drawn

    wait_for(
        lambda: read()["updates"] >= first["updates"] + 2 and read()["updated"] != first["updated"],
        30,
        "the page to refresh itself",
    )
    assert read()["requests"] != first["requests"]

    problems = [
        e for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]  # fmt: skip
    assert not problems, problems  # no script errors, no CSP violations

    height = browser.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=int(height) + 8,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    time.sleep(1.2)  # one refresh at the new size
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG")
    (tmp_path / "dashboard.png").write_bytes(shot)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs" / "dashboard.png").write_bytes(shot)
