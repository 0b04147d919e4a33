"""Optimisation: tracking parameters go, well-known hosts get their canonical form."""

from __future__ import annotations

import pytest

from app.services.urls import optimise_url

CASES = [
    (
        "https://example.com/a?utm_source=news&utm_medium=mail&id=3&fbclid=abc#top",
        "https://example.com/a?id=3#top",
    ),
    ("https://example.com/?gclid=1&msclkid=2&dclid=3", "https://example.com/"),
    ("https://example.com/?UTM_Campaign=x&keep=1", "https://example.com/?keep=1"),
    ("https://example.com/?_ga=1&mc_cid=2&mc_eid=3&igshid=4&keep", "https://example.com/?keep"),
    ("https://example.com/?b=2&a=1", "https://example.com/?b=2&a=1"),  # order is meaning
    ("https://example.com/?si=keep&ref=keep", "https://example.com/?si=keep&ref=keep"),
    (
        "https://youtu.be/dQw4w9WgXcQ?si=Ab12&t=42",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42",
    ),
    (
        "http://m.youtube.com/watch?v=dQw4w9WgXcQ&feature=share",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    ),
    (
        "https://youtube.com/watch?v=dQw4w9WgXcQ&list=PL1",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&list=PL1",
    ),
    ("https://en.m.wikipedia.org/wiki/URL?utm_medium=x", "https://en.wikipedia.org/wiki/URL"),
    (
        "https://www.amazon.de/Some-Product-Name/dp/B00TEST123/ref=sr_1_1?keywords=x&qid=1",
        "https://www.amazon.de/dp/B00TEST123",
    ),
    ("https://amazon.com/gp/product/B00TEST123?psc=1", "https://www.amazon.com/dp/B00TEST123"),
    ("https://x.com/user/status/1?s=20&t=abc", "https://x.com/user/status/1"),
    ("https://open.spotify.com/track/1?si=abc", "https://open.spotify.com/track/1"),
    ("HTTP://Example.com:80/%7Ea?utm_id=1", "http://example.com/~a"),
    ("https://youtube.com:8443/watch?v=x", "https://youtube.com:8443/watch?v=x"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_optimise(raw: str, expected: str) -> None:
    assert optimise_url(raw) == expected
    assert optimise_url(expected) == expected
