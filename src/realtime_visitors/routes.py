"""The HTTP API: thin endpoints that parse, call the store and render."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .config import Settings
from .keys import is_valid_website_id
from .responses import JSONResponse, error
from .store import PageviewStatus, RealtimeResult, RealtimeStatus, Store
from .visitors import MAX_VISITOR_ID, client_ip, identify

AUTH_ERROR = "Missing or invalid authorization header. Expected: Bearer <token>"
MAX_BODY = 16 * 1024
OPTIONAL_FIELDS = ("url", "referrer", "visitorId")

# RFC 6750: the scheme is case-insensitive, the token is one token68.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Api:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def realtime(self, request: Request) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return error(401, AUTH_ERROR)
        ids = request.query_params.getlist("websiteId")
        if len(ids) > 1:
            return error(400, "websiteId must be given once")
        website_id = ids[0] if ids else ""
        if not website_id:
            return error(400, "websiteId is required")
        if not is_valid_website_id(website_id):
            return error(404, "Website not found")
        result = await self.store.realtime(website_id, token)
        if result.status is RealtimeStatus.NOT_FOUND:
            return error(404, "Website not found")
        if result.status is RealtimeStatus.INVALID_TOKEN:
            return error(401, "Invalid API token")
        headers = rate_limit_headers(result)
        if result.status is RealtimeStatus.RATE_LIMITED:
            headers["Retry-After"] = str(max(1, -(-result.retry_ms // 1000)))
            return error(429, "Rate limit exceeded", headers)
        body = {
            "currentVisitors": result.visitors,
            "websiteId": website_id,
            "timestamp": iso_timestamp(result.now_ms),
        }
        return JSONResponse(body, headers=headers)

    async def pageview(self, request: Request) -> Response:
        try:
            payload = await read_pageview(request)
        except BadRequest as exc:
            return error(exc.status, exc.message)
        website_id: str = payload["websiteId"]
        if not is_valid_website_id(website_id):
            return error(404, "Website not found")
        peer = request.client.host if request.client else None
        ip = client_ip(peer, request.headers.get("x-forwarded-for"), self.settings.trusted_proxies)
        visitor = identify(payload.get("visitorId"), ip, request.headers.get("user-agent", ""))
        status = await self.store.pageview(website_id, visitor)
        if status is PageviewStatus.NOT_FOUND:
            return error(404, "Website not found")
        return JSONResponse({"status": "accepted"}, status_code=202)


def bearer_token(header: str | None) -> str | None:
    match = _BEARER.fullmatch(header) if header else None
    return match.group(1) if match else None


def rate_limit_headers(result: RealtimeResult) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(result.remaining),
        "X-RateLimit-Reset": str(-(-result.reset_ms // 1000)),
    }


def iso_timestamp(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


async def read_pageview(request: Request) -> dict[str, Any]:
    # The body is JSON whatever Content-Type says: navigator.sendBeacon sends
    # text/plain (no CORS preflight), and `curl -d` sends a form type.
    body = await read_body(request)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest(400, "Request body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "Request body must be a JSON object")
    website_id = payload.get("websiteId")
    if website_id is None or website_id == "":
        raise BadRequest(400, "websiteId is required")
    if not isinstance(website_id, str):
        raise BadRequest(400, "websiteId must be a string")
    for field in OPTIONAL_FIELDS:
        if payload.get(field) is not None and not isinstance(payload[field], str):
            raise BadRequest(400, f"{field} must be a string")
    if len(payload.get("visitorId") or "") > MAX_VISITOR_ID:
        raise BadRequest(400, f"visitorId must be at most {MAX_VISITOR_ID} characters")
    return payload


async def read_body(request: Request) -> bytes:
    too_large = BadRequest(413, f"Request body must be at most {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
