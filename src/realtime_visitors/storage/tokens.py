"""API tokens: generated once, shown once, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "vt_"  # noqa: S105 (a prefix, not a secret)
# Publishable keys: read-only, meant to be seen in a web page. The prefix tells them
# apart before any lookup, so a public key never reaches a secret token's checks.
PUBLIC_PREFIX = "vt_pub_"
TOKEN_ID_PREFIX = "tok_"  # noqa: S105 (a token id is no secret)

DIGEST_LENGTH = 64  # SHA-256 in hex


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_public_key() -> str:
    return PUBLIC_PREFIX + secrets.token_urlsafe(32)


def is_public(token: str) -> bool:
    return token.startswith(PUBLIC_PREFIX)


def new_token_id() -> str:
    return TOKEN_ID_PREFIX + secrets.token_hex(4)


def digest(token: str) -> str:
    # A plain hash is enough: tokens carry 256 random bits, so there is nothing to
    # brute-force and no need for a slow password hash on every request.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
