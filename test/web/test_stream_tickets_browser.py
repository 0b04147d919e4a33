"""Stream tickets in a real headless Chromium: a web page on another origin follows an answer
and the sync stream with `EventSource` (which cannot send headers), the network drops the
connection mid-stream, and the browser's own automatic reconnection (`Last-Event-ID`, the
same URL and ticket) resumes it without losing or repeating anything.

The app runs under uvicorn; the page's origin is a second loopback server (CORS through
`BACKEND_CORS_ORIGINS`); the browser reaches the API through a TCP proxy that the test can
tell to cut every open connection, as a dropped network would.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.main import create_app
from test.support.apps import make_settings, offline_config
from test.support.auth import TEST_PASSWORD
from test.support.net import free_port
from test.support.waiting import wait_for
from test.web.test_dashboard_browser import BROWSER, DevTools, browser

__all__ = ["browser"]  # the fixture: a fresh headless Chromium per test
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None, reason="no Chromium binary"),
]

SLOW_WORDS = 220  # ~9 s of answer at 40 ms a word: it outlives the drop and the 3 s reconnect
PAGE = b"""<!doctype html><meta charset="utf-8"><title>stream tickets</title><script>
window.seen = {opens: 0, errors: 0, events: []};
function follow(url, names) {
  const source = new EventSource(url);
  source.onopen = () => { seen.opens += 1; };
  source.onerror = () => { seen.errors += 1; };
  for (const name of names) {
    source.addEventListener(name, (e) => {
      if (e.data === undefined) return;  // a connection error, not the server's `error` event
      seen.events.push({name, id: e.lastEventId, conn: seen.opens, data: JSON.parse(e.data)});
      if (name === "done" || name === "error") source.close();
    });
  }
}
</script>"""


class DroppingProxy:
    """A loopback TCP proxy that records what clients send and can cut every connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent: list[bytearray] = []  # per connection, every byte the client sent
        self._open: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open.append((client, upstream))
                self.sent.append(record := bytearray())
            for source, target, log in ((client, upstream, record), (upstream, client, None)):
                threading.Thread(target=self._pump, args=(source, target, log), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, log: bytearray | None) -> None:
        try:
            while chunk := source.recv(65536):
                if log is not None:
                    log.extend(chunk)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cut every open connection, both ways (a network failure mid-stream)."""
        with self._lock:
            pairs, self._open = self._open, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def requests(self) -> list[dict[str, str]]:
        """The request line and headers of each request, in order of connection."""
        heads = []
        with self._lock:
            sent = [bytes(s) for s in self.sent]
        for raw in sent:
            for head in re.findall(rb"(?:GET|POST) [^\r\n]+\r\n(?:[^\r\n]+\r\n)*", raw):
                lines = head.decode("latin-1").split("\r\n")
                fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                heads.append({"line": lines[0], **{k.lower(): v for k, v in fields.items()}})
        return heads

    def close(self) -> None:
        """Stop accepting and cut what is open."""
        self.listener.close()
        self.drop()


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture
def stack(database_url: str, log_dir: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The page's origin, the app (with a slow echo model) and the proxy in front of it."""
    page = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=page.serve_forever, name="page", daemon=True).start()
    origin = f"http://127.0.0.1:{page.server_address[1]}"
    config = offline_config(tmp_path / "config")
    models = json.loads((config / "model_configs.json").read_text())
    slow = {"id": "echo-slow", "name": "Slow echo", "provider": "echo", "delay_ms": 40}
    models["models"].append(slow)
    (config / "model_configs.json").write_text(json.dumps(models))
    settings = make_settings(
        database_url, log_dir, config_dir=config, backend_cors_origins=[origin]
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(), log_config=None)
    )
    thread = threading.Thread(target=server.run, name="tickets-server", daemon=True)
    thread.start()
    proxy = None
    try:
        wait_for(lambda: server.started, 60, "uvicorn to start")
        proxy = DroppingProxy(server.config.port)
        api = f"http://127.0.0.1:{server.config.port}"
        with httpx.Client(base_url=api, timeout=30) as client:
            yield {"origin": origin, "proxied": f"http://127.0.0.1:{proxy.port}",
                   "client": client, "proxy": proxy}  # fmt: skip
    finally:
        if proxy is not None:
            proxy.close()
        server.should_exit = True
        thread.join(timeout=30)
        page.shutdown()


def sign_in(client: httpx.Client) -> dict[str, str]:
    """A new user's bearer header."""
    name = f"web{uuid.uuid4().hex[:10]}"
    user = {"email": f"{name}@example.com", "username": name, "password": TEST_PASSWORD}
    assert client.post("/auth/register", json=user).status_code == 201
    tokens = client.post("/auth/login", json={"username": name, "password": TEST_PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def ticket_for(client: httpx.Client, headers: dict[str, str]) -> str:
    """A fresh stream ticket."""
    response = client.post("/auth/stream-ticket", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["ticket"])


def seen(browser: DevTools) -> dict[str, Any]:
    """What the page's EventSource has received so far."""
    value: dict[str, Any] = json.loads(browser.evaluate("JSON.stringify(window.seen)"))
    return value


def resumed_with(requests: list[dict[str, str]], path: str) -> list[str | None]:
    """The `Last-Event-ID` of each request the browser made for `path` (None: first open)."""
    return [r.get("last-event-id") for r in requests if r["line"].startswith(f"GET {path}?")]


def open_page(browser: DevTools, stack: dict[str, Any], url: str, names: list[str]) -> None:
    """Load the page from its own origin and start an EventSource on `url`."""
    browser.call("Page.navigate", url=f"{stack['origin']}/")
    wait_for(lambda: browser.evaluate("typeof follow") == "function", 30, "the page")
    browser.evaluate(f"follow({json.dumps(url)}, {json.dumps(names)})")


def test_an_answer_survives_a_dropped_connection(browser: DevTools, stack: dict[str, Any]) -> None:
    client, proxy = stack["client"], stack["proxy"]
    headers = sign_in(client)
    words = " ".join(f"w{i}" for i in range(SLOW_WORDS))
    with client.stream(
        "POST", "/chat/stream", json={"message": words, "model": "echo-slow"}, headers=headers
    ) as started:
        first = next(line for line in started.iter_lines() if line.startswith("data: "))
    message_id = json.loads(first.removeprefix("data: "))["message_id"]  # it keeps running
    path = f"/chat/stream/{message_id}"
    url = f"{stack['proxied']}{path}?ticket={ticket_for(client, headers)}"
    names = ["start", "delta", "snapshot", "usage", "title", "done", "error"]
    open_page(browser, stack, url, names)

    wait_for(lambda: sum(e["name"] == "delta" for e in seen(browser)["events"]) >= 10, 30, "deltas")
    proxy.drop()
    wait_for(lambda: any(e["name"] == "done" for e in seen(browser)["events"]), 60, "done")

    page = seen(browser)
    assert page["opens"] == 2 and page["errors"] == 1  # one drop, one automatic reconnect
    events = page["events"]
    before = [e for e in events if e["conn"] == 1]
    assert before and len(before) < len(events)  # the drop really was mid-answer
    assert resumed_with(proxy.requests(), path) == [None, before[-1]["id"]]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(set(ids))  # nothing twice
    text = ""
    for event in events:
        if event["name"] == "delta":
            text += event["data"]["content"]
        elif event["name"] == "snapshot":
            text = event["data"]["content"]
    assert [e["name"] for e in events].count("done") == 1 and events[-1]["name"] == "done"
    assert events[-1]["data"]["finish_reason"] == "stop"
    saved = client.get(f"/chat/history/{events[0]['data']['conversation_id']}", headers=headers)
    assert text == f"Echo: {words}" == saved.json()["messages"][-1]["content"]
    problems = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
    assert not problems, problems


def test_the_sync_stream_survives_a_dropped_connection(
    browser: DevTools, stack: dict[str, Any]
) -> None:
    client, proxy = stack["client"], stack["proxy"]
    headers = sign_in(client)
    url = f"{stack['proxied']}/sync/stream?ticket={ticket_for(client, headers)}"
    open_page(browser, stack, url, ["changed", "error"])

    wait_for(lambda: len(seen(browser)["events"]) >= 1, 30, "the first changed event")
    assert client.put("/users/preferences", json={"theme": "dark"}, headers=headers).is_success
    wait_for(lambda: len(seen(browser)["events"]) >= 2, 30, "a changed event")
    proxy.drop()
    wait_for(lambda: seen(browser)["opens"] == 2 and len(seen(browser)["events"]) >= 3, 30,
             "the reconnect")  # fmt: skip
    assert client.put("/users/preferences", json={"theme": "light"}, headers=headers).is_success
    head = client.get("/sync/changes", headers=headers).json()["cursor"]
    wait_for(lambda: seen(browser)["events"][-1]["data"]["cursor"] == head, 30, "the change")

    page = seen(browser)
    assert page["opens"] == 2 and page["errors"] == 1
    assert {e["name"] for e in page["events"]} == {"changed"}
    before = [e for e in page["events"] if e["conn"] == 1]
    assert len(before) == 2
    assert resumed_with(proxy.requests(), "/sync/stream") == [None, before[-1]["id"]]
    assert page["events"][-1]["conn"] == 2  # the change arrived on the resumed stream
