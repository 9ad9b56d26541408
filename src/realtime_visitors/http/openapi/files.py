"""The paths that are no API call: the browser files, health, readiness, this document."""

from __future__ import annotations

from .. import assets
from ..routes import AUTH_ERROR
from .schemas import Schema, error, header, response, status_schema, unavailable

# The Prometheus text format, as ops.metrics.CONTENT_TYPE says it.
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

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


def paths() -> dict[str, Schema]:
    return {
        **_asset_paths(),
        "/healthz": {"get": _healthz()},
        "/readyz": {"get": _readyz()},
        "/openapi.json": {"get": _openapi()},
        "/metrics": {"get": _metrics()},
    }


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
        name: header(
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
        "responses": {"200": response("Alive.", status_schema("ok"))},
    }


def _readyz() -> Schema:
    return {
        "operationId": "getReadiness",
        "summary": "Ready: Redis answers and the scripts are loaded",
        "responses": {"200": response("Ready.", status_schema("ready")), "503": unavailable()},
    }


def _openapi() -> Schema:
    return {
        "operationId": "getOpenApi",
        "summary": "This document",
        "responses": {"200": response("The OpenAPI 3.1 document.", {"type": "object"})},
    }


def _metrics() -> Schema:
    return {
        "operationId": "getMetrics",
        "summary": "Prometheus metrics, for the operator's scraper",
        "description": "Served only when `RTV_METRICS_TOKEN` is set, to a scrape that "
        "carries it as a Bearer token; otherwise 404. The Prometheus text format: "
        "requests, latency, Redis errors, pageviews by outcome, open streams; with "
        "`serve --workers N`, the sum of every worker's.",
        "security": [{"metrics": []}],
        "responses": {
            "200": {
                "description": "The metrics.",
                "content": {METRICS_TYPE: {"schema": {"type": "string"}}},
            },
            "401": error(
                "No Bearer token, or not the metrics token.", AUTH_ERROR, "Invalid metrics token"
            ),
            "404": error("RTV_METRICS_TOKEN is not set: there are no metrics.", "Not Found"),
        },
    }
