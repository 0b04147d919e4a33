"""The display form of URLs that may carry credentials (MCP endpoints, database URLs), and
the masking of personal API keys in free text (`redact_api_keys`).

An operator may put credentials into a URL: `https://user:password@host/mcp?api_key=...`.
The full URL is only ever handed to the client library that connects; everything a person
or a scraper can see (status JSON, dashboard, admin routes, metric labels, log lines, tool
errors) shows `display_url(url)`: no userinfo, and every secret-looking query value
replaced by `***`. `redact_urls(text)` applies it to every URL inside free text (log lines,
error messages from HTTP libraries).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

MASK = "***"
# Query parameter names that hold a credential: exact names, then parts of names.
_SECRET_NAMES = frozenset({"sig", "pwd", "pass", "code", "jwt"})
_SECRET_PARTS = (
    "key",
    "token",
    "secret",
    "passw",
    "auth",
    "signature",
    "credential",
    "session",
    "private",
)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>`]+")
# a personal API key (app/core/api_keys.py), wherever it appears: header, query, body, message
API_KEY_PATTERN = re.compile(r"\bvk-[A-Za-z0-9]{16,}")
API_KEY_MASK = "vk-[REDACTED]"


def is_secret_param(name: str) -> bool:
    """True for query parameter names that look like they carry a credential."""
    normal = unquote_plus(name).strip().lower().replace("-", "_")
    return normal in _SECRET_NAMES or any(part in normal for part in _SECRET_PARTS)


def _mask_pairs(text: str) -> str:
    """`a=1&api_key=x` → `a=1&api_key=***` (the rest kept byte for byte)."""
    pairs = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if sep and value and is_secret_param(name) else pair)
    return "&".join(pairs)


def display_url(url: str) -> str:
    """`url` without userinfo and with secret-looking query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not even parseable: show nothing of it
    netloc = parts.netloc.rpartition("@")[2]
    shown = SplitResult(
        parts.scheme,
        netloc,
        parts.path,
        _mask_pairs(parts.query) if parts.query else parts.query,
        _mask_pairs(parts.fragment) if "=" in parts.fragment else parts.fragment,
    )
    if shown == parts:
        return url  # nothing secret: keep the operator's spelling exactly
    return urlunsplit(shown)


def redact_urls(text: str) -> str:
    """Every URL inside `text` in its display form."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: display_url(match.group(0)), text)


def redact_api_keys(text: str) -> str:
    """`text` with every personal API key (`vk-…`) replaced by `vk-[REDACTED]`."""
    if "vk-" not in text:
        return text
    return API_KEY_PATTERN.sub(API_KEY_MASK, text)


def redact_tree(value: Any) -> Any:
    """`value` with every string inside (dict values, list items) passed through `redact_urls`."""
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, dict):
        return {key: redact_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(item) for item in value]
    return value
