"""The display form of URLs that carry credentials, and its use on free text (log lines)."""

from __future__ import annotations

import pytest

from app.core.redact import display_url, redact_api_keys, redact_tree, redact_urls
from app.observability.logging import redact

CASES = [
    # (url, display form)
    ("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp"),
    ("http://user:password@host/mcp", "http://host/mcp"),
    ("http://user@host:9/mcp", "http://host:9/mcp"),
    ("https://u:p@h/mcp?api_key=K&token=T&region=eu", "https://h/mcp?api_key=***&token=***&region=eu"),
    ("https://h/x?Key=1&ACCESS_TOKEN=2&Secret=3&password=4&auth=5", "https://h/x?Key=***&ACCESS_TOKEN=***&Secret=***&password=***&auth=***"),
    ("https://h/x?X-Amz-Signature=1&sig=2&client_secret=3&apiKey=4", "https://h/x?X-Amz-Signature=***&sig=***&client_secret=***&apiKey=***"),
    ("https://h/x?page=2&q=search&session_id=abc", "https://h/x?page=2&q=search&session_id=***"),
    ("https://h/x?api%5Fkey=1&flag", "https://h/x?api%5Fkey=***&flag"),
    ("https://h/cb#access_token=1&state=x", "https://h/cb#access_token=***&state=x"),
    ("https://h/x?token=", "https://h/x?token="),
    ("http://[::1/mcp?key=1", "***"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "shown"), CASES)
def test_display_form(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_every_url_in_free_text_is_shown_in_display_form() -> None:
    text = (
        'POST http://svc:pw1@h/mcp?api_key=k1 "HTTP/1.1 200 OK"; '
        "db postgresql+asyncpg://app:pw2@db:5432/vektor failed ('https://x:pw3@h/a?sig=k2')"
    )
    out = redact_urls(text)
    assert out == (
        'POST http://h/mcp?api_key=*** "HTTP/1.1 200 OK"; '
        "db postgresql+asyncpg://db:5432/vektor failed ('https://h/a?sig=***')"
    )
    assert redact_tree({"a": [text], "n": 1}) == {"a": [out], "n": 1}


def test_log_lines_keep_the_display_form_and_lose_the_credentials() -> None:
    line = redact("MCP http://u:pw@h/mcp?api_key=k1&token=t1&x=1 connected; token=abc")
    assert line == "MCP http://h/mcp?api_key=***&token=***&x=1 connected; token=[REDACTED]"


def test_api_keys_are_masked_wherever_they_appear() -> None:
    key = "vk-Ab3dE5gH" + "x" * 43
    text = f"Bearer {key} ?api_key={key}&q={key} body={{'name': '{key}'}} /keys/{key}"
    out = redact(text)
    assert "x" * 16 not in out and out.count("[REDACTED]") >= 5
    assert redact_api_keys(f"see {key}.") == "see vk-[REDACTED]."
    assert redact_api_keys("vk-short and vk-") == "vk-short and vk-"  # not a key: kept
