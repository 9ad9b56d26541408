"""create_app(settings): the ASGI app, with its lifespan and errors mapped to JSON."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .admin import Sites
from .config import Settings
from .http import admin, assets, openapi, scrape
from .http.cors import CORSMiddleware, CorsPolicy
from .http.fastlane import FastLane, log_unavailable
from .http.observe import Observer
from .http.public import PublicReads
from .http.responses import JSONResponse, error
from .http.routes import Breakdown, History, Pageview, Realtime
from .http.stream import Stream
from .live import Counts
from .ops.accesslog import AccessLog
from .ops.metrics import Metrics
from .storage import StorageError, Store

log = logging.getLogger("realtime_visitors")

REALTIME_PATH = "/api/v1/realtime"
PAGEVIEW_PATH = "/api/v1/pageview"
BREAKDOWN_PATH = "/api/v1/realtime/breakdown"
HISTORY_PATH = "/api/v1/realtime/history"
STREAM_PATH = "/api/v1/realtime/stream"
UNAVAILABLE_RETRY_AFTER = "1"


def create_app(settings: Settings | None = None, store: Store | None = None) -> ASGIApp:
    settings = settings or Settings.from_env()
    if store is None:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set: start with `realtime-visitors serve`")
        store = Store(settings.redis_url, settings)
    # Without RTV_METRICS_TOKEN nothing is counted: /metrics does not exist.
    metrics = Metrics() if settings.metrics_token else None
    # Public reads and streams share one count per website and path per second.
    counts = Counts(store, on_error=metrics.redis_error if metrics else None)
    public = PublicReads(settings, counts)
    realtime, pageview = Realtime(settings, store, public), Pageview(settings, store, metrics)
    stream = Stream(settings, store, public)
    if metrics is not None:
        metrics.open_streams = lambda: len(stream.open)
    cors = CorsPolicy(
        settings.cors_origins,
        open_paths=[PAGEVIEW_PATH, *assets.OPEN],
        closed_prefixes=[admin.PREFIX, scrape.PATH],
    )
    # Without RTV_ADMIN_TOKEN the admin API does not exist: its paths answer 404.
    admin_routes: list[Route] = []
    if settings.admin_token:
        sites = Sites(store, settings.plans)
        admin_routes = admin.AdminAPI(settings.admin_token, sites, settings.window_ms).routes()
    scrape_routes: list[Route] = []
    if metrics is not None and settings.metrics_token:
        scraper = scrape.Scrape(settings.metrics_token, metrics)
        scrape_routes = [Route(scrape.PATH, scraper.endpoint, methods=["GET"])]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if observer is not None:
            observer.start()
        yield
        if observer is not None:
            observer.close()  # the last access lines and counts
        await store.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        await store.ready()  # StorageError: 503, as for any request
        return JSONResponse({"status": "ready"})

    app = Starlette(
        routes=[
            Route(REALTIME_PATH, realtime, methods=["GET"]),
            Route(PAGEVIEW_PATH, pageview, methods=["POST"]),
            # Reads for a live view; not in the fast lane: they are not the hot path.
            Route(BREAKDOWN_PATH, Breakdown(settings, store, public), methods=["GET"]),
            Route(HISTORY_PATH, History(settings, store, public), methods=["GET"]),
            Route(STREAM_PATH, stream, methods=["GET"]),
            # For load balancers and orchestrators: alive (no Redis call), and ready
            # (Redis answers, the scripts are loaded).
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi.endpoint, methods=["GET"]),
            *(Route(asset.path, asset.endpoint, methods=["GET", "HEAD"]) for asset in assets.ALL),
            *admin_routes,
            *scrape_routes,
        ],
        middleware=[Middleware(CORSMiddleware, policy=cors)],
        exception_handlers={
            StorageError: unavailable_handler(metrics),
            HTTPException: http_error,
            Exception: internal_error,
        },
        lifespan=lifespan,
    )
    hot: dict[tuple[str, str], ASGIApp] = {
        ("GET", REALTIME_PATH): realtime,
        ("POST", PAGEVIEW_PATH): pageview,
    }
    access = AccessLog(settings.log_format) if settings.access_log else None
    observer = Observer(app.routes, metrics, access) if metrics or access else None
    return FastLane(app, hot, cors, observer)


def unavailable_handler(
    metrics: Metrics | None,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def storage_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StorageError)
        if metrics is not None:
            metrics.redis_error()
        log_unavailable(exc)
        return error(503, "Service unavailable", {"Retry-After": UNAVAILABLE_RETRY_AFTER})

    return storage_unavailable


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error(500, "Internal server error")
