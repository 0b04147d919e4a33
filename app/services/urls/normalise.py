"""Parse and normalise http(s) URLs the way browsers read them, into one canonical string.

The guard checks the parsed form and the fetcher sends exactly that form, so no second
parser (with different opinions about `\\`, `@` or odd IP notations) ever sees the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from app.services.urls.errors import UrlError, UrlRefused
from app.services.urls.host import Host, parse_host

MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_STRIP = "".join(chr(c) for c in range(0x21))  # C0 controls and space, trimmed at both ends
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUB_DELIMS = frozenset("!$&'()*+,;=")
PATH_SAFE = _UNRESERVED | _SUB_DELIMS | frozenset(":@/")
QUERY_SAFE = PATH_SAFE | frozenset("?")
SEGMENT_SAFE = PATH_SAFE - {"/"}
FRAGMENT_SAFE = QUERY_SAFE | {"#"}
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_DOT = frozenset({".", "%2e"})
_DOTDOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A normalised http(s) URL: lowercase scheme and host, explicit port, encoded path."""

    scheme: str
    host: Host
    port: int
    path: str
    query: str | None = None
    fragment: str | None = None

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: what decides whether credentials may follow a redirect."""
        return (self.scheme, self.host.name, self.port)

    @property
    def netloc(self) -> str:
        """`host` or `host:port` (default ports are left out)."""
        default = DEFAULT_PORTS[self.scheme]
        return self.host.url_form + ("" if self.port == default else f":{self.port}")

    def url(self, *, fragment: bool = True) -> str:
        """The canonical URL text (the fragment is never sent over the wire)."""
        text = f"{self.scheme}://{self.netloc}{self.path}"
        if self.query is not None:
            text += f"?{self.query}"
        if fragment and self.fragment is not None:
            text += f"#{self.fragment}"
        return text

    def with_query(self, query: str | None) -> ParsedUrl:
        """The same URL with another (already encoded) query; empty means none."""
        return replace(self, query=query or None)

    def __str__(self) -> str:
        return self.url()


def encode_component(text: str, *, safe: frozenset[str]) -> str:
    """Percent-encode what `safe` does not allow; existing escapes get uppercase hex, and
    escapes of unreserved characters are decoded (`%7E` -> `~`)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "%":
            pair = text[index + 1 : index + 3]
            if len(pair) == 2 and set(pair) <= _HEXDIGITS:
                decoded = chr(int(pair, 16))
                out.append(decoded if decoded in _UNRESERVED else f"%{pair.upper()}")
                index += 3
                continue
            out.append("%25")
        elif char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        index += 1
    return "".join(out)


def _normalise_path(raw: str) -> str:
    """Resolve `.`/`..` segments (also as `%2e`), then encode each segment."""
    segments: list[str] = []
    parts = raw.replace("\\", "/").split("/")[1:] if raw else [""]
    for position, segment in enumerate(parts):
        last = position == len(parts) - 1
        lowered = segment.lower()
        if lowered in _DOTDOT:
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif lowered in _DOT:
            if last:
                segments.append("")
        else:
            segments.append(encode_component(segment, safe=SEGMENT_SAFE))
    return "/" + "/".join(segments)


def _split_authority(rest: str) -> tuple[str, str]:
    """`authority` and everything after it; `\\` ends the authority as `/` does."""
    end = len(rest)
    for stop in "/\\?#":
        found = rest.find(stop)
        if found != -1:
            end = min(end, found)
    return rest[:end], rest[end:]


def _host_and_port(authority: str, scheme: str) -> tuple[Host, int]:
    if "@" in authority:
        raise UrlError("credentials (user@host) are not allowed in URLs")
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise UrlError("unterminated IPv6 address in host")
        host_text, after = authority[: close + 1], authority[close + 1 :]
        if after and not after.startswith(":"):
            raise UrlError("unexpected text after the IPv6 address")
        port_text = after[1:] if after else ""
    else:
        host_text, _, port_text = authority.partition(":")
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise UrlError("the port must be a number")
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UrlError("the port must be between 1 and 65535")
    return parse_host(host_text), port


def parse_url(text: str) -> ParsedUrl:
    """Parse and normalise an absolute http(s) URL, or raise UrlError saying what is wrong."""
    if not isinstance(text, str):
        raise UrlError("a URL must be a string")
    text = text.strip(_STRIP)
    text = text.replace("\t", "").replace("\n", "").replace("\r", "")
    if len(text) > MAX_URL_LENGTH:
        raise UrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    match = _SCHEME.match(text)
    if match is None:
        raise UrlError("not an absolute URL (it must start with http:// or https://)")
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"scheme {scheme!r} is not allowed (only http and https)")
    rest = text[match.end() :].lstrip("/\\")
    authority, remainder = _split_authority(rest)
    host, port = _host_and_port(authority, scheme)
    remainder, hash_mark, fragment = remainder.partition("#")
    path, question, query = remainder.partition("?")
    return ParsedUrl(
        scheme=scheme,
        host=host,
        port=port,
        path=_normalise_path(path),
        query=(encode_component(query, safe=QUERY_SAFE) or None) if question else None,
        fragment=(encode_component(fragment, safe=FRAGMENT_SAFE) or None) if hash_mark else None,
    )


def normalise_url(text: str) -> str:
    """The canonical text of an http(s) URL (see `parse_url`)."""
    return parse_url(text).url()


def resolve_reference(base: ParsedUrl, reference: str) -> ParsedUrl:
    """Resolve a redirect's `Location` against the URL that sent it (browser rules)."""
    ref = reference.strip(_STRIP).replace("\t", "").replace("\n", "").replace("\r", "")
    if _SCHEME.match(ref):
        return parse_url(ref)
    origin = f"{base.scheme}://{base.netloc}"
    if ref[:2] in ("//", "\\\\", "/\\", "\\/"):
        return parse_url(f"{base.scheme}:{ref}")
    if ref.startswith(("/", "\\")):
        return parse_url(origin + ref)
    if ref.startswith("?"):
        return parse_url(origin + base.path + ref)
    if ref.startswith("#") or not ref:
        return parse_url(base.url(fragment=False) + ref)
    directory = base.path.rsplit("/", 1)[0]
    return parse_url(f"{origin}{directory}/{ref}")
