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
from starlette.requests import Request
from starlette.responses import Response

from . import __version__
from .fastlane import UNAVAILABLE
from .routes import (
    ACCEPTED,
    AUTH_ERROR,
    INVALID_TOKEN,
    MAX_BODY,
    MISSING_ID,
    NOT_FOUND,
    NOT_JSON,
    OPTIONAL_FIELDS,
    RATE_LIMITED,
    REPEATED_ID,
    TOO_LARGE,
    TOO_MANY_FAILURES,
)
from .visitors import MAX_VISITOR_ID

Schema = dict[str, Any]

JSON = "application/json"
WEBSITE_ID = "^[A-Za-z0-9._-]{1,64}$"  # keys.is_valid_website_id, anchored
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
COUNT: Schema = {"type": "integer", "minimum": 0}
SECONDS: Schema = {"type": "integer", "minimum": 1}


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
            "/api/v1/pageview": {"post": _pageview()},
            "/healthz": {"get": _healthz()},
            "/readyz": {"get": _readyz()},
            "/openapi.json": {"get": _openapi()},
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The website's API token, `vt_...` (the scheme is "
                    "case-insensitive).",
                }
            },
            "schemas": {"Pageview": _pageview_schema()},
        },
    }


async def endpoint(request: Request) -> Response:
    return Response(_rendered(), media_type=JSON)


@cache
def _rendered() -> bytes:
    return orjson.dumps(document())


def _realtime() -> Schema:
    rate_limit = _rate_limit_headers(required=True)
    return {
        "operationId": "getRealtimeVisitors",
        "summary": "Current visitors of a website",
        "description": "Visitors whose latest pageview is within the sliding window "
        "(3 minutes by default). Each authenticated request spends one request of the "
        "website's hourly budget, a token bucket shared by every API process; failed "
        "authentications never spend it.",
        "security": [{"bearer": []}],
        "parameters": [
            {
                "name": "websiteId",
                "in": "query",
                "required": True,
                "description": "1 to 64 letters, digits, `-`, `_` or `.`; any other "
                "non-empty value is answered 404.",
                "schema": {"type": "string", "pattern": WEBSITE_ID},
                "example": "my-site",
            }
        ],
        "responses": {
            "200": _response(
                "The count, at the Redis server's time.",
                {
                    "type": "object",
                    "required": ["currentVisitors", "websiteId", "timestamp"],
                    "properties": {
                        "currentVisitors": COUNT,
                        "websiteId": {"type": "string", "pattern": WEBSITE_ID},
                        "timestamp": {
                            "type": "string",
                            "format": "date-time",
                            "pattern": TIMESTAMP,
                            "description": "UTC, with milliseconds.",
                        },
                    },
                    "additionalProperties": False,
                },
                rate_limit,
                example={
                    "currentVisitors": 5,
                    "websiteId": "my-site",
                    "timestamp": "2025-07-30T17:09:37.000Z",
                },
            ),
            "400": _error("`websiteId` is missing, empty or repeated.", MISSING_ID, REPEATED_ID),
            "401": _error(
                "No `Authorization: Bearer <token>` header (checked first), or the token "
                "is unknown, revoked, or belongs to another website.",
                AUTH_ERROR,
                INVALID_TOKEN,
            ),
            "404": _error("No such website, or an id that cannot be one.", NOT_FOUND),
            "429": _error(
                "The website's hourly budget is spent (with the `X-RateLimit-*` "
                "headers), or this client address made too many failed "
                "authentications for this website within a minute (without them).",
                RATE_LIMITED,
                TOO_MANY_FAILURES,
                headers={
                    **_rate_limit_headers(required=False),
                    "Retry-After": _header(
                        "Seconds until the next request will be accepted.", SECONDS
                    ),
                },
            ),
            "503": _unavailable(),
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
                    "required": ["status"],
                    "properties": {"status": {"const": orjson.loads(ACCEPTED)["status"]}},
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
    description: str, *messages: bytes | str, headers: dict[str, Schema] | None = None
) -> Schema:
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "enum": [_text(m) for m in messages]}},
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
