"""POST /api/v1/pageview: ingest, validation, visitor identity, crawlers."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.storage.keys import site_keys

from .conftest import unique_id

Site = Callable[..., tuple[str, str]]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def members(raw: redis.Redis, website_id: str) -> list[str]:
    return raw.zrange(site_keys(website_id).visitors, 0, -1)


def test_accepts_json_and_counts(client: TestClient, make_site: Site, raw: redis.Redis) -> None:
    website_id, _ = make_site()
    response = client.post(
        "/api/v1/pageview",
        json={
            "websiteId": website_id,
            "url": "https://a.example/p",
            "referrer": "",
            "visitorId": "v1",
        },
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "counted": True}
    assert len(members(raw, website_id)) == 1


@pytest.mark.parametrize(
    "content_type",
    ["text/plain;charset=UTF-8", "application/json", None, "application/x-www-form-urlencoded"],
)
def test_body_is_json_whatever_the_content_type(
    client: TestClient, make_site: Site, raw: redis.Redis, content_type: str | None
) -> None:
    website_id, _ = make_site()
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(
        "/api/v1/pageview", content=f'{{"websiteId": "{website_id}"}}', headers=headers
    )
    assert response.status_code == 202
    assert len(members(raw, website_id)) == 1


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "Request body must be a JSON object"),
        (b"{not json", 400, "Request body must be a JSON object"),
        (b"[]", 400, "Request body must be a JSON object"),
        (b'"site"', 400, "Request body must be a JSON object"),
        (b"\xff\xfe{}", 400, "Request body must be a JSON object"),
        (b"{}", 400, "websiteId is required"),
        (b'{"websiteId": ""}', 400, "websiteId is required"),
        (b'{"websiteId": null}', 400, "websiteId is required"),
        (b'{"websiteId": 42}', 400, "websiteId must be a string"),
        (b'{"websiteId": ["a"]}', 400, "websiteId must be a string"),
        (b'{"websiteId": "a", "url": 1}', 400, "url must be a string"),
        (b'{"websiteId": "a", "referrer": {}}', 400, "referrer must be a string"),
        (b'{"websiteId": "a", "visitorId": 7}', 400, "visitorId must be a string"),
        (
            b'{"websiteId": "a", "visitorId": "' + b"x" * 129 + b'"}',
            400,
            "visitorId must be at most 128 characters",
        ),
    ],
)
def test_bad_bodies_get_clear_errors(
    client: TestClient, raw: redis.Redis, body: bytes, status: int, message: str
) -> None:
    keys_before = raw.dbsize()
    response = client.post(
        "/api/v1/pageview", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.json() == {"error": message}
    assert raw.dbsize() <= keys_before


def test_body_over_16_kib_is_413(client: TestClient, make_site: Site, raw: redis.Redis) -> None:
    website_id, _ = make_site()
    padding = "x" * (16 * 1024)
    response = client.post("/api/v1/pageview", json={"websiteId": website_id, "url": padding})
    assert response.status_code == 413
    assert "16384" in response.json()["error"]
    assert members(raw, website_id) == []


def test_streamed_body_over_limit_is_413(client: TestClient, make_site: Site) -> None:
    website_id, _ = make_site()

    def chunks():
        yield b'{"websiteId": "' + website_id.encode() + b'", "url": "'
        for _ in range(20):
            yield b"y" * 1024
        yield b'"}'

    response = client.post("/api/v1/pageview", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize("website_id", [unique_id(), "a" * 65, "{x}", "a b", "ü"])
def test_unknown_website_is_404_and_creates_nothing(
    client: TestClient, raw: redis.Redis, website_id: str
) -> None:
    keys_before = raw.dbsize()
    response = client.post("/api/v1/pageview", json={"websiteId": website_id})
    assert response.status_code == 404
    assert response.json() == {"error": "Website not found"}
    assert raw.dbsize() <= keys_before


def test_score_is_the_latest_pageview_and_never_moves_back(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    key = site_keys(website_id).visitors
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v"})
    ((member, first),) = raw.zrange(key, 0, -1, withscores=True)
    # Pretend the visitor's last pageview lies in the future (a clock step back).
    raw.zadd(key, {member: first + 60_000})
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v"})
    assert raw.zscore(key, member) == first + 60_000
    raw.zadd(key, {member: first - 1000})
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v"})
    assert raw.zscore(key, member) >= first


def test_members_are_bounded_and_hash_the_visitor_id(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v" * 128})
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "user@example.com"})
    found = members(raw, website_id)
    assert len(found) == 2
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{12}", member) for member in found)
    assert not any("example" in member for member in found)


def test_set_expires_when_idle(
    client: TestClient, make_site: Site, raw: redis.Redis, settings
) -> None:
    website_id, _ = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id})
    keys = site_keys(website_id)
    ttl = raw.pttl(keys.visitors)
    assert 0 < ttl <= settings.window_ms + 1000  # rounded up to a whole second
    # Everything kept of the visitors goes with them.
    for key in (keys.details, keys.pages, keys.by_page, keys.by_source, keys.by_country):
        assert abs(raw.pttl(key) - ttl) <= 5, key


def test_anonymous_visitors_are_ip_and_agent(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    for agent in (CHROME, CHROME, FIREFOX):
        client.post(
            "/api/v1/pageview", json={"websiteId": website_id}, headers={"User-Agent": agent}
        )
    assert len(members(raw, website_id)) == 2
    salt = raw.get(site_keys(website_id).salt)
    day, _, secret = salt.partition(":")
    now_s, _ = raw.time()
    assert int(day) == now_s // 86400
    assert len(secret) == 32
    assert 0 < raw.pttl(site_keys(website_id).salt) <= 2 * 86400 * 1000


def test_salt_rotates_with_the_day(client: TestClient, make_site: Site, raw: redis.Redis) -> None:
    website_id, _ = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id}, headers={"User-Agent": CHROME})
    raw.set(site_keys(website_id).salt, "1:stale-secret-from-long-ago")
    client.post("/api/v1/pageview", json={"websiteId": website_id}, headers={"User-Agent": CHROME})
    # Same person, new day: a new, unlinkable id.
    assert len(members(raw, website_id)) == 2
    assert not raw.get(site_keys(website_id).salt).startswith("1:")


def test_forwarded_for_is_ignored_without_trusted_proxies(
    client: TestClient, make_site: Site, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    for fake in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
        client.post(
            "/api/v1/pageview",
            json={"websiteId": website_id},
            headers={"X-Forwarded-For": fake, "User-Agent": CHROME},
        )
    assert len(members(raw, website_id)) == 1


def test_forwarded_for_is_used_behind_trusted_proxy(
    make_client: Callable[..., TestClient], make_site: Site, raw: redis.Redis
) -> None:
    import ipaddress

    client = make_client(peer="10.0.0.7", trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    website_id, _ = make_site()
    # The proxy appends the address it saw; anything to its left is the client's word.
    for real in ("9.9.9.9, 1.1.1.1", "2.2.2.2", "8.8.8.8, 2.2.2.2, 10.0.0.3"):
        client.post(
            "/api/v1/pageview",
            json={"websiteId": website_id},
            headers={"X-Forwarded-For": real, "User-Agent": CHROME},
        )
    assert len(members(raw, website_id)) == 2


@pytest.mark.parametrize(
    "agent",
    [
        GOOGLEBOT,
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0.0.0 Safari/537.36",
        "UptimeRobot/2.0; http://www.uptimerobot.com/",
    ],
)
def test_crawlers_are_accepted_but_not_counted(
    client: TestClient, make_site: Site, raw: redis.Redis, agent: str
) -> None:
    website_id, _ = make_site()
    response = client.post(
        "/api/v1/pageview",
        json={"websiteId": website_id, "visitorId": "bot"},
        headers={"User-Agent": agent},
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "counted": False, "reason": "crawler"}
    assert members(raw, website_id) == []


def test_the_first_refusal_per_website_and_reason_is_logged_once(
    client: TestClient, make_site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    website_id, _ = make_site()
    with caplog.at_level(logging.INFO, logger="realtime_visitors"):
        for _ in range(3):
            client.post(
                "/api/v1/pageview",
                json={"websiteId": website_id},
                headers={"User-Agent": GOOGLEBOT},
            )
    lines = [r.getMessage() for r in caplog.records if website_id in r.getMessage()]
    assert len(lines) == 1, lines
    assert "not counted (crawler)" in lines[0]


def test_crawler_on_unknown_website_is_still_404(client: TestClient) -> None:
    response = client.post(
        "/api/v1/pageview", json={"websiteId": unique_id()}, headers={"User-Agent": GOOGLEBOT}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "agent",
    ["curl/8.5.0", "python-requests/2.32.3", "node", "axios/1.7.2", "Go-http-client/1.1", CHROME],
)
def test_http_clients_and_browsers_are_counted(
    client: TestClient, make_site: Site, raw: redis.Redis, agent: str
) -> None:
    website_id, _ = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id}, headers={"User-Agent": agent})
    assert len(members(raw, website_id)) == 1


def test_cors_for_tracking_snippets(client: TestClient, make_site: Site) -> None:
    website_id, _ = make_site()
    response = client.post(
        "/api/v1/pageview",
        content=f'{{"websiteId": "{website_id}"}}',
        headers={"Origin": "https://customer.example", "Content-Type": "text/plain"},
    )
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == "*"
