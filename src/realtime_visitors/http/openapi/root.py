"""The document's root: its info, security schemes and tags around the parts' paths and
schemas; and GET /openapi.json, which serves it."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ... import __version__
from . import admin, files, pageview, reads
from .schemas import JSON


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
            **reads.paths(),
            **pageview.paths(),
            **files.paths(),
            **admin.paths(),
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
                "metrics": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's `RTV_METRICS_TOKEN`, for `GET /metrics` only.",
                },
            },
            "schemas": {
                "Count": reads.count_schema(),
                "Pageview": pageview.schema(),
                **admin.schemas(),
            },
        },
        "tags": [
            {
                "name": "admin",
                "description": "Websites and tokens, as the command line manages them, for "
                "an operator's own sign-up and billing code. " + admin.ADMIN_ONLY,
            }
        ],
    }


async def endpoint(request: Request) -> Response:
    return Response(_rendered(), media_type=JSON)


@cache
def _rendered() -> bytes:
    return orjson.dumps(document())
