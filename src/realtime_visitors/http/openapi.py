"""The OpenAPI 3.1 document of the service, served at GET /openapi.json.

Error messages and limits come from the modules that answer, so the document cannot
state one they do not send; tests/test_openapi.py checks it against the routes and
runs Schemathesis against the live app with it.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import orjson
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..admin.sites import PUBLIC, SECRET, SiteError, origin_of
from ..config import Settings
from ..tracking.visitors import MAX_VISITOR_ID
from . import admin, assets, stream
from .fastlane import UNAVAILABLE
from .public import WRONG_ORIGIN
from .routes import (
    ACCEPTED,
    AUTH_ERROR,
    BREAKDOWNS,
    CANNOT_READ,
    DEFAULT_ITEMS,
    DEFAULT_MINUTES,
    INVALID_TOKEN,
    MAX_BODY,
    MAX_ITEMS,
    MAX_MINUTES,
    MISSING_ID,
    NOT_COUNTED,
    NOT_FOUND,
    NOT_JSON,
    OPTIONAL_FIELDS,
    RATE_LIMITED,
    REPEATED_ID,
    SECRET_IN_QUERY,
    TOO_LARGE,
    TOO_MANY_FAILURES,
    iso_timestamp,
)

Schema = dict[str, Any]

JSON = "application/json"
WEBSITE_ID = "^[A-Za-z0-9._-]{1,64}$"  # keys.is_valid_website_id, anchored
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
COUNT: Schema = {"type": "integer", "minimum": 0}
SECONDS: Schema = {"type": "integer", "minimum": 1}
TIMESTAMP_SCHEMA: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": TIMESTAMP,
    "description": "UTC, with milliseconds.",
}
WEBSITE_ID_PARAMETER: Schema = {
    "name": "websiteId",
    "in": "query",
    "required": True,
    "description": "1 to 64 letters, digits, `-`, `_` or `.`; any other "
    "non-empty value is answered 404.",
    "schema": {"type": "string", "pattern": WEBSITE_ID},
    "example": "my-site",
}
PATH_PARAMETER: Schema = {
    "name": "path",
    "in": "query",
    "description": "Count only the visitors whose latest pageview is on this "
    "page's path (query and fragment are ignored, as in pageviews).",
    "schema": {"type": "string", "pattern": "^/"},
    "example": "/pricing",
}
PATH_ERRORS = ("path must be given once", "path must start with /")
BOTH: list[Schema] = [{"bearer": []}, {"publicKey": []}]  # a secret token or a publishable key
PUBLIC_READS_PER_MINUTE = Settings().public_reads_per_minute
EXAMPLE_MS = 1753895377000  # 2025-07-30T17:09:37.000Z
COUNT_EXAMPLE = {
    "currentVisitors": 5,
    "websiteId": "my-site",
    "timestamp": iso_timestamp(EXAMPLE_MS),
}


def document() -> dict[str, Any]:
    """A new copy of the document, for callers free to change it."""
    return copy.deepcopy(_document())


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Realtime Visitors API",
            "version": __version__,
            "description": "How many people are on a website right now, and the pageview "
            "ingest that feeds the count. Every body is JSON; errors are "
            '`{"error": "<message>"}`.',
        },
        "paths": {
            "/api/v1/realtime": {"get": _realtime()},
            "/api/v1/realtime/stream": {"get": _stream()},
            "/api/v1/realtime/breakdown": {"get": _breakdown()},
            "/api/v1/realtime/history": {"get": _history()},
            "/api/v1/pageview": {"post": _pageview()},
            **_asset_paths(),
            "/healthz": {"get": _healthz()},
            "/readyz": {"get": _readyz()},
            "/openapi.json": {"get": _openapi()},
            **_admin_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The website's secret API token, `vt_...` (the scheme "
                    "is case-insensitive). A publishable key sent in this header is read "
                    "as `publicKey`.",
                },
                "publicKey": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "A publishable key, `vt_pub_...` (`tokens create "
                    "--public`), made to sit in a web page: it reads the live count only, "
                    "never spends the website's budget, and may be bound to origins. In "
                    "`key=`, since `EventSource` and script tags cannot set headers; or "
                    "as `Authorization: Bearer vt_pub_...`, which is then used instead of "
                    "`key=`. A secret token in `key=` is refused (400): URLs end up in "
                    "logs and browser histories.",
                },
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's `RTV_ADMIN_TOKEN`. A website's token "
                    "cannot call the admin API, and the admin token reads no count.",
                },
            },
            "schemas": {
                "Count": _count_schema(),
                "Pageview": _pageview_schema(),
                **_admin_schemas(),
            },
        },
        "tags": [
            {
                "name": "admin",
                "description": "Websites and tokens, as the command line manages them, for "
                "an operator's own sign-up and billing code. " + ADMIN_ONLY,
            }
        ],
    }


async def endpoint(request: Request) -> Response:
    return Response(_rendered(), media_type=JSON)


@cache
def _rendered() -> bytes:
    return orjson.dumps(document())


def _realtime() -> Schema:
    return {
        "operationId": "getRealtimeVisitors",
        "summary": "Current visitors of a website",
        "description": "Visitors whose latest pageview is within the sliding window "
        "(3 minutes by default).\n\n"
        "With a secret token, each request spends one request of the website's hourly "
        "budget, a token bucket shared by every API process; failed authentications "
        "never spend it.\n\n"
        "With a publishable key, for a page that shows its own count: the count only "
        "(with or without `path` and `window`), answered from a count this process "
        "reads at most once a second per website, path and window, so up to a second "
        "old. It never spends the budget and carries no `X-RateLimit-*` headers; each "
        "client address may make `RTV_PUBLIC_READS_PER_MINUTE` such reads a minute in "
        f"each process (default {PUBLIC_READS_PER_MINUTE}; 0: no limit). A key bound to "
        "origins answers only requests whose `Origin` is one of them, with "
        "`Access-Control-Allow-Origin` that origin; a key bound to none answers any "
        "origin, with `*`.",
        "security": BOTH,
        "parameters": [
            WEBSITE_ID_PARAMETER,
            PATH_PARAMETER,
            {
                "name": "window",
                "in": "query",
                "description": "Count only the visitors whose latest pageview is within "
                "this many seconds, at most the sliding window (`RTV_WINDOW_SECONDS`).",
                "schema": SECONDS,
                "example": 60,
            },
        ],
        "responses": {
            "200": _response(
                "The count, at the Redis server's time; the `X-RateLimit-*` headers with "
                "a secret token only.",
                _ref("Count"),
                _rate_limit_headers(required=False),
                example=COUNT_EXAMPLE,
            ),
            "400": _bad_read(
                "`path` or `window` is repeated or out of range",
                *PATH_ERRORS,
                "window must be given once",
                patterns=["^window must be a whole number from 1 to [0-9]+$"],
            ),
            **_read_refusals(count=True),
        },
    }


def _count_schema() -> Schema:
    return {
        "type": "object",
        "required": ["currentVisitors", "websiteId", "timestamp"],
        "properties": {
            "currentVisitors": COUNT,
            "websiteId": {"type": "string", "pattern": WEBSITE_ID},
            "timestamp": TIMESTAMP_SCHEMA,
            "path": {
                "type": "string",
                "description": "Only with `path`: the path counted, in the "
                "one spelling pageviews are kept in.",
            },
            "window": {**SECONDS, "description": "Only with `window`."},
        },
        "additionalProperties": False,
    }


def _stream() -> Schema:
    return {
        "operationId": "streamRealtimeVisitors",
        "summary": "Current visitors of a website, pushed as they change",
        "description": "The count of `GET /api/v1/realtime`, as Server-Sent Events for "
        "an `EventSource`. With a secret token (in the `Authorization` header, which "
        "an `EventSource` cannot send: for servers), opening the stream spends one "
        "request of the website's budget, and nothing after; with a publishable key, "
        "nothing. Every stream of a website and path in a process shares one read of "
        "Redis a second.\n\n"
        "- `visitors`: `data` is the realtime answer (a `Count`: `currentVisitors`, "
        "`websiteId`, `timestamp`, and `path` when asked), `id` the count's time in "
        "milliseconds on the Redis clock. Sent at once, the first with "
        f"`retry: {stream.RETRY_MS}` (the browser reconnects that many milliseconds "
        "after the connection drops), then whenever the count changes.\n"
        f"- `: ping`, a comment every {stream.PING_SECONDS} seconds, so that proxies "
        "keep the connection open.\n"
        f"- `unavailable`, `data` `{stream.UNAVAILABLE}`: once while Redis does not "
        "answer; `visitors` follows when it answers again.\n\n"
        "The server ends the stream when the website is deleted or the publishable key "
        "revoked: the browser's reconnection then gets the refusal. Refusals are JSON "
        "errors, answered before the stream starts, as the realtime read's.",
        "security": BOTH,
        "parameters": [WEBSITE_ID_PARAMETER, PATH_PARAMETER],
        "responses": {
            "200": {
                "description": "The stream, open until the client leaves, the server "
                "stops, or the website or key is gone.",
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "example": _stream_example(),
                    }
                },
            },
            "400": _bad_read("`path` is repeated or does not start with /", *PATH_ERRORS),
            **_read_refusals(count=True),
        },
    }


def _stream_example() -> str:
    """Events as stream.py encodes them: the first, a ping, a change, an outage."""

    def render(visitors: int, now_ms: int) -> str:
        body = {**COUNT_EXAMPLE, "currentVisitors": visitors, "timestamp": iso_timestamp(now_ms)}
        return orjson.dumps(body).decode()

    events = [
        stream.visitors_event(5, EXAMPLE_MS, render, retry=stream.RETRY_MS),
        ServerSentEvent(comment="ping"),
        stream.visitors_event(6, EXAMPLE_MS + 16_000, render),
        ServerSentEvent(data=stream.UNAVAILABLE, event="unavailable"),
    ]
    return b"".join(event.encode() for event in events).decode()


def _bad_read(
    description: str, *messages: bytes | str, patterns: list[str] | None = None
) -> Schema:
    """A read's 400: its own parameters, and what every read checks."""
    return _error(
        f"`websiteId` is missing, empty or repeated, {description}, or `key=` holds "
        "something other than a publishable key (a secret token never belongs in a URL).",
        MISSING_ID,
        REPEATED_ID,
        *messages,
        SECRET_IN_QUERY,
        patterns=patterns,
    )


def _read_refusals(count: bool) -> dict[str, Schema]:
    """What every read answers when it cannot read: same bodies, same budget.
    `count`: the read answers a publishable key (the count); otherwise it refuses it."""
    wrong_origin = (
        "The publishable key is bound to origins and the request's `Origin` is "
        "missing or not one of them."
    )
    return {
        "401": _error(
            "No `Authorization: Bearer <token>` header nor `key=` (checked first), or "
            "the token or key is unknown, revoked, or belongs to another website.",
            AUTH_ERROR,
            INVALID_TOKEN,
        ),
        "403": _error(wrong_origin, WRONG_ORIGIN)
        if count
        else _error(
            "A publishable key, which reads the count only (once it is known to be one "
            f"of the website's keys). {wrong_origin}",
            CANNOT_READ,
            WRONG_ORIGIN,
        ),
        "404": _error("No such website, or an id that cannot be one.", NOT_FOUND),
        "429": _error(
            "The website's hourly budget is spent (with the `X-RateLimit-*` "
            "headers); or, without them, this client address made too many failed "
            "authentications for this website within a minute, or more reads by "
            "publishable key than `RTV_PUBLIC_READS_PER_MINUTE` within a minute (per process).",
            RATE_LIMITED,
            TOO_MANY_FAILURES,
            headers={
                **_rate_limit_headers(required=False),
                "Retry-After": _header("Seconds until the next request will be accepted.", SECONDS),
            },
        ),
        "503": _unavailable(),
    }


def _breakdown() -> Schema:
    item = {
        "type": "object",
        "required": ["value", "visitors"],
        "properties": {"value": {"type": "string"}, "visitors": {**COUNT, "minimum": 1}},
        "additionalProperties": False,
    }
    return {
        "operationId": "getRealtimeBreakdown",
        "summary": "Current visitors by page, source or country",
        "description": "The values with the most visitors right now, most first, then by "
        "value; the items never sum to more than `currentVisitors`. A page is the path of "
        "a visitor's latest pageview; a source the referrer's host of their visit's first "
        "pageview (`direct` for none or the site itself); a country an ISO 3166-1 alpha-2 "
        "code from the client address (`unknown` when none is known). One request of the "
        "website's budget, as the count; a secret token only (a publishable key: 403).",
        "security": [{"bearer": []}],
        "parameters": [
            WEBSITE_ID_PARAMETER,
            {
                "name": "by",
                "in": "query",
                "required": True,
                "schema": {"type": "string", "enum": list(BREAKDOWNS)},
            },
            {
                "name": "limit",
                "in": "query",
                "description": f"How many values at most (default {DEFAULT_ITEMS}).",
                "schema": {**SECONDS, "maximum": MAX_ITEMS},
            },
        ],
        "responses": {
            "200": _response(
                "The breakdown, at the Redis server's time.",
                {
                    "type": "object",
                    "required": ["websiteId", "timestamp", "currentVisitors", "by", "items"],
                    "properties": {
                        "websiteId": {"type": "string", "pattern": WEBSITE_ID},
                        "timestamp": TIMESTAMP_SCHEMA,
                        "currentVisitors": COUNT,
                        "by": {"type": "string", "enum": list(BREAKDOWNS)},
                        "items": {"type": "array", "items": item, "maxItems": MAX_ITEMS},
                    },
                    "additionalProperties": False,
                },
                _rate_limit_headers(required=True),
                example={
                    "websiteId": "my-site",
                    "timestamp": "2025-07-30T17:09:37.000Z",
                    "currentVisitors": 5,
                    "by": "page",
                    "items": [{"value": "/pricing", "visitors": 3}, {"value": "/", "visitors": 2}],
                },
            ),
            "400": _bad_read(
                "`by` or `limit` is missing, repeated or out of range",
                "by must be given once",
                f"by must be one of {', '.join(BREAKDOWNS)}",
                "limit must be given once",
                f"limit must be a whole number from 1 to {MAX_ITEMS}",
            ),
            **_read_refusals(count=False),
        },
    }


def _history() -> Schema:
    minute = {
        "type": "object",
        "required": ["start", "visitors", "pageviews"],
        "properties": {"start": TIMESTAMP_SCHEMA, "visitors": COUNT, "pageviews": COUNT},
        "additionalProperties": False,
    }
    return {
        "operationId": "getRealtimeHistory",
        "summary": "Visitors and pageviews per minute",
        "description": "One entry per minute, oldest first, empty minutes included, the "
        "current (partial) minute last. `pageviews` counts the counted pageviews; "
        "`visitors` the distinct visitors with a pageview in that minute. A day is kept. "
        "One request of the website's budget, as the count; a secret token only (a "
        "publishable key: 403).",
        "security": [{"bearer": []}],
        "parameters": [
            WEBSITE_ID_PARAMETER,
            {
                "name": "minutes",
                "in": "query",
                "description": f"How many minutes (default {DEFAULT_MINUTES}).",
                "schema": {**SECONDS, "maximum": MAX_MINUTES},
            },
        ],
        "responses": {
            "200": _response(
                "The minutes, at the Redis server's time.",
                {
                    "type": "object",
                    "required": ["websiteId", "timestamp", "minutes"],
                    "properties": {
                        "websiteId": {"type": "string", "pattern": WEBSITE_ID},
                        "timestamp": TIMESTAMP_SCHEMA,
                        "minutes": {"type": "array", "items": minute, "minItems": 1},
                    },
                    "additionalProperties": False,
                },
                _rate_limit_headers(required=True),
            ),
            "400": _bad_read(
                "`minutes` is repeated or out of range",
                "minutes must be given once",
                f"minutes must be a whole number from 1 to {MAX_MINUTES}",
            ),
            **_read_refusals(count=False),
        },
    }


def _pageview() -> Schema:
    pageview_ref = {"schema": {"$ref": "#/components/schemas/Pageview"}}
    return {
        "operationId": "postPageview",
        "summary": "Record a pageview",
        "description": "Open to every origin. The body is JSON whatever the "
        "`Content-Type`: `text/plain` is what `navigator.sendBeacon` sends without a "
        "CORS preflight.",
        "requestBody": {
            "required": True,
            "content": {JSON: pageview_ref, "text/plain": pageview_ref},
        },
        "responses": {
            "202": _response(
                "Counted; or accepted and not counted: a known crawler, or a client "
                "address over its cap of new visitors this window.",
                {
                    "type": "object",
                    "required": ["status", "counted"],
                    "properties": {
                        "status": {"const": orjson.loads(ACCEPTED)["status"]},
                        "counted": {"type": "boolean"},
                        "reason": {
                            "enum": list(NOT_COUNTED),
                            "description": "Only when not counted: `crawler` (a known "
                            "crawler's User-Agent) or `over_address_cap` (the client "
                            "address brought `RTV_MAX_VISITORS_PER_IP` new visitors this "
                            "window).",
                        },
                    },
                    "additionalProperties": False,
                },
            ),
            "400": _error(
                "Not a JSON object, or a missing or mistyped field.",
                NOT_JSON,
                MISSING_ID,
                "websiteId must be a string",
                *(f"{field} must be a string" for field in OPTIONAL_FIELDS),
                f"visitorId must be at most {MAX_VISITOR_ID} characters",
            ),
            "404": _error("No such website; nothing is written.", NOT_FOUND),
            "413": _error(f"The body is over {MAX_BODY} bytes.", TOO_LARGE),
            "503": _unavailable(),
        },
    }


def _pageview_schema() -> Schema:
    return {
        "type": "object",
        "required": ["websiteId"],
        "properties": {
            "websiteId": {
                "type": "string",
                "pattern": WEBSITE_ID,
                "description": "As the realtime `websiteId`: any other non-empty "
                "string is answered 404.",
            },
            "url": {"type": "string"},
            "referrer": {"type": "string"},
            "visitorId": {
                "type": "string",
                "maxLength": MAX_VISITOR_ID,
                "description": "Your own user or session id. Without it, a daily "
                "cookieless id from the client address and User-Agent.",
            },
        },
        "examples": [{"websiteId": "my-site", "url": "https://my-site.example/pricing"}],
    }


ASSET_HEADERS = {  # what each header of a browser file says
    "ETag": "Strong: the same bytes, the same tag, whichever process answers.",
    "Cache-Control": f"`{assets.EMBEDDED}` for the files other sites embed (an hour: "
    f"a new version reaches every site within it), `{assets.REVALIDATE}` for the "
    "dashboard's (revalidated at every load, a 304 while unchanged).",
    "Content-Security-Policy": "The page holds a secret token: its own files and "
    "API only, and no framing.",
    "Referrer-Policy": "No address of the page leaves it.",
}
ETAG = '^"[0-9a-f]{32}"$'  # assets.Asset: a SHA-256 prefix, quoted


def _asset_paths() -> dict[str, Schema]:
    dashboard, styles, script = assets.DASHBOARD_FILES
    files = [
        (
            assets.TRACKER,
            "getTrackerScript",
            "The tracker to paste into a website's pages",
            'Install: `<script defer src="https://HOST/script.js" data-website-id="ID">'
            "</script>`. See the README for its data attributes.",
        ),
        (
            assets.WIDGET,
            "getWidgetScript",
            "The live counter to paste into a website's pages",
            'Install: `<script async src="https://HOST/widget.js" data-website-id="ID" '
            'data-key="vt_pub_..."></script>`, with a publishable key. It shows the '
            "count where the tag is, read with that key. See the README for its data "
            "attributes and classes.",
        ),
        (
            dashboard,
            "getDashboard",
            "The live dashboard",
            "A page that asks for a website id and its secret token, keeps them in the "
            "tab's session storage, and shows the count (from the stream), the "
            "breakdowns and the history. Open the service's own address.",
        ),
        (styles, "getDashboardStyles", "The dashboard's styles", "Loaded by `/dashboard`."),
        (script, "getDashboardScript", "The dashboard's script", "Loaded by `/dashboard`."),
    ]
    return {asset.path: {"get": _asset(asset, *texts)} for asset, *texts in files}


def _asset(asset: assets.Asset, operation_id: str, summary: str, description: str) -> Schema:
    """A file of web/, answered as assets.py serves it: 200 or 304, with its headers."""
    headers = {
        name: _header(
            ASSET_HEADERS[name],
            {"type": "string", **({"pattern": ETAG} if name == "ETag" else {"const": value})},
        )
        for name, value in asset.headers.items()
    }
    media_type = asset.media_type.partition(";")[0]
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "parameters": [
            {
                "name": "If-None-Match",
                "in": "header",
                "description": "An ETag this client holds: 304 when it is current.",
                "schema": {"type": "string"},
            }
        ],
        "responses": {
            "200": {
                "description": "The file.",
                "headers": headers,
                "content": {media_type: {"schema": {"type": "string"}}},
            },
            "304": {"description": "The client's copy is current.", "headers": headers},
        },
    }


def _healthz() -> Schema:
    return {
        "operationId": "getHealth",
        "summary": "Alive: answers without calling Redis",
        "responses": {"200": _response("Alive.", _status_schema("ok"))},
    }


def _readyz() -> Schema:
    return {
        "operationId": "getReadiness",
        "summary": "Ready: Redis answers and the scripts are loaded",
        "responses": {"200": _response("Ready.", _status_schema("ready")), "503": _unavailable()},
    }


def _openapi() -> Schema:
    return {
        "operationId": "getOpenApi",
        "summary": "This document",
        "responses": {"200": _response("The OpenAPI 3.1 document.", {"type": "object"})},
    }


ADMIN_ONLY = (
    "Served only when `RTV_ADMIN_TOKEN` is set; otherwise every path under "
    "`/api/v1/admin/` answers 404. For servers: never any CORS header."
)
CREATED: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "description": "UTC, to the second.",
}
TOKEN_ID = "^tok_[0-9a-f]{8}$"  # noqa: S105 (tokens.new_token_id: an id, no secret)
TOKEN_SCHEMA: Schema = {
    "type": "string",
    "pattern": "^vt_[A-Za-z0-9_-]{43}$",  # tokens.new_token
    "description": "The secret, shown this once: Redis keeps only its SHA-256 digest.",
}
PUBLIC_KEY = "^vt_pub_[A-Za-z0-9_-]{43}$"  # tokens.new_public_key
NEW_TOKEN_SCHEMA: Schema = {
    "type": "string",
    "anyOf": [{"pattern": TOKEN_SCHEMA["pattern"]}, {"pattern": PUBLIC_KEY}],
    "description": "A secret token, `vt_...`, or a publishable key, `vt_pub_...`, shown "
    "this once: Redis keeps only its SHA-256 digest.",
}
KIND: Schema = {
    "enum": [SECRET, PUBLIC],
    "description": f"`{SECRET}`: a secret token, for every read; `{PUBLIC}`: a "
    "publishable key, for the count only.",
}
ORIGINS: Schema = {
    "type": "array",
    "items": {"type": "string", "pattern": r"^https?://[^/?#\s]+$"},
    "description": "The origins a publishable key may be used from, as browsers send "
    "them in `Origin`; empty: any origin (and always for a secret token).",
}
PLAN: Schema = {
    "type": "string",
    "description": "A configured plan (`RTV_PLANS`): by default free, pro or enterprise.",
    "examples": ["free", "pro", "enterprise"],
}
ADMIN_WEBSITE_ID: Schema = {
    "name": "websiteId",
    "in": "path",
    "required": True,
    "description": "Any value that cannot be a website id is answered 404.",
    "schema": {"type": "string", "pattern": WEBSITE_ID},
    "example": "my-site",
}


def _admin_paths() -> dict[str, Schema]:
    return {
        admin.WEBSITES: {"get": _list_sites(), "post": _create_site()},
        admin.WEBSITE: {"get": _show_site(), "patch": _update_site(), "delete": _delete_site()},
        admin.TOKENS: {"get": _list_tokens(), "post": _create_token()},
        admin.TOKEN: {"delete": _revoke_token()},
    }


def _admin_schemas() -> dict[str, Schema]:
    return {
        "Site": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            name={"type": "string"},
            plan={"type": "string"},
            created=CREATED,
            currentVisitors={
                **COUNT,
                "description": "Only when one website is read: its visitors now, "
                "as `GET /api/v1/realtime` counts them (without spending its budget).",
            },
        ),
        "CreatedSite": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            token=TOKEN_SCHEMA,
            tokenId={"type": "string", "pattern": TOKEN_ID},
            plan={"type": "string"},
        ),
        "NewToken": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            tokenId={"type": "string", "pattern": TOKEN_ID},
            token=NEW_TOKEN_SCHEMA,
            kind=KIND,
            origins=ORIGINS,
        ),
        "Token": _object(
            tokenId={"type": "string", "pattern": TOKEN_ID},
            created=CREATED,
            kind=KIND,
            origins=ORIGINS,
        ),
    }


def _object(**properties: Schema) -> Schema:
    """An object with these properties, all required but an optional currentVisitors."""
    return {
        "type": "object",
        "required": [name for name in properties if name != "currentVisitors"],
        "properties": properties,
        "additionalProperties": False,
    }


def _create_site() -> Schema:
    body = {
        "type": "object",
        "properties": {
            "websiteId": {
                "type": "string",
                "pattern": WEBSITE_ID,
                "description": "Left out: a random id.",
            },
            "name": {"type": "string", "description": "Left out or empty: the id."},
            "plan": {**PLAN, "description": f"{PLAN['description']} Left out: free."},
        },
        "additionalProperties": False,
        "examples": [{"websiteId": "my-site", "name": "My site", "plan": "pro"}],
    }
    return _admin_operation(
        "createWebsite",
        "Create a website and its first API token",
        "As `sites create --json`. An id that exists is refused, never overwritten. "
        "The token is in this answer only.",
        request_body={"required": False, "content": {JSON: {"schema": body}}},
        responses={
            "201": _response("Created.", _ref("CreatedSite")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field, an id "
                "that cannot be one, or a plan that is not configured.",
                "unknown plan 'gold': choose one of free, pro, enterprise",
            ),
            "409": _admin_error(
                "A website with this id exists.", "website 'my-site' already exists"
            ),
        },
    )


def _list_sites() -> Schema:
    return _admin_operation(
        "listWebsites",
        "All websites",
        "As `sites list --json`: oldest first.",
        responses={"200": _response("The websites.", {"type": "array", "items": _ref("Site")})},
    )


def _show_site() -> Schema:
    return _admin_operation(
        "getWebsite",
        "One website and its visitors now",
        "As `sites show --json`, with `currentVisitors`; spends none of the website's budget.",
        website=True,
        responses={"200": _response("The website.", _ref("Site"))},
    )


def _update_site() -> Schema:
    body = {
        "type": "object",
        "required": ["plan"],
        "properties": {"plan": PLAN},
        "additionalProperties": False,
        "examples": [{"plan": "pro"}],
    }
    return _admin_operation(
        "updateWebsite",
        "Move a website to another plan",
        "As `sites set-plan`: the next request is limited by the new plan.",
        website=True,
        request_body={"required": True, "content": {JSON: {"schema": body}}},
        responses={
            "200": _response("The website, on its new plan.", _ref("Site")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field, no "
                "`plan`, or a plan that is not configured.",
                "plan is required",
            ),
        },
    )


def _delete_site() -> Schema:
    return _admin_operation(
        "deleteWebsite",
        "Delete a website with its tokens and live visitors",
        "As `sites delete`.",
        website=True,
        responses={"204": _no_content("Deleted.")},
    )


def _create_token() -> Schema:
    body = {
        "type": "object",
        "properties": {
            "public": {
                "type": "boolean",
                "description": "A publishable key (`vt_pub_...`), for the count only, "
                "instead of a secret token. Left out: false.",
            },
            "origins": {
                "type": "array",
                "items": {"type": "string"},
                "description": "A publishable key's origins, each `scheme://host[:port]` "
                "(kept as browsers send them in `Origin`: lower case, no path); only "
                "pages of these origins may use the key. Left out or empty: any origin.",
            },
        },
        "additionalProperties": False,
        "examples": [{"public": True, "origins": ["https://shop.example"]}],
    }
    return _admin_operation(
        "createToken",
        "Add an API token or a publishable key to a website",
        "As `tokens create --json` (`--public`, `--origin`). The website's other tokens "
        "keep working until revoked: create, deploy, then revoke the old one. The token "
        "is in this answer only.",
        website=True,
        request_body={"required": False, "content": {JSON: {"schema": body}}},
        responses={
            "201": _response("Created.", _ref("NewToken")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field (`public` "
                "must be true or false, `origins` a list of strings), an origin that is "
                "not `scheme://host[:port]`, or origins for a secret token (they apply to "
                "publishable keys only).",
                _not_an_origin("shop.example"),
            ),
        },
    )


def _not_an_origin(text: str) -> str:
    """The message admin/sites.py refuses this text with."""
    try:
        origin_of(text)
    except SiteError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} is an origin")


def _list_tokens() -> Schema:
    return _admin_operation(
        "listTokens",
        "A website's tokens, by id and creation time",
        "As `tokens list --json`: never the secrets.",
        website=True,
        responses={"200": _response("The tokens.", {"type": "array", "items": _ref("Token")})},
    )


def _revoke_token() -> Schema:
    token_id = {
        "name": "tokenId",
        "in": "path",
        "required": True,
        "description": "The token's id (`tok_...`), never the token itself: a URL is no "
        "place for a secret.",
        "schema": {"type": "string", "pattern": TOKEN_ID},
    }
    return _admin_operation(
        "revokeToken",
        "Revoke a token",
        "As `tokens revoke`: the next request with it is refused.",
        website=True,
        parameters=[token_id],
        responses={
            "204": _no_content("Revoked."),
            "404": _admin_error(
                "No such website, or no such token of it.",
                "token 'tok_0123abcd' not found for website 'my-site'",
            ),
        },
    )


def _admin_operation(
    operation_id: str,
    summary: str,
    description: str,
    responses: dict[str, Schema],
    website: bool = False,
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
) -> Schema:
    refusals = {
        "401": _error(
            "No `Authorization: Bearer <token>` header (checked first), or not the admin token.",
            AUTH_ERROR,
            admin.INVALID_ADMIN_TOKEN,
        ),
        "503": _unavailable(),
    }
    if website:
        refusals["404"] = _admin_error(
            "No such website, or an id that cannot be one.", "website 'my-site' not found"
        )
    operation: Schema = {
        "operationId": operation_id,
        "tags": ["admin"],
        "summary": summary,
        "description": f"{description} {ADMIN_ONLY}",
        "security": [{"admin": []}],
        "parameters": [*([ADMIN_WEBSITE_ID] if website else []), *(parameters or [])],
        **({"requestBody": request_body} if request_body else {}),
        "responses": dict(sorted({**refusals, **responses}.items())),
    }
    return operation


def _admin_error(description: str, example: str) -> Schema:
    """An error whose message names what the request named (an id, a plan)."""
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "additionalProperties": False,
    }
    return _response(description, schema, example={"error": example})


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _no_content(description: str) -> Schema:
    return {"description": description, "headers": _response(description, {})["headers"]}


def _response(
    description: str,
    schema: Schema,
    headers: dict[str, Schema] | None = None,
    example: Any = None,
) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {
        "description": description,
        "headers": {
            "X-Content-Type-Options": _header(
                "On every response: browsers must not sniff it into something else.",
                {"type": "string", "const": "nosniff"},
            ),
            **(headers or {}),
        },
        "content": {JSON: content},
    }


def _error(
    description: str,
    *messages: bytes | str,
    headers: dict[str, Schema] | None = None,
    patterns: list[str] | None = None,
) -> Schema:
    error: Schema = {"type": "string", "enum": [_text(m) for m in messages]}
    if patterns:  # messages that name a configured number
        error = {"anyOf": [error, *({"type": "string", "pattern": p} for p in patterns)]}
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": error},
        "additionalProperties": False,
    }
    return _response(description, schema, headers)


def _unavailable() -> Schema:
    return _error(
        "Redis cannot be reached or did not answer in time.",
        UNAVAILABLE,
        headers={"Retry-After": _header("Seconds to wait before retrying.", SECONDS)},
    )


def _header(description: str, schema: Schema, required: bool = True) -> Schema:
    return {"description": description, "required": required, "schema": schema}


def _rate_limit_headers(required: bool) -> dict[str, Schema]:
    return {
        "X-RateLimit-Limit": _header(
            "The plan's requests per hour, also the bucket's capacity.", COUNT, required
        ),
        "X-RateLimit-Remaining": _header("Whole requests left in the bucket.", COUNT, required),
        "X-RateLimit-Reset": _header("Seconds until the bucket is full again.", COUNT, required),
    }


def _status_schema(value: str) -> Schema:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": value}},
        "additionalProperties": False,
    }


def _text(message: bytes | str) -> str:
    """A message, from an error body already rendered for the hot path or as is."""
    if isinstance(message, str):
        return message
    found: str = orjson.loads(message)["error"]
    return found
