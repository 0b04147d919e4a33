"""Which addresses the backend may connect to: public ones, plus what the operator allowed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from app.services.urls.errors import UrlError, UrlRefused
from app.services.urls.host import IPAddress, parse_host

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _nets(*pairs: tuple[str, str]) -> list[tuple[IPNetwork, str]]:
    return [(ipaddress.ip_network(net), reason) for net, reason in pairs]


_V4_BLOCKED = _nets(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_BLOCKED = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "reserved (discard)"),
    ("2001::/23", "reserved (IETF protocol assignments, Teredo)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("5f00::/16", "reserved (segment routing)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, translated, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address is internal (`'loopback'`, `'private'`, ...), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local (zone id)"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = blocked_reason(embedded)
            return f"{inner} (as IPv6)" if inner else None
        for network, reason in _V6_BLOCKED:
            if ip in network:
                return reason
        if ip not in _V6_GLOBAL_UNICAST:
            return "reserved"
    else:
        for network, reason in _V4_BLOCKED:
            if ip in network:
                return reason
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "broadcast"
    return None if ip.is_global else "not public"


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One operator allow-list entry: a host name (`*.` for subdomains) or a network."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def matches_name(self, host: str, port: int) -> bool:
        """True when the entry names this host (and port, if it has one)."""
        if self.name is None or (self.port is not None and self.port != port):
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def matches_address(self, ip: IPAddress, port: int) -> bool:
        """True when the address is in the entry's network (and the port matches)."""
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return ip.version == self.network.version and ip in self.network


def parse_allow_entry(text: str) -> AllowEntry:
    """`host`, `host:port`, `*.domain`, `IP`, `IP:port`, `[IPv6]:port` or a CIDR network."""
    entry = text.strip()
    if "/" in entry:
        try:
            return AllowEntry(network=ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a valid network") from None
    try:
        return AllowEntry(network=ipaddress.ip_network(ipaddress.ip_address(entry)))
    except ValueError:
        pass  # not a bare address: a name, or something with a port
    port: int | None = None
    head, sep, tail = entry.rpartition(":")
    if sep and ((entry.startswith("[") and head.endswith("]")) or ":" not in head):
        if not (tail.isascii() and tail.isdigit() and 0 < int(tail) < 65536):
            raise ValueError(f"{text!r} has an invalid port")
        entry, port = head, int(tail)
    wildcard = entry.startswith("*.")
    try:
        host = parse_host(entry[2:] if wildcard else entry)
    except UrlError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if host.ip is not None:
        if wildcard:
            raise ValueError(f"{text!r}: '*.' applies to host names only")
        return AllowEntry(network=ipaddress.ip_network(host.ip), port=port)
    return AllowEntry(name=f"*.{host.name}" if wildcard else host.name, port=port)


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Public addresses are allowed; internal ones only through the operator's allow-list."""

    allow: tuple[AllowEntry, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> UrlPolicy:
        """Build from allow-list text (raises ValueError naming a bad entry)."""
        return cls(tuple(parse_allow_entry(e) for e in entries if e.strip()))

    def allows_name(self, host: str, port: int) -> bool:
        """The operator allowed this host name (whatever it resolves to)."""
        return any(entry.matches_name(host, port) for entry in self.allow)

    def check_address(self, ip: IPAddress, *, host: str, port: int) -> None:
        """Raise UrlRefused unless the address is public or allow-listed."""
        if self.allows_name(host, port) or any(e.matches_address(ip, port) for e in self.allow):
            return
        reason = blocked_reason(ip)
        if reason is not None:
            where = "is" if host == ip.compressed else "resolves to"
            raise UrlRefused(f"host {host} {where} an internal address ({reason}): not allowed")
