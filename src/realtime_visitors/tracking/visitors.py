"""Who is behind a pageview: client address, crawler check, visitor identity."""

from __future__ import annotations

import hashlib
import ipaddress

from ..config import IPNetwork
from ..storage.store import Visitor
from .crawlers import MAX_AGENT, is_crawler

MAX_VISITOR_ID = 128


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """The peer's address, or behind trusted proxies the nearest untrusted X-Forwarded-For hop."""
    address = peer or ""
    if not forwarded_for or not _is_trusted(address, trusted):
        return address
    # Read from the right: every hop we trust appended the address it saw; the
    # first one we do not trust is the client (anything left of it can be forged).
    for hop in reversed(forwarded_for.split(",")):
        address = hop.strip()
        if not _is_trusted(address, trusted):
            break
    return address


def client_tag(ip: str) -> str:
    """A short hash of the client address, for per-address counters."""
    return hashlib.blake2b(ip.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def identify(visitor_id: str | None, ip: str, user_agent: str) -> Visitor:
    if is_crawler(user_agent):
        return Visitor("n")
    if visitor_id:
        return Visitor("v", visitor_id)
    return Visitor("a", ip, user_agent[:MAX_AGENT])


def _is_trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
