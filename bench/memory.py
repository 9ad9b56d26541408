"""Scenario 4: memory per active visitor, written by the real pageview script.

Two figures per size: the visitors set alone (what the count needs), and every key of
the website with each visitor's page, source and country kept (what the breakdowns
need), the visitors spread over 10,000 paths, 500 sources and 200 countries. Past
100,000 visitors the rest are written in bulk in the same layout (bench/layout.py,
checked against the script first): a million script calls would take minutes.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis

from realtime_visitors.storage.keys import website_pattern

from . import fixtures as fx
from . import layout
from .common import Figure, median
from .servers import redis7, valkey

SCENARIO = "4. memory"
TARGET = 100  # bytes per visitor at the largest size, the visitors set alone
TARGET_KEPT = 200  # the same, every key of the website, on the embedded Valkey
RAW = 20  # what a visitor is: a 12-byte member and an 8-byte score
SAMPLES = 3  # MEMORY USAGE is exact with SAMPLES 0; repeated to show it is stable


def run(workdir: Path, quick: bool) -> list[Figure]:
    sizes = (1_000, 10_000, 50_000) if quick else (1_000, 100_000, 1_000_000)
    fx.log(f"{SCENARIO}: sizes {sizes}, populated by pipelined pageview-script calls")
    stores: dict[str, AbstractContextManager[str | None]] = {
        "valkey 8": valkey(workdir / "memory-valkey"),
        "redis 7": redis7(workdir / "memory-redis"),
    }
    figures = []
    for store, server in stores.items():
        with server as url:
            if url is None:
                fx.log(f"  {store}: no redis-server on PATH, skipped")
                figures += [_skipped(store, n, n == sizes[-1]) for n in sizes]
                continue
            with fx.stage(store):
                figures += _measure(store, fx.connect(url), sizes, layout.script_up_to(quick))
    return figures


def _measure(
    store: str, client: redis.Redis, sizes: tuple[int, ...], script_up_to: int
) -> list[Figure]:
    pv = fx.script(client, "pageview")
    layout.check(client, pv)
    site = fx.create_website(client, "memory")
    version = client.info("server").get("valkey_version") or client.info("server")["redis_version"]
    client.script_load(pv.script)  # the script cache is not the set's memory
    baseline = int(client.info("memory")["used_memory"])
    wheres = fx.spread(1, sizes[-1])
    written, figures, kept = 0, [], []
    for n in sizes:
        started = time.perf_counter()
        by_script = max(0, min(n, script_up_to) - written)
        fx.pageviews(client, pv, site, written, by_script, wheres[written : written + by_script])
        rate = by_script / (time.perf_counter() - started) if by_script else None
        written += by_script
        if n > written:
            layout.write(client, site, written, wheres[written:n])
        written = n
        if int(client.zcard(site.keys.visitors)) != n:
            raise RuntimeError(f"{store}: the set does not hold {n} visitors")
        runs = [_usage(client, site.keys.visitors) / n for _ in range(SAMPLES)]
        used = (int(client.info("memory")["used_memory"]) - baseline) / n
        value = median(runs)
        largest = n == sizes[-1]
        fx.log(f"  {store}, {n:,} visitors: {value:.1f} bytes/visitor")
        extra = {
            "server": f"{store} ({version})",
            "encoding": _text(client.object("encoding", site.keys.visitors)),
            "used_memory_delta_per_visitor": round(used, 1),
            "populate_pageviews_per_s": round(rate) if rate else None,
            "written_in_bulk": max(0, n - script_up_to),
        }
        figures.append(
            Figure(
                SCENARIO, f"{store}, {n:,} visitors", value, "bytes/visitor",
                baseline=f"raw data: {RAW} bytes (12-byte member + 8-byte score)",
                ratio=round(value / RAW, 2),
                target=f"<= {TARGET} bytes/visitor" if largest else "",
                met=value <= TARGET if largest else None, runs=runs, extra=extra,
            )
        )  # fmt: skip
        kept.append(_kept(store, client, site, n, value, largest, extra))
    return figures + kept


def _kept(
    store: str,
    client: redis.Redis,
    site: fx.Website,
    n: int,
    set_bytes: float,
    largest: bool,
    extra: dict[str, Any],
) -> Figure:
    """Every key of the website, per visitor: the count's set and the breakdowns'."""
    keys = sorted(k.decode() for k in fx.command(client, "KEYS", website_pattern(site.website_id)))
    per_key = {key.rsplit("}:", 1)[-1]: _usage(client, key) for key in keys}
    runs = [sum(_usage(client, key) for key in keys) / n for _ in range(SAMPLES)]
    value = median(runs)
    fx.log(f"  {store}, {n:,} visitors, page, source and country kept: {value:.1f} bytes/visitor")
    on_valkey = store.startswith("valkey") and largest
    return Figure(
        SCENARIO, f"{store}, {n:,} visitors, with page, source and country", value,
        "bytes/visitor",
        baseline=f"the visitors set alone ({set_bytes:.1f} bytes/visitor)",
        ratio=round(value / set_bytes, 2),
        target=f"<= {TARGET_KEPT} bytes/visitor" if on_valkey else "",
        met=value <= TARGET_KEPT if on_valkey else None, runs=runs,
        extra={
            **extra,
            "bytes_per_visitor_by_key": {k: round(v / n, 1) for k, v in per_key.items()},
            "spread": f"{fx.PATHS:,} paths, {fx.SOURCES} sources, {fx.COUNTRIES} countries "
                      "(Zipf)",
        },
    )  # fmt: skip


def _usage(client: redis.Redis, key: str) -> int:
    return int(fx.command(client, "MEMORY", "USAGE", key, "SAMPLES", 0))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _skipped(store: str, n: int, largest: bool) -> Figure:
    return Figure(
        SCENARIO, f"{store}, {n:,} visitors", float("nan"), "bytes/visitor",
        target=f"<= {TARGET} bytes/visitor" if largest else "",
        extra={"note": "not measured: no redis-server on PATH"},
    )  # fmt: skip


if __name__ == "__main__":
    fx.main(run)
