"""Shared fixtures: real Redis-compatible servers started by the suite itself.

Every test that runs Lua talks to the embedded valkey-server started here, to a
Valkey Cluster of 3 primaries and 3 replicas started here from the same binary, and
also to REDIS_URL when it is set (CI sets it to the machine's Redis 7).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.admin.sites import Sites
from realtime_visitors.app import create_app
from realtime_visitors.config import Settings
from realtime_visitors.storage import embedded, localcluster
from realtime_visitors.storage.cluster import is_cluster_url, seed_addresses
from realtime_visitors.storage.keys import site_keys
from realtime_visitors.storage.localcluster import LocalCluster
from realtime_visitors.storage.store import Store

# The browser tests' fixtures (Chromium, the customer's site), for whichever module asks.
pytest_plugins = ["tests.browser"]

T = TypeVar("T")

BACKENDS = ["valkey", "cluster"] + (["REDIS_URL"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = embedded.ensure(tmp_path_factory.mktemp("valkey"), persist=False)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with localcluster.start(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session", params=BACKENDS)
def redis_url(request: pytest.FixtureRequest) -> str:
    if request.param == "valkey":
        return str(request.getfixturevalue("valkey_url"))
    if request.param == "cluster":
        return str(request.getfixturevalue("local_cluster").url)
    return os.environ["REDIS_URL"]


def single_node(url: str) -> str:
    """url, for tests of what only a single node has (its one connection, a database
    number, its INFO); a cluster skips them, and has tests of its own."""
    if is_cluster_url(url):
        pytest.skip("a single node's test; what a cluster adds is in test_cluster.py")
    return url


def node_of(raw: Any, website_id: str) -> redis.Redis:
    """The node that holds a website's keys, for one node's INFO or SCRIPT commands
    (raw itself when the store is a single node)."""
    if isinstance(raw, redis.RedisCluster):
        node: redis.Redis = raw.get_node_from_key(site_keys(website_id).site).redis_connection
        return node
    return cast(redis.Redis, raw)


def raw_client(url: str) -> Any:
    """A plain synchronous client of the store at url, a cluster's included."""
    if is_cluster_url(url):
        host, port = seed_addresses(url)[0].rsplit(":", 1)
        return redis.RedisCluster(host=host, port=int(port), decode_responses=True)
    return redis.Redis.from_url(url, decode_responses=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client, for looking at what the service wrote."""
    client = raw_client(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url)


def run_admin(settings: Settings, action: Callable[[Sites], Awaitable[T]]) -> T:
    async def main() -> T:
        assert settings.redis_url
        store = Store(settings.redis_url, settings)
        try:
            return await action(Sites(store, settings.plans))
        finally:
            await store.close()

    return asyncio.run(main())


def unique_id(prefix: str = "site") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_site(settings: Settings) -> Callable[..., tuple[str, str]]:
    """Create a website on a fresh id; return (website id, its token)."""

    def make(plan: str = "free", config: Settings | None = None) -> tuple[str, str]:
        site, token = run_admin(config or settings, lambda s: s.create(unique_id(), "", plan))
        return site.website_id, token.token

    return make


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(peer: str = "testclient", **overrides: Any) -> TestClient:
        app = create_app(replace(settings, **overrides))
        client = TestClient(app, client=(peer, 50000))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
