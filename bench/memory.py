"""Scenario 4: memory per visitor of a live set, written by the real pageview script."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import redis

from . import fixtures as fx
from .common import Figure, median
from .servers import redis7, valkey

SCENARIO = "4. memory"
TARGET = 100  # bytes per visitor at the largest size
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
                figures += _measure(store, fx.connect(url), sizes)
    return figures


def _measure(store: str, client: redis.Redis, sizes: tuple[int, ...]) -> list[Figure]:
    pv = fx.script(client, "pageview")
    site = fx.create_website(client, "memory")
    version = client.info("server").get("valkey_version") or client.info("server")["redis_version"]
    client.script_load(pv.script)  # the script cache is not the set's memory
    baseline = int(client.info("memory")["used_memory"])
    written, figures = 0, []
    for n in sizes:
        started = time.perf_counter()
        fx.pageviews(client, pv, site, written, n - written)
        rate = (n - written) / (time.perf_counter() - started)
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
            "populate_pageviews_per_s": round(rate),
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
    return figures


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
