"""Guarded fetches against the loopback service: redirects, caps, time limits, pinning."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from app.services.urls import (
    FetchError,
    FetchLimits,
    FetchTimeout,
    ResponseTooLarge,
    SafeFetcher,
    UrlGuard,
    UrlPolicy,
    UrlRefused,
    safe_fetch,
)
from app.services.urls.fetch import PinnedResolver
from test.fakes.http_service import (
    Canary,
    HttpService,
    NetworkJail,
    StubResolver,
    start_http_service,
)


def make_fetcher(*allow: str, resolver: StubResolver | None = None, **limits: float) -> SafeFetcher:
    """A fetcher that may reach only `allow` among internal addresses."""
    guard = UrlGuard(policy=UrlPolicy.from_entries(allow), resolver=resolver or StubResolver({}))
    return SafeFetcher(guard=guard, limits=FetchLimits(**limits))  # type: ignore[arg-type]


@pytest.fixture
async def fetcher(http_service: HttpService) -> AsyncIterator[SafeFetcher]:
    """A fetcher with only the test service allow-listed."""
    client = make_fetcher(http_service.host, max_bytes=100_000, timeout_s=5)
    yield client
    await client.aclose()


async def test_allow_listed_service_answers(
    http_service: HttpService, fetcher: SafeFetcher
) -> None:
    response = await fetcher.fetch(f"{http_service.base_url}/items#frag")
    assert response.status == 200 and response.content_type == "application/json"
    assert b'"alpha"' in response.body and not response.truncated
    assert response.url == f"{http_service.base_url}/items"


async def test_without_the_allow_list_loopback_is_refused(http_service: HttpService) -> None:
    before = len(http_service.requests)
    with pytest.raises(UrlRefused, match="loopback"):
        await safe_fetch(f"{http_service.base_url}/items")
    assert len(http_service.requests) == before
    response = await safe_fetch(f"{http_service.base_url}/items", allow=[http_service.host])
    assert response.status == 200


def redirect_to(service: HttpService, target: str, status: int = 302) -> str:
    """A URL of the service that redirects to `target`."""
    return f"{service.base_url}/redirect?status={status}&to={quote(target, safe='')}"


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/admin",
        "http://192.168.1.1/",
        "http://127.0.0.1:{canary}/",
        "http://0x7f.1:{canary}/",
        "http://localhost:{canary}/",
        "http://[::1]:{canary}/",
        "//127.0.0.1:{canary}/",
        "/\\127.0.0.1:{canary}/",
        "http://inside.test:{canary}/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:{canary}/",
    ],
)
async def test_redirects_to_internal_addresses_are_refused(
    target: str,
    http_service: HttpService,
    canary: Canary,
    network_jail: NetworkJail,
) -> None:
    resolver = StubResolver({"inside.test": ["127.0.0.1"]})
    client = make_fetcher(http_service.host, resolver=resolver, timeout_s=5)
    before = len(http_service.requests)
    try:
        with pytest.raises(UrlRefused):
            await client.fetch(redirect_to(http_service, target.format(canary=canary.port)))
    finally:
        await client.aclose()
    assert len(http_service.requests) == before + 1  # the entry hop only
    assert canary.connections == 0 and network_jail.violations == []


async def test_redirects_within_allowed_hosts_are_followed(
    http_service: HttpService, fetcher: SafeFetcher
) -> None:
    response = await fetcher.fetch(redirect_to(http_service, "/items", 301))
    assert response.status == 200 and b"alpha" in response.body
    assert len(response.redirects) == 1
    chain = redirect_to(http_service, redirect_to(http_service, "/items"))
    assert (await fetcher.fetch(chain)).status == 200


async def test_too_many_redirects(http_service: HttpService, fetcher: SafeFetcher) -> None:
    url = f"{http_service.base_url}/items"
    for _ in range(4):
        url = redirect_to(http_service, url)
    with pytest.raises(FetchError, match="too many redirects"):
        await fetcher.fetch(url)


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    http_service: HttpService,
) -> None:
    async with start_http_service() as other:
        client = make_fetcher(http_service.host, other.host, timeout_s=5)
        headers = {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "X-Plain": "1"}
        try:
            same = await client.fetch(
                redirect_to(http_service, "/echo"), headers=headers, secret_headers=["X-Api-Key"]
            )
            moved = await client.fetch(
                redirect_to(http_service, f"{other.base_url}/echo"),
                headers=headers,
                secret_headers=["X-Api-Key"],
            )
        finally:
            await client.aclose()
    kept, dropped = json.loads(same.body)["headers"], json.loads(moved.body)["headers"]
    assert kept["authorization"] == "Bearer s3cret" and kept["x-api-key"] == "k3y"
    assert "authorization" not in dropped and "x-api-key" not in dropped
    assert dropped["x-plain"] == "1"


async def test_303_turns_a_post_into_a_get(http_service: HttpService, fetcher: SafeFetcher) -> None:
    response = await fetcher.fetch(
        redirect_to(http_service, "/echo", 303), method="POST", body=b'{"a": 1}'
    )
    echoed = json.loads(response.body)
    assert echoed["method"] == "GET" and echoed["body"] is None
    kept = await fetcher.fetch(
        redirect_to(http_service, "/echo", 307),
        method="POST",
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json"},
    )
    assert json.loads(kept.body)["method"] == "POST"
    assert json.loads(kept.body)["body"] == {"a": 1}


async def test_oversized_responses_are_capped(
    http_service: HttpService, fetcher: SafeFetcher
) -> None:
    with pytest.raises(ResponseTooLarge, match="200000 bytes"):
        await fetcher.fetch(f"{http_service.base_url}/big?size=200000")  # Content-Length
    with pytest.raises(ResponseTooLarge, match="cap"):
        await fetcher.fetch(f"{http_service.base_url}/stream?chunks=50")  # chunked, no length
    cut = await fetcher.fetch(f"{http_service.base_url}/stream?chunks=50", truncate=True)
    assert cut.truncated and len(cut.body) == 100_000
    whole = await fetcher.fetch(f"{http_service.base_url}/big?size=100000")
    assert len(whole.body) == 100_000 and not whole.truncated


async def test_a_gzip_bomb_stops_at_the_cap(
    http_service: HttpService, fetcher: SafeFetcher
) -> None:
    with pytest.raises(ResponseTooLarge):
        await fetcher.fetch(f"{http_service.base_url}/gzip?size=50000000")
    small = await fetcher.fetch(f"{http_service.base_url}/gzip?size=1000")
    assert small.body == b"\0" * 1000


async def test_slow_responses_time_out(http_service: HttpService) -> None:
    client = make_fetcher(http_service.host, timeout_s=0.6)
    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeout, match=r"0\.6 s"):
            await client.fetch(f"{http_service.base_url}/slow?seconds=10&every=0.05")
    finally:
        await client.aclose()
    assert time.monotonic() - started < 3


async def test_names_are_resolved_once_and_pinned(http_service: HttpService) -> None:
    resolver = StubResolver({"svc.test": ["127.0.0.1"]})
    client = make_fetcher(f"svc.test:{http_service.port}", resolver=resolver, timeout_s=5)
    try:
        response = await client.fetch(f"http://SVC.test.:{http_service.port}/echo")
    finally:
        await client.aclose()
    assert json.loads(response.body)["headers"]["host"] == f"svc.test:{http_service.port}"
    assert resolver.calls == ["svc.test"]


async def test_the_connector_never_resolves_an_unchecked_name() -> None:
    with pytest.raises(OSError, match="not checked"):
        await PinnedResolver().resolve("example.com", 80)


async def test_methods_are_limited(fetcher: SafeFetcher, http_service: HttpService) -> None:
    with pytest.raises(FetchError, match="not allowed"):
        await fetcher.fetch(f"{http_service.base_url}/echo", method="CONNECT")


async def test_an_unreachable_port_is_a_fetch_error() -> None:
    from test.support.net import free_port

    port = free_port()
    client = make_fetcher(f"127.0.0.1:{port}", timeout_s=5)
    try:
        with pytest.raises(FetchError, match="cannot connect"):
            await client.fetch(f"http://127.0.0.1:{port}/")
    finally:
        await client.aclose()
