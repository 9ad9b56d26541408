"""GET /metrics: the Prometheus scrape, behind RTV_METRICS_TOKEN.

Never open by default: without the token the path does not exist (404); with it, a
scrape must carry `Authorization: Bearer <token>`, else 401. Counts are no secret,
but the routes, the traffic and the error rates of a service are an attacker's map.
"""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..ops import metrics
from .responses import error
from .routes import AUTH_ERROR, bearer_token

PATH = "/metrics"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Scrape:
    def __init__(self, token: str, counts: metrics.Metrics) -> None:
        self.token = token.encode()
        self.counts = counts

    async def endpoint(self, request: Request) -> Response:
        given = bearer_token(request.headers.get("authorization"))
        if given is None:
            return error(401, AUTH_ERROR, CHALLENGE)
        if not hmac.compare_digest(given.encode(), self.token):
            return error(401, "Invalid metrics token", CHALLENGE)
        self.counts.flush()  # this process up to date; the others flush every second
        # Reading every worker's files takes a few milliseconds: not on the event loop.
        body = await run_in_threadpool(metrics.exposition)
        return Response(body, media_type=metrics.CONTENT_TYPE)
