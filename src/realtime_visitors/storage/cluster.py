"""The hot path on Redis Cluster: each call goes to the primary serving its slot.

Every key of a website carries the hash tag `{websiteId}`, so a call's first key names
its slot, and each primary gets one pipelined Connection, as a single node does:
routing costs a dictionary lookup. The slot map comes from CLUSTER SHARDS and is read
again, without a restart, when a node answers MOVED, fails, or says the cluster is
down; until a dead primary's replica takes over, its slots answer StorageError (503)
while the other primaries keep serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.crc import key_slot

from ..config import CLUSTER_SCHEMES
from .connection import Connection, Redirected, Script, StorageError

log = logging.getLogger("realtime_visitors")

SLOTS = 16384
# MOVED and ASK chains longer than this mean a topology in flux: answer 503.
MAX_REDIRECTS = 5
# TRYAGAIN (a multi-key call while its slot migrates) is retried this often, until
# the call's timeout: a migration of one website's few keys takes milliseconds.
TRY_AGAIN_DELAYS = (0.002, 0.005, 0.01, 0.02, 0.05)
# Failures ask for a new slot map at most this often.
REFRESH_INTERVAL = 0.2


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def _parts(url: str) -> tuple[str, str, list[str]]:
    """redis+cluster://[user:password@]host:port[,host:port...] -> ("redis",
    "user:password@" or "", the seeds' "host:port")."""
    scheme, _, rest = url.partition("://")
    credentials, at, hosts = rest.rpartition("@")
    hosts = hosts.split("/", 1)[0].split("?", 1)[0]
    seeds = [host.strip() for host in hosts.split(",") if host.strip()]
    return scheme.removesuffix("+cluster"), credentials + at, seeds


def seed_addresses(url: str) -> list[str]:
    """The seeds' "host:port", without credentials."""
    return _parts(url)[2]


def node_url(url: str, address: str) -> str:
    """A redis:// URL for one node of the cluster named by url (credentials kept)."""
    scheme, credentials, _ = _parts(url)
    return f"{scheme}://{credentials}{address}"


def seed_urls(url: str) -> list[str]:
    """One redis:// URL per seed node."""
    return [node_url(url, address) for address in seed_addresses(url)]


@lru_cache(maxsize=65536)
def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


class ClusterConnection:
    """The same calls as Connection, routed by slot to one Connection per primary."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.seeds = seed_addresses(url)
        if not self.seeds:
            raise StorageError("a redis+cluster:// URL needs at least one host:port")
        self.timeout = timeout
        self.nodes: dict[str, Connection] = {}  # "host:port" -> its connection
        self.slots: list[Connection | None] = [None] * SLOTS
        self._mapped = False
        # Redirections met, by kind: how often the map was stale or a slot migrating.
        self.redirected: Counter[str] = Counter()
        self._refreshing: asyncio.Future[None] | None = None
        self._refreshed_at = -REFRESH_INTERVAL
        self._background: set[asyncio.Future[None]] = set()

    async def call(self, script: Script, keys: tuple[str, ...], args: tuple[str | int, ...]) -> Any:
        slot = slot_of(keys[0])
        node = self.slots[slot] or await self._serving(slot)
        try:
            return await node.submit(script, keys, args)
        except Redirected as exc:
            return await self._redirected(exc, slot, node, script, keys, args)
        except StorageError:
            # The node is down or did not answer: maybe a failover is under way.
            self.refresh_soon()
            raise

    async def _redirected(
        self,
        exc: Redirected,
        slot: int,
        node: Connection,
        script: Script,
        keys: tuple[str, ...],
        args: tuple[str | int, ...],
    ) -> Any:
        """The slow path, apart so that a call served at once pays for none of it."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        delays = iter(TRY_AGAIN_DELAYS)
        redirects = 0
        while True:
            self.redirected[exc.kind] += 1
            redirects += exc.kind in ("MOVED", "ASK")
            if redirects > MAX_REDIRECTS:
                raise exc
            node, asking = await self._follow(exc, slot, node, deadline, delays)
            try:
                return await node.submit(script, keys, args, asking)
            except Redirected as again:
                exc = again
            except StorageError:
                self.refresh_soon()
                raise

    async def _follow(
        self,
        exc: Redirected,
        slot: int,
        node: Connection,
        deadline: float,
        delays: Iterator[float],
    ) -> tuple[Connection, bool]:
        if exc.kind == "MOVED":
            # The slot has a new owner for good: go there now, and learn the rest of
            # the new map before long.
            moved = self._node(exc.address)
            self.slots[slot] = moved
            self.refresh_soon()
            return moved, False
        if exc.kind == "ASK":
            # The slot is migrating and this call's keys have left: ask the importing
            # node, for this call only, without changing the map.
            return self._node(exc.address), True
        # TRYAGAIN (the call's keys are split between the two nodes of a migration)
        # or CLUSTERDOWN (a failover in progress): the same call again, shortly.
        delay = next(delays, TRY_AGAIN_DELAYS[-1])
        if asyncio.get_running_loop().time() + delay > deadline:
            self.refresh_soon()
            raise exc
        await asyncio.sleep(delay)
        return self.slots[slot] or node, False

    async def command(self, *args: str | int) -> Any:
        """A command without keys, on any primary."""
        primaries = await self.primaries()
        return await primaries[0].command(*args)

    async def primaries(self) -> list[Connection]:
        """One connection per primary serving slots, for commands each must run."""
        if not self._mapped:
            await self.refresh()
        return list({id(node): node for node in self.slots if node is not None}.values())

    async def _serving(self, slot: int) -> Connection:
        # A slot nobody serves (its primary failed, no replica promoted yet) asks for a
        # new map at most every REFRESH_INTERVAL, not on every call.
        now = asyncio.get_running_loop().time()
        if not self._mapped or now - self._refreshed_at >= REFRESH_INTERVAL:
            await self.refresh()
        node = self.slots[slot]
        if node is None:
            raise StorageError(f"no Redis Cluster primary serves slot {slot} now")
        return node

    def refresh_soon(self) -> None:
        """Read the slot map again in the background, at most every REFRESH_INTERVAL."""
        now = asyncio.get_running_loop().time()
        if now - self._refreshed_at >= REFRESH_INTERVAL:
            self._refreshed_at = now
            task = asyncio.ensure_future(self._refresh_quietly())
            self._background.add(task)  # held until done: the loop keeps weak references
            task.add_done_callback(self._background.discard)

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except StorageError as exc:
            log.warning("cannot read the Redis Cluster slot map: %s", exc)

    async def refresh(self) -> None:
        # Every caller waiting for a map shares one reading.
        if self._refreshing is None:
            self._refreshed_at = asyncio.get_running_loop().time()
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(self._refreshed)
        await asyncio.shield(self._refreshing)

    def _refreshed(self, attempt: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not attempt.cancelled():
            attempt.exception()  # retrieved here: the callers that wait see it

    async def _refresh(self) -> None:
        errors = []
        # Current primaries first, then the seeds and the rest: any node may be down.
        serving = [address for address, node in self.nodes.items() if node in self.slots]
        for address in dict.fromkeys([*serving, *self.seeds, *self.nodes]):
            try:
                shards = await self._node(address).command("CLUSTER", "SHARDS")
            except StorageError as exc:
                errors.append(f"{address}: {exc}")
                continue
            self._apply(parse_shards(shards))
            return
        raise StorageError("no Redis Cluster node answered: " + "; ".join(errors))

    def _apply(self, ranges: list[tuple[int, int, str]]) -> None:
        slots: list[Connection | None] = [None] * SLOTS
        for first, last, address in ranges:
            slots[first : last + 1] = [self._node(address)] * (last - first + 1)
        self.slots = slots
        self._mapped = True

    def _node(self, address: str) -> Connection:
        node = self.nodes.get(address)
        if node is None:
            node = self.nodes[address] = Connection(node_url(self.url, address), self.timeout)
        return node

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


def parse_shards(reply: list[Any]) -> list[tuple[int, int, str]]:
    """CLUSTER SHARDS -> (first slot, last slot, "host:port" of the healthy primary)."""
    ranges = []
    for shard in reply:
        fields = _pairs(shard)
        primaries = [
            node
            for node in map(_pairs, fields[b"nodes"])
            if node[b"role"] == b"master" and node.get(b"health", b"online") != b"fail"
        ]
        if not primaries:
            continue  # a failed primary whose replica is not promoted yet
        primary = primaries[0]
        host = (primary.get(b"endpoint") or primary[b"ip"]).decode()
        address = f"{host}:{primary.get(b'port') or primary[b'tls-port']}"
        slots = fields[b"slots"]
        ranges += [(int(slots[i]), int(slots[i + 1]), address) for i in range(0, len(slots), 2)]
    return ranges


def _pairs(flat: list[Any]) -> dict[bytes, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def credentials_of(url: str) -> tuple[str | None, str | None]:
    """(username, password) of a cluster URL, for redis-py's cluster client."""
    parts = urlsplit(seed_urls(url)[0])
    return (
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )
