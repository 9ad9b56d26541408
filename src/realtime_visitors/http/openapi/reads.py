"""The reads: the count, its stream, the breakdown and the history."""

from __future__ import annotations

import orjson

from ...config import Settings
from .. import stream
from ..public import WRONG_ORIGIN
from ..routes import (
    AUTH_ERROR,
    BREAKDOWNS,
    CANNOT_READ,
    DEFAULT_ITEMS,
    DEFAULT_MINUTES,
    INVALID_TOKEN,
    MAX_ITEMS,
    MAX_MINUTES,
    MISSING_ID,
    NOT_FOUND,
    RATE_LIMITED,
    REPEATED_ID,
    SECRET_IN_QUERY,
    TOO_MANY_FAILURES,
    iso_timestamp,
)
from .schemas import (
    COUNT,
    SECONDS,
    TIMESTAMP_SCHEMA,
    WEBSITE_ID,
    WEBSITE_ID_PARAMETER,
    Schema,
    error,
    header,
    rate_limit_headers,
    ref,
    response,
    unavailable,
)

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


def paths() -> dict[str, Schema]:
    return {
        "/api/v1/realtime": {"get": _realtime()},
        "/api/v1/realtime/stream": {"get": _stream()},
        "/api/v1/realtime/breakdown": {"get": _breakdown()},
        "/api/v1/realtime/history": {"get": _history()},
    }


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
            "200": response(
                "The count, at the Redis server's time; the `X-RateLimit-*` headers with "
                "a secret token only.",
                ref("Count"),
                rate_limit_headers(required=False),
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


def count_schema() -> Schema:
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
        stream.PING,
        stream.visitors_event(6, EXAMPLE_MS + 16_000, render),
        stream.UNAVAILABLE_EVENT,
    ]
    return b"".join(events).decode()


def _bad_read(
    description: str, *messages: bytes | str, patterns: list[str] | None = None
) -> Schema:
    """A read's 400: its own parameters, and what every read checks."""
    return error(
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
        "401": error(
            "No `Authorization: Bearer <token>` header nor `key=` (checked first), or "
            "the token or key is unknown, revoked, or belongs to another website.",
            AUTH_ERROR,
            INVALID_TOKEN,
        ),
        "403": error(wrong_origin, WRONG_ORIGIN)
        if count
        else error(
            "A publishable key, which reads the count only (once it is known to be one "
            f"of the website's keys). {wrong_origin}",
            CANNOT_READ,
            WRONG_ORIGIN,
        ),
        "404": error("No such website, or an id that cannot be one.", NOT_FOUND),
        "429": error(
            "The website's hourly budget is spent (with the `X-RateLimit-*` "
            "headers); or, without them, this client address made too many failed "
            "authentications for this website within a minute, or more reads by "
            "publishable key than `RTV_PUBLIC_READS_PER_MINUTE` within a minute (per process).",
            RATE_LIMITED,
            TOO_MANY_FAILURES,
            headers={
                **rate_limit_headers(required=False),
                "Retry-After": header("Seconds until the next request will be accepted.", SECONDS),
            },
        ),
        "503": unavailable(),
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
            "200": response(
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
                rate_limit_headers(required=True),
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
            "200": response(
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
                rate_limit_headers(required=True),
            ),
            "400": _bad_read(
                "`minutes` is repeated or out of range",
                "minutes must be given once",
                f"minutes must be a whole number from 1 to {MAX_MINUTES}",
            ),
            **_read_refusals(count=False),
        },
    }
