"""Which addresses are internal, and how the operator's allow-list opens some of them."""

from __future__ import annotations

import ipaddress

import pytest

from app.services.urls import UrlPolicy, UrlRefused, blocked_reason, parse_allow_entry

BLOCKED = {
    "0.0.0.0": "unspecified",
    "10.1.2.3": "private",
    "100.100.100.200": "carrier-grade NAT",
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "169.254.169.254": "link-local",
    "172.31.0.1": "private",
    "192.0.0.170": "reserved",
    "192.168.0.1": "private",
    "198.18.0.1": "benchmarking",
    "224.0.0.251": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::": "unspecified",
    "::1": "loopback",
    "::127.0.0.1": "IPv4-compatible",
    "::ffff:127.0.0.1": "loopback (as IPv6)",
    "::ffff:169.254.169.254": "link-local",
    "::ffff:0:10.0.0.1": "private (as IPv6)",
    "64:ff9b::a9fe:a9fe": "link-local",
    "64:ff9b:1::1": "local-use NAT64",
    "2002:7f00:1::1": "loopback (as IPv6)",
    "2002:c0a8:101::1": "private (as IPv6)",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "Teredo",
    "2001:db8::1": "documentation",
    "fc00::1": "unique local",
    "fd12:3456::1": "unique local",
    "fe80::1": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "100::1": "discard",
    "4000::1": "reserved",
}
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), BLOCKED.items())
def test_internal_addresses_are_blocked(address: str, reason: str) -> None:
    found = blocked_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_allow_list_entries() -> None:
    policy = UrlPolicy.from_entries(
        ["127.0.0.1:8080", "10.0.0.0/8", "api.internal", "*.corp.example:443", "[::1]:9000", " "]
    )
    check = policy.check_address
    check(ipaddress.ip_address("127.0.0.1"), host="127.0.0.1", port=8080)
    check(ipaddress.ip_address("10.9.9.9"), host="10.9.9.9", port=1)
    check(ipaddress.ip_address("192.168.1.1"), host="api.internal", port=5)
    check(ipaddress.ip_address("192.168.1.1"), host="db.corp.example", port=443)
    check(ipaddress.ip_address("::1"), host="::1", port=9000)
    for ip, host, port in [
        ("127.0.0.1", "127.0.0.1", 8081),  # another port of an allowed address
        ("127.0.0.2", "127.0.0.2", 8080),
        ("192.168.1.1", "corp.example", 443),  # `*.` means subdomains only
        ("192.168.1.1", "db.corp.example", 80),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1", 8080),  # the mapped form is not the entry
        ("169.254.169.254", "api.internal.evil", 80),
    ]:
        with pytest.raises(UrlRefused):
            check(ipaddress.ip_address(ip), host=host, port=port)


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/33", "host:99999", "host:abc", "*.10.0.0.1", "bad host", "a..b"]
)
def test_bad_allow_entries_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match="'"):
        parse_allow_entry(entry)


def test_allow_entry_forms() -> None:
    assert parse_allow_entry("LOCALHOST.:8000").name == "localhost"
    assert parse_allow_entry("::1").network == ipaddress.ip_network("::1/128")
    assert parse_allow_entry("[::1]:80").port == 80
    assert parse_allow_entry("0x7f.1").network == ipaddress.ip_network("127.0.0.1/32")
