"""The key schema: the only place that builds Redis key names.

Every key of one website carries the hash tag `{websiteId}`, so all keys a script
touches live in one Redis Cluster slot.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

PREFIX = "rtv"

# Letters, digits, `-`, `_`, `.`: nothing that could close a hash tag, split a key
# name or change meaning under percent-decoding.
WEBSITE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class SiteKeys(NamedTuple):
    # hash: name, plan, created (ms); bucket, bucket_ts: the rate-limit bucket; and
    # per API token, its SHA-256 hex digest -> "<token id>:<created ms>". One hash, so
    # that the realtime script learns all it needs in one HMGET.
    site: str
    visitors: str  # sorted set: visitor member -> ms of that visitor's latest pageview
    salt: str  # string "<day>:<secret>": today's salt for cookieless visitor ids
    # What is kept of each visitor in the window, and how it is counted: see
    # lua/lib/breakdowns.lua. All expire with the visitors zset.
    details: str  # hash: member -> "<country>\t<source>\t<page>"
    pages: str  # sorted set, scores 0: "<page>\0<13-digit ms><member>", by page then time
    by_page: str  # sorted set: page -> visitors whose latest pageview is on it
    by_source: str  # sorted set: source -> visitors whose visit came from it
    by_country: str  # sorted set: country -> visitors from it
    history: str  # hash: "p<minute>" pageviews, "v<minute>" visitors, "oldest" minute kept
    # hash: per publishable key, its SHA-256 hex digest -> "<token id>:<created ms>:<origins>"
    # (origins space-separated, "" for any). Apart from the site hash, so that a public
    # key can never pass for a secret token in lib/authorize.lua.
    public: str

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(self)


class ClientKeys(NamedTuple):
    new_visitors: str  # counter: new visitors counted from the address this window
    failures: str  # counter: failed authentications from the address this minute


def is_valid_website_id(website_id: str) -> bool:
    return WEBSITE_ID.fullmatch(website_id) is not None


@lru_cache(maxsize=4096)  # every request needs them; a busy website asks again and again
def site_keys(website_id: str) -> SiteKeys:
    if not is_valid_website_id(website_id):
        raise ValueError(f"not a website id: {website_id!r}")
    tag = f"{PREFIX}:{{{website_id}}}"
    return SiteKeys(
        site=f"{tag}:site",
        visitors=f"{tag}:visitors",
        salt=f"{tag}:salt",
        details=f"{tag}:details",
        pages=f"{tag}:pages",
        by_page=f"{tag}:by:page",
        by_source=f"{tag}:by:source",
        by_country=f"{tag}:by:country",
        history=f"{tag}:history",
        public=f"{tag}:public",
    )


SITE_PATTERN = f"{PREFIX}:{{*}}:site"


def website_id_of_site_key(key: str) -> str:
    return key[len(PREFIX) + 2 : -len("}:site")]


def client_keys(website_id: str, client: str) -> ClientKeys:
    """Per website and client address (a hash of it: no address is stored in clear)."""
    tag = f"{PREFIX}:{{{website_id}}}"
    return ClientKeys(
        new_visitors=f"{tag}:client:{client}:new", failures=f"{tag}:client:{client}:fails"
    )


def website_pattern(website_id: str) -> str:
    """SCAN pattern of every key of a website (ids hold no glob characters)."""
    return f"{PREFIX}:{{{website_id}}}:*"
