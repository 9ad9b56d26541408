"""The ceiling for scenario 1: bare Starlette endpoints returning the same JSON bodies."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REALTIME_BODY = {
    "currentVisitors": 1000,
    "websiteId": "bench",
    "timestamp": "2026-11-26T15:04:05.123Z",
}


async def realtime(request: Request) -> Response:
    return JSONResponse(REALTIME_BODY)


async def pageview(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"}, status_code=202)


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/v1/realtime", realtime, methods=["GET"]),
            Route("/api/v1/pageview", pageview, methods=["POST"]),
        ]
    )
