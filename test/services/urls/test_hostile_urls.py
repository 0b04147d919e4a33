"""Hostile URLs: every notation of an internal address is refused before any connection.

The canary listens on 127.0.0.1; each URL below points at it (or at another internal
address) in a different disguise. Not one of them may open a connection.
"""

from __future__ import annotations

import pytest

from app.services.urls import FetchLimits, SafeFetcher, UrlError, UrlGuard, UrlPolicy
from test.fakes.http_service import Canary, NetworkJail, StubResolver

# {p} is the canary's port
HOSTILE = [
    "http://127.0.0.1:{p}/",
    "http://127.0.0.2:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0x7f.1:{p}/",
    "http://0x7F.0x0.0x0.0x1:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0177.1:{p}/",
    "http://017700000001:{p}/",
    "http://127.000.000.001:{p}/",
    "http://%31%32%37.0.0.1:{p}/",
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{p}/",  # full-width digits
    "http://127\u30020\u30020\u30021:{p}/",  # ideographic full stops
    "http://\u2460\u2461\u2466.0.0.1:{p}/",  # circled digits
    "http://127.0.0.1.:{p}/",
    "http://12\t7.0.0.1:{p}/",
    " http://127.0.0.1:{p}/ ",
    "HTTP://127.0.0.1:{p}/",
    "http:\\\\127.0.0.1:{p}\\",
    "http:/\\127.0.0.1:{p}/",
    "http:///127.0.0.1:{p}/",
    "http:127.0.0.1:{p}/",
    "http://127.0.0.1:{p}\\@example.com/",
    "http://127.0.0.1:{p}#@example.com/",
    "http://127.0.0.1:{p}?@example.com/",
    "http://evil.com@127.0.0.1:{p}/",
    "http://user:pass@127.0.0.1:{p}/",
    "http://example.com:80@127.0.0.1:{p}/",
    "http://[::1]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://[::ffff:0:127.0.0.1]:{p}/",
    "http://[64:ff9b::127.0.0.1]:{p}/",
    "http://[2002:7f00:1::]:{p}/",
    "http://[::]:{p}/",
    "http://[fe80::1%25lo]:{p}/",
    "http://0.0.0.0:{p}/",
    "http://0:{p}/",
    "http://localhost:{p}/",
    "http://LOCALHOST.:{p}/",
    "http://anything.localhost:{p}/",
    "http://canary.test:{p}/",
    "http://CANARY.test.:{p}/",
    "http://rebind.test:{p}/",
    "http://mapped.test:{p}/",
    "http://unknown.invalid:{p}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://2852039166/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[fd00::1]/",
    "http://[fc00::1]:{p}/",
    "gopher://127.0.0.1:{p}/_GET",
    "file:///etc/passwd",
    "ftp://127.0.0.1:{p}/",
    "dict://127.0.0.1:{p}/",
    "ws://127.0.0.1:{p}/",
    "//127.0.0.1:{p}/",
    "127.0.0.1:{p}",
]
TABLE = {
    "canary.test": ["127.0.0.1"],
    "rebind.test": ["10.0.0.1", "127.0.0.1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "localhost": ["127.0.0.1"],
}


def test_the_table_is_large() -> None:
    assert len(HOSTILE) >= 40 and len(set(HOSTILE)) == len(HOSTILE)


@pytest.mark.parametrize("template", HOSTILE)
async def test_hostile_url_is_refused_without_a_connection(
    template: str, canary: Canary, network_jail: NetworkJail
) -> None:
    url = template.format(p=canary.port)
    resolver = StubResolver(TABLE)
    guard = UrlGuard(policy=UrlPolicy(), resolver=resolver)
    with pytest.raises(UrlError):
        await guard.check(url)
    fetcher = SafeFetcher(guard=guard, limits=FetchLimits(timeout_s=5))
    try:
        with pytest.raises(UrlError):
            await fetcher.fetch(url)
    finally:
        await fetcher.aclose()
    assert canary.connections == 0
    assert network_jail.violations == []


async def test_the_canary_counts_what_is_allowed(canary: Canary, network_jail: NetworkJail) -> None:
    """Control: the same URL, allow-listed, does reach the canary (so zero above means zero)."""
    guard = UrlGuard(policy=UrlPolicy.from_entries([f"127.0.0.1:{canary.port}"]))
    fetcher = SafeFetcher(guard=guard, limits=FetchLimits(timeout_s=5))
    try:
        with pytest.raises(Exception):  # noqa: B017 - the canary hangs up without answering
            await fetcher.fetch(f"http://0x7f.1:{canary.port}/")
    finally:
        await fetcher.aclose()
    assert canary.connections >= 1  # aiohttp retries a GET once after a hang-up
    assert network_jail.loopback >= 1 and network_jail.violations == []


async def test_a_name_with_any_internal_address_is_refused() -> None:
    guard = UrlGuard(resolver=StubResolver({"mixed.test": ["93.184.215.14", "10.0.0.1"]}))
    with pytest.raises(UrlError, match=r"resolves to an internal address \(private\)"):
        await guard.check("https://mixed.test/")
    public = UrlGuard(resolver=StubResolver({"ok.test": ["93.184.215.14", "2606:4700::1"]}))
    checked = await public.check("https://OK.test./a")
    assert checked.addresses == ("93.184.215.14", "2606:4700::1")
    assert str(checked) == "https://ok.test/a"
