"""CORS: the document's browser examples call the API from customers' own origins."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .responses import error

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
EXPOSE_HEADERS = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After"
PREFLIGHT_MAX_AGE = "86400"


class CORSMiddleware:
    """Never with credentials: tokens travel in Authorization, not cookies.

    `open_paths` (the pageview endpoint, called by tracking snippets on any site)
    accept every origin whatever `origins` says.
    """

    def __init__(self, app: ASGIApp, origins: Iterable[str], open_paths: Iterable[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self._allow_origin(origin, scope["path"])
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(allowed, scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and allowed:
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = allowed
                response_headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
                if allowed != "*":
                    response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _allow_origin(self, origin: str, path: str) -> str | None:
        if "*" in self.origins or path in self.open_paths:
            return "*"
        return origin if origin in self.origins else None

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
