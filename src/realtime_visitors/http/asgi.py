"""Plain ASGI for the two hot endpoints: no Request or Response objects per call.

Profiling showed Starlette's per-request wrappers costing as much CPU as the Redis
round trip; raw ASGI leaves that budget to the work itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
NOSNIFF = (b"x-content-type-options", b"nosniff")


class BodyTooLarge(Exception):
    pass


def header(scope: Scope, name: bytes) -> bytes | None:
    """The last value of a header; ASGI servers give names in lower case."""
    found = None
    for key, value in scope["headers"]:
        if key == name:
            found = value
    return found


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def respond(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [JSON_TYPE, NOSNIFF, (b"content-length", b"%d" % len(body)), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge
        more = message.get("more_body", False)
    return body
