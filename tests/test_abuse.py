"""Abuse: guessing tokens costs the guesser, one address cannot inflate the count."""

from __future__ import annotations

from collections.abc import Callable

import redis
from starlette.testclient import TestClient

from realtime_visitors.storage.keys import site_keys

Site = Callable[..., tuple[str, str]]


def realtime(client: TestClient, website_id: str, token: str):
    return client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )


def test_repeated_failures_from_one_address_are_429(
    make_client: Callable[..., TestClient], make_site: Site
) -> None:
    guesser = make_client(peer="203.0.113.9", max_auth_failures=3)
    neighbour = make_client(peer="198.51.100.4", max_auth_failures=3)
    website_id, token = make_site()
    for guess in ("vt_a", "vt_b", "vt_c"):
        assert realtime(guesser, website_id, guess).status_code == 401
    blocked = realtime(guesser, website_id, "vt_d")
    assert blocked.status_code == 429
    assert blocked.json() == {"error": "Too many failed authentication attempts"}
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # Even the right token waits: the address has spent its tries.
    assert realtime(guesser, website_id, token).status_code == 429
    # Another address is not affected, and the website's budget was never touched.
    ok = realtime(neighbour, website_id, token)
    assert ok.status_code == 200
    assert ok.headers["X-RateLimit-Remaining"] == "99"


def test_failures_never_reach_another_website(
    make_client: Callable[..., TestClient], make_site: Site
) -> None:
    guesser = make_client(peer="203.0.113.10", max_auth_failures=2)
    site_a, _ = make_site()
    site_b, token_b = make_site()
    for _ in range(3):
        realtime(guesser, site_a, "vt_wrong")
    assert realtime(guesser, site_a, "vt_wrong").status_code == 429
    assert realtime(guesser, site_b, token_b).status_code == 200


def test_one_address_cannot_inflate_the_count(
    make_client: Callable[..., TestClient], make_site: Site, raw: redis.Redis
) -> None:
    flooder = make_client(peer="203.0.113.20", max_visitors_per_ip=5)
    honest = make_client(peer="198.51.100.20", max_visitors_per_ip=5)
    website_id, token = make_site()
    answers = [
        flooder.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": f"fake-{i}"})
        for i in range(40)
    ]
    assert {answer.status_code for answer in answers} == {202}  # retrying gains nothing
    # but a developer testing from one address can tell why nothing more counts
    assert [answer.json()["counted"] for answer in answers] == [True] * 5 + [False] * 35
    assert answers[-1].json()["reason"] == "over_address_cap"
    agents = [f"Mozilla/5.0 (X11; Linux x86_64) Firefox/{i}.0" for i in range(20)]
    for agent in agents:
        flooder.post(
            "/api/v1/pageview", json={"websiteId": website_id}, headers={"User-Agent": agent}
        )
    assert raw.zcard(site_keys(website_id).visitors) == 5
    assert (
        honest.post(
            "/api/v1/pageview", json={"websiteId": website_id, "visitorId": "real"}
        ).status_code
        == 202
    )
    assert realtime(honest, website_id, token).json()["currentVisitors"] == 6


def test_capped_address_still_refreshes_its_visitors(
    make_client: Callable[..., TestClient], make_site: Site, raw: redis.Redis
) -> None:
    office = make_client(peer="203.0.113.30", max_visitors_per_ip=2)
    website_id, _ = make_site()
    key = site_keys(website_id).visitors
    for visitor in ("a", "b", "c"):
        office.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": visitor})
    members = raw.zrange(key, 0, -1, withscores=True)
    assert len(members) == 2
    oldest, score = members[0]
    raw.zadd(key, {oldest: score - 60_000})
    office.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "a"})
    office.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "b"})
    assert raw.zscore(key, oldest) >= score


def test_cap_zero_turns_it_off(
    make_client: Callable[..., TestClient], make_site: Site, raw: redis.Redis
) -> None:
    server = make_client(peer="203.0.113.40", max_visitors_per_ip=0)
    website_id, _ = make_site()
    for i in range(150):
        server.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": f"user-{i}"})
    assert raw.zcard(site_keys(website_id).visitors) == 150
