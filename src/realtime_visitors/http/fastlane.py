"""The two hot endpoints served in front of Starlette's per-request stack.

Measured on this machine (bench/): a request that waits on Redis inside Starlette's
middleware stack costs about 17 us more CPU than the same wait in plain ASGI, and a
plain ASGI app answers in 30 us what a bare Starlette route answers in 43 us. So a
GET of /api/v1/realtime or a POST of /api/v1/pageview is served here directly, with
the same CORS policy and error mapping as the Starlette app behind, which serves
everything else (preflights, HEAD, 404, 405).

Every request passes here, so here it is observed, once, for both the metrics and the
access log (observe.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..storage.connection import StorageError
from .asgi import NOSNIFF, error_body, respond
from .cors import CorsPolicy
from .observe import Observer

log = logging.getLogger("realtime_visitors")

UNAVAILABLE = error_body("Service unavailable")
UNAVAILABLE_HEADERS = ((b"retry-after", b"1"),)
INTERNAL = error_body("Internal server error")


class FastLane:
    def __init__(
        self,
        app: ASGIApp,
        routes: dict[tuple[str, str], ASGIApp],
        cors: CorsPolicy,
        observer: Observer | None = None,
    ) -> None:
        self.app = app
        self.routes = routes  # (method, path) -> endpoint
        self.cors = cors
        self.observer = observer  # None: neither metrics nor access log
        self.metrics = observer.metrics if observer is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request passes here: the one observation that both the metrics and
        # the access log take from, its cost paid once. Taken in this very function:
        # a wrapping coroutine cost 0.2 us more a request (bench/observability.py).
        observer = self.observer
        status, started = 500, 0.0  # 500: what uvicorn answers for a failed app
        if observer is not None:
            started = perf_counter()
            unobserved = send

            def observed(message: Message) -> Awaitable[None]:
                # Not a coroutine of its own: `send`'s is awaited directly.
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                return unobserved(message)

            send = observed
        try:
            endpoint = self.routes.get((scope["method"], scope["path"]))
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
                if self.metrics is not None:
                    self.metrics.redis_error()
                log_unavailable(exc)
                await respond(send, 503, UNAVAILABLE, UNAVAILABLE_HEADERS)
            except Exception:
                log.exception("unexpected error on %s %s", scope["method"], scope["path"])
                await respond(send, 500, INTERNAL)
        finally:
            if observer is not None:
                observer.done(scope["method"], scope["path"], status, started)


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
