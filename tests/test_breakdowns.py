"""Per page, source and country, the window parameter, breakdown and history reads, on
the real servers, through the HTTP API."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.storage.keys import site_keys

from .test_properties import member_of

Site = Callable[..., tuple[str, str]]
SHOP = "https://shop.example"


def view(client: TestClient, website_id: str, who: str, path: str, referrer: str = "") -> None:
    body = {"websiteId": website_id, "visitorId": who, "url": SHOP + path, "referrer": referrer}
    assert client.post("/api/v1/pageview", json=body).status_code == 202


def read(client: TestClient, token: str, endpoint: str = "", **params: Any) -> Any:
    response = client.get(
        f"/api/v1/realtime{endpoint}", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def on(client: TestClient, website_id: str, token: str, path: str, **params: Any) -> int:
    count: int = read(client, token, websiteId=website_id, path=path, **params)["currentVisitors"]
    return count


def items(client: TestClient, website_id: str, token: str, by: str, **params: Any) -> list[Any]:
    body = read(client, token, "/breakdown", websiteId=website_id, by=by, **params)
    return [(item["value"], item["visitors"]) for item in body["items"]]


def age(raw: redis.Redis, website_id: str, who: str, ms: int) -> None:
    """Move a visitor's latest pageview `ms` into the past, as time passing would."""
    keys, member = site_keys(website_id), member_of(who)
    score = int(raw.zscore(keys.visitors, member) or 0)
    for entry in raw.zrange(keys.pages, 0, -1):
        if entry.endswith(f"{score:013d}{member}"):
            raw.zrem(keys.pages, entry)
            page = entry.split("\0")[0]
            raw.zadd(keys.pages, {f"{page}\0{score - ms:013d}{member}": 0})
    raw.zadd(keys.visitors, {member: score - ms})


def test_a_visitor_moving_on_leaves_the_page_at_once(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site("pro")
    view(client, website_id, "alice", "/")
    view(client, website_id, "bob", "/")
    assert on(client, website_id, token, "/") == 2

    view(client, website_id, "alice", "/pricing?plan=pro#faq")

    assert on(client, website_id, token, "/") == 1
    body = read(client, token, websiteId=website_id, path="/pricing")
    assert body["currentVisitors"] == 1
    assert body["path"] == "/pricing"
    assert list(body) == ["currentVisitors", "websiteId", "timestamp", "path"]
    # The whole site still counts each visitor once.
    assert read(client, token, websiteId=website_id)["currentVisitors"] == 2


def test_paths_are_kept_in_one_spelling(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site("pro")
    view(client, website_id, "a", "/caf%c3%a9/%7euser")
    view(client, website_id, "b", "/café/~user")
    assert items(client, website_id, token, "page") == [("/caf%C3%A9/~user", 2)]
    assert on(client, website_id, token, "/caf%C3%A9/%7Euser") == 2


def test_window_counts_the_recent_visitors_only(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site("pro")
    for who in ("old", "new"):
        view(client, website_id, who, "/docs")
    age(raw, website_id, "old", 90_000)

    body = read(client, token, websiteId=website_id, window=60)
    assert body["currentVisitors"] == 1
    assert body["window"] == 60
    assert on(client, website_id, token, "/docs", window=60) == 1
    assert on(client, website_id, token, "/docs", window=120) == 2
    assert on(client, website_id, token, "/docs") == 2


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("window=0", "window must be a whole number from 1 to 180"),
        ("window=181", "window must be a whole number from 1 to 180"),
        ("window=1.5", "window must be a whole number from 1 to 180"),
        ("window=60&window=60", "window must be given once"),
        ("path=pricing", "path must start with /"),
        ("path=/a&path=/b", "path must be given once"),
    ],
)
def test_bad_read_parameters_are_clear_400s(
    client: TestClient, make_site: Site, query: str, error: str
) -> None:
    website_id, token = make_site()
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}&{query}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": error}


def test_the_source_is_the_first_pageview_referrer(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site("pro")
    view(client, website_id, "a", "/", "https://www.news.example/item?id=1")
    view(client, website_id, "a", "/pricing", SHOP + "/")  # the same visit: still news
    view(client, website_id, "b", "/", SHOP + "/blog")  # from the site itself: direct
    view(client, website_id, "c", "/")
    view(client, website_id, "d", "/", "https://search.example/?q=shop")

    assert items(client, website_id, token, "source") == [
        ("direct", 2),
        ("news.example", 1),
        ("search.example", 1),
    ]


def test_breakdown_sorts_by_visitors_then_value_and_limits(
    client: TestClient, make_site: Site
) -> None:
    website_id, token = make_site("pro")
    for n, path in enumerate(["/b", "/a", "/c", "/c", "/d", "/d", "/d"]):
        view(client, website_id, f"v{n}", path)
    body = read(client, token, "/breakdown", websiteId=website_id, by="page", limit=3)
    assert body["currentVisitors"] == 7
    assert body["by"] == "page"
    assert list(body) == ["websiteId", "timestamp", "currentVisitors", "by", "items"]
    assert body["items"] == [
        {"value": "/d", "visitors": 3},
        {"value": "/c", "visitors": 2},
        {"value": "/a", "visitors": 1},
    ]
    assert items(client, website_id, token, "page", limit=1) == [("/d", 3)]


def test_a_visitor_who_leaves_the_window_leaves_every_breakdown(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site("pro")
    view(client, website_id, "gone", "/pricing", "https://news.example/")
    view(client, website_id, "here", "/", "")
    age(raw, website_id, "gone", 180_000)  # exactly the window: left

    assert read(client, token, websiteId=website_id)["currentVisitors"] == 1
    assert on(client, website_id, token, "/pricing") == 0
    assert items(client, website_id, token, "page") == [("/", 1)]
    assert items(client, website_id, token, "source") == [("direct", 1)]
    assert items(client, website_id, token, "country") == [("unknown", 1)]
    keys = site_keys(website_id)
    assert raw.hkeys(keys.details) == [member_of("here")]  # trimmed, not just hidden


def test_countries_from_the_client_address(
    make_client: Callable[..., TestClient], make_site: Site
) -> None:
    website_id, token = make_site("pro")
    proxy = make_client(peer="10.0.0.2", trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    for n, address in enumerate(["8.8.8.8", "81.2.69.160", "2a00:1450:4001::1", "192.168.1.9"]):
        body = {"websiteId": website_id, "visitorId": f"v{n}", "url": SHOP + "/"}
        headers = {"X-Forwarded-For": f"{address}, 10.0.0.7"}
        assert proxy.post("/api/v1/pageview", json=body, headers=headers).status_code == 202
    found = dict(items(proxy, website_id, token, "country"))
    assert found == {"US": 1, "GB": 1, "IE": 1, "unknown": 1}


def test_each_read_spends_one_request_of_the_budget(client: TestClient, make_site: Site) -> None:
    website_id, token = make_site()
    remaining = []
    for endpoint, params in [
        ("", {}),
        ("", {"path": "/"}),
        ("/breakdown", {"by": "page"}),
        ("/history", {}),
    ]:
        response = client.get(
            f"/api/v1/realtime{endpoint}",
            params={"websiteId": website_id, **params},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [99, 98, 97, 96]


def test_reads_refuse_as_the_count_does(client: TestClient, make_site: Site) -> None:
    website_id, _ = make_site()
    for endpoint in ("/breakdown?by=page&", "/history?"):
        url = f"/api/v1/realtime{endpoint}websiteId={website_id}"
        missing = client.get(url)
        assert missing.status_code == 401
        wrong = client.get(url, headers={"Authorization": "Bearer vt_wrong"})
        assert wrong.json() == {"error": "Invalid API token"}
        unknown = client.get(
            url.replace(website_id, "no-such-site"), headers={"Authorization": "Bearer vt_x"}
        )
        assert unknown.status_code == 404


def test_history_counts_pageviews_and_visitors_per_minute(
    client: TestClient, make_site: Site
) -> None:
    website_id, token = make_site("pro")
    for who, path in [("a", "/"), ("a", "/pricing"), ("b", "/"), ("a", "/docs")]:
        view(client, website_id, who, path)
    body = read(client, token, "/history", websiteId=website_id, minutes=5)
    minutes = body["minutes"]
    assert len(minutes) == 5
    starts = [m["start"] for m in minutes]
    assert starts == sorted(starts)
    assert all(start.endswith(":00.000Z") for start in starts)
    # The current minute is last; the pageviews may straddle a minute boundary.
    assert body["timestamp"][:16] == starts[-1][:16]
    assert sum(m["pageviews"] for m in minutes) == 4
    assert 2 <= sum(m["visitors"] for m in minutes) <= 4
    assert minutes[-1]["visitors"] >= 1
    assert len(read(client, token, "/history", websiteId=website_id)["minutes"]) == 30


def test_history_keeps_a_bounded_number_of_minutes(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, _ = make_site("pro")
    keys = site_keys(website_id)
    seconds, _ = raw.time()
    minute = seconds // 60
    # Minutes from two days ago, as a website that was busy then would hold them.
    stale = {f"p{m}": 1 for m in range(minute - 2900, minute - 2890)}
    raw.hset(keys.history, mapping={**stale, "oldest": minute - 2900})
    view(client, website_id, "a", "/")  # the first pageview of a new minute cleans up
    if raw.hget(keys.history, f"p{minute}") is None:  # the minute turned meanwhile
        view(client, website_id, "a", "/")
    fields = raw.hkeys(keys.history)
    assert not set(stale) & set(fields)
    assert int(raw.hget(keys.history, "oldest") or 0) >= minute - 1439
    assert 0 < raw.pttl(keys.history) <= 1441 * 60_000
