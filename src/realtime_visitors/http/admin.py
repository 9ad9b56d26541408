"""The admin API: websites and tokens over HTTP, for operators' own sign-up and billing.

Mounted only when RTV_ADMIN_TOKEN is set. It does what the command line does, through
the same admin.Sites and with the same JSON (admin/views.py), so the two cannot drift.
For servers, not browsers: cors.py gives its paths no CORS answer at all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admin import NotFound, SiteError, SiteExists, Sites
from ..admin.views import created_site_json, new_token_json, site_json, token_json
from ..storage import StorageError
from ..storage.keys import is_valid_website_id
from ..storage.tokens import TOKEN_ID_PREFIX
from .responses import JSONResponse, error
from .routes import AUTH_ERROR, NOT_JSON, bearer_token

log = logging.getLogger("realtime_visitors")

PREFIX = "/api/v1/admin"
WEBSITES = f"{PREFIX}/websites"
WEBSITE = f"{WEBSITES}/{{websiteId}}"
TOKENS = f"{WEBSITE}/tokens"
TOKEN = f"{TOKENS}/{{tokenId}}"

INVALID_ADMIN_TOKEN = "Invalid admin token"  # noqa: S105 (a message, not a secret)
CREATE_FIELDS = ("websiteId", "name", "plan")
UPDATE_FIELDS = ("plan",)
TOKEN_FIELDS = ("public", "origins")
DEFAULT_PLAN = "free"  # as `sites create`

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(ValueError):
    """A body the admin API cannot use: 400 with this message."""


class AdminAPI:
    def __init__(self, token: str, sites: Sites, window_ms: int) -> None:
        self._digest = _digest(token)  # compared as digests: equal lengths, constant time
        self.sites = sites
        self.window_ms = window_ms

    def routes(self) -> list[Route]:
        return [
            Route(WEBSITES, self._guarded(self.create_site), methods=["POST"]),
            Route(WEBSITES, self._guarded(self.list_sites), methods=["GET"]),
            Route(WEBSITE, self._guarded(self.show_site), methods=["GET"]),
            Route(WEBSITE, self._guarded(self.update_site), methods=["PATCH"]),
            Route(WEBSITE, self._guarded(self.delete_site), methods=["DELETE"]),
            Route(TOKENS, self._guarded(self.create_token), methods=["POST"]),
            Route(TOKENS, self._guarded(self.list_tokens), methods=["GET"]),
            Route(TOKEN, self._guarded(self.revoke_token), methods=["DELETE"]),
        ]

    async def create_site(self, request: Request) -> Response:
        body = await _object(request, CREATE_FIELDS)
        website_id = _string(body, "websiteId")
        if website_id == "":
            raise BadRequest("websiteId must not be empty: leave it out for a random id")
        name, plan = _string(body, "name"), _string(body, "plan")
        site, token = await self.sites.create(
            website_id, name or "", DEFAULT_PLAN if plan is None else plan
        )
        return JSONResponse(created_site_json(site, token), status_code=201)

    async def list_sites(self, request: Request) -> Response:
        return JSONResponse([site_json(site) for site in await self.sites.all()])

    async def show_site(self, request: Request) -> Response:
        website_id = _website_id(request)
        site = await self.sites.get(website_id)
        visitors = await self.sites.current_visitors(website_id, self.window_ms)
        return JSONResponse(site_json(site, visitors))

    async def update_site(self, request: Request) -> Response:
        website_id = _website_id(request)
        plan = _string(await _object(request, UPDATE_FIELDS), "plan")
        if plan is None:
            raise BadRequest("plan is required")
        await self.sites.set_plan(website_id, plan)
        return JSONResponse(site_json(await self.sites.get(website_id)))

    async def delete_site(self, request: Request) -> Response:
        await self.sites.delete(_website_id(request))
        return Response(status_code=204)

    async def create_token(self, request: Request) -> Response:
        website_id = _website_id(request)
        await self.sites.get(website_id)  # an unknown website is 404, whatever the body
        body = await _object(request, TOKEN_FIELDS)
        public = body.get("public", False)
        if not isinstance(public, bool):
            raise BadRequest("public must be true or false")
        origins = body.get("origins", [])
        if not (isinstance(origins, list) and all(isinstance(o, str) for o in origins)):
            raise BadRequest("origins must be a list of strings")
        token = await self.sites.create_token(website_id, public, origins)
        return JSONResponse(new_token_json(website_id, token), status_code=201)

    async def list_tokens(self, request: Request) -> Response:
        infos = await self.sites.list_tokens(_website_id(request))
        return JSONResponse([token_json(info) for info in infos])

    async def revoke_token(self, request: Request) -> Response:
        website_id, token_id = _website_id(request), request.path_params["tokenId"]
        # By id only: Sites also revokes by the token itself, but a secret has no
        # place in a URL, which access logs keep.
        if not token_id.startswith(TOKEN_ID_PREFIX):
            raise NotFound("no such token id: token ids start with " + TOKEN_ID_PREFIX)
        await self.sites.revoke_token(website_id, token_id)
        return Response(status_code=204)

    def _guarded(self, handler: Handler) -> Handler:
        """The handler behind the admin token, its errors as JSON, logged without secrets."""

        async def endpoint(request: Request) -> Response:
            try:
                response = await self._answer(request, handler)
            except StorageError:
                _log(request, 503)  # app.py's handler answers it
                raise
            _log(request, response.status_code)
            return response

        endpoint.__name__ = handler.__name__
        return endpoint

    async def _answer(self, request: Request, handler: Handler) -> Response:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            return error(401, AUTH_ERROR)
        if not hmac.compare_digest(_digest(token), self._digest):
            return error(401, INVALID_ADMIN_TOKEN)
        try:
            return await handler(request)
        except NotFound as exc:
            return error(404, str(exc))
        except SiteExists as exc:
            return error(409, str(exc))
        except (SiteError, BadRequest) as exc:
            return error(400, str(exc))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _website_id(request: Request) -> str:
    website_id: str = request.path_params["websiteId"]
    if not is_valid_website_id(website_id):  # in a path, an id that cannot be one
        raise NotFound(f"website {website_id!r} not found")
    return website_id


async def _object(request: Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object of the body (none: an empty one), with no field but `fields`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest(NOT_JSON) from None
    if not isinstance(body, dict):
        raise BadRequest(NOT_JSON)
    for name in body:
        if name not in fields:
            raise BadRequest(f"unknown field {name!r}: expected {', '.join(fields)}")
    return body


def _string(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if name in body and not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def _log(request: Request, status: int) -> None:
    # Method, path and status only: never a header (the admin token) nor a body
    # (a new website's token).
    log.info("admin %s %s %d", request.method, request.url.path, status)
