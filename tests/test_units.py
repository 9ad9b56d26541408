"""Fast unit tests of pure logic: settings, keys, tokens, client address, crawlers."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from pathlib import Path

import fakeredis
import pytest

from realtime_visitors.admin.sites import SiteError, Sites
from realtime_visitors.config import DEFAULT_PLANS, ConfigError, Settings, hide_password
from realtime_visitors.http.routes import bearer_token, iso_timestamp
from realtime_visitors.storage import scripts
from realtime_visitors.storage.cluster import seed_urls, slot_of
from realtime_visitors.storage.keys import is_valid_website_id, site_keys, website_id_of_site_key
from realtime_visitors.storage.store import Store
from realtime_visitors.storage.tokens import digest, new_token
from realtime_visitors.tracking import crawlers
from realtime_visitors.tracking.visitors import client_ip, identify


def test_settings_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url is None
    assert settings.window_seconds == 180
    assert settings.window_ms == 180_000
    assert dict(settings.plans) == {"free": 100, "pro": 1000, "enterprise": 10000}
    assert settings.cors_origins == ("*",)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data_dir == Path(".data")


def test_settings_from_env() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://h:1/2",
            "RTV_WINDOW_SECONDS": "5",
            "RTV_PLANS": "free=10, team=500",
            "RTV_CORS_ORIGINS": "https://a.example, https://b.example",
            "RTV_TRUSTED_PROXIES": "10.0.0.0/8,::1",
            "RTV_DATA_DIR": "/tmp/x",
            "RTV_HOST": "0.0.0.0",
            "RTV_PORT": "9000",
            "RTV_REDIS_TIMEOUT": "0.25",
        }
    )
    assert settings.redis_url == "redis://h:1/2"
    assert settings.window_ms == 5000
    assert dict(settings.plans) == {**DEFAULT_PLANS, "free": 10, "team": 500}
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert ipaddress.ip_address("10.1.2.3") in settings.trusted_proxies[0]
    assert settings.data_dir == Path("/tmp/x")
    assert (settings.host, settings.port, settings.redis_timeout) == ("0.0.0.0", 9000, 0.25)


@pytest.mark.parametrize(
    "env",
    [
        {"RTV_WINDOW_SECONDS": "0"},
        {"RTV_WINDOW_SECONDS": "three"},
        {"RTV_PLANS": "free"},
        {"RTV_PLANS": "free=0"},
        {"RTV_PLANS": "free=-1"},
        {"RTV_TRUSTED_PROXIES": "not-an-ip"},
        {"RTV_REDIS_TIMEOUT": "-1"},
        {"RTV_PORT": "http"},
        {"RTV_PORT": "65536"},
        {"RTV_PORT": "99999"},
        {"REDIS_URL": "localhost:6379"},
        {"REDIS_URL": "http://localhost:6379"},
        {"REDIS_URL": "REDIS://localhost"},  # redis-py wants the scheme in lower case
        {"REDIS_URL": "redis://127.0.0.1:notaport"},
        {"REDIS_URL": "redis://127.0.0.1:0"},
        {"REDIS_URL": "redis://127.0.0.1:65536/0"},
        {"REDIS_URL": "redis://[::1"},
        {"REDIS_URL": "unix://"},
    ],
)
def test_bad_settings_are_clear_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://user:pw@cache.example:6380",
        "redis://[::1]:6379",
        "redis://localhost",
        "unix:///run/redis.sock?db=2",
    ],
)
def test_good_redis_urls_are_kept_as_given(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    "url",
    [
        "hunter2@localhost:6379",
        "redis://:hunter2@localhost:99999/0",
        "redis://admin:hunter2@localhost:x",
        "redis://:hunter2/with/slashes@localhost:6379",
        "http://:hunter2@localhost",
    ],
)
def test_a_bad_redis_url_error_hides_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL") as error:
        Settings.from_env({"REDIS_URL": url})
    assert "hunter2" not in str(error.value)
    assert "***@localhost" in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://admin:p@ss:w0rd@host", "rediss://admin:***@host"),
        ("redis://token@host", "redis://***@host"),
        ("unix://admin:pw@/run/redis.sock", "unix://admin:***@/run/redis.sock"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("pw@host", "***@host"),
    ],
)
def test_hide_password(url: str, shown: str) -> None:
    assert hide_password(url) == shown


def test_store_description_names_the_variable_that_chose_it() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis://:pw@host:6379/0"})
    assert settings.store_description() == "redis://:***@host:6379/0 (REDIS_URL)"
    embedded = Settings.from_env({"RTV_DATA_DIR": "some/folder"})
    where = f"the embedded store at {Path('some/folder').resolve()} (RTV_DATA_DIR)"
    assert embedded.store_description() == where


def test_all_keys_of_a_website_share_its_hash_tag() -> None:
    keys = site_keys("my-site.1")
    assert len(set(keys.all)) == len(keys.all) == 10
    for key in keys.all:
        assert re.fullmatch(r"rtv:\{my-site\.1\}:[\w:]+", key)
    assert website_id_of_site_key(keys.site) == "my-site.1"


@pytest.mark.parametrize("website_id", ["a", "A-z_0.9", "x" * 64])
def test_valid_website_ids(website_id: str) -> None:
    assert is_valid_website_id(website_id)


@pytest.mark.parametrize(
    "website_id", ["", "x" * 65, "a{b", "a}b", "a b", "a:b", "a\n", "é", "a%20b", "a*"]
)
def test_impossible_website_ids_never_build_keys(website_id: str) -> None:
    assert not is_valid_website_id(website_id)
    with pytest.raises(ValueError, match="not a website id"):
        site_keys(website_id)


def test_tokens_are_long_random_and_stored_as_digests() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert re.fullmatch(r"vt_[A-Za-z0-9_-]{43,}", token)
        assert re.fullmatch(r"[0-9a-f]{64}", digest(token))
        assert token not in digest(token)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer vt_abc", "vt_abc"),
        ("bearer vt_abc", "vt_abc"),
        ("BEARER  vt_abc ", "vt_abc"),
        ("Bearer vt_a+b/c==", "vt_a+b/c=="),
        ("Bearer", None),
        ("Bearer vt_a vt_b", None),
        ("Basic vt_abc", None),
        ("Bearer vt_\u00e9", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_iso_timestamp_has_milliseconds_and_z() -> None:
    assert iso_timestamp(1753895377000) == "2025-07-30T17:09:37.000Z"
    assert iso_timestamp(1753895377042) == "2025-07-30T17:09:37.042Z"


PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("1.2.3.4", None, "1.2.3.4"),
        ("1.2.3.4", "9.9.9.9", "1.2.3.4"),  # the peer is no proxy of ours: ignore the header
        ("10.0.0.1", "9.9.9.9", "9.9.9.9"),
        ("10.0.0.1", "6.6.6.6, 9.9.9.9", "9.9.9.9"),  # the left part is the client's word
        ("10.0.0.1", "9.9.9.9, 10.0.0.2", "9.9.9.9"),  # two proxies of ours
        ("::1", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.1", "garbage", "garbage"),
        (None, None, ""),
    ],
)
def test_client_ip(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_identify() -> None:
    chrome = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    )
    assert identify("v1", "1.2.3.4", chrome) == ("v", "v1", "")
    assert identify(None, "1.2.3.4", chrome) == ("a", "1.2.3.4", chrome)
    assert identify("v1", "1.2.3.4", "Googlebot/2.1").mode == "n"
    assert len(identify(None, "1.2.3.4", "x" * 5000).agent) == crawlers.MAX_AGENT


def test_crawler_list_excludes_generic_http_clients() -> None:
    assert crawlers.is_crawler(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    )
    assert not crawlers.is_crawler("curl/8.5.0")
    assert not crawlers.is_crawler("python-requests/2.32")


def test_every_script_documents_keys_argv_and_return() -> None:
    for name in scripts.NAMES:
        text = scripts.source(name)
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        assert "KEYS[1]" in header, name
        assert "Returns" in header, name
        # Keys come from KEYS only: a script never builds a key name itself.
        assert "rtv:" not in text, name


def test_site_admin_validates_before_touching_redis() -> None:
    settings = Settings(redis_url="redis://unused")
    sites = Sites(Store("redis://unused", settings), settings.plans)
    with pytest.raises(SiteError, match="invalid website id"):
        asyncio.run(sites.create("a b", "", "free"))
    with pytest.raises(SiteError, match="unknown plan"):
        asyncio.run(sites.create("ok", "", "platinum"))
    with pytest.raises(SiteError, match="invalid website id"):
        asyncio.run(sites.set_plan("{x}", "pro"))


def test_crawler_cache_holds_only_cut_user_agents() -> None:
    crawlers._matches.cache_clear()
    crawlers.is_crawler("x" * 100_000)
    assert crawlers._matches.cache_info().currsize == 1
    crawlers.is_crawler("x" * crawlers.MAX_AGENT + "different tail")
    assert crawlers._matches.cache_info().hits == 1


def test_site_listing_skips_keys_that_are_no_website() -> None:
    client = fakeredis.FakeAsyncRedis()
    settings = Settings(redis_url="redis://unused")
    sites = Sites(Store("redis://unused", settings, client=client), settings.plans)

    async def main() -> list[str]:
        for website_id in ("b-site", "a-site", "bad id", "{nested}"):
            await client.hset(
                f"rtv:{{{website_id}}}:site", mapping={"name": "n", "plan": "free", "created": "1"}
            )
        await client.set("rtv:{c-site}:visitors", "not a site key")
        return [site.website_id for site in await sites.all()]

    assert asyncio.run(main()) == ["a-site", "b-site"]


@pytest.mark.parametrize(
    ("url", "seeds"),
    [
        ("redis+cluster://10.0.0.1:7000", ["redis://10.0.0.1:7000"]),
        (
            "redis+cluster://a:7000, b:7001,",
            ["redis://a:7000", "redis://b:7001"],
        ),
        (
            "rediss+cluster://user:p%40ss@a:7000,b:7001",
            ["rediss://user:p%40ss@a:7000", "rediss://user:p%40ss@b:7001"],
        ),
    ],
)
def test_a_cluster_url_names_its_seed_nodes(url: str, seeds: list[str]) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url is not None
    assert seed_urls(url) == seeds


def test_a_cluster_urls_password_is_hidden_in_its_description() -> None:
    settings = Settings.from_env({"REDIS_URL": "redis+cluster://:hunter2hunter2@a:7000,b:7001"})
    assert "hunter2hunter2" not in settings.store_description()
    assert "a:7000,b:7001" in settings.store_description()


def test_keys_of_one_website_share_one_slot_and_websites_spread() -> None:
    keys = site_keys("shop")
    assert {slot_of(key) for key in keys.all} == {slot_of(keys.site)}
    assert len({slot_of(site_keys(f"site{n}").site) for n in range(100)}) > 90
