"""Host parsing as browsers do it (WHATWG URL), so every IP notation ends up as one address.

`0177.0.0.1`, `0x7f.1`, `2130706433`, `127.1`, full-width digits and `%31%32%37.0.0.1`
all become `127.0.0.1` here; the guard then judges the address, never the spelling.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import idna

from app.services.urls.errors import UrlError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_HOST_LENGTH = 253
_NAME_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host: a lowercase ASCII name, or an IP address (`ip` set)."""

    name: str
    ip: IPAddress | None = None

    @property
    def url_form(self) -> str:
        """The host as written in a URL (IPv6 in brackets)."""
        return f"[{self.name}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.name


def _ipv4_number(part: str) -> int | None:
    """One part of a legacy IPv4 address (decimal, 0x hex, 0-prefixed octal), or None."""
    if _HEX.match(part):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if part.isdigit() and set(part) <= set("01234567") else None
    return int(part) if part.isdigit() and part.isascii() else None


def _ends_in_number(name: str) -> bool:
    """WHATWG's test: a host whose last label is a number must be an IPv4 address."""
    last = name.split(".")[-1]
    return bool(last) and ((last.isascii() and last.isdigit()) or bool(_HEX.match(last)))


def parse_ipv4(name: str) -> ipaddress.IPv4Address:
    """Every legacy spelling of an IPv4 address (1 to 4 parts, any base), as one address."""
    parts = name.split(".")
    if len(parts) > 4:
        raise UrlError(f"host {name!r} is not a valid IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        raise UrlError(f"host {name!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise UrlError(f"host {name!r} is not a valid IPv4 address")
    number = values[-1]
    for index, value in enumerate(values[:-1]):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _ipv6(inner: str) -> Host:
    if "%" in inner:
        raise UrlError("IPv6 zone identifiers are not allowed in URLs")
    try:
        ip = ipaddress.IPv6Address(inner)
    except ValueError:
        raise UrlError(f"host [{inner}] is not a valid IPv6 address") from None
    return Host(ip.compressed, ip)


def _to_ascii(text: str) -> str:
    """Lowercase ASCII; other text goes through IDNA (UTS 46 maps full-width digits, 。 etc.)."""
    if text.isascii():
        return text.lower()
    try:
        return idna.encode(text, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise UrlError("host is not a valid internationalised domain name") from None


def parse_host(raw: str) -> Host:
    """The canonical form of a URL's host, or UrlError; IP hosts come back with `ip` set."""
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise UrlError("unterminated IPv6 address in host")
        return _ipv6(raw[1:-1])
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise UrlError("host contains invalid percent-encoding") from None
    name = _to_ascii(text)
    if name.endswith("."):
        name = name[:-1]  # one trailing dot names the same host (FQDN form)
    if not name:
        raise UrlError("URL has no host")
    if _ends_in_number(name):
        ip = parse_ipv4(name)
        return Host(str(ip), ip)
    if len(name) > MAX_HOST_LENGTH or not all(_NAME_LABEL.match(x) for x in name.split(".")):
        raise UrlError(f"host {name[:80]!r} is not a valid host name")
    return Host(name)
