"""Redis Cluster: the service on a real 3+3 Valkey Cluster, through failover and a slot's
migration under load. (Every store and HTTP test also runs on this cluster: conftest.)"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
import redis

from realtime_visitors.admin.sites import Sites
from realtime_visitors.app import create_app
from realtime_visitors.config import Settings
from realtime_visitors.storage.cluster import ClusterConnection, slot_of
from realtime_visitors.storage.keys import site_keys
from realtime_visitors.storage.localcluster import LocalCluster
from realtime_visitors.storage.store import Store

from .conftest import raw_client

pytestmark = pytest.mark.slow

# No request in these tests may be refused for its budget: only the cluster may fail them.
PLANS = {"load": 10**9}
FAILOVER_DEADLINE = 30.0  # seconds; the local cluster fails over in about 3
OK = {200, 202}


def settings_for(cluster: LocalCluster) -> Settings:
    return Settings(redis_url=cluster.url, plans=PLANS, max_visitors_per_ip=0)


@dataclass
class Service:
    """The ASGI app on the cluster, driven over HTTP in this event loop."""

    store: Store
    http: httpx.AsyncClient
    sites: Sites
    seen: list[tuple[float, str, int, str | None]] = field(default_factory=list)

    async def new_site(self) -> tuple[str, str]:
        site, token = await self.sites.create(None, "", "load")
        return site.website_id, token.token

    async def read(self, website_id: str, token: str) -> httpx.Response:
        response = await self.http.get(
            f"/api/v1/realtime?websiteId={website_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.record(website_id, response)
        return response

    async def pageview(self, website_id: str, visitor: str) -> httpx.Response:
        response = await self.http.post(
            "/api/v1/pageview", json={"websiteId": website_id, "visitorId": visitor}
        )
        self.record(website_id, response)
        return response

    def record(self, website_id: str, response: httpx.Response) -> None:
        retry_after = response.headers.get("retry-after")
        self.seen.append((time.monotonic(), website_id, response.status_code, retry_after))


@asynccontextmanager
async def service(cluster: LocalCluster) -> AsyncIterator[Service]:
    settings = settings_for(cluster)
    store = Store(cluster.url, settings)
    transport = httpx.ASGITransport(create_app(settings, store), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://rtv") as http:
        try:
            yield Service(store, http, Sites(store, settings.plans))
        finally:
            await store.close()


def owner(raw: redis.RedisCluster, website_id: str) -> int:
    return int(raw.get_node_from_key(site_keys(website_id).site).port)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def test_a_killed_primary_fails_its_own_websites_only_until_its_replica_takes_over(
    local_cluster: LocalCluster,
) -> None:
    raw = raw_client(local_cluster.url)

    async def main() -> None:
        async with service(local_cluster) as rtv:
            sites = [await rtv.new_site() for _ in range(24)]
            owners = {website_id: owner(raw, website_id) for website_id, _ in sites}
            assert len(set(owners.values())) == 3  # every primary holds some
            victim = owners[sites[0][0]]
            stop = asyncio.Event()

            async def load(website_id: str, token: str) -> None:
                for n in itertools.count():
                    if stop.is_set():
                        return
                    answers = [await rtv.pageview(website_id, f"v{n % 5}")]
                    answers.append(await rtv.read(website_id, token))
                    if any(answer.status_code == 503 for answer in answers):
                        await asyncio.sleep(0.01)  # as a client told Retry-After would

            workers = [asyncio.ensure_future(load(*site)) for site in sites]
            await until(lambda: len(rtv.seen) > 200, 10, "load before the kill")
            local_cluster.kill(victim)
            killed_at = time.monotonic()
            victims = {website_id for website_id, port in owners.items() if port == victim}

            def victims_recovered() -> bool:
                mine = [(t, w, s) for t, w, s, _ in rtv.seen if t > killed_at and w in victims]
                failed = [t for t, _, s in mine if s == 503]
                served = {w for t, w, s in mine if failed and t > failed[-1] and s in OK}
                return served == victims

            await until(victims_recovered, FAILOVER_DEADLINE, "the replica took over")
            served = len(rtv.seen)
            await until(lambda: len(rtv.seen) > served + 200, 10, "load after the failover")
            stop.set()
            await asyncio.gather(*workers)

            others = collections.Counter(s for _, w, s, _ in rtv.seen if w not in victims)
            assert others
            assert set(others) <= OK, others
            mine = [(t, s, r) for t, w, s, r in rtv.seen if w in victims]
            assert {s for _, s, _ in mine} <= {*OK, 503}
            assert all(r == "1" for _, s, r in mine if s == 503)  # Retry-After on each
            recovered_at = max(t for t, s, _ in mine if s == 503)
            assert all(s in OK for t, s, _ in mine if t > recovered_at)

    try:
        asyncio.run(main())
    finally:
        raw.close()
        local_cluster.restart_if_down()
        local_cluster.wait_healthy(FAILOVER_DEADLINE)


def test_a_busy_websites_slot_migrates_without_a_failed_request_or_a_lost_pageview(
    local_cluster: LocalCluster,
) -> None:
    async def main() -> None:
        async with service(local_cluster) as rtv:
            website_id, token = await rtv.new_site()
            slot = slot_of(site_keys(website_id).site)
            source = local_cluster.owner_of_slot(slot)
            target = next(port for port in local_cluster.primaries() if port != source)
            counted: set[str] = set()
            stop = asyncio.Event()
            ids = itertools.count()

            async def load() -> None:
                while not stop.is_set():
                    visitor = f"v{next(ids)}"
                    if (await rtv.pageview(website_id, visitor)).status_code == 202:
                        counted.add(visitor)
                    await rtv.read(website_id, token)

            workers = [asyncio.ensure_future(load()) for _ in range(16)]
            await until(lambda: len(counted) > 500, 10, "load before the migration")
            await asyncio.to_thread(local_cluster.migrate_slot, slot, target)
            moved_at = len(rtv.seen)
            await until(lambda: len(rtv.seen) > moved_at + 500, 10, "load after the migration")
            stop.set()
            await asyncio.gather(*workers)

            assert local_cluster.owner_of_slot(slot) == target
            statuses = collections.Counter(status for _, _, status, _ in rtv.seen)
            assert set(statuses) == {200, 202}, statuses
            final = await rtv.read(website_id, token)
            assert final.json()["currentVisitors"] == len(counted)
            connection = rtv.store.connection
            assert isinstance(connection, ClusterConnection)
            # The service saw the move: the old owner's MOVED (and ASK or TRYAGAIN while
            # the keys were in flight, when a call fell into that moment).
            assert connection.redirected["MOVED"] >= 1, connection.redirected

    asyncio.run(main())


def test_ten_thousand_websites_spread_evenly_over_the_primaries(
    local_cluster: LocalCluster,
) -> None:
    async def main() -> list[str]:
        async with service(local_cluster) as rtv:
            made: list[str] = []
            for _ in range(10):
                batch = await asyncio.gather(*(rtv.new_site() for _ in range(1000)))
                made += [website_id for website_id, _ in batch]
            return made

    made = set(asyncio.run(main()))
    per_node = {}
    for port in local_cluster.primaries():
        with redis.Redis(port=port) as node:
            found = [
                key
                for key in node.scan_iter(match="rtv:{*}:site", count=10_000)
                if key.decode().removeprefix("rtv:{").removesuffix("}:site") in made
            ]
            per_node[port] = len(found)
            # These 10,000 websites are not for the other tests (one slot per UNLINK).
            with node.pipeline(transaction=False) as pipe:
                for key in found:
                    pipe.unlink(key)
                pipe.execute()
    assert sum(per_node.values()) == len(made) == 10_000
    even = len(made) / len(per_node)
    assert all(abs(n - even) <= 0.1 * even for n in per_node.values()), per_node


def test_sites_list_covers_every_primary(local_cluster: LocalCluster) -> None:
    raw = raw_client(local_cluster.url)

    async def main() -> tuple[set[str], list[str]]:
        async with service(local_cluster) as rtv:
            made: set[str] = set()
            # Until each primary holds one of them (three or four websites, usually).
            while len({owner(raw, website_id) for website_id in made}) < 3:
                made.add((await rtv.new_site())[0])
            listed = [site.website_id for site in await rtv.sites.all()]
            return made, listed

    try:
        made, listed = asyncio.run(main())
        assert made <= set(listed)
    finally:
        raw.close()


def test_the_slot_map_comes_from_cluster_shards(local_cluster: LocalCluster) -> None:
    async def main() -> tuple[int, set[str]]:
        connection = ClusterConnection(local_cluster.url, 1.0)
        try:
            await connection.refresh()
            served = [node for node in connection.slots if node is not None]
            addresses = {a for a, node in connection.nodes.items() if node in served}
            return len(served), addresses
        finally:
            connection.close()

    served, addresses = asyncio.run(main())
    assert served == 16384
    assert {f"127.0.0.1:{port}" for port in local_cluster.primaries()} == addresses


def test_an_unknown_slot_owner_is_a_503_not_a_500(local_cluster: LocalCluster) -> None:
    """Every seed down: the service answers 503 with Retry-After, and comes back."""
    settings = Settings(redis_url="redis+cluster://127.0.0.1:1", plans=PLANS)

    async def main() -> httpx.Response:
        app = create_app(settings)
        transport = httpx.ASGITransport(app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://rtv") as http:
            return await http.post("/api/v1/pageview", json={"websiteId": "nobody"})

    response = asyncio.run(main())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
