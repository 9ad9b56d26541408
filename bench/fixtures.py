"""What the store-level scenarios share: a benchmark website, filled sets, script calls."""

from __future__ import annotations

import base64
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from realtime_visitors.storage import scripts, store
from realtime_visitors.storage.keys import ClientKeys, SiteKeys, client_keys, site_keys
from realtime_visitors.storage.store import HISTORY_MINUTES, Where
from realtime_visitors.storage.tokens import digest, new_token

from .common import Figure, median, percentile, time_calls

# KEYS and ARGV as the headers of lua/pageview.lua and lua/realtime.lua document them.
WINDOW_MS = 180_000
TRIM_BUDGET = store.TRIM_BUDGET  # as the service calls the script
MAX_FAILURES = 10
# A plan whose hourly limit no benchmark can spend, so the rate limit never answers.
PLAN = "bench"
PLAN_LIMIT = 1_000_000_000
PLANS_ENV = f"{PLAN}={PLAN_LIMIT}"

ZADD_CHUNK = 10_000  # members per ZADD
PAGEVIEW_BATCH = 5_000  # EVALSHA per pipeline
HOME = Where("/")  # where a pageview is when a scenario does not care

# Where the visitors of the breakdown scenarios are (`spread`): 10,000 paths, 500 sources
# and 200 countries, each as popular as 1/rank (Zipf). The peers' SQL in
# bench/toppages.py draws its paths the same way.
PATHS, SOURCES, COUNTRIES = 10_000, 500, 200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def script(client: redis.Redis, name: str) -> Script:
    return client.register_script(scripts.source(name))


@dataclass(frozen=True)
class Website:
    website_id: str
    token: str
    keys: SiteKeys
    client: ClientKeys

    @property
    def realtime_keys(self) -> list[str]:
        return [self.keys.site, self.keys.visitors, self.client.failures, self.keys.pages]

    @property
    def realtime_args(self) -> list[str | int]:
        # ARGV[5] "": every visitor of the website, not one page's.
        return [WINDOW_MS, digest(self.token), MAX_FAILURES, 60_000, "", PLAN, PLAN_LIMIT]

    @property
    def pageview_keys(self) -> list[str]:
        k = self.keys
        return [k.site, k.visitors, k.salt, self.client.new_visitors, k.details, k.pages,
                k.by_page, k.by_source, k.by_country, k.history]  # fmt: skip

    def pageview_args(self, visitor_id: str, where: Where = HOME) -> list[str | int]:
        # Mode "v": ARGV[4] (User-Agent) and ARGV[5] (fresh salt) are unused but keep
        # their positions. Every call comes from one "client": no per-address cap.
        return [WINDOW_MS, "v", visitor_id, "", "unused", TRIM_BUDGET, 0, *where,
                HISTORY_MINUTES]  # fmt: skip


def create_website(client: redis.Redis, website_id: str) -> Website:
    """A website on the "bench" plan with one token (its digest is a field of the site
    hash), replacing any earlier one."""
    keys = site_keys(website_id)
    client.delete(*keys.all)
    token = new_token()
    created = server_ms(client)
    client.hset(
        keys.site,
        mapping={"name": website_id, "plan": PLAN, "created": created,
                 digest(token): f"tok_bench:{created}"},
    )  # fmt: skip
    return Website(website_id, token, keys, client_keys(website_id, "bench-client"))


def command(client: redis.Redis, *args: str | int) -> Any:
    """Any command by name (redis-py leaves execute_command untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def server_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def members(count: int) -> list[str]:
    """`count` random visitor members, 12 URL-safe base64 characters like the real ones."""
    raw = base64.urlsafe_b64encode(os.urandom(9 * count)).decode()
    return [raw[i : i + 12] for i in range(0, 12 * count, 12)]


def fill(client: redis.Redis, key: str, count: int, newest_ms: int, spread_ms: int) -> None:
    """Add `count` random members to the set `key`, scored in (newest - spread, newest]."""
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, ZADD_CHUNK):
        chunk = members(min(ZADD_CHUNK, count - start))
        pipe.zadd(key, {m: newest_ms - random.randrange(spread_ms) for m in chunk})
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()


def fill_active(client: redis.Redis, site: Website, count: int, expired: int = 0) -> None:
    """`count` visitors seen in the last 30 s, plus `expired` seen 3 min to a day ago."""
    now = server_ms(client)
    # The last 30 s only: nobody leaves the window while a scenario measures.
    fill(client, site.keys.visitors, count, now, 30_000)
    if expired:
        fill(client, site.keys.visitors, expired, now - WINDOW_MS - 1, 86_400_000)


def call_realtime(rt: Script, site: Website) -> int:
    """One realtime-script call; the visitors it counted."""
    reply = rt(keys=site.realtime_keys, args=site.realtime_args)
    if int(reply[0]) != 0:
        raise RuntimeError(f"realtime script answered status {reply[0]} for {site.website_id}")
    return int(reply[1])


def realtime_caller(rt: Script, site: Website) -> Callable[[], int]:
    return lambda: call_realtime(rt, site)


def call_pageview(pv: Script, site: Website, visitor_id: str) -> None:
    if int(pv(keys=site.pageview_keys, args=site.pageview_args(visitor_id))) != 1:
        raise RuntimeError(f"pageview script did not count for {site.website_id}")


def _names(template: str, n: int) -> list[str]:
    return [template.format(k) for k in range(n)]


def _log_uniform(n: int) -> list[float]:
    """Cumulative weights of ranks 0 .. n-1 drawn as floor((n+1)^u) - 1, u uniform in
    [0, 1): rank k about 1/(k+1) as often as rank 0."""
    return [math.log(k + 2) / math.log(n + 1) for k in range(n)]


PAGE_NAMES, PAGE_WEIGHTS = _names("/page/{}", PATHS), _log_uniform(PATHS)
SOURCE_NAMES, SOURCE_WEIGHTS = _names("source-{}.example", SOURCES), _log_uniform(SOURCES)
COUNTRY_NAMES = [chr(65 + k // 26) + chr(65 + k % 26) for k in range(COUNTRIES)]
COUNTRY_WEIGHTS = _log_uniform(COUNTRIES)


def spread(seed: int, count: int) -> list[Where]:
    """Where `count` visitors are: a path, a source and a country each, Zipf-distributed;
    the same for the same seed."""
    rng = random.Random(seed)
    pages = rng.choices(PAGE_NAMES, cum_weights=PAGE_WEIGHTS, k=count)
    sources = rng.choices(SOURCE_NAMES, cum_weights=SOURCE_WEIGHTS, k=count)
    countries = rng.choices(COUNTRY_NAMES, cum_weights=COUNTRY_WEIGHTS, k=count)
    return list(map(Where, pages, sources, countries))


def pageviews(
    client: redis.Redis,
    pv: Script,
    site: Website,
    start: int,
    count: int,
    wheres: Sequence[Where] = (),
) -> None:
    """Pageviews of visitors bench-<start> .. bench-<start+count-1>, pipelined; the n-th
    visitor's at wheres[n] (at HOME without wheres)."""
    pipe = client.pipeline(transaction=False)
    for n, i in enumerate(range(start, start + count)):
        where = wheres[n] if wheres else HOME
        pv(keys=site.pageview_keys, args=site.pageview_args(f"bench-{i}", where), client=pipe)
        if len(pipe) >= PAGEVIEW_BATCH:
            _all_counted(pipe.execute())
    _all_counted(pipe.execute())


def _all_counted(replies: list[object]) -> None:
    if any(reply != 1 for reply in replies):
        raise RuntimeError("a pipelined pageview was not counted")


def latency_rounds(
    cases: Mapping[str, Callable[[], object]], rounds: int, calls: int, warmup: int
) -> dict[str, list[list[float]]]:
    """Per case, `rounds` lists of `calls` latencies (ms); the cases take turns each round,
    so that drift of the machine spreads over all of them."""
    for call in cases.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[list[float]]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            samples[name].append(time_calls(call, calls))
    return samples


def server_usec(client: redis.Redis, call: Callable[[], object], count: int) -> float:
    """Microseconds per EVALSHA as the server itself counts them (INFO commandstats),
    free of the client's and the socket's share: the median over batches of 10 calls,
    so that one slow call (a Lua GC cycle, a rehash step) does not make the figure."""
    batches = []
    for _ in range(max(1, count // 10)):
        command(client, "CONFIG", "RESETSTAT")
        for _ in range(10):
            call()
        batches.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
    return round(median(batches), 2)


def latency_summary(rounds: list[list[float]]) -> tuple[float, list[float], dict[str, float]]:
    """(median of the round medians, the round medians, p50/p99 over every call)."""
    medians = [median(r) for r in rounds]
    every = [x for r in rounds for x in r]
    stats = {
        "p50_ms": round(percentile(every, 50), 4),
        "p99_ms": round(percentile(every, 99), 4),
        "calls": len(every),
    }
    return median(medians), medians, stats


def format_figure(f: Figure) -> str:
    ratio = "" if f.ratio is None else f"  {f.ratio:.2f}x vs {f.baseline}"
    target = f"  target {f.target}: {'met' if f.met else 'NOT met'}" if f.target else ""
    if f.target and f.met is None:
        target = f"  target {f.target}: not measured"
    return f"[{f.scenario}] {f.name}: {f.value:,.4g} {f.unit}{ratio}{target}\n    {f.extra}"


def main(run: Callable[[Path, bool], list[Figure]]) -> None:
    """`python -m bench.<scenario> [--full]`: run one scenario (quick by default) alone."""
    quick = "--full" not in sys.argv[1:]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rtv-bench-") as tmp:
        figures = run(Path(tmp), quick)
    for f in figures:
        print(format_figure(f))
    print(f"({'quick' if quick else 'full'} run: {time.perf_counter() - started:.1f} s)")


@contextmanager
def stage(what: str) -> Iterator[None]:
    log(f"  {what} ...")
    started = time.perf_counter()
    yield
    log(f"  {what}: {time.perf_counter() - started:.1f} s")
