"""The pieces every part of the document shares: schemas, parameters, headers, and
the builders of responses and error bodies."""

from __future__ import annotations

from typing import Any

import orjson

from ..fastlane import UNAVAILABLE

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


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def no_content(description: str) -> Schema:
    return {"description": description, "headers": response(description, {})["headers"]}


def response(
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
            "X-Content-Type-Options": header(
                "On every response: browsers must not sniff it into something else.",
                {"type": "string", "const": "nosniff"},
            ),
            **(headers or {}),
        },
        "content": {JSON: content},
    }


def error(
    description: str,
    *messages: bytes | str,
    headers: dict[str, Schema] | None = None,
    patterns: list[str] | None = None,
) -> Schema:
    message: Schema = {"type": "string", "enum": [_text(m) for m in messages]}
    if patterns:  # messages that name a configured number
        message = {"anyOf": [message, *({"type": "string", "pattern": p} for p in patterns)]}
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": message},
        "additionalProperties": False,
    }
    return response(description, schema, headers)


def unavailable() -> Schema:
    return error(
        "Redis cannot be reached or did not answer in time.",
        UNAVAILABLE,
        headers={"Retry-After": header("Seconds to wait before retrying.", SECONDS)},
    )


def header(description: str, schema: Schema, required: bool = True) -> Schema:
    return {"description": description, "required": required, "schema": schema}


def rate_limit_headers(required: bool) -> dict[str, Schema]:
    return {
        "X-RateLimit-Limit": header(
            "The plan's requests per hour, also the bucket's capacity.", COUNT, required
        ),
        "X-RateLimit-Remaining": header("Whole requests left in the bucket.", COUNT, required),
        "X-RateLimit-Reset": header("Seconds until the bucket is full again.", COUNT, required),
    }


def status_schema(value: str) -> Schema:
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
