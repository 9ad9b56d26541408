"""The two endpoints of the API: parse, one store call, render."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from .asgi import BodyTooLarge, error_body, header, read_body, respond
from .config import Settings
from .keys import WEBSITE_ID, is_valid_website_id
from .store import PageviewStatus, RealtimeResult, RealtimeStatus, Store
from .visitors import MAX_VISITOR_ID, client_ip, client_tag, identify

AUTH_ERROR = "Missing or invalid authorization header. Expected: Bearer <token>"
MAX_BODY = 16 * 1024
OPTIONAL_FIELDS = ("url", "referrer", "visitorId")

# RFC 6750: the scheme is case-insensitive, the token is one token68.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *")
# The query every client sends, read without a general parser.
_PLAIN_QUERY = re.compile(b"websiteId=(%s)" % WEBSITE_ID.pattern.encode())

MISSING_AUTH = error_body(AUTH_ERROR)
MISSING_ID = error_body("websiteId is required")
REPEATED_ID = error_body("websiteId must be given once")
NOT_FOUND = error_body("Website not found")
INVALID_TOKEN = error_body("Invalid API token")
RATE_LIMITED = error_body("Rate limit exceeded")
TOO_MANY_FAILURES = error_body("Too many failed authentication attempts")
ACCEPTED = orjson.dumps({"status": "accepted"})
NOT_JSON = "Request body must be a JSON object"
TOO_LARGE = error_body(f"Request body must be at most {MAX_BODY} bytes")


class BadPageview(ValueError):
    pass


class Realtime:
    """GET /api/v1/realtime?websiteId=ID with `Authorization: Bearer <token>`."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = bearer_token(header(scope, b"authorization"))
        if token is None:
            await respond(send, 401, MISSING_AUTH)
            return
        query: bytes = scope["query_string"]
        plain = _PLAIN_QUERY.fullmatch(query)
        if plain:
            website_id = plain.group(1).decode()
        else:
            ids = [
                value
                for name, value in parse_qsl(query.decode("latin-1"), True)
                if name == "websiteId"
            ]
            if len(ids) > 1:
                await respond(send, 400, REPEATED_ID)
                return
            website_id = ids[0] if ids else ""
            if not website_id:
                await respond(send, 400, MISSING_ID)
                return
            if not is_valid_website_id(website_id):
                await respond(send, 404, NOT_FOUND)
                return
        client = client_tag(client_address(scope, self.settings))
        result = await self.store.realtime(website_id, token, client)
        status = result.status
        if status is RealtimeStatus.OK:
            body = b'{"currentVisitors":%d,"websiteId":"%s","timestamp":"%s"}' % (
                result.visitors,
                website_id.encode(),  # letters, digits, "-", "_", ".": nothing to escape
                iso_timestamp(result.now_ms).encode(),
            )
            await respond(send, 200, body, rate_limit_headers(result))
        elif status is RealtimeStatus.RATE_LIMITED:
            headers = rate_limit_headers(result)
            headers.append(retry_after(result.retry_ms))
            await respond(send, 429, RATE_LIMITED, headers)
        elif status is RealtimeStatus.INVALID_TOKEN:
            await respond(send, 401, INVALID_TOKEN)
        elif status is RealtimeStatus.TOO_MANY_FAILURES:
            await respond(send, 429, TOO_MANY_FAILURES, (retry_after(result.retry_ms),))
        else:
            await respond(send, 404, NOT_FOUND)


class Pageview:
    """POST /api/v1/pageview with a JSON body."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            payload = parse_pageview(await read_body(scope, receive, MAX_BODY))
        except BodyTooLarge:
            await respond(send, 413, TOO_LARGE)
            return
        except BadPageview as exc:
            await respond(send, 400, error_body(str(exc)))
            return
        website_id: str = payload["websiteId"]
        if not is_valid_website_id(website_id):
            await respond(send, 404, NOT_FOUND)
            return
        ip = client_address(scope, self.settings)
        agent = (header(scope, b"user-agent") or b"").decode("latin-1")
        visitor = identify(payload.get("visitorId"), ip, agent)
        status = await self.store.pageview(website_id, visitor, client_tag(ip))
        if status is PageviewStatus.NOT_FOUND:
            await respond(send, 404, NOT_FOUND)
        else:
            await respond(send, 202, ACCEPTED)


def client_address(scope: Scope, settings: Settings) -> str:
    peer = scope["client"][0] if scope.get("client") else None
    if not settings.trusted_proxies:
        return peer or ""
    forwarded = header(scope, b"x-forwarded-for")
    return client_ip(
        peer, forwarded.decode("latin-1") if forwarded else None, settings.trusted_proxies
    )


def bearer_token(header: bytes | str | None) -> str | None:
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    match = _BEARER.fullmatch(text)
    return match.group(1) if match else None


def retry_after(ms: int) -> tuple[bytes, bytes]:
    """Whole seconds, rounded up, and never 0: "now" would invite an instant retry."""
    return (b"retry-after", b"%d" % max(1, -(-ms // 1000)))


def rate_limit_headers(result: RealtimeResult) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", b"%d" % result.limit),
        (b"x-ratelimit-remaining", b"%d" % result.remaining),
        (b"x-ratelimit-reset", b"%d" % -(-result.reset_ms // 1000)),
    ]


_second: list[Any] = [-1, ""]


def iso_timestamp(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    # Most requests fall in the same second as the one before: format it once.
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{millis:03d}Z"


def parse_pageview(body: bytes) -> dict[str, Any]:
    # The body is JSON whatever Content-Type says: navigator.sendBeacon sends
    # text/plain (no CORS preflight), and `curl -d` sends a form type.
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPageview(NOT_JSON) from None
    if not isinstance(payload, dict):
        raise BadPageview(NOT_JSON)
    website_id = payload.get("websiteId")
    if website_id is None or website_id == "":
        raise BadPageview("websiteId is required")
    if not isinstance(website_id, str):
        raise BadPageview("websiteId must be a string")
    for field in OPTIONAL_FIELDS:
        if payload.get(field) is not None and not isinstance(payload[field], str):
            raise BadPageview(f"{field} must be a string")
    if len(payload.get("visitorId") or "") > MAX_VISITOR_ID:
        raise BadPageview(f"visitorId must be at most {MAX_VISITOR_ID} characters")
    return payload
