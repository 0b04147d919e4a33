"""Guarded HTTP fetches: every hop is checked, connections go only to checked addresses,
and the time and the size of the answer are capped."""

from __future__ import annotations

import asyncio
import contextvars
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from app import __version__
from app.services.urls.errors import FetchError, FetchTimeout, ResponseTooLarge
from app.services.urls.guard import CheckedUrl, Resolver, UrlGuard
from app.services.urls.normalise import ParsedUrl, parse_url, resolve_reference
from app.services.urls.policy import UrlPolicy

REDIRECTS = frozenset({301, 302, 303, 307, 308})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
CHUNK = 64 * 1024
# the addresses checked for the request running in this task, by host name
_PINNED: contextvars.ContextVar[Mapping[str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "vektor_pinned_addresses", default=None
)


class PinnedResolver(AbstractResolver):
    """aiohttp's resolver: answers only with the addresses the guard checked for this request."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The pinned addresses of `host`; a host nobody checked is an error, never a lookup."""
        addresses = (_PINNED.get() or {}).get(host.rstrip(".").lower())
        if not addresses:
            raise OSError(f"refusing to connect to {host}: it was not checked by the URL guard")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """How long a fetch may take, how large its answer may be, how many redirects it follows."""

    timeout_s: float = 20.0
    connect_timeout_s: float = 5.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 3


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """A complete (possibly truncated) answer."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool = False
    redirects: tuple[str, ...] = field(default=())

    @property
    def content_type(self) -> str:
        """The media type without parameters, lowercase (`application/json`)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """The body decoded with its declared charset (UTF-8 by default, never failing)."""
        charset = "utf-8"
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class SafeFetcher:
    """One pooled client for guarded fetches; owned by the lifespan (or a `safe_fetch` call)."""

    def __init__(self, *, guard: UrlGuard, limits: FetchLimits | None = None) -> None:
        self.guard = guard
        self.limits = limits or FetchLimits()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=PinnedResolver(), use_dns_cache=False, limit=100, keepalive_timeout=15
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies shared between calls
                trust_env=False,  # never through an environment proxy (it would resolve names)
                headers={"User-Agent": f"VektorBackend/{__version__}"},
            )
        return self._session

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self,
        url: str | ParsedUrl,
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        limits: FetchLimits | None = None,
        truncate: bool = False,
        secret_headers: Iterable[str] = (),
    ) -> FetchResponse:
        """Fetch, re-checking every redirect; raises a FetchError subclass saying why not.

        `secret_headers` (and credentials) are dropped when a redirect leaves the origin.
        """
        limits = limits or self.limits
        method = method.upper()
        if method not in METHODS:
            raise FetchError(f"method {method} is not allowed")
        try:
            async with asyncio.timeout(limits.timeout_s):
                return await self._follow(
                    url,
                    method=method,
                    headers={k: v for k, v in (headers or {}).items() if k.lower() != "host"},
                    body=body,
                    limits=limits,
                    truncate=truncate,
                    secret=CREDENTIAL_HEADERS | {h.lower() for h in secret_headers},
                )
        except TimeoutError:
            raise FetchTimeout(f"no complete answer within {limits.timeout_s:g} s") from None

    async def _follow(
        self,
        url: str | ParsedUrl,
        *,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        limits: FetchLimits,
        truncate: bool,
        secret: frozenset[str],
    ) -> FetchResponse:
        current = url if isinstance(url, ParsedUrl) else parse_url(url)
        hops: list[str] = []
        for _ in range(limits.max_redirects + 1):
            checked = await self.guard.check(current)
            response = await self._send(
                checked, method=method, headers=headers, body=body, limits=limits, truncate=truncate
            )
            location = response.headers.get("location")
            if response.status not in REDIRECTS or location is None:
                return replace(response, redirects=tuple(hops))
            following = resolve_reference(current, location)
            if following.origin != current.origin:
                headers = {k: v for k, v in headers.items() if k.lower() not in secret}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = ("HEAD" if method == "HEAD" else "GET"), None
            hops.append(current.url(fragment=False))
            current = following
        raise FetchError(f"too many redirects (more than {limits.max_redirects})")

    async def _send(
        self,
        checked: CheckedUrl,
        *,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        limits: FetchLimits,
        truncate: bool,
    ) -> FetchResponse:
        """One hop to the checked addresses; a redirect comes back without reading its body."""
        parsed = checked.url
        token = _PINNED.set({parsed.host.name: checked.addresses})
        timeout = aiohttp.ClientTimeout(
            total=None, connect=limits.connect_timeout_s, sock_connect=limits.connect_timeout_s
        )
        try:
            async with self._client().request(
                method,
                yarl.URL(parsed.url(fragment=False), encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                found = {k.lower(): v for k, v in response.headers.items()}
                data, cut = b"", False
                if response.status not in REDIRECTS or "location" not in found:
                    data, cut = await _read_capped(
                        response, max_bytes=limits.max_bytes, truncate=truncate
                    )
                return FetchResponse(
                    url=parsed.url(fragment=False),
                    status=response.status,
                    headers=found,
                    body=data,
                    truncated=cut,
                )
        except aiohttp.ClientConnectionError:
            raise FetchError(f"cannot connect to {parsed.netloc}") from None
        except aiohttp.ClientError as exc:
            failure = type(exc).__name__
            raise FetchError(f"the request to {parsed.netloc} failed ({failure})") from None
        finally:
            _PINNED.reset(token)


async def _read_capped(
    response: aiohttp.ClientResponse, *, max_bytes: int, truncate: bool
) -> tuple[bytes, bool]:
    """The body, stopping at `max_bytes` (decompressed bytes count, so bombs stop early)."""
    declared = response.content_length
    if declared is not None and declared > max_bytes and not truncate:
        raise ResponseTooLarge(f"the response is {declared} bytes, over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        if size + len(chunk) > max_bytes:
            if not truncate:
                raise ResponseTooLarge(f"the response is over the {max_bytes}-byte cap")
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), True
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), False


async def safe_fetch(
    url: str,
    *,
    allow: Iterable[str] = (),
    resolver: Resolver | None = None,
    limits: FetchLimits | None = None,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    truncate: bool = True,
) -> FetchResponse:
    """Fetch one URL a tool or user supplied, with a throw-away client (see `SafeFetcher`)."""
    guard = UrlGuard(policy=UrlPolicy.from_entries(allow), resolver=resolver)
    fetcher = SafeFetcher(guard=guard, limits=limits)
    try:
        return await fetcher.fetch(url, method=method, headers=headers, truncate=truncate)
    finally:
        await fetcher.aclose()
