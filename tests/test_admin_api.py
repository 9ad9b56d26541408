"""The admin API (/api/v1/admin/...): present only with RTV_ADMIN_TOKEN, on the real server."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from realtime_visitors.config import ConfigError, Settings
from realtime_visitors.http.admin import INVALID_ADMIN_TOKEN
from realtime_visitors.http.openapi import document
from realtime_visitors.http.routes import AUTH_ERROR

from .conftest import unique_id

Site = Callable[..., tuple[str, str]]

ADMIN_TOKEN = "admin-0123456789abcdef-secret"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBSITES = "/api/v1/admin/websites"
ADMIN_OPERATIONS = [
    (method.upper(), path)
    for path, item in document()["paths"].items()
    if path.startswith("/api/v1/admin/")
    for method in item
]


@pytest.fixture
def admin(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(admin_token=ADMIN_TOKEN)


def create(admin: TestClient, **body: str) -> dict[str, str]:
    response = admin.post(WEBSITES, json={"websiteId": unique_id(), **body}, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


def count(client: TestClient, website_id: str, token: str) -> httpx.Response:
    return client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )


def concrete(path: str, website_id: str = "my-site") -> str:
    return path.replace("{websiteId}", website_id).replace("{tokenId}", "tok_0123abcd")


# Without RTV_ADMIN_TOKEN


@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
def test_without_the_setting_every_admin_operation_is_404(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, concrete(path), headers=AUTH, json={"plan": "pro"})
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_without_the_setting_no_admin_path_exists(client: TestClient) -> None:
    for path in ("/api/v1/admin", "/api/v1/admin/", "/api/v1/admin/anything"):
        assert client.get(path, headers=AUTH).status_code == 404


def test_the_setting_is_checked_and_never_shown() -> None:
    assert Settings.from_env({}).admin_token is None
    assert Settings.from_env({"RTV_ADMIN_TOKEN": ""}).admin_token is None
    settings = Settings.from_env({"RTV_ADMIN_TOKEN": ADMIN_TOKEN})
    assert settings.admin_token == ADMIN_TOKEN
    assert ADMIN_TOKEN not in repr(settings)
    for bad in ("short-secret", "a secret with spaces in it", "ümlaut-0123456789abcdef"):
        with pytest.raises(ConfigError, match="RTV_ADMIN_TOKEN") as refused:
            Settings.from_env({"RTV_ADMIN_TOKEN": bad})
        assert bad not in str(refused.value)


# Authentication


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, AUTH_ERROR),
        (f"Basic {ADMIN_TOKEN}", AUTH_ERROR),
        (f"Bearer {ADMIN_TOKEN} extra", AUTH_ERROR),
        ("Bearer ", AUTH_ERROR),
        (f"Bearer {ADMIN_TOKEN}x", INVALID_ADMIN_TOKEN),
        (f"Bearer {ADMIN_TOKEN[:-1]}", INVALID_ADMIN_TOKEN),
        ("Bearer vt_" + "A" * 43, INVALID_ADMIN_TOKEN),
    ],
)
@pytest.mark.parametrize(("method", "path"), ADMIN_OPERATIONS)
def test_every_operation_needs_the_admin_token(
    admin: TestClient, method: str, path: str, header: str | None, message: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = admin.request(method, concrete(path), headers=headers, json={"plan": "pro"})
    assert response.status_code == 401
    assert response.json() == {"error": message}


def test_a_website_token_cannot_call_the_admin_api(admin: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    assert count(admin, website_id, token).status_code == 200  # a good token
    for method, path in ADMIN_OPERATIONS:
        response = admin.request(
            method, concrete(path, website_id), headers={"Authorization": f"Bearer {token}"}
        )
        assert (response.status_code, response.json()) == (401, {"error": INVALID_ADMIN_TOKEN})
    assert admin.get(f"{WEBSITES}/{website_id}", headers=AUTH).status_code == 200  # still there


def test_the_admin_token_reads_no_count(admin: TestClient, make_site: Site) -> None:
    website_id, _ = make_site()
    for read in ("/api/v1/realtime", "/api/v1/realtime/breakdown", "/api/v1/realtime/history"):
        response = admin.get(f"{read}?websiteId={website_id}&by=page", headers=AUTH)
        assert (response.status_code, response.json()) == (401, {"error": "Invalid API token"})


def test_the_scheme_is_case_insensitive(admin: TestClient) -> None:
    response = admin.get(WEBSITES, headers={"Authorization": f"bEARER {ADMIN_TOKEN}"})
    assert response.status_code == 200


# Websites


def test_create_a_website_whose_token_works_at_once(admin: TestClient) -> None:
    website_id = unique_id()
    response = admin.post(
        WEBSITES, json={"websiteId": website_id, "name": "Shop", "plan": "pro"}, headers=AUTH
    )
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"websiteId", "token", "tokenId", "plan"}
    assert (created["websiteId"], created["plan"]) == (website_id, "pro")
    assert created["token"].startswith("vt_")
    assert created["tokenId"].startswith("tok_")
    read = count(admin, website_id, created["token"])
    assert read.status_code == 200
    assert read.json()["currentVisitors"] == 0
    assert read.headers["X-RateLimit-Limit"] == "1000"  # the plan asked for
    shown = admin.get(f"{WEBSITES}/{website_id}", headers=AUTH).json()
    assert (shown["name"], shown["plan"]) == ("Shop", "pro")


@pytest.mark.parametrize("body", [None, {}])
def test_create_with_no_body_makes_a_random_free_website(
    admin: TestClient, body: dict[str, str] | None
) -> None:
    response = admin.post(WEBSITES, json=body, headers=AUTH)
    assert response.status_code == 201
    created = response.json()
    assert created["plan"] == "free"
    shown = admin.get(f"{WEBSITES}/{created['websiteId']}", headers=AUTH).json()
    assert shown["name"] == created["websiteId"]  # as `sites create` without --name


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "Request body must be a JSON object"),
        (b"[]", "Request body must be a JSON object"),
        (b'"my-site"', "Request body must be a JSON object"),
        (b'{"websiteId": 5}', "websiteId must be a string"),
        (b'{"websiteId": null}', "websiteId must be a string"),
        (b'{"name": ["a"]}', "name must be a string"),
        (b'{"plan": true}', "plan must be a string"),
        (b'{"plan": "gold"}', "unknown plan 'gold': choose one of free, pro, enterprise"),
        (b'{"plan": ""}', "unknown plan ''"),
        (b'{"websiteId": ""}', "websiteId must not be empty: leave it out for a random id"),
        (b'{"websiteId": "no spaces"}', "invalid website id 'no spaces'"),
        (b'{"websiteId": "' + b"x" * 65 + b'"}', "invalid website id"),
        (b'{"id": "my-site"}', "unknown field 'id': expected websiteId, name, plan"),
    ],
)
def test_create_refuses_a_bad_body(admin: TestClient, body: bytes, message: str) -> None:
    response = admin.post(WEBSITES, content=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)


def test_create_refuses_an_id_that_exists(admin: TestClient) -> None:
    created = create(admin, plan="pro")
    again = admin.post(
        WEBSITES, json={"websiteId": created["websiteId"], "plan": "free"}, headers=AUTH
    )
    assert again.status_code == 409
    assert again.json() == {"error": f"website {created['websiteId']!r} already exists"}
    # Never an overwrite: the first token and plan are kept.
    assert count(admin, created["websiteId"], created["token"]).status_code == 200
    shown = admin.get(f"{WEBSITES}/{created['websiteId']}", headers=AUTH).json()
    assert shown["plan"] == "pro"


def test_list_websites(admin: TestClient) -> None:
    first, second = create(admin), create(admin, name="Second")
    response = admin.get(WEBSITES, headers=AUTH)
    assert response.status_code == 200
    listed = {site["websiteId"]: site for site in response.json()}
    assert listed[second["websiteId"]]["name"] == "Second"
    assert set(listed[first["websiteId"]]) == {"websiteId", "name", "plan", "created"}
    assert ADMIN_TOKEN not in response.text
    assert "vt_" not in response.text


def test_show_a_website_with_its_visitors_now(admin: TestClient) -> None:
    created = create(admin)
    website_id = created["websiteId"]
    admin.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v1"})
    response = admin.get(f"{WEBSITES}/{website_id}", headers=AUTH)
    assert response.status_code == 200
    shown = response.json()
    assert set(shown) == {"websiteId", "name", "plan", "created", "currentVisitors"}
    assert shown["currentVisitors"] == 1
    # Read without spending the website's budget: the count's headers say so.
    assert count(admin, website_id, created["token"]).headers["X-RateLimit-Remaining"] == "99"


@pytest.mark.parametrize("website_id", ["no-such-site", "bad%20id", "x" * 65])
def test_an_unknown_website_is_404_everywhere(admin: TestClient, website_id: str) -> None:
    if website_id == "no-such-site":
        website_id = unique_id("missing")
    for method, path in ADMIN_OPERATIONS:
        if "{websiteId}" not in path:
            continue
        response = admin.request(
            method, concrete(path, website_id), headers=AUTH, json={"plan": "pro"}
        )
        assert response.status_code == 404, (method, path)
        assert "not found" in response.json()["error"]


def test_change_a_plan(admin: TestClient) -> None:
    created = create(admin)
    url = f"{WEBSITES}/{created['websiteId']}"
    response = admin.patch(url, json={"plan": "enterprise"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["plan"] == "enterprise"
    read = count(admin, created["websiteId"], created["token"])
    assert read.headers["X-RateLimit-Limit"] == "10000"  # the next request


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "plan is required"),
        (b"{}", "plan is required"),
        (b"[1]", "Request body must be a JSON object"),
        (b'{"plan": 3}', "plan must be a string"),
        (b'{"plan": "gold"}', "unknown plan 'gold'"),
        (b'{"plan": "pro", "name": "x"}', "unknown field 'name': expected plan"),
    ],
)
def test_change_a_plan_refuses_a_bad_body(admin: TestClient, body: bytes, message: str) -> None:
    created = create(admin)
    url = f"{WEBSITES}/{created['websiteId']}"
    response = admin.patch(url, content=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert admin.get(url, headers=AUTH).json()["plan"] == "free"


def test_delete_a_website(admin: TestClient) -> None:
    created = create(admin)
    url = f"{WEBSITES}/{created['websiteId']}"
    response = admin.delete(url, headers=AUTH)
    assert (response.status_code, response.content) == (204, b"")
    assert admin.get(url, headers=AUTH).status_code == 404
    assert admin.delete(url, headers=AUTH).status_code == 404
    read = count(admin, created["websiteId"], created["token"])
    assert (read.status_code, read.json()) == (404, {"error": "Website not found"})


# Tokens


def test_tokens_created_work_and_revoked_are_refused_at_once(admin: TestClient) -> None:
    created = create(admin)
    website_id, first = created["websiteId"], created["token"]
    tokens = f"{WEBSITES}/{website_id}/tokens"
    response = admin.post(tokens, headers=AUTH)
    assert response.status_code == 201
    second = response.json()
    assert set(second) == {"websiteId", "tokenId", "token", "kind", "origins"}
    assert (second["kind"], second["origins"]) == ("secret", [])
    assert second["websiteId"] == website_id
    assert count(admin, website_id, second["token"]).status_code == 200

    listed = admin.get(tokens, headers=AUTH)
    assert listed.status_code == 200
    assert [info["tokenId"] for info in listed.json()] == [
        created["tokenId"],
        second["tokenId"],
    ]
    assert all(set(info) == {"tokenId", "created", "kind", "origins"} for info in listed.json())
    assert first not in listed.text
    assert second["token"] not in listed.text

    revoked = admin.delete(f"{tokens}/{created['tokenId']}", headers=AUTH)
    assert (revoked.status_code, revoked.content) == (204, b"")
    refused = count(admin, website_id, first)
    assert (refused.status_code, refused.json()) == (401, {"error": "Invalid API token"})
    assert count(admin, website_id, second["token"]).status_code == 200
    again = admin.delete(f"{tokens}/{created['tokenId']}", headers=AUTH)
    assert again.status_code == 404
    assert [info["tokenId"] for info in admin.get(tokens, headers=AUTH).json()] == [
        second["tokenId"]
    ]


def test_a_token_is_revoked_by_its_id_never_by_its_value(admin: TestClient) -> None:
    created = create(admin)
    website_id, token = created["websiteId"], created["token"]
    response = admin.delete(f"{WEBSITES}/{website_id}/tokens/{token}", headers=AUTH)
    assert response.status_code == 404
    assert token not in response.text  # the secret is not echoed
    assert count(admin, website_id, token).status_code == 200


def test_a_token_of_another_website_is_not_found(admin: TestClient) -> None:
    one, other = create(admin), create(admin)
    url = f"{WEBSITES}/{other['websiteId']}/tokens/{one['tokenId']}"
    assert admin.delete(url, headers=AUTH).status_code == 404
    assert count(admin, one["websiteId"], one["token"]).status_code == 200


# Around the API


def test_admin_requests_are_logged_without_secrets(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtime_visitors")
    created = create(admin)
    website_id = created["websiteId"]
    added = admin.post(f"{WEBSITES}/{website_id}/tokens", headers=AUTH).json()
    admin.get(f"{WEBSITES}/{website_id}/tokens", headers=AUTH)
    admin.get(WEBSITES, headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
    admin.get(WEBSITES, headers={"Authorization": f"Bearer {created['token']}"})
    admin.delete(f"{WEBSITES}/{website_id}/tokens/{added['tokenId']}", headers=AUTH)
    lines = [r.getMessage() for r in caplog.records if r.name == "realtime_visitors"]
    assert f"admin POST {WEBSITES} 201" in lines
    assert f"admin POST {WEBSITES}/{website_id}/tokens 201" in lines
    assert f"admin GET {WEBSITES} 401" in lines
    assert f"admin DELETE {WEBSITES}/{website_id}/tokens/{added['tokenId']} 204" in lines
    for secret in (ADMIN_TOKEN, created["token"], added["token"]):
        assert secret not in caplog.text
        assert secret.removeprefix("vt_") not in caplog.text


@pytest.mark.parametrize("origins", [("*",), ("https://shop.example",)])
def test_no_cors_for_the_admin_api(
    make_client: Callable[..., TestClient], origins: tuple[str, ...]
) -> None:
    admin = make_client(admin_token=ADMIN_TOKEN, cors_origins=origins)
    origin = {"Origin": "https://shop.example"}
    answered = admin.get(WEBSITES, headers={**AUTH, **origin})
    assert answered.status_code == 200
    preflight = admin.options(
        WEBSITES,
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 405
    for response in (answered, preflight):
        assert not [name for name in response.headers if name.startswith("access-control-")]
    # The reads keep theirs.
    read = admin.options(
        "/api/v1/realtime", headers={**origin, "Access-Control-Request-Method": "GET"}
    )
    assert read.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")


def test_redis_down_is_503_never_500(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtime_visitors")
    down = make_client(admin_token=ADMIN_TOKEN, redis_url="redis://127.0.0.1:1/0")
    for method, path in ADMIN_OPERATIONS:
        response = down.request(method, concrete(path), headers=AUTH, json={"plan": "pro"})
        assert response.status_code == 503, (method, path)
        assert response.json() == {"error": "Service unavailable"}
        assert response.headers["Retry-After"] == "1"
    assert f"admin GET {WEBSITES} 503" in caplog.text


def test_a_public_key_is_created_with_its_origins(admin: TestClient, make_site) -> None:
    website_id, _ = make_site()
    made = admin.post(
        f"/api/v1/admin/websites/{website_id}/tokens",
        headers=AUTH,
        json={"public": True, "origins": ["https://shop.example"]},
    )
    assert made.status_code == 201
    body = made.json()
    assert (body["kind"], body["origins"]) == ("public", ["https://shop.example"])
    assert body["token"].startswith("vt_pub_")
    listed = admin.get(f"/api/v1/admin/websites/{website_id}/tokens", headers=AUTH).json()
    assert [(t["kind"], t["origins"]) for t in listed] == [
        ("secret", []),
        ("public", ["https://shop.example"]),
    ]
    for bad, message in (
        ({"public": "yes"}, "public must be true or false"),
        ({"public": True, "origins": "https://a.example"}, "origins must be a list of strings"),
        ({"public": True, "origins": ["a.example"]}, "not an origin"),
        ({"origins": ["https://a.example"]}, "public keys only"),
    ):
        refused = admin.post(f"/api/v1/admin/websites/{website_id}/tokens", headers=AUTH, json=bad)
        assert refused.status_code == 400
        assert message in refused.json()["error"]
