"""CORS: the document's browser examples call the API from customers' own origins.

Never with credentials: tokens travel in Authorization, not in cookies.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import error

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = b"X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
PREFLIGHT_MAX_AGE = "86400"
ALLOW_ORIGIN = b"access-control-allow-origin"


class CorsPolicy:
    """Which origins may read which paths; `open_paths` accept every origin, and the
    paths under `closed_prefixes` (for servers, not browsers) none, whatever `origins`."""

    def __init__(
        self,
        origins: Iterable[str],
        open_paths: Iterable[str],
        closed_prefixes: Iterable[str] = (),
    ) -> None:
        self.origins = frozenset(origins)
        self.open_paths = frozenset(open_paths)
        self.closed_prefixes = tuple(closed_prefixes)

    def closed(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.closed_prefixes)

    def allow(self, origin: str, path: str) -> str | None:
        """The Access-Control-Allow-Origin value for this origin, or None: refused."""
        if self.closed(path):
            return None
        if "*" in self.origins or path in self.open_paths:
            return "*"
        return origin if origin in self.origins else None

    def wrap(self, send: Send, allowed: str) -> Send:
        """`send`, adding the CORS headers to the response."""
        extra = [
            (ALLOW_ORIGIN, allowed.encode("latin-1")),
            (b"access-control-expose-headers", EXPOSE_HEADERS),
        ]
        if allowed != "*":
            extra.append((b"vary", b"Origin"))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # A public key's answer carries the key's own CORS headers (public.py).
                if not any(name == ALLOW_ORIGIN for name, _ in headers):
                    message["headers"] = [*headers, *extra]
            await send(message)

        return send_with_cors


class CORSMiddleware:
    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"]) if scope["type"] == "http" else {}
        origin = headers.get(b"origin")
        # A closed path answers a preflight as any OPTIONS, without CORS headers.
        if origin is None or self.policy.closed(scope["path"]):
            await self.app(scope, receive, send)
            return
        allowed = self.policy.allow(origin.decode("latin-1"), scope["path"])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(allowed, scope, receive, send)
        elif allowed is None:
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, self.policy.wrap(send, allowed))

    async def _preflight(
        self, allowed: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if allowed is None:
            await error(403, "Origin not allowed")(scope, receive, send)
            return
        headers = {
            "Access-Control-Allow-Origin": allowed,
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        }
        if allowed != "*":
            headers["Vary"] = "Origin"
        await Response(status_code=204, headers=headers)(scope, receive, send)
