"""What every benchmark scenario shares: figures, medians, timing."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from realtime_visitors.admin.sites import SiteError, Sites
from realtime_visitors.config import Settings
from realtime_visitors.storage.store import Store


@dataclass
class Figure:
    """One measured figure, reported as a ratio against a baseline measured in the same run."""

    scenario: str  # e.g. "2. cost as work grows"
    name: str  # e.g. "realtime script, 1,000,000 visitors"
    value: float  # the median
    unit: str  # "req/s", "ms", "bytes/visitor", ...
    baseline: str = ""  # what the ratio compares against, e.g. "realtime script, 1,000 visitors"
    ratio: float | None = None  # value / baseline value (or baseline / value for "x faster")
    target: str = ""  # e.g. ">= 0.75x", "<= 100 bytes"; empty when there is none
    met: bool | None = None
    runs: list[float] = field(default_factory=list)  # every run behind the median
    extra: dict[str, Any] = field(default_factory=dict)  # p50/p99 and the like

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def time_calls(call: Callable[[], object], count: int) -> list[float]:
    """Latency in ms of `count` sequential calls."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def create_site(url: str, website_id: str, plan: str, limit: int) -> str:
    """A website on a plan of its own (replacing one left by an earlier run); its token."""
    settings = Settings(redis_url=url, plans={plan: limit})

    async def main() -> str:
        store = Store(url, settings)
        try:
            sites = Sites(store, settings.plans)
            with contextlib.suppress(SiteError):
                await sites.delete(website_id)
            _, token = await sites.create(website_id, website_id, plan)
            return token.token
        finally:
            await store.close()

    return asyncio.run(main())
