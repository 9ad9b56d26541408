"""The admin API under /api/v1/admin/: its paths and the schemas of websites and tokens."""

from __future__ import annotations

from ...admin.sites import PUBLIC, SECRET, SiteError, origin_of
from ..admin import INVALID_ADMIN_TOKEN, TOKEN, TOKENS, WEBSITE, WEBSITES
from ..routes import AUTH_ERROR
from .schemas import COUNT, JSON, WEBSITE_ID, Schema, error, no_content, ref, response, unavailable

ADMIN_ONLY = (
    "Served only when `RTV_ADMIN_TOKEN` is set; otherwise every path under "
    "`/api/v1/admin/` answers 404. For servers: never any CORS header."
)
CREATED: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "description": "UTC, to the second.",
}
TOKEN_ID = "^tok_[0-9a-f]{8}$"  # noqa: S105 (tokens.new_token_id: an id, no secret)
TOKEN_SCHEMA: Schema = {
    "type": "string",
    "pattern": "^vt_[A-Za-z0-9_-]{43}$",  # tokens.new_token
    "description": "The secret, shown this once: Redis keeps only its SHA-256 digest.",
}
PUBLIC_KEY = "^vt_pub_[A-Za-z0-9_-]{43}$"  # tokens.new_public_key
NEW_TOKEN_SCHEMA: Schema = {
    "type": "string",
    "anyOf": [{"pattern": TOKEN_SCHEMA["pattern"]}, {"pattern": PUBLIC_KEY}],
    "description": "A secret token, `vt_...`, or a publishable key, `vt_pub_...`, shown "
    "this once: Redis keeps only its SHA-256 digest.",
}
KIND: Schema = {
    "enum": [SECRET, PUBLIC],
    "description": f"`{SECRET}`: a secret token, for every read; `{PUBLIC}`: a "
    "publishable key, for the count only.",
}
ORIGINS: Schema = {
    "type": "array",
    "items": {"type": "string", "pattern": r"^https?://[^/?#\s]+$"},
    "description": "The origins a publishable key may be used from, as browsers send "
    "them in `Origin`; empty: any origin (and always for a secret token).",
}
PLAN: Schema = {
    "type": "string",
    "description": "A configured plan (`RTV_PLANS`): by default free, pro or enterprise.",
    "examples": ["free", "pro", "enterprise"],
}
ADMIN_WEBSITE_ID: Schema = {
    "name": "websiteId",
    "in": "path",
    "required": True,
    "description": "Any value that cannot be a website id is answered 404.",
    "schema": {"type": "string", "pattern": WEBSITE_ID},
    "example": "my-site",
}


def paths() -> dict[str, Schema]:
    return {
        WEBSITES: {"get": _list_sites(), "post": _create_site()},
        WEBSITE: {"get": _show_site(), "patch": _update_site(), "delete": _delete_site()},
        TOKENS: {"get": _list_tokens(), "post": _create_token()},
        TOKEN: {"delete": _revoke_token()},
    }


def schemas() -> dict[str, Schema]:
    return {
        "Site": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            name={"type": "string"},
            plan={"type": "string"},
            created=CREATED,
            currentVisitors={
                **COUNT,
                "description": "Only when one website is read: its visitors now, "
                "as `GET /api/v1/realtime` counts them (without spending its budget).",
            },
        ),
        "CreatedSite": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            token=TOKEN_SCHEMA,
            tokenId={"type": "string", "pattern": TOKEN_ID},
            plan={"type": "string"},
        ),
        "NewToken": _object(
            websiteId={"type": "string", "pattern": WEBSITE_ID},
            tokenId={"type": "string", "pattern": TOKEN_ID},
            token=NEW_TOKEN_SCHEMA,
            kind=KIND,
            origins=ORIGINS,
        ),
        "Token": _object(
            tokenId={"type": "string", "pattern": TOKEN_ID},
            created=CREATED,
            kind=KIND,
            origins=ORIGINS,
        ),
    }


def _object(**properties: Schema) -> Schema:
    """An object with these properties, all required but an optional currentVisitors."""
    return {
        "type": "object",
        "required": [name for name in properties if name != "currentVisitors"],
        "properties": properties,
        "additionalProperties": False,
    }


def _create_site() -> Schema:
    body = {
        "type": "object",
        "properties": {
            "websiteId": {
                "type": "string",
                "pattern": WEBSITE_ID,
                "description": "Left out: a random id.",
            },
            "name": {"type": "string", "description": "Left out or empty: the id."},
            "plan": {**PLAN, "description": f"{PLAN['description']} Left out: free."},
        },
        "additionalProperties": False,
        "examples": [{"websiteId": "my-site", "name": "My site", "plan": "pro"}],
    }
    return _admin_operation(
        "createWebsite",
        "Create a website and its first API token",
        "As `sites create --json`. An id that exists is refused, never overwritten. "
        "The token is in this answer only.",
        request_body={"required": False, "content": {JSON: {"schema": body}}},
        responses={
            "201": response("Created.", ref("CreatedSite")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field, an id "
                "that cannot be one, or a plan that is not configured.",
                "unknown plan 'gold': choose one of free, pro, enterprise",
            ),
            "409": _admin_error(
                "A website with this id exists.", "website 'my-site' already exists"
            ),
        },
    )


def _list_sites() -> Schema:
    return _admin_operation(
        "listWebsites",
        "All websites",
        "As `sites list --json`: oldest first.",
        responses={"200": response("The websites.", {"type": "array", "items": ref("Site")})},
    )


def _show_site() -> Schema:
    return _admin_operation(
        "getWebsite",
        "One website and its visitors now",
        "As `sites show --json`, with `currentVisitors`; spends none of the website's budget.",
        website=True,
        responses={"200": response("The website.", ref("Site"))},
    )


def _update_site() -> Schema:
    body = {
        "type": "object",
        "required": ["plan"],
        "properties": {"plan": PLAN},
        "additionalProperties": False,
        "examples": [{"plan": "pro"}],
    }
    return _admin_operation(
        "updateWebsite",
        "Move a website to another plan",
        "As `sites set-plan`: the next request is limited by the new plan.",
        website=True,
        request_body={"required": True, "content": {JSON: {"schema": body}}},
        responses={
            "200": response("The website, on its new plan.", ref("Site")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field, no "
                "`plan`, or a plan that is not configured.",
                "plan is required",
            ),
        },
    )


def _delete_site() -> Schema:
    return _admin_operation(
        "deleteWebsite",
        "Delete a website with its tokens and live visitors",
        "As `sites delete`.",
        website=True,
        responses={"204": no_content("Deleted.")},
    )


def _create_token() -> Schema:
    body = {
        "type": "object",
        "properties": {
            "public": {
                "type": "boolean",
                "description": "A publishable key (`vt_pub_...`), for the count only, "
                "instead of a secret token. Left out: false.",
            },
            "origins": {
                "type": "array",
                "items": {"type": "string"},
                "description": "A publishable key's origins, each `scheme://host[:port]` "
                "(kept as browsers send them in `Origin`: lower case, no path); only "
                "pages of these origins may use the key. Left out or empty: any origin.",
            },
        },
        "additionalProperties": False,
        "examples": [{"public": True, "origins": ["https://shop.example"]}],
    }
    return _admin_operation(
        "createToken",
        "Add an API token or a publishable key to a website",
        "As `tokens create --json` (`--public`, `--origin`). The website's other tokens "
        "keep working until revoked: create, deploy, then revoke the old one. The token "
        "is in this answer only.",
        website=True,
        request_body={"required": False, "content": {JSON: {"schema": body}}},
        responses={
            "201": response("Created.", ref("NewToken")),
            "400": _admin_error(
                "The body is not a JSON object, has an unknown or mistyped field (`public` "
                "must be true or false, `origins` a list of strings), an origin that is "
                "not `scheme://host[:port]`, or origins for a secret token (they apply to "
                "publishable keys only).",
                _not_an_origin("shop.example"),
            ),
        },
    )


def _not_an_origin(text: str) -> str:
    """The message admin/sites.py refuses this text with."""
    try:
        origin_of(text)
    except SiteError as exc:
        return str(exc)
    raise AssertionError(f"{text!r} is an origin")


def _list_tokens() -> Schema:
    return _admin_operation(
        "listTokens",
        "A website's tokens, by id and creation time",
        "As `tokens list --json`: never the secrets.",
        website=True,
        responses={"200": response("The tokens.", {"type": "array", "items": ref("Token")})},
    )


def _revoke_token() -> Schema:
    token_id = {
        "name": "tokenId",
        "in": "path",
        "required": True,
        "description": "The token's id (`tok_...`), never the token itself: a URL is no "
        "place for a secret.",
        "schema": {"type": "string", "pattern": TOKEN_ID},
    }
    return _admin_operation(
        "revokeToken",
        "Revoke a token",
        "As `tokens revoke`: the next request with it is refused.",
        website=True,
        parameters=[token_id],
        responses={
            "204": no_content("Revoked."),
            "404": _admin_error(
                "No such website, or no such token of it.",
                "token 'tok_0123abcd' not found for website 'my-site'",
            ),
        },
    )


def _admin_operation(
    operation_id: str,
    summary: str,
    description: str,
    responses: dict[str, Schema],
    website: bool = False,
    parameters: list[Schema] | None = None,
    request_body: Schema | None = None,
) -> Schema:
    refusals = {
        "401": error(
            "No `Authorization: Bearer <token>` header (checked first), or not the admin token.",
            AUTH_ERROR,
            INVALID_ADMIN_TOKEN,
        ),
        "503": unavailable(),
    }
    if website:
        refusals["404"] = _admin_error(
            "No such website, or an id that cannot be one.", "website 'my-site' not found"
        )
    operation: Schema = {
        "operationId": operation_id,
        "tags": ["admin"],
        "summary": summary,
        "description": f"{description} {ADMIN_ONLY}",
        "security": [{"admin": []}],
        "parameters": [*([ADMIN_WEBSITE_ID] if website else []), *(parameters or [])],
        **({"requestBody": request_body} if request_body else {}),
        "responses": dict(sorted({**refusals, **responses}.items())),
    }
    return operation


def _admin_error(description: str, example: str) -> Schema:
    """An error whose message names what the request named (an id, a plan)."""
    schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
        "additionalProperties": False,
    }
    return response(description, schema, example={"error": example})
