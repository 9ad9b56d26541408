"""The crawler check's cost per request: a User-Agent seen before, and a new one."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from realtime_visitors.tracking import crawlers

from .common import Figure, median

SCENARIO = "7. crawler check"
BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{n}.0.0.0 Safari/537.36"
)


def per_call_us(agents: list[str]) -> float:
    started = time.perf_counter()
    for agent in agents:
        crawlers.is_crawler(agent)
    return (time.perf_counter() - started) / len(agents) * 1e6


def run(workdir: Path, quick: bool) -> list[Figure]:
    count = 200 if quick else 2_000
    rounds = 3 if quick else 7
    seen, fresh = [], []
    for r in range(rounds):
        repeated = [BROWSER.format(n=120)] * count
        crawlers.is_crawler(repeated[0])
        seen.append(per_call_us(repeated))
        # Every agent new to the cache: the worst case, one regex pass each.
        fresh.append(per_call_us([BROWSER.format(n=f"{r}.{i}") for i in range(count)]))
        print(f"  round {r}: seen {seen[-1]:.2f} us, new {fresh[-1]:.1f} us", file=sys.stderr)
    base = median(seen)
    return [
        Figure(SCENARIO, "User-Agent seen before (cached)", round(base, 3), "us/call", runs=seen),
        Figure(
            SCENARIO,
            f"User-Agent never seen ({len(crawlers._load_patterns()):,} patterns)",
            round(median(fresh), 1),
            "us/call",
            baseline=f"seen before ({base:.2f} us)",
            ratio=round(median(fresh) / base),
            runs=fresh,
        ),
    ]


if __name__ == "__main__":
    for figure in run(Path("."), quick="--full" not in sys.argv):
        print(figure)
