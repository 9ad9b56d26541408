"""The ingest: POST /api/v1/pageview and the Pageview it takes."""

from __future__ import annotations

import orjson

from ...tracking.visitors import MAX_VISITOR_ID
from ..routes import (
    ACCEPTED,
    MAX_BODY,
    MISSING_ID,
    NOT_COUNTED,
    NOT_FOUND,
    NOT_JSON,
    OPTIONAL_FIELDS,
    TOO_LARGE,
)
from .schemas import JSON, WEBSITE_ID, Schema, error, response, unavailable


def paths() -> dict[str, Schema]:
    return {"/api/v1/pageview": {"post": _pageview()}}


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
            "202": response(
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
            "400": error(
                "Not a JSON object, or a missing or mistyped field.",
                NOT_JSON,
                MISSING_ID,
                "websiteId must be a string",
                *(f"{field} must be a string" for field in OPTIONAL_FIELDS),
                f"visitorId must be at most {MAX_VISITOR_ID} characters",
            ),
            "404": error("No such website; nothing is written.", NOT_FOUND),
            "413": error(f"The body is over {MAX_BODY} bytes.", TOO_LARGE),
            "503": unavailable(),
        },
    }


def schema() -> Schema:
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
