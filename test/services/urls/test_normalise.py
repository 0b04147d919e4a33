"""Normalisation: one canonical text per URL, whatever the spelling."""

from __future__ import annotations

import pytest

from app.services.urls import UrlError, UrlRefused, normalise_url, parse_url

CASES = [
    ("HTTP://Example.COM/", "http://example.com/"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com./a", "http://example.com/a"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/a/%2e%2E/b", "http://example.com/b"),
    ("http://example.com/../../x", "http://example.com/x"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/%7euser/%41", "http://example.com/~user/A"),
    ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/é", "http://example.com/%C3%A9"),
    ("http://example.com/?q=a b&x=%7e&y=%3d", "http://example.com/?q=a%20b&x=~&y=%3D"),
    ("http://example.com/?", "http://example.com/"),
    ("http://example.com/#Top", "http://example.com/#Top"),
    ("https://Bücher.Example/", "https://xn--bcher-kva.example/"),
    (
        "https://\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff43\uff4f\uff4d/",
        "https://example.com/",
    ),
    ("http:\\\\example.com\\a\\b", "http://example.com/a/b"),
    ("http:/example.com", "http://example.com/"),
    ("  http://example.com/\n ", "http://example.com/"),
    ("http://exa\tmple.com/", "http://example.com/"),
    ("http://[2001:DB8:0:0::1]:8080/", "http://[2001:db8::1]:8080/"),
    ("http://0x7f.1/", "http://127.0.0.1/"),
    ("http://2130706433/", "http://127.0.0.1/"),
    ("http://0177.0.0.1/", "http://127.0.0.1/"),
    ("http://192.168.1/", "http://192.168.0.1/"),
    ("http://%31%30.0.0.1/", "http://10.0.0.1/"),
    ("http://under_score.example/", "http://under_score.example/"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected
    assert normalise_url(expected) == expected  # canonical text is a fixed point


INVALID = [
    ("", "absolute URL"),
    ("example.com/a", "absolute URL"),
    ("//example.com/", "absolute URL"),
    ("http://", "no host"),
    ("http://user:pw@example.com/", "credentials"),
    ("http://example.com:99999/", "port"),
    ("http://example.com:0/", "port"),
    ("http://example.com:8o/", "port"),
    ("http://[::1/", "unterminated"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://1.2.3.4.5/", "IPv4"),
    ("http://256.0.0.1/", "IPv4"),
    ("http://09.0.0.1/", "IPv4"),
    ("http://exa mple.com/", "host"),
    ("http://a..b/", "host"),
    ("http://" + "a" * 64 + ".com/", "host"),
    ("http://example.com/" + "a" * 9000, "longer"),
]


@pytest.mark.parametrize(("raw", "message"), INVALID)
def test_invalid_urls_say_why(raw: str, message: str) -> None:
    with pytest.raises(UrlError, match=message):
        parse_url(raw)


@pytest.mark.parametrize("raw", ["ftp://example.com/", "file:///etc/passwd", "javascript:x"])
def test_only_http_and_https(raw: str) -> None:
    with pytest.raises(UrlRefused, match="only http and https"):
        parse_url(raw)


def test_parsed_parts() -> None:
    url = parse_url("HTTPS://API.Example.com:8443/v1/x?a=1#f")
    assert url.origin == ("https", "api.example.com", 8443)
    assert url.url(fragment=False) == "https://api.example.com:8443/v1/x?a=1"
    assert url.host.ip is None
    assert str(parse_url("http://[::1]/").host.ip) == "::1"
