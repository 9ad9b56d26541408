"""The hot path to Redis: one script call per HTTP request. Raises StorageError."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, NamedTuple, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ..config import Settings
from . import scripts
from .cluster import ClusterConnection, credentials_of, is_cluster_url, seed_addresses
from .connection import Connection, Script, StorageError
from .keys import client_keys, site_keys
from .tokens import digest

T = TypeVar("T")

# Departed visitors removed per pageview at most: each costs about 20 us of server
# time (it leaves every breakdown), so a crowd leaving at once is spread over many
# calls; every pageview adds at most one visitor, so the trims keep up with traffic.
# The count never depends on it.
TRIM_BUDGET = 100
# A breakdown read trims before it counts, with a larger budget (about 20 ms at most):
# it is exact as long as fewer visitors than this left since the last pageview.
READ_TRIM_BUDGET = 10 * TRIM_BUDGET
# Failed authentications are counted per client address over this many ms.
FAILURE_WINDOW_MS = 60_000
# Minutes of per-minute history kept: a day.
HISTORY_MINUTES = 1440


class PageviewStatus(IntEnum):
    NOT_FOUND = 0
    COUNTED = 1
    CRAWLER = 2
    OVER_CAP = 3


class RealtimeStatus(IntEnum):
    OK = 0
    NOT_FOUND = 1
    INVALID_TOKEN = 2
    RATE_LIMITED = 3
    TOO_MANY_FAILURES = 4


@dataclass(frozen=True, slots=True)
class RealtimeResult:
    """A read's answer; a breakdown's items or a history's minutes ride along in `rows`."""

    status: RealtimeStatus
    visitors: int
    limit: int
    remaining: int
    reset_ms: int
    retry_ms: int
    now_ms: int
    rows: tuple[Any, ...] = ()

    @classmethod
    def counted(cls, visitors: int, now_ms: int) -> RealtimeResult:
        """A count read without the budget (a public read, a stream's event)."""
        return cls(RealtimeStatus.OK, visitors, 0, 0, 0, 0, now_ms)

    @classmethod
    def of(cls, reply: list[Any]) -> RealtimeResult:
        status, visitors, limit, remaining, reset_ms, retry_ms, now_ms, *rows = reply
        return cls(
            RealtimeStatus(status), visitors, limit, remaining, reset_ms, retry_ms, now_ms,
            tuple(rows),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class LiveCount:
    """A count read without a token, for public reads and streams (lua/live.lua)."""

    found: bool  # False: no such website
    visitors: int
    now_ms: int
    # The website's publishable keys: digest -> the origins it may be used from
    # (empty: any origin).
    public_keys: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, reply: list[Any]) -> LiveCount:
        found, visitors, now_ms, *pairs = reply
        keys = {
            _text(pairs[i]): tuple(_text(pairs[i + 1]).split(":", 2)[2].split())
            for i in range(0, len(pairs), 2)
        }
        return cls(bool(found), visitors, now_ms, keys)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Visitor(NamedTuple):
    """Who viewed a page: mode "v" (own id), "a" (anonymous IP + agent), "n" (crawler)."""

    mode: str
    who: str = ""
    agent: str = ""


class Where(NamedTuple):
    """Where a pageview was: its page's path, its visit's source, the visitor's country."""

    page: str
    source: str = "direct"
    country: str = "unknown"


def connect(url: str, timeout: float) -> Redis | RedisCluster:
    if is_cluster_url(url):
        username, password = credentials_of(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(*seed.rsplit(":", 1)) for seed in seed_addresses(url)],
            username=username,
            password=password,
            ssl=url.startswith("rediss"),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Administration keeps working on the primaries still up while one is
            # failing over.
            require_full_coverage=False,
        )
    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # One immediate retry on a broken connection heals a pooled socket that a
        # Redis restart closed; a timeout is never retried, so an outage answers fast.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=0,
    )


class Store:
    """The request path uses its own pipelined connection; administration uses redis-py."""

    def __init__(
        self, url: str, settings: Settings, client: Redis | RedisCluster | None = None
    ) -> None:
        self.client = client or connect(url, settings.redis_timeout)
        self.scripts = scripts.admin()
        self.connection: Connection | ClusterConnection = (
            ClusterConnection(url, settings.redis_timeout)
            if is_cluster_url(url)
            else Connection(url, settings.redis_timeout)
        )
        self._hot = scripts.hot()
        self._window = settings.window_ms
        self._visitor_cap = settings.max_visitors_per_ip
        self._max_failures = settings.max_auth_failures
        # The smallest plan first: realtime.lua gives its limit to unknown plans.
        plans = sorted(settings.plans.items(), key=lambda item: item[1])
        self._plan_args = tuple(str(value) for pair in plans for value in pair)

    async def admin(
        self, script: Script, keys: Sequence[str], args: Sequence[str | int] = ()
    ) -> Any:
        """An administration script (scripts.admin()), on the request path's connection."""
        return await self.connection.call(script, tuple(keys), tuple(args))

    async def call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except RedisError as exc:
            raise StorageError(str(exc)) from exc

    async def pageview(
        self, website_id: str, visitor: Visitor, client: str, where: Where
    ) -> PageviewStatus:
        keys = site_keys(website_id)
        fresh_salt = secrets.token_hex(16) if visitor.mode == "a" else ""
        status = await self.connection.call(
            self._hot.pageview,
            (
                keys.site, keys.visitors, keys.salt, client_keys(website_id, client).new_visitors,
                keys.details, keys.pages, keys.by_page, keys.by_source, keys.by_country,
                keys.history,
            ),
            (
                self._window, visitor.mode, visitor.who, visitor.agent, fresh_salt,
                TRIM_BUDGET, self._visitor_cap, where.page, where.source, where.country,
                HISTORY_MINUTES,
            ),
        )  # fmt: skip
        return PageviewStatus(status)

    async def realtime(
        self,
        website_id: str,
        token: str,
        client: str,
        path: str | None = None,
        window_ms: int | None = None,
    ) -> RealtimeResult:
        """Visitors now, on one page's path if given, within window_ms if given."""
        keys = site_keys(website_id)
        reply = await self.connection.call(
            self._hot.realtime,
            (keys.site, keys.visitors, client_keys(website_id, client).failures, keys.pages),
            (
                window_ms or self._window, digest(token), self._max_failures, FAILURE_WINDOW_MS,
                path or "", *self._plan_args,
            ),
        )  # fmt: skip
        return RealtimeResult.of(reply)

    async def breakdown(
        self, website_id: str, token: str, client: str, by: str, limit: int
    ) -> RealtimeResult:
        """Visitors now, and the `limit` values of `by` with the most: rows (value, n, ...)."""
        keys = site_keys(website_id)
        reply = await self.connection.call(
            self._hot.breakdown,
            (
                keys.site, keys.visitors, client_keys(website_id, client).failures,
                keys.details, keys.pages, keys.by_page, keys.by_source, keys.by_country,
            ),
            (
                self._window, digest(token), self._max_failures, FAILURE_WINDOW_MS, by, limit,
                READ_TRIM_BUDGET, *self._plan_args,
            ),
        )  # fmt: skip
        return RealtimeResult.of(reply)

    async def history(
        self, website_id: str, token: str, client: str, minutes: int
    ) -> RealtimeResult:
        """The last `minutes` minutes, oldest first: rows (pageviews, visitors, ...)."""
        keys = site_keys(website_id)
        reply = await self.connection.call(
            self._hot.history,
            (keys.site, keys.visitors, client_keys(website_id, client).failures, keys.history),
            (minutes, digest(token), self._max_failures, FAILURE_WINDOW_MS, *self._plan_args),
        )
        return RealtimeResult.of(reply)

    async def live(self, website_id: str, path: str, window_ms: int) -> LiveCount:
        """Visitors now, with no token and no budget spent: callers share the answer."""
        keys = site_keys(website_id)
        reply = await self.connection.call(
            self._hot.live,
            (keys.site, keys.visitors, keys.pages, keys.public),
            (window_ms, path),
        )
        return LiveCount.of(reply)

    async def ready(self) -> None:
        """Redis answers and the hot scripts are loaded (loaded here if they were not),
        on every primary of a cluster."""
        hot = tuple(self._hot)
        for node in await self.connection.primaries():
            present = await node.command("SCRIPT", "EXISTS", *(s.sha for s in hot))
            for script, loaded in zip(hot, present, strict=True):
                if not loaded:
                    await node.command("SCRIPT", "LOAD", script.source)

    async def close(self) -> None:
        self.connection.close()
        await self.client.aclose()
