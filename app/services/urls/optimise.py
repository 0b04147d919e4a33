"""Make a URL shorter and more canonical without changing what it points to:
drop tracking parameters, and use the canonical form of a few well-known hosts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import unquote_plus

from app.services.urls.host import Host
from app.services.urls.normalise import ParsedUrl, parse_url

TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "li_fat_id", "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl",
        "_hsenc", "_hsmi", "__hsfp", "__hssc", "__hstc", "mkt_tok", "oly_anon_id",
        "oly_enc_id", "vero_id", "vero_conv", "rb_clickid", "s_cid", "srsltid", "epik",
    }
)  # fmt: skip
# share markers that mean nothing on these hosts (and may mean something elsewhere)
HOST_PARAMS = {
    "youtube.com": frozenset({"si", "feature", "pp"}),
    "open.spotify.com": frozenset({"si", "context"}),
    "twitter.com": frozenset({"s", "t", "ref_src", "ref_url"}),
    "x.com": frozenset({"s", "t", "ref_src", "ref_url"}),
    "amazon": frozenset({"ref", "ref_", "tag", "psc", "pd_rd_i", "pd_rd_r", "pd_rd_w"}),
}
_YOUTU_BE_ID = re.compile(r"^/([A-Za-z0-9_-]{6,20})/?$")
_AMAZON_HOST = re.compile(r"^(?:www\.)?amazon\.(?:com|co\.uk|de|fr|it|es|ca|co\.jp|com\.au|in|nl)$")
_AMAZON_ITEM = re.compile(r"/(?:dp|gp/product)/([A-Z0-9]{10})(?:[/?]|$)")


def _param_name(pair: str) -> str:
    return unquote_plus(pair.partition("=")[0]).lower()


def _drop_params(url: ParsedUrl, extra: frozenset[str] = frozenset()) -> ParsedUrl:
    """Remove tracking parameters, keeping the order and spelling of every other one."""
    if url.query is None:
        return url
    kept = [
        pair
        for pair in url.query.split("&")
        if pair
        and not (name := _param_name(pair)).startswith(TRACKING_PREFIXES)
        and name not in TRACKING_PARAMS
        and name not in extra
    ]
    return url.with_query("&".join(kept))


def _site(host: str) -> str:
    """The key of HOST_PARAMS that applies to a host."""
    for domain in ("youtube.com", "open.spotify.com", "twitter.com", "x.com"):
        if host == domain or host.endswith("." + domain):
            return domain
    return "amazon" if _AMAZON_HOST.match(host) else ""


def _youtube(url: ParsedUrl) -> ParsedUrl:
    """`youtu.be/<id>` and `m.youtube.com` become `https://www.youtube.com/watch?v=<id>`."""
    if url.host.name == "youtu.be":
        match = _YOUTU_BE_ID.match(url.path)
        if match is None:
            return url
        query = f"v={match.group(1)}" + (f"&{url.query}" if url.query else "")
        url = replace(url, path="/watch", query=query)
    return replace(url, scheme="https", host=Host("www.youtube.com"), port=443)


def _wikipedia(url: ParsedUrl) -> ParsedUrl:
    """`en.m.wikipedia.org` (mobile) becomes `en.wikipedia.org`, over https."""
    language = url.host.name.split(".")[0]
    return replace(url, scheme="https", host=Host(f"{language}.wikipedia.org"), port=443)


def _amazon(url: ParsedUrl) -> ParsedUrl:
    """A product page is `https://www.amazon.<tld>/dp/<ASIN>`; the rest is slug and tracking."""
    match = _AMAZON_ITEM.search(url.path)
    if match is None:
        return url
    host = url.host.name if url.host.name.startswith("www.") else f"www.{url.host.name}"
    return ParsedUrl("https", Host(host), 443, f"/dp/{match.group(1)}")


_CANONICAL: list[tuple[Callable[[str], bool], Callable[[ParsedUrl], ParsedUrl]]] = [
    (lambda h: h in ("youtu.be", "youtube.com", "m.youtube.com", "www.youtube.com"), _youtube),
    (lambda h: bool(re.fullmatch(r"[a-z-]{2,12}\.m\.wikipedia\.org", h)), _wikipedia),
    (lambda h: bool(_AMAZON_HOST.match(h)), _amazon),
]


def optimise_url(text: str) -> str:
    """The normalised URL without tracking parameters, in its canonical form where known."""
    url = parse_url(text)
    if url.port == {"http": 80, "https": 443}[url.scheme]:
        for matches, canonical in _CANONICAL:
            if matches(url.host.name):
                url = canonical(url)
                break
    url = _drop_params(url, HOST_PARAMS.get(_site(url.host.name), frozenset()))
    return url.url()
