"""Scenario 2: the cost of one script call as the visitors set grows."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from redis.commands.core import Script

from . import fixtures as fx
from .common import Figure
from .servers import valkey

SCENARIO = "2. cost as work grows"
EXPIRED_SHARE = 0.9


def run(workdir: Path, quick: bool) -> list[Figure]:
    sizes = (1_000, 10_000, 100_000) if quick else (1_000, 100_000, 1_000_000)
    rounds, calls, warmup = (3, 20, 5) if quick else (6, 100, 20)
    fx.log(f"{SCENARIO}: sizes {sizes}, {rounds} rounds of {calls} calls")
    with valkey(workdir / "growth") as url:
        client = fx.connect(url)
        rt, pv = fx.script(client, "realtime"), fx.script(client, "pageview")
        with fx.stage("filling the sets"):
            sites = {n: fx.create_website(client, f"growth-{n}") for n in sizes}
            for n, site in sites.items():
                fx.fill_active(client, site, n)
            largest = sizes[-1]
            expired = int(largest * EXPIRED_SHARE)
            mass = fx.create_website(client, "growth-expired")
            fx.fill_active(client, mass, largest - expired, expired)
        for n, site in sites.items():
            counted = fx.call_realtime(rt, site)
            if counted != n:
                raise RuntimeError(f"the realtime script counted {counted} of {n} visitors")
        with fx.stage("realtime script"):
            cases = {f"{n:,}": fx.realtime_caller(rt, site) for n, site in sites.items()}
            cases["expired"] = fx.realtime_caller(rt, mass)
            realtime = fx.latency_rounds(cases, rounds, calls, warmup)
            rt_usec = {name: fx.server_usec(client, call, calls) for name, call in cases.items()}
        # Each call trims up to TRIM_BUDGET members: the expired share stays large
        # throughout, as long as (warmup + (rounds + 1) * calls) * budget is well
        # below the expired members.
        pageview_cases = {
            "small": _pageview(pv, sites[sizes[0]]),
            "large": _pageview(pv, sites[largest]),
            "expired": _pageview(pv, mass),
        }
        with fx.stage("pageview script"):
            pageview = fx.latency_rounds(pageview_cases, rounds, calls, warmup)
            pv_usec = {n: fx.server_usec(client, call, calls) for n, call in pageview_cases.items()}
        cutoff = fx.server_ms(client) - fx.WINDOW_MS
        left_expired = int(client.zcount(mass.keys.visitors, "-inf", cutoff))
    figures = _realtime_figures(realtime, sizes)
    figures.append(_realtime_expired(realtime, sizes[0], largest, expired))
    figures += _pageview_figures(pageview, sizes[0], largest, expired, left_expired)
    usec = [rt_usec[f"{n:,}"] for n in sizes] + [rt_usec["expired"], *pv_usec.values()]
    for figure, server in zip(figures, usec, strict=True):
        figure.extra["server_usec_per_call"] = server
    return figures


def _pageview(pv: Script, site: fx.Website) -> Callable[[], object]:
    visitor = itertools.count()
    return lambda: fx.call_pageview(pv, site, f"new-{next(visitor)}")


def _realtime_figures(
    samples: dict[str, list[list[float]]], sizes: tuple[int, ...]
) -> list[Figure]:
    base_name = f"realtime script, {sizes[0]:,} visitors"
    base, _, _ = fx.latency_summary(samples[f"{sizes[0]:,}"])
    figures = []
    for n in sizes:
        value, runs, extra = fx.latency_summary(samples[f"{n:,}"])
        largest = n == sizes[-1]
        figures.append(
            Figure(
                SCENARIO, f"realtime script, {n:,} visitors", value, "ms", base_name,
                ratio=round(value / base, 2),
                target="<= 1.2x" if largest else "",
                met=value / base <= 1.2 if largest else None,
                runs=runs, extra={**extra, "store": "valkey 8 (embedded)"},
            )
        )  # fmt: skip
    return figures


def _realtime_expired(
    samples: dict[str, list[list[float]]], small: int, large: int, expired: int
) -> Figure:
    base, _, _ = fx.latency_summary(samples[f"{small:,}"])
    value, runs, extra = fx.latency_summary(samples["expired"])
    return Figure(
        SCENARIO, f"realtime script, {large:,} members, {EXPIRED_SHARE:.0%} expired", value,
        "ms", f"realtime script, {small:,} visitors", ratio=round(value / base, 2), runs=runs,
        extra={**extra, "expired": expired, "store": "valkey 8 (embedded)"},
    )  # fmt: skip


def _pageview_figures(
    samples: dict[str, list[list[float]]], small: int, large: int, expired: int, left: int
) -> list[Figure]:
    base_name = f"pageview script, {small:,} visitors, none expired"
    base, _, _ = fx.latency_summary(samples["small"])
    cases = {
        "small": (base_name, {}),
        "large": (f"pageview script, {large:,} visitors, none expired", {}),
        "expired": (
            f"pageview script, {large:,} members, {EXPIRED_SHARE:.0%} expired",
            {"expired_at_start": expired, "expired_at_end": left,
             "trim_budget": fx.TRIM_BUDGET},
        ),
    }  # fmt: skip
    figures = []
    for case, (name, more) in cases.items():
        value, runs, extra = fx.latency_summary(samples[case])
        figures.append(
            Figure(
                SCENARIO, name, value, "ms", base_name, ratio=round(value / base, 2), runs=runs,
                extra={**extra, **more, "store": "valkey 8 (embedded)"},
            )
        )  # fmt: skip
    return figures


if __name__ == "__main__":
    fx.main(run)
