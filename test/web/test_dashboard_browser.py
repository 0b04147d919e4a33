"""The dashboard in a real headless Chromium, driven over the DevTools protocol.

Needs the Debian `chromium` package (or CHROMIUM_BIN); skips when no browser exists.
Screenshots (the dashboard at 1280 px, and with long names at 1280 px and on a 390 px phone)
are written to DASHBOARD_SCREENSHOTS_DIR (CI: artifacts/screenshots), else to the test's
tmp_path. `UPDATE_SCREENSHOT=1` also writes the first one to docs/dashboard.png.
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

from app.api import deps, deps_system
from app.main import create_app
from app.observability.runtime import get_observability
from test.support.apps import make_settings, offline_config
from test.support.net import free_port
from test.support.waiting import wait_for

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
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        BROWSER is None, reason="no Chromium binary (apt-get install chromium, or set CHROMIUM_BIN)"
    ),
]


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


LONG_NAME = "enterprise-knowledge-base-search-for-the-whole-organisation-eu-central"
LONG_URL = (
    "https://user:secret@mcp-gateway.internal.example-corporation.com:8443/v1/tenants/"
    "acme-international-holdings/servers/knowledge-base-search/mcp?region=eu-central-1"
)
LONG_ROUTE = (
    "/v1/organisations/{organisation_id}/knowledge-bases/{knowledge_base_id}/documents/"
    "{document_id}/chunks/{chunk_id}/embeddings"
)


class LongStubParts(StubParts):
    """The same states, plus the long names, URLs and errors real deployments have."""

    def status(self) -> list[dict[str, Any]]:
        long_error = "httpx.ConnectError:" + "x" * 120 + " (all connection attempts failed)"
        replica = {"target": LONG_URL, "healthy": False, "in_flight": 12, "last_error": long_error,
                   "latency_ms": 12345.0}  # fmt: skip
        endpoints = [replica, {**replica, "healthy": True}]
        server = {"name": LONG_NAME, "transport": "streamable_http", "status": "degraded",
                  "tools_count": 1234, "endpoints": endpoints}  # fmt: skip
        return [*super().status(), server]

    def describe(self) -> list[dict[str, Any]]:
        name = "A model with a very long display name that goes on and on (preview, 2026-11-01)"
        model = {"id": "openrouter/" + LONG_NAME, "name": name, "provider": "openai",
                 "context_window": 2_000_000, "supports_tools": True,
                 "available": True}  # fmt: skip
        return [*super().describe(), model]


def long_routes(app: Any) -> None:
    """Routes with long templates in the table (and big counts)."""
    window = get_observability(app).window
    for i in range(30):
        window.observe("DELETE", LONG_ROUTE, 503 if i % 3 else 200, 12.5 + i)
        window.observe("GET", "/x/" + "segment" * 12, 200, 0.001)


@contextmanager
def serve_dashboard(
    database_url: str, log_dir: Path, tmp_path: Path, parts: StubParts
) -> Iterator[tuple[str, Any]]:
    """The app on a loopback port (uvicorn in a thread) with stub MCP servers and models."""
    config = offline_config(tmp_path / "config")
    app = create_app(make_settings(database_url, log_dir, config_dir=config))
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    uv_server = uvicorn.Server(config)
    thread = threading.Thread(target=uv_server.run, name="dashboard-server", daemon=True)
    thread.start()
    try:
        wait_for(lambda: uv_server.started, 60, "uvicorn to start")
        app.dependency_overrides[deps_system.get_mcp_pool] = lambda: parts
        app.dependency_overrides[deps.get_models] = lambda: parts
        demo_traffic(app)
        yield f"http://127.0.0.1:{config.port}", app
    finally:
        uv_server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(database_url: str, log_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard with stub parts in every state."""
    with serve_dashboard(database_url, log_dir, tmp_path, StubParts()) as (url, _app):
        yield url


@pytest.fixture
def long_server(database_url: str, log_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard with long server names, URLs, errors, model names and routes."""
    with serve_dashboard(database_url, log_dir, tmp_path, LongStubParts()) as (url, app):
        long_routes(app)
        yield url


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots are kept: DASHBOARD_SCREENSHOTS_DIR (CI artifacts), else tmp_path."""
    directory = Path(os.environ.get("DASHBOARD_SCREENSHOTS_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


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


def read_page(browser: DevTools) -> dict[str, Any]:
    """What the page shows now (`{"updates": 0}` while it is loading)."""
    raw = browser.evaluate(READ_PAGE)
    value: dict[str, Any] = json.loads(raw) if raw else {"updates": 0}
    return value


def full_page_screenshot(browser: DevTools, width: int, *, mobile: bool, scale: int = 1) -> bytes:
    """Grow the viewport to the page's height, let it redraw, and capture it as PNG."""
    height = browser.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=int(height) + 8,
                 deviceScaleFactor=scale, mobile=mobile)  # fmt: skip
    time.sleep(1.2)  # one refresh at the new size
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG")
    return shot


def test_dashboard_renders_and_updates(server: str, browser: DevTools, screenshots: Path) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    browser.call("Page.navigate", url=f"{server}/?refresh=1")

    def read() -> dict[str, Any]:
        return read_page(browser)

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

    shot = full_page_screenshot(browser, 1280, mobile=False)
    (screenshots / "dashboard.png").write_bytes(shot)
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs" / "dashboard.png").write_bytes(shot)


MEASURE = """JSON.stringify({
  inner: window.innerWidth,
  scroll: document.documentElement.scrollWidth,
  body: document.body.scrollWidth,
  text: document.body.innerText
    + [...document.querySelectorAll('[title]')].map(e => e.title).join(' '),
  wide: [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className) : ''))
    .slice(0, 12),
})"""


@pytest.mark.parametrize(
    ("width", "height", "mobile"), [(1280, 900, False), (390, 844, True)], ids=["1280px", "390px"]
)
def test_dashboard_never_scrolls_sideways(
    long_server: str, browser: DevTools, screenshots: Path, width: int, height: int, mobile: bool
) -> None:
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=mobile)  # fmt: skip
    browser.call("Page.navigate", url=f"{long_server}/?refresh=1")
    wait_for(lambda: read_page(browser)["updates"] >= 1, 30, "the first refresh")

    layout = json.loads(browser.evaluate(MEASURE))
    assert LONG_NAME in layout["text"] and "/embeddings" in layout["text"]  # the long data is in
    assert layout["inner"] == width  # the page did not widen the (mobile) layout viewport
    assert layout["scroll"] <= width and layout["body"] <= width, layout["wide"]

    shot = full_page_screenshot(browser, width, mobile=mobile, scale=2 if mobile else 1)
    layout = json.loads(browser.evaluate(MEASURE))  # still fits at full height, after a redraw
    assert layout["scroll"] <= width, layout["wide"]
    (screenshots / f"dashboard-{width}px.png").write_bytes(shot)
