"""Where a pageview was: its page's path, its visit's source and the visitor's country."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from iptocc import country_code

from ..storage.store import Where

MAX_PATH = 256  # bytes
MAX_HOST = 253  # bytes: the longest DNS name
MAX_CACHED_URL = 1024  # longer urls are rare, and would let a sender fill the cache
NO_PAGE = "(unknown)"  # a pageview without a url; no path starts with "("
DIRECT = "direct"
UNKNOWN_COUNTRY = "unknown"
# One page, one spelling (RFC 3986 6.2.2): an escaped unreserved character is decoded,
# other escapes keep their meaning (%2F is not "/") in upper case, and every byte that
# may not stand in a path (a stray "%", a space, UTF-8) is escaped.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_TOKEN = re.compile(rb"%[0-9A-Fa-f]{2}|[^A-Za-z0-9\-._~!$&'()*+,;=:@/]")


def _one_spelling(match: re.Match[bytes]) -> bytes:
    token = match.group()
    if len(token) == 3:
        byte = int(token[1:], 16)
        return bytes((byte,)) if byte in _UNRESERVED else token.upper()
    return b"%%%02X" % token[0]


def locate(url: str | None, referrer: str | None, ip: str) -> Where:
    return Where(
        page=page_of(url), source=source_of(referrer, host_of(url)), country=country_of(ip)
    )


def host_of(url: str | None) -> str:
    """The url's host without "www.", or "" for none.

    Referrers differ in their path and query (a search's terms) but come from few
    hosts: the authority is cut out of the string and only it is parsed, once."""
    if not url:
        return ""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme.isascii():
        return ""
    for end in "/?#\\":
        rest = rest.partition(end)[0]
    return _host_of_authority(rest) if len(rest) <= MAX_CACHED_URL else ""


@lru_cache(maxsize=4096)
def _host_of_authority(authority: str) -> str:
    parts = _split("//" + authority)
    return _host(parts.hostname) if parts else ""


def page_of(url: str | None) -> str:
    """The url's path, without query or fragment, in one spelling, at most 256 bytes."""
    if url and len(url) <= MAX_CACHED_URL:
        return _cached_page_of(url)
    return _page_of(url)


@lru_cache(maxsize=4096)  # a busy site sends the same few urls again and again
def _cached_page_of(url: str) -> str:
    return _page_of(url)


def _page_of(url: str | None) -> str:
    parts = _split(url)
    if parts is None:
        return NO_PAGE
    raw = parts.path.encode("utf-8", "surrogateescape")
    path = _PATH_TOKEN.sub(_one_spelling, raw).decode("ascii") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > MAX_PATH:
        # Cut before a "%XX" triple rather than through it.
        cut = path.rfind("%", MAX_PATH - 2, MAX_PATH)
        path = path[: cut if cut != -1 else MAX_PATH]
    return path


def source_of(referrer: str | None, own_host: str) -> str:
    """The referrer's host without "www."; "direct" for none or the site itself."""
    host = host_of(referrer)
    if not host or host == own_host:
        return DIRECT
    return host


def country_of(ip: str) -> str:
    """ISO 3166-1 alpha-2 code from the registries' allocations; "unknown" if none."""
    try:
        if ":" in ip and "." in ip:  # "::ffff:8.8.8.8" from a dual-stack socket
            mapped = ipaddress.IPv6Address(ip).ipv4_mapped
            ip = str(mapped) if mapped else ip
        code = country_code(ip)
    except (TypeError, ValueError):
        return UNKNOWN_COUNTRY
    return code if isinstance(code, str) and len(code) == 2 else UNKNOWN_COUNTRY


def _split(url: str | None) -> SplitResult | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a malformed port, like hostname on bad IPv6
    except ValueError:
        return None
    return parts


def _host(hostname: str | None) -> str:
    host = (hostname or "").rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if len(host.encode("utf-8", "surrogateescape")) > MAX_HOST or "\t" in host or "\0" in host:
        return ""
    return host
