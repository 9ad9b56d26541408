"""Reads by publishable key (vt_pub_...): checked against the shared live count, never
against the website's budget, so a key in every visitor's page costs nothing per view.

Every check is made in this process, on the count that `live.Counts` reads at most
once a second: the website exists, the key is one of its publishable keys (a revoked
key is refused within a second), the request comes from one of the key's origins, and
the client address is within its per-minute limit.
"""

from __future__ import annotations

import functools

from starlette.types import Scope, Send

from ..config import Settings
from ..live import AddressLimit, Counts
from ..live.counts import Key
from ..storage.store import LiveCount
from ..storage.tokens import digest
from .asgi import Headers, error_body, header, respond
from .cors import EXPOSE_HEADERS
from .routes import INVALID_TOKEN, NOT_FOUND, RATE_LIMITED, client_address, retry_after

WRONG_ORIGIN = error_body("This key cannot be used from this origin")


class PublicReads:
    def __init__(self, settings: Settings, counts: Counts) -> None:
        self.settings = settings
        self.counts = counts
        self.limit = AddressLimit(settings.public_reads_per_minute)

    async def admit(
        self, scope: Scope, send: Send, website_id: str, key: str, path: str, window_ms: int
    ) -> LiveCount | None:
        """The live count when this key may read it; otherwise None, the refusal sent.

        Raises StorageError (503) when the count cannot be read.
        """
        wait = self.limit.wait(client_address(scope, self.settings))
        if wait:
            await respond(send, 429, RATE_LIMITED, (retry_after(int(wait * 1000)), *ANY_ORIGIN))
            return None
        count = await self.counts.latest(Key(website_id, path, window_ms))
        origins = count.public_keys.get(key_digest(key))
        # Refusals are readable from any origin, whatever RTV_CORS_ORIGINS says: they
        # hold nothing secret, and a widget must tell a refusal from a network error.
        if not count.found:
            await respond(send, 404, NOT_FOUND, ANY_ORIGIN)
        elif origins is None:
            await respond(send, 401, INVALID_TOKEN, ANY_ORIGIN)
        elif origins and origin_of(scope) not in origins:
            # No Origin at all is refused too: the key is bound to web pages.
            await respond(send, 403, WRONG_ORIGIN, ANY_ORIGIN)
        else:
            return count
        return None

    def cors(self, scope: Scope, count: LiveCount, key: str) -> Headers:
        """CORS from the key itself, whatever RTV_CORS_ORIGINS says: its own origins, or
        any origin for a key bound to none."""
        origins = count.public_keys.get(key_digest(key), ())
        if not origins:
            return [(b"access-control-allow-origin", b"*"), EXPOSE]
        allowed = (origin_of(scope) or "").encode("latin-1")
        return [(b"access-control-allow-origin", allowed), EXPOSE, (b"vary", b"Origin")]


EXPOSE = (b"access-control-expose-headers", EXPOSE_HEADERS)
ANY_ORIGIN = ((b"access-control-allow-origin", b"*"), EXPOSE)


def origin_of(scope: Scope) -> str | None:
    origin = header(scope, b"origin")
    return origin.decode("latin-1") if origin is not None else None


@functools.lru_cache(maxsize=4096)
def key_digest(key: str) -> str:
    """A key's digest, remembered: a page's widget sends the same key on every read."""
    return digest(key)
