"""The browser files, served from the package's web/ folder: the tracker site owners
paste (/script.js), the live-counter widget (/widget.js) and the dashboard.

Each file is served byte for byte as it is in the repository: readable, and small
enough gzipped (the tests measure it) to need no build step.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

JAVASCRIPT = "text/javascript; charset=utf-8"
# An hour for what other sites embed: a new version reaches every site within the
# hour, and revalidating after that costs a 304 thanks to the ETag.
EMBEDDED = "public, max-age=3600"
# The dashboard revalidates every time (a 304): an upgrade shows at the next load.
REVALIDATE = "no-cache"
# The dashboard holds a secret token: nothing but its own files and API, no framing,
# no referrer.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
}


class Asset:
    """One file of web/, with a strong ETag: the same bytes, always the same tag,
    whichever process answers."""

    def __init__(
        self,
        path: str,
        name: str,
        media_type: str,
        cache_control: str = EMBEDDED,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.media_type = media_type
        # Read once at import: a wheel that lacks the file fails at start, not on a request.
        self.body = (files("realtime_visitors") / "web" / name).read_bytes()
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'
        # No CORS header of its own: a <script> tag needs none, and a `crossorigin` one
        # gets the app's CORS middleware answer.
        self.headers = {"ETag": self.etag, "Cache-Control": cache_control, **(headers or {})}

    async def endpoint(self, request: Request) -> Response:
        if self.matches(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=self.headers)
        return Response(self.body, media_type=self.media_type, headers=self.headers)

    def matches(self, if_none_match: str) -> bool:
        """RFC 9110: If-None-Match compares weakly, so a W/ tag a proxy made still matches."""
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return self.etag in tags or "*" in tags


TRACKER = Asset("/script.js", "script.js", JAVASCRIPT)
WIDGET = Asset("/widget.js", "widget.js", JAVASCRIPT)
DASHBOARD = Asset(
    "/dashboard", "dashboard.html", "text/html; charset=utf-8", REVALIDATE, DASHBOARD_HEADERS
)
DASHBOARD_FILES = (
    DASHBOARD,
    Asset("/dashboard.css", "dashboard.css", "text/css; charset=utf-8", REVALIDATE),
    Asset("/dashboard.js", "dashboard.js", JAVASCRIPT, REVALIDATE),
)
ALL = (TRACKER, WIDGET, *DASHBOARD_FILES)
# Embedded in other sites' pages: every origin may fetch them, whatever RTV_CORS_ORIGINS.
OPEN = (TRACKER.path, WIDGET.path)
