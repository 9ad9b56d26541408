"""The two hot endpoints served in front of Starlette's per-request stack.

Measured on this machine (bench/): a request that waits on Redis inside Starlette's
middleware stack costs about 17 us more CPU than the same wait in plain ASGI, and a
plain ASGI app answers in 30 us what a bare Starlette route answers in 43 us. So a
GET of /api/v1/realtime or a POST of /api/v1/pageview is served here directly, with
the same CORS policy and error mapping as the Starlette app behind, which serves
everything else (preflights, HEAD, 404, 405).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..storage.connection import StorageError
from .asgi import NOSNIFF, error_body, respond
from .cors import CorsPolicy

log = logging.getLogger("realtime_visitors")

UNAVAILABLE = error_body("Service unavailable")
UNAVAILABLE_HEADERS = ((b"retry-after", b"1"),)
INTERNAL = error_body("Internal server error")


class FastLane:
    def __init__(
        self, app: ASGIApp, routes: dict[tuple[str, str], ASGIApp], cors: CorsPolicy
    ) -> None:
        self.app = app
        self.routes = routes  # (method, path) -> endpoint
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.routes.get((scope.get("method", ""), scope.get("path", "")))
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if endpoint is None:
            await self.app(scope, receive, with_nosniff(send))
            return
        for name, value in scope["headers"]:
            if name == b"origin":
                allowed = self.cors.allow(value.decode("latin-1"), scope["path"])
                if allowed is not None:
                    send = self.cors.wrap(send, allowed)
                break
        try:
            await endpoint(scope, receive, send)
        except StorageError as exc:
            log_unavailable(exc)
            await respond(send, 503, UNAVAILABLE, UNAVAILABLE_HEADERS)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            await respond(send, 500, INTERNAL)


def with_nosniff(send: Send) -> Send:
    """Every response is JSON: browsers must never sniff it into something else."""

    async def send_with_nosniff(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if not any(name == NOSNIFF[0] for name, _ in headers):  # respond() sent it
                message["headers"] = [*headers, NOSNIFF]
        await send(message)

    return send_with_nosniff


_unavailable = {"logged_at": 0.0, "since": 0}


def log_unavailable(exc: StorageError) -> None:
    """One line a second at most: an outage under load fails thousands of requests."""
    now = time.monotonic()
    if now - _unavailable["logged_at"] < 1.0:
        _unavailable["since"] += 1
        return
    more = (
        f" ({_unavailable['since']:.0f} more since the last line)" if _unavailable["since"] else ""
    )
    log.warning("redis unavailable: %s%s", exc, more)
    _unavailable.update(logged_at=now, since=0)
