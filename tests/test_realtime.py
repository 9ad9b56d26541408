"""GET /api/v1/realtime: every status code, body and header of the document."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.http.routes import AUTH_ERROR
from realtime_visitors.storage.keys import site_keys

from .conftest import unique_id

Site = Callable[..., tuple[str, str]]
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def get(client: TestClient, website_id: str | None, token: str | None) -> object:
    params = {} if website_id is None else {"websiteId": website_id}
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.get("/api/v1/realtime", params=params, headers=headers)


def test_counts_current_visitors(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    for visitor in ("alice", "bob", "alice"):
        assert (
            client.post(
                "/api/v1/pageview", json={"websiteId": website_id, "visitorId": visitor}
            ).status_code
            == 202
        )

    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["currentVisitors", "websiteId", "timestamp"]
    assert body["currentVisitors"] == 2
    assert body["websiteId"] == website_id
    assert ISO_MS.fullmatch(body["timestamp"])
    stamp = datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(stamp - datetime.now(UTC)) < timedelta(seconds=5)


def test_timestamp_comes_from_redis_clock(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site()
    before_s, _ = raw.time()
    body = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    after_s, _ = raw.time()
    stamp = datetime.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before_s <= stamp.timestamp() <= after_s + 1


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token vt_abc", "Bearer a b", "vt_abc"],
)
def test_missing_or_malformed_authorization_is_401(
    client: TestClient, make_site: Site, header: str | None
) -> None:
    website_id, _ = make_site()
    headers = {} if header is None else {"Authorization": header}
    response = client.get(f"/api/v1/realtime?websiteId={website_id}", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": AUTH_ERROR}
    assert AUTH_ERROR == "Missing or invalid authorization header. Expected: Bearer <token>"


def test_lower_case_scheme_is_accepted(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"bearer {token}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("query", ["", "?websiteId=", "?other=1"])
def test_missing_website_id_is_400(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/realtime{query}", headers={"Authorization": "Bearer vt_x"})
    assert response.status_code == 400
    assert response.json() == {"error": "websiteId is required"}


def test_repeated_website_id_is_400(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}&websiteId={website_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert "once" in response.json()["error"]


@pytest.mark.parametrize(
    "website_id", ["nope-" + "0" * 8, "a" * 65, "x{y}", "a b", "a/b", "é", "a\nb", "a:b"]
)
def test_unknown_or_impossible_website_is_404(
    client: TestClient, raw: redis.Redis, website_id: str
) -> None:
    keys_before = raw.dbsize()
    response = client.get(
        "/api/v1/realtime",
        params={"websiteId": website_id},
        headers={"Authorization": "Bearer vt_x"},
    )
    assert response.status_code == 404
    assert response.json() == {"error": "Website not found"}
    assert raw.dbsize() <= keys_before


def test_unknown_token_is_401(client: TestClient, make_site: Site) -> None:
    website_id, _ = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": "Bearer vt_wrong"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API token"}


def test_token_of_another_website_is_401(client: TestClient, make_site: Site) -> None:
    site_a, token_a = make_site()
    site_b, _ = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={site_b}", headers={"Authorization": f"Bearer {token_a}"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API token"}
    ok = client.get(
        f"/api/v1/realtime?websiteId={site_a}", headers={"Authorization": f"Bearer {token_a}"}
    )
    assert ok.status_code == 200


def test_rate_limit_headers_and_429(
    make_client: Callable[..., TestClient], make_site: Site, settings
) -> None:
    from dataclasses import replace

    plans = {"free": 100, "pro": 1000, "enterprise": 10000, "tiny": 3}
    client = make_client(plans=plans)
    website_id, token = make_site(plan="tiny", config=replace(settings, plans=plans))
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/realtime?websiteId={website_id}"

    remaining = [client.get(url, headers=headers) for _ in range(3)]
    assert [r.status_code for r in remaining] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Remaining"] for r in remaining] == ["2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in remaining} == {"3"}
    # Three requests per hour: one comes back every 1,200 s; all three in about 3,600 s.
    assert 3590 <= int(remaining[-1].headers["X-RateLimit-Reset"]) <= 3600

    limited = client.get(url, headers=headers)
    assert limited.status_code == 429
    assert limited.json() == {"error": "Rate limit exceeded"}
    assert 1190 <= int(limited.headers["Retry-After"]) <= 1200
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) >= int(limited.headers["Retry-After"])


def test_failed_auth_does_not_spend_budget(
    make_client: Callable[..., TestClient], make_site: Site, settings
) -> None:
    from dataclasses import replace

    plans = {"free": 100, "pro": 1000, "enterprise": 10000, "tiny": 2}
    client = make_client(plans=plans)
    website_id, token = make_site(plan="tiny", config=replace(settings, plans=plans))
    url = f"/api/v1/realtime?websiteId={website_id}"
    for _ in range(5):
        assert client.get(url, headers={"Authorization": "Bearer vt_guess"}).status_code == 401
    first = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Remaining"] == "1"


def test_plan_limits_apply(client: TestClient, make_site: Site) -> None:
    for plan, limit in (("free", "100"), ("pro", "1000"), ("enterprise", "10000")):
        website_id, token = make_site(plan=plan)
        response = client.get(
            f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.headers["X-RateLimit-Limit"] == limit
        assert response.headers["X-RateLimit-Remaining"] == str(int(limit) - 1)


def test_bucket_refills_continuously(client: TestClient, make_site: Site, raw: redis.Redis) -> None:
    website_id, token = make_site()  # free: 100 per hour, one every 36 s
    site = site_keys(website_id).site
    now_s, now_us = raw.time()
    now_ms = now_s * 1000 + now_us // 1000
    # An empty bucket last touched 90 s ago has regained 2.5 requests.
    raw.hset(site, mapping={"bucket": "0", "bucket_ts": str(now_ms - 90_000)})
    headers = {"Authorization": f"Bearer {token}"}
    url = f"/api/v1/realtime?websiteId={website_id}"
    assert client.get(url, headers=headers).headers["X-RateLimit-Remaining"] == "1"
    assert client.get(url, headers=headers).headers["X-RateLimit-Remaining"] == "0"
    limited = client.get(url, headers=headers)
    assert limited.status_code == 429
    # 0.5 left: the next whole request is 18 s away.
    assert 17 <= int(limited.headers["Retry-After"]) <= 18


def test_bucket_never_exceeds_capacity(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site()
    raw.hset(site_keys(website_id).site, mapping={"bucket": "0", "bucket_ts": "1"})
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.headers["X-RateLimit-Remaining"] == "99"


def test_plan_change_applies_to_next_request(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site()
    raw.hset(site_keys(website_id).site, "plan", "pro")
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.headers["X-RateLimit-Limit"] == "1000"


def test_cors_preflight_from_any_origin(client: TestClient) -> None:
    response = client.options(
        "/api/v1/realtime?websiteId=x",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_headers_on_responses(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}",
        headers={"Authorization": f"Bearer {token}", "Origin": "https://shop.example"},
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_origins_can_be_restricted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(cors_origins=("https://mine.example",))
    preflight = {
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = client.options(
        "/api/v1/realtime", headers={"Origin": "https://mine.example", **preflight}
    )
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://mine.example"
    assert "Origin" in allowed.headers["Vary"]
    refused = client.options(
        "/api/v1/realtime", headers={"Origin": "https://other.example", **preflight}
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers
    # The pageview endpoint stays open to tracking snippets on any site.
    beacon = client.options(
        "/api/v1/pageview",
        headers={"Origin": "https://other.example", "Access-Control-Request-Method": "POST"},
    )
    assert beacon.headers["Access-Control-Allow-Origin"] == "*"


def test_unknown_path_and_method_answer_json(client: TestClient) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found"}
    wrong = client.post("/api/v1/realtime")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/json"


def test_unknown_site_id_writes_nothing(client: TestClient, raw: redis.Redis) -> None:
    website_id = unique_id()
    client.get(f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": "Bearer vt_x"})
    assert raw.keys(f"*{{{website_id}}}*") == []
