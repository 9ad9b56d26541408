"""GET /script.js: the tracker site owners paste, served from the package's web/ folder.

The file is served byte for byte as it is in the repository: readable, and small
enough gzipped (tests/test_tracker.py measures it) to need no build step.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

PATH = "/script.js"
MEDIA_TYPE = "text/javascript; charset=utf-8"
# An hour: a new version reaches every site within the hour, and revalidating after
# that costs a 304 thanks to the ETag.
CACHE_CONTROL = "public, max-age=3600"

# Read once at import: a wheel that lacks the file fails at start, not on a request.
BODY = (files("realtime_visitors") / "web" / "script.js").read_bytes()
# Strong: the same bytes, always the same tag, whichever process answers.
ETAG = '"' + hashlib.sha256(BODY).hexdigest()[:32] + '"'
# No CORS header of its own: a <script> tag needs none, and a `crossorigin` one gets
# the app's CORS middleware answer (every origin under the default RTV_CORS_ORIGINS).
HEADERS = {"ETag": ETAG, "Cache-Control": CACHE_CONTROL}


async def endpoint(request: Request) -> Response:
    if matches(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=HEADERS)
    return Response(BODY, media_type=MEDIA_TYPE, headers=HEADERS)


def matches(if_none_match: str) -> bool:
    """RFC 9110: If-None-Match compares weakly, so a W/ tag a proxy made still matches."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return ETAG in tags or "*" in tags
