"""The SSRF guard: parse, resolve once, and refuse internal addresses before any connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from app.services.urls.errors import UrlError, UrlRefused
from app.services.urls.normalise import ParsedUrl, parse_url
from app.services.urls.policy import UrlPolicy

Resolver = Callable[[str, int], Awaitable[list[str]]]
DEFAULT_RESOLVE_TIMEOUT_S = 5.0


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for a name (TCP only)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed the guard, with the only addresses a connection may use."""

    url: ParsedUrl
    addresses: tuple[str, ...]

    def __str__(self) -> str:
        return self.url.url()


class UrlGuard:
    """Checks URLs against a policy; names are resolved here, once, and the result is pinned."""

    def __init__(
        self,
        *,
        policy: UrlPolicy | None = None,
        resolver: Resolver | None = None,
        resolve_timeout_s: float = DEFAULT_RESOLVE_TIMEOUT_S,
    ) -> None:
        self.policy = policy or UrlPolicy()
        self.resolver = resolver or system_resolver
        self.resolve_timeout_s = resolve_timeout_s

    async def check(self, url: str | ParsedUrl) -> CheckedUrl:
        """The parsed URL and its checked addresses, or UrlError / UrlRefused saying why not."""
        parsed = url if isinstance(url, ParsedUrl) else parse_url(url)
        host, port, policy = parsed.host, parsed.port, self.policy
        if host.ip is not None:
            policy.check_address(host.ip, host=host.name, port=port)
            return CheckedUrl(parsed, (host.ip.compressed,))
        is_local_name = host.name == "localhost" or host.name.endswith(".localhost")
        if is_local_name and not policy.allows_name(host.name, port):
            raise UrlRefused(f"host {host.name} is a loopback name, which is not allowed")
        addresses = await self._resolve(host.name, port)
        for ip in addresses:
            policy.check_address(ip, host=host.name, port=port)
        return CheckedUrl(parsed, tuple(ip.compressed for ip in addresses))

    async def _resolve(
        self, name: str, port: int
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                found = await self.resolver(name, port)
        except TimeoutError:
            raise UrlError(f"host {name} could not be resolved in time") from None
        except (OSError, UnicodeError):
            raise UrlError(f"host {name} could not be resolved") from None
        addresses = list(_addresses(found))
        if not addresses:
            raise UrlError(f"host {name} could not be resolved")
        return addresses


def _addresses(found: Iterable[str]) -> Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Parse resolver answers; anything unparsable fails the check rather than being skipped."""
    for text in found:
        try:
            yield ipaddress.ip_address(text)
        except ValueError:
            raise UrlError("the resolver returned an invalid address") from None


async def check_url(
    url: str, *, allow: Iterable[str] = (), resolver: Resolver | None = None
) -> CheckedUrl:
    """Check one URL (e.g. a tool argument) without fetching it; raises UrlError/UrlRefused."""
    return await UrlGuard(policy=UrlPolicy.from_entries(allow), resolver=resolver).check(url)
