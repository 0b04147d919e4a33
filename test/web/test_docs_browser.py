"""`/docs` and `/redoc` render in a real headless Chromium that cannot reach any other host.

Chromium resolves only `docs.test` (to the loopback server: a name that is not `localhost`,
so Swagger UI behaves as on a real host) and nothing else, like a machine without internet.
Every request the pages make is recorded: none may leave for another host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from test.support.waiting import wait_for
from test.web.test_dashboard_browser import BROWSER, DevTools, devtools_session, server

__all__ = ["server"]  # the dashboard test's loopback server fixture, used here too

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BROWSER is None, reason="no Chromium binary"),
]
HOST = "docs.test"
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_browser(tmp_path: Any) -> Iterator[DevTools]:
    """Chromium whose only reachable name is `docs.test` (the loopback server)."""
    rules = f"--host-resolver-rules=MAP {HOST} 127.0.0.1, MAP * ~NOTFOUND"
    with devtools_session(tmp_path / "profile", rules) as devtools:
        devtools.call("Network.enable")
        yield devtools


def operations(base: str) -> int:
    """How many operations the OpenAPI document lists."""
    document = httpx.get(f"{base}/openapi.json", timeout=30).json()
    return sum(len(methods) for methods in document["paths"].values())


def open_page(browser: DevTools, url: str, count_js: str, expected: int) -> int:
    """Load a page and wait until the count expression reaches `expected` (or time out)."""
    browser.call("Page.navigate", url=url)

    def count() -> int:
        value = browser.evaluate(
            f"(() => {{ try {{ return {count_js} }} catch (e) {{ return 0 }} }})()"
        )
        return int(value or 0)

    try:
        wait_for(lambda: count() >= expected, 60, f"{expected} operations on {url}")
    except (AssertionError, TimeoutError) as exc:  # say what the page shows instead
        text = browser.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
        raise AssertionError(f"{url} rendered {count()} of {expected}: {text!r}") from exc
    return count()


def problems(browser: DevTools, origin: str) -> dict[str, list[Any]]:
    """Script and console errors, requests to anywhere but the app, and what CSP refused.

    A request the page's Content-Security-Policy refused never reached the network: it is
    listed apart (ReDoc's menu always tries its vendor's logo from a CDN), with its console
    entry, and is not counted as a request elsewhere."""
    events = [(e.get("method"), e.get("params", {})) for e in browser.events]
    blocked_ids = {
        p["requestId"]
        for m, p in events
        if m == "Network.loadingFailed" and p.get("blockedReason") == "csp"
    }
    requests = {
        p["requestId"]: p["request"]["url"] for m, p in events if m == "Network.requestWillBeSent"
    }
    refused = sorted({requests[i] for i in blocked_ids if i in requests})
    elsewhere = [
        url
        for request_id, url in requests.items()
        if urlsplit(url).scheme in ("http", "https", "ws", "wss")
        and urlsplit(url).netloc != origin
        and request_id not in blocked_ids
    ]

    def refusal(p: dict[str, Any]) -> bool:
        entry = p["entry"]
        return entry["source"] == "security" and any(url in entry["text"] for url in refused)

    errors = [
        p
        for m, p in events
        if m == "Runtime.exceptionThrown"
        or (m == "Log.entryAdded" and p["entry"]["level"] == "error" and not refusal(p))
        or (m == "Runtime.consoleAPICalled" and p["type"] == "error")
    ]
    return {"errors": errors, "requests elsewhere": elsewhere, "refused by CSP": refused}


def render(server: str, browser: DevTools, path: str, count_js: str) -> str:
    """Open a page as `docs.test` and check it shows every operation; the page's origin."""
    origin = f"{HOST}:{urlsplit(server).port}"
    expected = operations(server)
    assert open_page(browser, f"http://{origin}{path}", count_js, expected) == expected
    return origin


def test_swagger_ui_renders_every_operation_offline(server: str, offline_browser: DevTools) -> None:
    origin = render(
        server, offline_browser, "/docs", "document.querySelectorAll('.opblock').length"
    )
    # the document loaded without a resolver error
    assert not offline_browser.evaluate("document.querySelectorAll('.errors-wrapper').length")
    assert problems(offline_browser, origin) == {
        "errors": [],
        "requests elsewhere": [],
        "refused by CSP": [],
    }


def test_redoc_renders_every_operation_offline(server: str, offline_browser: DevTools) -> None:
    operations_in_menu = "document.querySelectorAll('li[data-item-id^=\"tag/\"] li[data-item-id]')"
    origin = render(server, offline_browser, "/redoc", f"{operations_in_menu}.length")
    text = offline_browser.evaluate("document.body.innerText")
    assert "Something went wrong" not in text, json.dumps(text[:500])
    assert problems(offline_browser, origin) == {
        "errors": [],
        "requests elsewhere": [],
        "refused by CSP": [REDOC_LOGO],  # never sent: ReDoc hides the image when it fails
    }
