"""Scenario 3: the peers' way, SQL over stored events, against our realtime script.

Plausible, Umami and Matomo answer "current visitors" with a query over their events
table. Here that query runs on this machine's PostgreSQL over an indexed table, at the
same numbers of active visitors as our realtime script on Valkey.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from . import fixtures as fx
from .common import Figure, median
from .servers import valkey

SCENARIO = "3. the peers' way"
DATABASE = "rtv_bench"
CONNINFOS = ("host=/var/run/postgresql user=postgres", "host=127.0.0.1 port=5432 user=postgres")
PAGEVIEWS_PER_VISITOR = 3
TARGET_SIZE = 100_000
QUERY = (
    "SELECT count(DISTINCT visitor_id) FROM events "
    "WHERE website_id = %s AND ts >= now() - interval '3 minutes'"
)
# Every visitor's pageviews lie in the last 60 s before the load, so all of them are
# still in the window for the two minutes the queries may take.
LOAD = (
    "CREATE UNLOGGED TABLE events (website_id int NOT NULL, visitor_id bigint NOT NULL,"
    " ts timestamptz NOT NULL, url text NOT NULL)",
    """INSERT INTO events
       SELECT w.id, (random() * 1e12)::bigint,
              now() - interval '4 minutes' - random() * interval '1 day',
              'https://site.example/page/' || (g %% 50)
       FROM unnest(%(ids)s::int[]) AS w(id), generate_series(1, %(older)s) AS g""",
    """INSERT INTO events
       SELECT w.id, v, now() - random() * interval '60 seconds',
              'https://site.example/page/' || (v %% 50)
       FROM unnest(%(ids)s::int[], %(sizes)s::int[]) AS w(id, n),
            generate_series(1, w.n) AS v, generate_series(1, %(per)s)""",
    "CREATE INDEX events_website_ts ON events (website_id, ts)",
    "ANALYZE events",
)


class Unavailable(Exception):
    """PostgreSQL cannot be used here; the message says why."""


def run(workdir: Path, quick: bool) -> list[Figure]:
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 100_000, 1_000_000)
    older = 20_000 if quick else 1_000_000  # per website
    sql_runs = 3 if quick else 7
    rounds, calls, warmup = (3, 20, 5) if quick else (5, 100, 20)
    fx.log(f"{SCENARIO}: sizes {sizes}, {older:,} older events per website")
    with fx.stage("realtime script on valkey"):
        realtime = _realtime(workdir / "peers", sizes, rounds, calls, warmup)
    try:
        sql, loaded = _sql(sizes, older, sql_runs)
    except Unavailable as exc:
        fx.log(f"  PostgreSQL unavailable: {exc}")
        return [_unmeasured(n, realtime[n], str(exc)) for n in sizes]
    return [_figure(n, sql[n], realtime[n], loaded) for n in sizes]


def _realtime(
    workdir: Path, sizes: tuple[int, ...], rounds: int, calls: int, warmup: int
) -> dict[int, tuple[float, dict[str, Any]]]:
    with valkey(workdir) as url:
        client = fx.connect(url)
        rt = fx.script(client, "realtime")
        sites = {n: fx.create_website(client, f"peers-{n}") for n in sizes}
        for n, site in sites.items():
            fx.fill_active(client, site, n)
        cases = {str(n): fx.realtime_caller(rt, site) for n, site in sites.items()}
        samples = fx.latency_rounds(cases, rounds, calls, warmup)
    out = {}
    for n in sizes:
        value, runs, extra = fx.latency_summary(samples[str(n)])
        out[n] = (value, {**extra, "round_medians_ms": runs})
    return out


def _sql(
    sizes: tuple[int, ...], older: int, runs: int
) -> tuple[dict[int, tuple[list[float], str]], str]:
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed: pip install -e '.[bench]'") from None
    admin = _connect(psycopg)
    try:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
        try:
            with psycopg.connect(admin.info.dsn, dbname=DATABASE, autocommit=True) as db:
                loaded = _load(db, sizes, older)
                timed = {n: _time_query(db, i, n, runs) for i, n in enumerate(sizes, 1)}
                return timed, loaded
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    finally:
        admin.close()


def _connect(psycopg: Any) -> Any:
    errors = []
    for attempt in range(2):
        for conninfo in CONNINFOS:
            try:
                return psycopg.connect(f"{conninfo} dbname=postgres", autocommit=True)
            except psycopg.OperationalError as exc:
                errors.append(f"{conninfo}: {str(exc).strip()}")
        if attempt == 0 and not _start_cluster():
            break
    raise Unavailable("; ".join(errors))


def _start_cluster() -> bool:
    versions = sorted(Path("/etc/postgresql").glob("*/main"))
    if not versions or not shutil.which("pg_ctlcluster"):
        return False
    version = versions[-1].parent.name
    fx.log(f"  starting PostgreSQL {version} ...")
    started = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return started.returncode == 0


def _load(db: Any, sizes: tuple[int, ...], older: int) -> str:
    ids = list(range(1, len(sizes) + 1))
    with fx.stage("loading events into PostgreSQL"):
        started = time.perf_counter()
        with db.cursor() as cur:
            params = {"ids": ids, "sizes": list(sizes), "older": older}
            for statement in LOAD:
                cur.execute(statement, {**params, "per": PAGEVIEWS_PER_VISITOR})
            cur.execute("SELECT count(*), pg_total_relation_size('events') FROM events")
            rows, size = cur.fetchone()
    return (
        f"one UNLOGGED table, {rows:,} rows ({size / 2**20:.0f} MiB with its (website_id, ts) "
        f"index), loaded in {time.perf_counter() - started:.1f} s: websites "
        + ", ".join(f"{i} ({n:,} visitors)" for i, n in zip(ids, sizes, strict=True))
        + f", each with {PAGEVIEWS_PER_VISITOR} pageviews per visitor in the last 60 s and "
        f"{older:,} older events over the previous day; visitor_id bigint; PostgreSQL "
        f"{db.info.parameter_status('server_version')}, default settings"
    )


def _time_query(db: Any, website_id: int, n: int, runs: int) -> tuple[list[float], str]:
    with db.cursor() as cur:
        cur.execute("EXPLAIN " + QUERY, (website_id,))
        nodes = [row[0].split("  (cost=")[0].strip(" ->") for row in cur.fetchall()]
        plan = " / ".join(node for node in nodes if "  " not in node and ":" not in node)
        samples = []
        for i in range(runs + 1):  # the first run warms the cache
            started = time.perf_counter()
            cur.execute(QUERY, (website_id,))
            (counted,) = cur.fetchone()
            elapsed = (time.perf_counter() - started) * 1000
            if counted != n:
                raise RuntimeError(f"the SQL counted {counted} of {n} visitors: the load aged out")
            if i:
                samples.append(elapsed)
    fx.log(f"  SQL, {n:,} visitors: {median(samples):.2f} ms")
    return samples, plan


def _figure(
    n: int, sql: tuple[list[float], str], realtime: tuple[float, dict[str, Any]], loaded: str
) -> Figure:
    samples, plan = sql
    value = median(samples)
    rt_ms, rt_extra = realtime
    ratio = round(value / rt_ms, 1)
    at_target = n == TARGET_SIZE
    return Figure(
        SCENARIO, f"SQL count(DISTINCT) over events, {n:,} visitors", value, "ms",
        baseline=f"realtime script, {n:,} visitors ({rt_ms:.3f} ms)",
        ratio=ratio, target=">= 500x" if at_target else "",
        met=ratio >= 500 if at_target else None, runs=samples,
        extra={"sql": QUERY.replace("%s", "$1"), "plan": plan, "loaded": loaded,
               "sql_min_ms": min(samples), "sql_max_ms": max(samples),
               "realtime_ms": rt_ms, "realtime": rt_extra},
    )  # fmt: skip


def _unmeasured(n: int, realtime: tuple[float, dict[str, Any]], why: str) -> Figure:
    rt_ms, rt_extra = realtime
    return Figure(
        SCENARIO, f"SQL count(DISTINCT) over events, {n:,} visitors", float("nan"), "ms",
        baseline=f"realtime script, {n:,} visitors ({rt_ms:.3f} ms)",
        target=">= 500x" if n == TARGET_SIZE else "", met=None,
        extra={"note": f"not measured: {why}", "realtime_ms": rt_ms, "realtime": rt_extra},
    )  # fmt: skip


if __name__ == "__main__":
    fx.main(run)
