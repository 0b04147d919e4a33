"""The URL service: normalise, optimise, and fetch http(s) URLs without reaching internal hosts.

Use `check_url()` before handing a model- or user-supplied URL to anything, and `SafeFetcher`
(or `safe_fetch()`) to fetch one: names are resolved once, internal addresses are refused
unless allow-listed (`URL_ALLOWLIST`), connections go only to the checked addresses, every
redirect is checked again, and time and size are capped.
"""

from app.services.urls.errors import (
    FetchError,
    FetchTimeout,
    ResponseTooLarge,
    UrlError,
    UrlRefused,
)
from app.services.urls.fetch import FetchLimits, FetchResponse, SafeFetcher, safe_fetch
from app.services.urls.guard import CheckedUrl, Resolver, UrlGuard, check_url, system_resolver
from app.services.urls.host import Host, parse_host
from app.services.urls.normalise import ParsedUrl, normalise_url, parse_url
from app.services.urls.optimise import optimise_url
from app.services.urls.policy import UrlPolicy, blocked_reason, parse_allow_entry

__all__ = [
    "CheckedUrl",
    "FetchError",
    "FetchLimits",
    "FetchResponse",
    "FetchTimeout",
    "Host",
    "ParsedUrl",
    "Resolver",
    "ResponseTooLarge",
    "SafeFetcher",
    "UrlError",
    "UrlGuard",
    "UrlPolicy",
    "UrlRefused",
    "blocked_reason",
    "check_url",
    "normalise_url",
    "optimise_url",
    "parse_allow_entry",
    "parse_host",
    "parse_url",
    "safe_fetch",
    "system_resolver",
]
