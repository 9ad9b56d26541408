"""The JSON of websites and tokens: one shape for the command line's --json and the
admin API, so the two cannot drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .sites import NewToken, Site, TokenInfo


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def site_json(site: Site, current_visitors: int | None = None) -> dict[str, Any]:
    """A website; with its live count when the caller read it (a listing does not)."""
    shown: dict[str, Any] = {
        "websiteId": site.website_id,
        "name": site.name,
        "plan": site.plan,
        "created": iso(site.created_ms),
    }
    if current_visitors is not None:
        shown["currentVisitors"] = current_visitors
    return shown


def created_site_json(site: Site, token: NewToken) -> dict[str, Any]:
    """A new website with its first token: the secret, shown this once."""
    return {
        "websiteId": site.website_id,
        "token": token.token,
        "tokenId": token.token_id,
        "plan": site.plan,
    }


def new_token_json(website_id: str, token: NewToken) -> dict[str, Any]:
    return {
        "websiteId": website_id,
        "tokenId": token.token_id,
        "token": token.token,
        "kind": token.kind,
        "origins": list(token.origins),
    }


def token_json(info: TokenInfo) -> dict[str, Any]:
    return {
        "tokenId": info.token_id,
        "created": iso(info.created_ms),
        "kind": info.kind,
        "origins": list(info.origins),
    }
