"""Scenarios 8 and 9: "which pages are people on right now, and how many on each?"

8. The peers answer it with a query over their stored events: Plausible with ClickHouse
   (run in-process here by chDB, on a real on-disk MergeTree table), Umami with
   PostgreSQL (its website_event table, on this machine's PostgreSQL). Each query runs at
   the same numbers of active visitors as our breakdown read (`Store.breakdown`, one
   script call) on Valkey; the ratio is how many times faster ours answers.
9. Our breakdown read and our count on one page's path (`Store.realtime(path=...)`) at
   1k and at 1M visitors: both should cost the same.

The visitors are the same everywhere: spread over 10,000 paths, 500 sources and 200
countries, each as popular as 1/rank (bench/fixtures.py, `spread`). The peers store every
pageview: 3 per visitor in the last 60 s, on paths drawn independently, and older
events of the day before them. We keep each visitor once, on the page of their latest
pageview: the peers count a visitor on every page they viewed in the last 5 minutes,
we on the page they are on.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from realtime_visitors.config import Settings
from realtime_visitors.storage.store import RealtimeResult, RealtimeStatus, Store

from . import fixtures as fx
from . import layout
from . import peers as pg
from .common import Figure, median
from .servers import valkey

SCENARIO = "8. the peers' top pages"
FLAT = "9. breakdown reads as work grows"
TOP = 10  # pages asked for
PAGE = "/page/17"  # the path of the per-path count
FASTER = 100  # ours should answer at least this many times faster than each peer ...
FASTER_FROM = 100_000  # ... from this many visitors on
FLAT_TARGET = 1.2  # the largest size's latency over the smallest's, at most
PAGEVIEWS_PER_VISITOR = 3
CLIENT = "bench-client"
# The peers' window is 5 minutes; every visitor's pageviews lie in the last minute
# before the load, so the queries have 4 minutes before anyone leaves (checked).
WINDOW_S = 300
ACTIVE_S = 60

# A path drawn as fixtures.spread draws one: rank floor((n+1)^u) - 1, u uniform in [0, 1).
CH_PATH = (
    f"concat('/page/', toString(toUInt32(floor(exp(randCanonical() * log({fx.PATHS + 1})))) - 1))"
)
PG_PATH = f"'/page/' || (floor(exp(random() * ln({fx.PATHS + 1})))::int - 1)"

# Plausible: events_v2's sorting key, partitions and sampling key (its other columns
# are not read by this query; a column store does not pay for them).
CH_TABLE = """CREATE TABLE events (site_id UInt64, timestamp DateTime64(3),
    user_id UInt64, pathname String)
    ENGINE = MergeTree PARTITION BY toYYYYMM(timestamp)
    ORDER BY (site_id, toYYYYMMDD(timestamp), user_id, timestamp) SAMPLE BY user_id"""
CH_OLDER = """INSERT INTO events SELECT {site}, now64(3) - toIntervalMillisecond(
    {window_ms} + rand() % {span_ms}), rand64(), {path} FROM numbers({older})"""
CH_ACTIVE = """INSERT INTO events SELECT {site}, now64(3) - toIntervalMillisecond(
    rand() % {active_ms}), cityHash64({site}, intDiv(number, {per})), {path}
    FROM numbers({rows})"""
# What Plausible runs for a realtime breakdown by page (period "realtime": 5 minutes).
CH_QUERY = (
    "SELECT pathname, uniq(user_id) AS visitors FROM events "
    "WHERE site_id = {site} AND timestamp >= now() - INTERVAL 5 MINUTE "
    "GROUP BY pathname ORDER BY visitors DESC LIMIT 10"
)

# Umami: website_event with the columns this query reads and its (website_id,
# created_at) index; UNLOGGED like scenario 3 (logging costs writes, not reads).
PG_LOAD = (
    """CREATE UNLOGGED TABLE website_event (website_id uuid NOT NULL,
       session_id uuid NOT NULL, created_at timestamptz(6) NOT NULL,
       url_path varchar(500) NOT NULL, event_type integer NOT NULL DEFAULT 1)""",
    f"""INSERT INTO website_event (website_id, session_id, created_at, url_path)
       SELECT w.id, gen_random_uuid(),
              now() - %(window)s * interval '1 second' - random() * %(span)s * interval '1 second',
              {PG_PATH}
       FROM unnest(%(ids)s::uuid[]) AS w(id), generate_series(1, %(older)s)""",
    f"""INSERT INTO website_event (website_id, session_id, created_at, url_path)
       SELECT w.id, md5(w.id::text || v)::uuid, now() - random() * %(active)s * interval '1 second',
              {PG_PATH}
       FROM unnest(%(ids)s::uuid[], %(sizes)s::int[]) AS w(id, n),
            generate_series(1, w.n) AS v, generate_series(1, %(per)s)""",
    "CREATE INDEX ON website_event (website_id, created_at)",
    "ANALYZE website_event",
)
# Umami's pageview metrics by path (getPageviewMetrics, relational query) over the last
# 5 minutes: its realtime page tallies only the latest events in the browser.
PG_QUERY = """SELECT url_path AS x, count(DISTINCT website_event.session_id) AS y
FROM website_event
WHERE website_event.website_id = %s AND website_event.created_at BETWEEN %s AND %s
  AND event_type = 1
GROUP BY 1 ORDER BY 2 DESC LIMIT 10"""
PG_DATABASE = "rtv_bench_pages"


class Unavailable(Exception):
    """A peer cannot be measured here; the message says why."""


def run(workdir: Path, quick: bool) -> list[Figure]:
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 100_000, 1_000_000)
    compared = sizes[1:]
    older = 50_000 if quick else 1_000_000  # per website
    rounds, calls, warmup = (3, 20, 5) if quick else (5, 100, 20)
    runs = 3 if quick else 7
    fx.log(f"{SCENARIO}: sizes {sizes}, {older:,} older events per website")
    with fx.stage("our reads on valkey"):
        ours = _ours(workdir / "toppages", sizes, rounds, calls, warmup, quick)
    figures: list[Figure] = []
    span_s = _older_span_s()
    for peer, measure in (("ClickHouse", _clickhouse), ("PostgreSQL", _postgresql)):
        try:
            with fx.stage(f"{peer}"):
                timed, loaded = measure(workdir, compared, older, span_s, runs)
        except Unavailable as exc:
            fx.log(f"  {peer} unavailable: {exc}")
            figures += [_unmeasured(peer, n, ours, str(exc)) for n in compared]
            continue
        figures += [_figure(peer, n, timed[n], ours, loaded) for n in compared]
    return figures + _flat_figures(ours, sizes)


# -- ours ------------------------------------------------------------------------


Samples = dict[str, list[list[float]]]


def _ours(
    workdir: Path, sizes: tuple[int, ...], rounds: int, calls: int, warmup: int, quick: bool
) -> dict[str, Any]:
    with valkey(workdir) as url:
        client = fx.connect(url)
        pv = fx.script(client, "pageview")
        layout.check(client, pv)
        sites = {}
        with fx.stage("writing the visitors"):
            for n in sizes:
                site = fx.create_website(client, f"pages-{n}")
                if n <= layout.script_up_to(quick):
                    fx.pageviews(client, pv, site, 0, n, fx.spread(n, n))
                else:
                    layout.write(client, site, 0, fx.spread(n, n))
                sites[n] = site
        on_page = {n: int(client.zscore(s.keys.by_page, PAGE) or 0) for n, s in sites.items()}
        ours = asyncio.run(_time_reads(url, client, sites, on_page, rounds, calls, warmup))
        return ours | {"script_up_to": layout.script_up_to(quick)}


async def _time_reads(
    url: str,
    client: redis.Redis,
    sites: dict[int, fx.Website],
    on_page: dict[int, int],
    rounds: int,
    calls: int,
    warmup: int,
) -> dict[str, Any]:
    settings = Settings(redis_url=url, plans={fx.PLAN: fx.PLAN_LIMIT}, redis_timeout=30)
    store = Store(url, settings)
    try:
        cases: dict[str, Callable[[], Awaitable[RealtimeResult]]] = {}
        for n, site in sites.items():
            cases[f"breakdown {n}"] = _breakdown(store, site)
            cases[f"page {n}"] = _on_page(store, site)
        answers = {name: await call() for name, call in cases.items()}
        for n in sites:
            _expect(answers[f"breakdown {n}"], n, TOP, f"the breakdown of {n:,} visitors")
            _expect(answers[f"page {n}"], on_page[n], 0, f"the count on {PAGE}, {n:,} visitors")
        samples = await _latency_rounds(cases, rounds, calls, warmup)
        usec = {name: await _server_usec(client, call, calls) for name, call in cases.items()}
        top = answers[f"breakdown {max(sites)}"].rows[:6]
    finally:
        await store.close()
    return {"samples": samples, "usec": usec, "on_page": on_page, "top": _text(top)}


def _breakdown(store: Store, site: fx.Website) -> Callable[[], Awaitable[RealtimeResult]]:
    return lambda: store.breakdown(site.website_id, site.token, CLIENT, by="page", limit=TOP)


def _on_page(store: Store, site: fx.Website) -> Callable[[], Awaitable[RealtimeResult]]:
    return lambda: store.realtime(site.website_id, site.token, CLIENT, path=PAGE)


def _expect(result: RealtimeResult, visitors: int, rows: int, what: str) -> None:
    if result.status != RealtimeStatus.OK or result.visitors != visitors:
        raise RuntimeError(f"{what}: status {result.status}, {result.visitors} visitors")
    if len(result.rows) != 2 * rows:
        raise RuntimeError(f"{what}: {len(result.rows) // 2} rows, not {rows}")


def _text(rows: tuple[Any, ...]) -> list[Any]:
    return [r.decode() if isinstance(r, bytes) else r for r in rows]


async def _latency_rounds(
    cases: Mapping[str, Callable[[], Awaitable[object]]], rounds: int, calls: int, warmup: int
) -> Samples:
    """fixtures.latency_rounds, awaiting each call in turn."""
    for call in cases.values():
        for _ in range(warmup):
            await call()
    samples: Samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            times = []
            for _ in range(calls):
                started = time.perf_counter()
                await call()
                times.append((time.perf_counter() - started) * 1000)
            samples[name].append(times)
    return samples


async def _server_usec(
    client: redis.Redis, call: Callable[[], Awaitable[object]], count: int
) -> float:
    """fixtures.server_usec, awaiting each call."""
    batches = []
    for _ in range(max(1, count // 10)):
        fx.command(client, "CONFIG", "RESETSTAT")
        for _ in range(10):
            await call()
        batches.append(float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]))
    return round(median(batches), 2)


def _flat_figures(ours: dict[str, Any], sizes: tuple[int, ...]) -> list[Figure]:
    small, large = sizes[0], sizes[-1]
    figures = []
    for read, name in (("breakdown", f"breakdown read (by page, top {TOP})"),
                       ("page", f"count on one path ({PAGE})")):  # fmt: skip
        base, _, _ = fx.latency_summary(ours["samples"][f"{read} {small}"])
        base_usec = ours["usec"][f"{read} {small}"]
        for n in sizes:
            value, runs, stats = fx.latency_summary(ours["samples"][f"{read} {n}"])
            usec = ours["usec"][f"{read} {n}"]
            at_target = n == large
            extra: dict[str, Any] = {**stats, "server_usec_per_call": usec,
                      "server_ratio": round(usec / base_usec, 2) if base_usec else None,
                      "store": "valkey 8 (embedded)", "client": "Store (the service's own)",
                      "written_by": "pageview script" if n <= ours["script_up_to"] else
                      "bench/layout.py (bulk, checked against the pageview script)"}  # fmt: skip
            if read == "page":
                extra["visitors_on_path"] = ours["on_page"][n]
            elif n == large:
                extra["top"] = ours["top"]
            figures.append(
                Figure(
                    FLAT, f"{name}, {n:,} visitors", value, "ms",
                    baseline=f"the same, {small:,} visitors ({base:.3f} ms)",
                    ratio=round(value / base, 2),
                    target=f"<= {FLAT_TARGET}x" if at_target else "",
                    met=value / base <= FLAT_TARGET if at_target else None,
                    runs=runs, extra=extra,
                )
            )  # fmt: skip
    return figures


# -- the peers -------------------------------------------------------------------


def _older_span_s() -> int:
    """How far back the older events go: up to 10 hours, within today (UTC) where it
    can, since Plausible's sorting key starts each day afresh."""
    since_midnight = int(time.time()) % 86_400 - WINDOW_S - 60
    return max(600, min(36_000, since_midnight))


Timed = dict[int, tuple[list[float], dict[str, Any]]]


def _clickhouse(
    workdir: Path, sizes: tuple[int, ...], older: int, span_s: int, runs: int
) -> tuple[Timed, str]:
    try:
        chdb: Any = importlib.import_module("chdb.session")  # untyped
    except ImportError:
        raise Unavailable("chdb is not installed: pip install -e '.[bench]'") from None
    data = workdir / "chdb"
    data.mkdir(parents=True, exist_ok=True)
    db = chdb.Session(str(data))
    try:
        started = time.perf_counter()
        db.query(CH_TABLE)
        for site, n in enumerate(sizes, 1):
            db.query(CH_OLDER.format(site=site, window_ms=WINDOW_S * 1000, span_ms=span_s * 1000,
                                     older=older, path=CH_PATH))  # fmt: skip
            db.query(CH_ACTIVE.format(site=site, active_ms=ACTIVE_S * 1000,
                                      rows=n * PAGEVIEWS_PER_VISITOR,
                                      per=PAGEVIEWS_PER_VISITOR, path=CH_PATH))  # fmt: skip
        # One part per month: the state background merges reach, and no merge runs
        # while the queries are timed.
        db.query("OPTIMIZE TABLE events FINAL")
        loaded_at = time.monotonic()
        rows, size, parts = _csv(db.query(
            "SELECT sum(rows), sum(bytes_on_disk), count() FROM system.parts "
            "WHERE active AND table = 'events'", "CSV"))  # fmt: skip
        version = _csv(db.query("SELECT version()", "CSV"))[0]
        loaded = (
            f"chDB {version} (ClickHouse in-process), an on-disk MergeTree, {int(rows):,} rows "
            f"in {parts} part(s), {int(size) / 2**20:.0f} MiB, loaded and merged in "
            f"{time.perf_counter() - started:.1f} s; " + _described(sizes, older, span_s)
        )
        timed = {}
        for site, n in enumerate(sizes, 1):
            query = CH_QUERY.format(site=site)
            timed[n] = _time(functools.partial(db.query, query, "CSV"), runs, loaded_at,
                             f"ClickHouse, {n:,} visitors")  # fmt: skip
            counted = _csv(db.query(
                f"SELECT uniqExact(user_id) FROM events WHERE site_id = {site} "
                "AND timestamp >= now() - INTERVAL 5 MINUTE", "CSV"))[0]  # fmt: skip
            if int(counted) != n:
                raise RuntimeError(f"ClickHouse holds {counted} of {n} visitors in the window")
            timed[n][1]["sql"] = query
    finally:
        db.close()
    return timed, loaded


def _csv(result: Any) -> list[str]:
    return str(result).strip().replace('"', "").split(",")


def _postgresql(
    workdir: Path, sizes: tuple[int, ...], older: int, span_s: int, runs: int
) -> tuple[Timed, str]:
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install -e '.[bench]'") from None
    try:
        admin = pg._connect(psycopg)
    except pg.Unavailable as exc:
        raise Unavailable(str(exc)) from None
    ids = [str(uuid.UUID(int=site)) for site in range(1, len(sizes) + 1)]
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DATABASE}")
        try:
            with psycopg.connect(admin.info.dsn, dbname=PG_DATABASE, autocommit=True) as db:
                started = time.perf_counter()
                params = {
                    "ids": ids, "sizes": list(sizes), "older": older, "span": span_s,
                    "window": WINDOW_S, "active": ACTIVE_S, "per": PAGEVIEWS_PER_VISITOR,
                }  # fmt: skip
                with db.cursor() as cur:
                    for statement in PG_LOAD:
                        cur.execute(statement, params)
                    cur.execute("SELECT count(*), pg_total_relation_size('website_event') "
                                "FROM website_event")  # fmt: skip
                    rows, size = cur.fetchone() or (0, 0)
                loaded_at = time.monotonic()
                loaded = (
                    f"PostgreSQL {db.info.parameter_status('server_version')}, default "
                    f"settings, one UNLOGGED table, {rows:,} rows ({size / 2**20:.0f} MiB with "
                    f"its (website_id, created_at) index), loaded in "
                    f"{time.perf_counter() - started:.1f} s; " + _described(sizes, older, span_s)
                )
                timed = {n: _time_pg(db, website, n, runs, loaded_at)
                         for website, n in zip(ids, sizes, strict=True)}  # fmt: skip
                return timed, loaded
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    finally:
        admin.close()


def _time_pg(
    db: Any, website: str, n: int, runs: int, loaded_at: float
) -> tuple[list[float], dict[str, Any]]:
    def query() -> Any:
        # As Umami does: the window's ends computed by the caller, bound as parameters.
        end = datetime.now(UTC)
        with db.cursor() as cur:
            cur.execute(PG_QUERY, (website, end - timedelta(minutes=5), end), prepare=False)
            return cur.fetchall()

    with db.cursor() as cur:
        end = datetime.now(UTC)
        cur.execute("EXPLAIN " + PG_QUERY, (website, end - timedelta(minutes=5), end))
        nodes = [row[0].split("  (cost=")[0].strip(" ->") for row in cur.fetchall()]
    plan = " / ".join(node for node in nodes if "  " not in node and ":" not in node)
    samples, extra = _time(query, runs, loaded_at, f"PostgreSQL, {n:,} visitors")
    with db.cursor() as cur:
        cur.execute(
            "SELECT count(DISTINCT session_id) FROM website_event "
            "WHERE website_id = %s AND created_at >= now() - interval '5 minutes'",
            (website,),
        )
        counted = (cur.fetchone() or (0,))[0]
    if counted != n:
        raise RuntimeError(f"PostgreSQL holds {counted} of {n} visitors in the window")
    return samples, extra | {"sql": PG_QUERY, "plan": plan}


def _time(
    call: Callable[[], object], runs: int, loaded_at: float, what: str
) -> tuple[list[float], dict[str, Any]]:
    """`runs` timed calls after one that warms the cache; 3 when a call takes seconds."""
    samples: list[float] = []
    call()
    while len(samples) < runs and not (len(samples) >= 3 and sum(samples) > 15_000):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    if time.monotonic() - loaded_at > WINDOW_S - ACTIVE_S:
        raise RuntimeError(f"{what}: the queries outlasted the window; the load aged out")
    fx.log(f"  {what}: {median(samples):.1f} ms (median of {len(samples)})")
    return samples, {"min_ms": round(min(samples), 2), "max_ms": round(max(samples), 2)}


def _described(sizes: tuple[int, ...], older: int, span_s: int) -> str:
    return (
        ", ".join(f"website {i}: {n:,} visitors" for i, n in enumerate(sizes, 1))
        + f", each visitor with {PAGEVIEWS_PER_VISITOR} pageviews in the last {ACTIVE_S} s "
        f"on paths drawn independently; each website with {older:,} older events over the "
        f"{span_s / 3600:.1f} hours before the 5-minute window"
    )


def _figure(peer: str, n: int, timed: tuple[list[float], dict[str, Any]],
            ours: dict[str, Any], loaded: str) -> Figure:  # fmt: skip
    samples, extra = timed
    value = median(samples)
    our_ms, _, our_extra = fx.latency_summary(ours["samples"][f"breakdown {n}"])
    ratio = round(value / our_ms, 1)
    at_target = n >= FASTER_FROM
    return Figure(
        SCENARIO, f"{_way(peer)}, {n:,} visitors", value, "ms",
        baseline=f"our breakdown read, {n:,} visitors ({our_ms:.3f} ms)", ratio=ratio,
        target=f">= {FASTER}x" if at_target else "", met=ratio >= FASTER if at_target else None,
        runs=samples,
        extra=extra | {"loaded": loaded, "ours_ms": our_ms, "ours": our_extra,
                       "ours_server_usec": ours["usec"][f"breakdown {n}"]},
    )  # fmt: skip


def _way(peer: str) -> str:
    if peer == "ClickHouse":
        return "Plausible's way: ClickHouse uniq(user_id) by pathname, top 10"
    return "Umami's way: PostgreSQL count(DISTINCT session_id) by url_path, top 10"


def _unmeasured(peer: str, n: int, ours: dict[str, Any], why: str) -> Figure:
    our_ms, _, _ = fx.latency_summary(ours["samples"][f"breakdown {n}"])
    return Figure(
        SCENARIO, f"{_way(peer)}, {n:,} visitors", math.nan, "ms",
        baseline=f"our breakdown read, {n:,} visitors ({our_ms:.3f} ms)",
        target=f">= {FASTER}x" if n >= FASTER_FROM else "",
        extra={"note": f"not measured: {why}", "ours_ms": our_ms},
    )  # fmt: skip


if __name__ == "__main__":
    fx.main(run)
