"""The endpoints of the API: parse, one store call, render."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from ..config import Settings
from ..ops.metrics import Metrics
from ..storage.keys import WEBSITE_ID, is_valid_website_id
from ..storage.store import HISTORY_MINUTES, PageviewStatus, RealtimeResult, RealtimeStatus, Store
from ..storage.tokens import PUBLIC_PREFIX, is_public
from ..tracking.visitors import MAX_VISITOR_ID, client_ip, client_tag, identify
from ..tracking.where import locate, page_of
from .asgi import BodyTooLarge, Headers, error_body, header, read_body, respond

if TYPE_CHECKING:
    from .public import PublicReads

log = logging.getLogger("realtime_visitors")

AUTH_ERROR = "Missing or invalid authorization header. Expected: Bearer <token>"
MAX_BODY = 16 * 1024
OPTIONAL_FIELDS = ("url", "referrer", "visitorId")

# RFC 6750: the scheme is case-insensitive, the token is one token68.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9._~+/-]+=*) *")
# The query every client sends, read without a general parser.
_PLAIN_QUERY = re.compile(b"websiteId=(%s)" % WEBSITE_ID.pattern.encode())
# ... and the one a web page's widget sends with its publishable key (base64url).
_PUBLIC_QUERY = re.compile(
    b"websiteId=(%s)&key=(%s[A-Za-z0-9_-]+)" % (WEBSITE_ID.pattern.encode(), PUBLIC_PREFIX.encode())
)

BREAKDOWNS = ("page", "source", "country")
DEFAULT_ITEMS, MAX_ITEMS = 10, 100
DEFAULT_MINUTES, MAX_MINUTES = 30, HISTORY_MINUTES

MISSING_AUTH = error_body(AUTH_ERROR)
MISSING_ID = error_body("websiteId is required")
REPEATED_ID = error_body("websiteId must be given once")
NOT_FOUND = error_body("Website not found")
INVALID_TOKEN = error_body("Invalid API token")
RATE_LIMITED = error_body("Rate limit exceeded")
TOO_MANY_FAILURES = error_body("Too many failed authentication attempts")
CANNOT_READ = error_body("This key cannot read this resource")
SECRET_IN_QUERY = (
    "A secret API token must not be sent in the URL: send it in the Authorization header, "  # noqa: S105 (a message)
    "or use a public key (vt_pub_...) in key="
)
ACCEPTED = orjson.dumps({"status": "accepted", "counted": True})
# Accepted, so that a crawler or a sender over its cap learns nothing by retrying,
# but said, so that a developer testing from a headless browser can tell why.
NOT_COUNTED_REASONS = {
    PageviewStatus.CRAWLER: "crawler",
    PageviewStatus.OVER_CAP: "over_address_cap",
}
NOT_COUNTED = {
    reason: orjson.dumps({"status": "accepted", "counted": False, "reason": reason})
    for reason in NOT_COUNTED_REASONS.values()
}
NOT_JSON = "Request body must be a JSON object"
# The metrics' name of each outcome (ops/metrics.py, PAGEVIEW_OUTCOMES).
OUTCOMES = {
    PageviewStatus.COUNTED: "counted",
    PageviewStatus.CRAWLER: "crawler",
    PageviewStatus.OVER_CAP: "over_address_cap",
    PageviewStatus.NOT_FOUND: "unknown_website",
}
TOO_LARGE = error_body(f"Request body must be at most {MAX_BODY} bytes")


class BadPageview(ValueError):
    pass


class BadQuery(ValueError):
    """A query parameter the read cannot use: 400 with this message."""


class UnknownWebsite(LookupError):
    pass


class Read:
    """A GET that spends one request of the website's budget: the token, the query,
    one store call, and the same refusals for every read."""

    params: tuple[str, ...] = ()  # the query parameters besides websiteId

    def __init__(self, settings: Settings, store: Store, public: PublicReads) -> None:
        self.settings = settings
        self.store = store
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            token = token_of(scope)
            if token is None:
                await respond(send, 401, MISSING_AUTH)
                return
            website_id, params = self.parse(scope["query_string"])
        except BadQuery as exc:
            await respond(send, 400, error_body(str(exc)))
            return
        except UnknownWebsite:
            await respond(send, 404, NOT_FOUND)
            return
        if is_public(token):
            await self.read_public(scope, receive, send, website_id, token, params)
            return
        client = client_tag(client_address(scope, self.settings))
        result = await self.read(website_id, token, client, params)
        status = result.status
        if status is RealtimeStatus.OK:
            await self.answer(scope, receive, send, website_id, result, params)
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

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        result: RealtimeResult,
        params: dict[str, str],
        headers: Headers | None = None,
        key: str | None = None,
    ) -> None:
        """The 200 answer; `headers` None: a secret token's read, with the budget's;
        `key`: the publishable key of a public read."""
        body = self.render(website_id, result, params)
        await respond(send, 200, body, rate_limit_headers(result) if headers is None else headers)

    async def read_public(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        key: str,
        params: dict[str, str],
    ) -> None:
        """A publishable key reads the live count only: any other read is refused, once
        the key is known to be one of the website's."""
        if await self.public.admit(scope, send, website_id, key, "", self.settings.window_ms):
            await respond(send, 403, CANNOT_READ)

    def parse(self, query: bytes) -> tuple[str, dict[str, str]]:
        """The website id and this read's other parameters, checked."""
        params = query_params(query, ("websiteId", *self.params))
        return website_id_of(params), self.check(params)

    def check(self, params: dict[str, str]) -> dict[str, str]:
        return {}

    async def read(
        self, website_id: str, token: str, client: str, params: dict[str, str]
    ) -> RealtimeResult:
        raise NotImplementedError

    def render(self, website_id: str, result: RealtimeResult, params: dict[str, str]) -> bytes:
        raise NotImplementedError


class Realtime(Read):
    """GET /api/v1/realtime?websiteId=ID[&path=/p][&window=s] with a Bearer token."""

    params: tuple[str, ...] = ("path", "window")

    def parse(self, query: bytes) -> tuple[str, dict[str, str]]:
        plain = _PLAIN_QUERY.fullmatch(query) or _PUBLIC_QUERY.fullmatch(query)
        if plain:
            return plain.group(1).decode(), {}
        return super().parse(query)

    def check(self, params: dict[str, str]) -> dict[str, str]:
        checked = {}
        if "path" in params:
            path = params["path"]
            if not path.startswith("/"):
                raise BadQuery("path must start with /")
            checked["path"] = page_of(path)
        if "window" in params:
            most = self.settings.window_seconds
            checked["window"] = str(whole_number(params, "window", 1, most, most))
        return checked

    async def read_public(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        key: str,
        params: dict[str, str],
    ) -> None:
        window = params.get("window")
        window_ms = int(window) * 1000 if window else self.settings.window_ms
        path = params.get("path", "")
        count = await self.public.admit(scope, send, website_id, key, path, window_ms)
        if count is not None:
            result = RealtimeResult.counted(count.visitors, count.now_ms)
            headers = self.public.cors(scope, count, key)
            await self.answer(scope, receive, send, website_id, result, params, headers, key)

    async def read(
        self, website_id: str, token: str, client: str, params: dict[str, str]
    ) -> RealtimeResult:
        window = params.get("window")
        return await self.store.realtime(
            website_id, token, client, params.get("path"), int(window) * 1000 if window else None
        )

    def render(self, website_id: str, result: RealtimeResult, params: dict[str, str]) -> bytes:
        if not params:
            # The documented body, formatted by hand: this is the hottest read.
            return b'{"currentVisitors":%d,"websiteId":"%s","timestamp":"%s"}' % (
                result.visitors,
                website_id.encode(),  # letters, digits, "-", "_", ".": nothing to escape
                iso_timestamp(result.now_ms).encode(),
            )
        body: dict[str, Any] = {
            "currentVisitors": result.visitors,
            "websiteId": website_id,
            "timestamp": iso_timestamp(result.now_ms),
        }
        if "path" in params:
            body["path"] = params["path"]
        if "window" in params:
            body["window"] = int(params["window"])
        return orjson.dumps(body)


class Breakdown(Read):
    """GET /api/v1/realtime/breakdown?websiteId=ID&by=page|source|country[&limit=n]"""

    params = ("by", "limit")

    def check(self, params: dict[str, str]) -> dict[str, str]:
        by = params.get("by", "")
        if by not in BREAKDOWNS:
            raise BadQuery(f"by must be one of {', '.join(BREAKDOWNS)}")
        limit = whole_number(params, "limit", 1, MAX_ITEMS, DEFAULT_ITEMS)
        return {"by": by, "limit": str(limit)}

    async def read(
        self, website_id: str, token: str, client: str, params: dict[str, str]
    ) -> RealtimeResult:
        return await self.store.breakdown(
            website_id, token, client, params["by"], int(params["limit"])
        )

    def render(self, website_id: str, result: RealtimeResult, params: dict[str, str]) -> bytes:
        rows = result.rows
        items = [{"value": text(rows[i]), "visitors": rows[i + 1]} for i in range(0, len(rows), 2)]
        return orjson.dumps(
            {
                "websiteId": website_id,
                "timestamp": iso_timestamp(result.now_ms),
                "currentVisitors": result.visitors,
                "by": params["by"],
                "items": items,
            }
        )


class History(Read):
    """GET /api/v1/realtime/history?websiteId=ID[&minutes=n]"""

    params = ("minutes",)

    def check(self, params: dict[str, str]) -> dict[str, str]:
        return {"minutes": str(whole_number(params, "minutes", 1, MAX_MINUTES, DEFAULT_MINUTES))}

    async def read(
        self, website_id: str, token: str, client: str, params: dict[str, str]
    ) -> RealtimeResult:
        return await self.store.history(website_id, token, client, int(params["minutes"]))

    def render(self, website_id: str, result: RealtimeResult, params: dict[str, str]) -> bytes:
        pairs = list(zip(result.rows[::2], result.rows[1::2], strict=True))
        first = (result.now_ms // 60_000 - len(pairs) + 1) * 60_000
        minutes = [
            {"start": iso_timestamp(first + n * 60_000), "visitors": visitors, "pageviews": views}
            for n, (views, visitors) in enumerate(pairs)
        ]
        return orjson.dumps(
            {"websiteId": website_id, "timestamp": iso_timestamp(result.now_ms), "minutes": minutes}
        )


def token_of(scope: Scope) -> str | None:
    """The Authorization header's token, or else a public key in the query's `key=`
    (EventSource and script tags cannot set headers). Raises BadQuery for a secret
    token in the query: URLs end up in logs and browser history."""
    token = bearer_token(header(scope, b"authorization"))
    query = scope["query_string"]
    if token is not None or b"key=" not in query:
        return token
    public = _PUBLIC_QUERY.fullmatch(query)
    if public:
        return public.group(2).decode()
    key = query_params(query, ("key",)).get("key") or None
    if key is not None and not is_public(key):
        raise BadQuery(SECRET_IN_QUERY)
    return key


def query_params(query: bytes, known: tuple[str, ...]) -> dict[str, str]:
    """Each known parameter's value; one given twice is refused, not guessed at."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query.decode("latin-1"), True):
        if name not in known:
            continue  # as for any other GET: unknown parameters are no error
        if name in params:
            raise BadQuery(f"{name} must be given once")
        params[name] = value
    return params


def website_id_of(params: dict[str, str]) -> str:
    website_id = params.get("websiteId", "")
    if not website_id:
        raise BadQuery("websiteId is required")
    if not is_valid_website_id(website_id):
        raise UnknownWebsite
    return website_id


def whole_number(params: dict[str, str], name: str, least: int, most: int, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and least <= int(raw) <= most):
        raise BadQuery(f"{name} must be a whole number from {least} to {most}")
    return int(raw)


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class Pageview:
    """POST /api/v1/pageview with a JSON body."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics

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
            if self.metrics is not None:
                self.metrics.pageview(OUTCOMES[PageviewStatus.NOT_FOUND])
            await respond(send, 404, NOT_FOUND)
            return
        ip = client_address(scope, self.settings)
        agent = (header(scope, b"user-agent") or b"").decode("latin-1")
        visitor = identify(payload.get("visitorId"), ip, agent)
        where = locate(payload.get("url"), payload.get("referrer"), ip)
        status = await self.store.pageview(website_id, visitor, client_tag(ip), where)
        if self.metrics is not None:
            self.metrics.pageview(OUTCOMES[status])
        if status is PageviewStatus.NOT_FOUND:
            await respond(send, 404, NOT_FOUND)
        elif status is PageviewStatus.COUNTED:
            await respond(send, 202, ACCEPTED)
        else:
            reason = NOT_COUNTED_REASONS[status]
            refusals.note(website_id, reason)
            await respond(send, 202, NOT_COUNTED[reason])


class Refusals:
    """Logs the first pageview of a website refused for a reason, then stays quiet: a
    crawler or a busy address would otherwise write a line per request."""

    def __init__(self, most: int = 10_000) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.most = most

    def note(self, website_id: str, reason: str) -> None:
        if (website_id, reason) in self.seen:
            return
        if len(self.seen) >= self.most:  # bounded memory; some lines come again
            self.seen.clear()
        self.seen.add((website_id, reason))
        log.info(
            "website %s: a pageview was accepted but not counted (%s); later ones "
            "for the same reason are not logged",
            website_id,
            reason,
        )


refusals = Refusals()


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
