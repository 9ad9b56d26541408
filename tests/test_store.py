"""The Lua scripts on a real server: window, trimming, round trips, NOSCRIPT, outages."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.config import Settings
from realtime_visitors.storage import embedded, scripts, store
from realtime_visitors.storage.keys import site_keys
from realtime_visitors.storage.store import RealtimeStatus, Store, Visitor, Where

from .conftest import node_of, run_admin, unique_id

T = TypeVar("T")
Site = Callable[..., tuple[str, str]]


def server_ms(raw: redis.Redis) -> int:
    seconds, micros = raw.time()
    return seconds * 1000 + micros // 1000


def count(client: TestClient, website_id: str, token: str) -> int:
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["currentVisitors"])


def test_window_boundary_uses_server_clock(
    client: TestClient, make_site: Site, raw: redis.Redis, settings: Settings
) -> None:
    website_id, token = make_site()
    key = site_keys(website_id).visitors
    now = server_ms(raw)
    raw.zadd(
        key,
        {
            "gone": now - settings.window_ms - 1,
            "leaving": now - settings.window_ms + 5_000,
            "here": now,
        },
    )
    assert count(client, website_id, token) == 2
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "new"})
    assert raw.zscore(key, "gone") is None  # trimmed by the next pageview
    assert raw.zscore(key, "leaving") is not None


def test_visitors_leave_when_the_window_passes(
    make_client: Callable[..., TestClient], make_site: Site
) -> None:
    client = make_client(window_seconds=1)
    website_id, token = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "a"})
    assert count(client, website_id, token) == 1
    deadline = time.monotonic() + 5
    while count(client, website_id, token) != 0:
        assert time.monotonic() < deadline, "visitor still counted long after the window"
        time.sleep(0.05)


def test_a_new_pageview_keeps_the_visitor(
    make_client: Callable[..., TestClient], make_site: Site, raw: redis.Redis
) -> None:
    website_id, token = make_site()
    client = make_client()
    key = site_keys(website_id).visitors
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "a"})
    ((member, _),) = raw.zrange(key, 0, -1, withscores=True)
    raw.zadd(key, {member: server_ms(raw) - 179_000})
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "a"})
    assert server_ms(raw) - raw.zscore(key, member) < 5_000
    assert count(client, website_id, token) == 1


def test_trimming_is_bounded_but_counting_exact(
    make_site: Site,
    raw: redis.Redis,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    client: TestClient,
) -> None:
    monkeypatch.setattr(store, "TRIM_BUDGET", 3)
    website_id, token = make_site()
    key = site_keys(website_id).visitors
    now = server_ms(raw)
    raw.zadd(key, {f"old{i}": now - settings.window_ms - 1000 - i for i in range(10)})
    raw.zadd(key, {"fresh": now})
    assert count(client, website_id, token) == 1
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "b"})
    assert raw.zcard(key) == 12 - 3  # three of the ten expired members removed
    assert [m for m in raw.zrange(key, 0, 2)] == ["old6", "old5", "old4"]  # the oldest went
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "b"})
    assert raw.zcard(key) == 12 - 6
    assert count(client, website_id, token) == 2


def commandstats(raw: redis.Redis) -> dict[str, int]:
    return {
        name.removeprefix("cmdstat_").split("|")[0]: stats["calls"]
        for name, stats in raw.info("commandstats").items()
    }


def script_commands(name: str) -> set[str]:
    return {
        command.lower() for command in re.findall(r"redis\.call\('(\w+)'", scripts.source(name))
    }


@pytest.mark.parametrize("endpoint", ["realtime", "pageview"])
def test_one_round_trip_per_request(
    client: TestClient, make_site: Site, raw: redis.Redis, endpoint: str
) -> None:
    website_id, token = make_site()

    def request() -> None:
        if endpoint == "realtime":
            assert (
                client.get(
                    f"/api/v1/realtime?websiteId={website_id}",
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code
                == 200
            )
        else:
            assert (
                client.post("/api/v1/pageview", json={"websiteId": website_id}).status_code == 202
            )

    request()  # the first one opens the connection and may load the script
    node = node_of(raw, website_id)
    before = commandstats(node)
    request()
    after = commandstats(node)
    delta = {
        name: after[name] - before.get(name, 0)
        for name in after
        if after[name] != before.get(name, 0)
    }
    # The client sent exactly one EVALSHA (and our own INFO); every other command
    # counted ran inside that script.
    assert delta.pop("evalsha") == 1
    assert delta.pop("info") == 1
    assert set(delta) <= script_commands(endpoint)
    assert not {"eval", "script"} & set(delta)


def test_noscript_heals_by_itself(client: TestClient, make_site: Site, raw: redis.Redis) -> None:
    website_id, token = make_site()
    assert count(client, website_id, token) == 0
    raw.script_flush()
    assert client.post("/api/v1/pageview", json={"websiteId": website_id}).status_code == 202
    raw.script_flush()
    assert count(client, website_id, token) == 1


def test_unreachable_redis_is_503(settings: Settings, tmp_path: Path) -> None:
    app_settings = replace(settings, redis_url=f"unix://{tmp_path}/nothing.sock")
    from realtime_visitors.app import create_app

    with TestClient(create_app(app_settings)) as client:
        started = time.monotonic()
        realtime = client.get(
            "/api/v1/realtime?websiteId=site", headers={"Authorization": "Bearer vt_x"}
        )
        pageview = client.post("/api/v1/pageview", json={"websiteId": "site"})
        elapsed = time.monotonic() - started
    for response in (realtime, pageview):
        assert response.status_code == 503
        assert response.json() == {"error": "Service unavailable"}
        assert response.headers["Retry-After"] == "1"
    assert elapsed < 2


def test_service_recovers_when_redis_comes_back(tmp_path: Path) -> None:
    from realtime_visitors.app import create_app

    server = embedded.ensure(tmp_path / "db")
    config = Settings(redis_url=server.url)
    try:
        site, token = run_admin(config, lambda s: s.create(unique_id(), "", "free"))
        with TestClient(create_app(config)) as client:
            url = f"/api/v1/realtime?websiteId={site.website_id}"
            headers = {"Authorization": f"Bearer {token.token}"}
            assert client.get(url, headers=headers).status_code == 200
            server.stop()
            assert client.get(url, headers=headers).status_code == 503
            server = embedded.ensure(tmp_path / "db")
            assert client.get(url, headers=headers).status_code == 200
    finally:
        server.stop()


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        assert settings.redis_url
        s = Store(settings.redis_url, settings)
        try:
            return await action(s)
        finally:
            await s.close()

    return asyncio.run(main())


def test_unknown_plan_falls_back_to_the_smallest(
    settings: Settings, raw: redis.Redis, make_site: Site
) -> None:
    website_id, token = make_site()
    raw.hset(site_keys(website_id).site, "plan", "retired")
    result = with_store(settings, lambda s: s.realtime(website_id, token, "client"))
    assert result.status is RealtimeStatus.OK
    assert result.limit == min(settings.plans.values())


def test_crawler_mode_writes_nothing(settings: Settings, raw: redis.Redis, make_site: Site) -> None:
    website_id, _ = make_site()
    status = with_store(
        settings, lambda s: s.pageview(website_id, Visitor("n"), "client", Where("/"))
    )
    assert status is store.PageviewStatus.CRAWLER
    assert raw.exists(site_keys(website_id).visitors) == 0


def test_an_outage_logs_a_line_a_second_not_one_per_request(
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from realtime_visitors.app import create_app
    from realtime_visitors.http import fastlane

    # Forget any line an earlier test logged within the last second.
    monkeypatch.setitem(fastlane._unavailable, "logged_at", 0.0)
    app_settings = replace(settings, redis_url=f"unix://{tmp_path}/nothing.sock")
    with (
        caplog.at_level("WARNING", logger="realtime_visitors"),
        TestClient(create_app(app_settings)) as client,
    ):
        for _ in range(50):
            assert client.post("/api/v1/pageview", json={"websiteId": "site"}).status_code == 503
    lines = [r for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert 1 <= len(lines) <= 3
