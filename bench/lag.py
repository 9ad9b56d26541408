"""Scenario 6: is a pageview counted by the very next read, once its 202 has arrived?"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from . import fixtures as fx
from .common import Figure, median, percentile
from .servers import uvicorn, valkey

SCENARIO = "6. ingest-to-visible lag"
APP = "realtime_visitors.app:create_app"
POLL_FOR = 5.0  # seconds a pageview may take to show before the run gives up on it


def run(workdir: Path, quick: bool) -> list[Figure]:
    rounds, per_round = (2, 10) if quick else (3, 100)
    fx.log(f"{SCENARIO}: {rounds} rounds of {per_round} pageviews, each read back at once")
    with valkey(workdir / "lag") as url:
        site = fx.create_website(fx.connect(url), "lag")
        # Every pageview comes from 127.0.0.1: no per-address cap on new visitors.
        env = {"REDIS_URL": url, "RTV_PLANS": fx.PLANS_ENV, "RTV_MAX_VISITORS_PER_IP": "0"}
        with uvicorn(APP, env) as base, httpx.Client(base_url=base, timeout=10) as http:
            reader = Reader(http, site)
            reader.count()  # warm the connection and the scripts
            results = [reader.round(per_round) for _ in range(rounds)]
    return _figures(results, reader)


class Reader:
    def __init__(self, http: httpx.Client, site: fx.Website) -> None:
        self.http = http
        self.site = site
        self.auth = {"Authorization": f"Bearer {site.token}"}
        self.posts: list[float] = []
        self.gets: list[float] = []

    def count(self) -> int:
        started = time.perf_counter()
        reply = self.http.get(
            "/api/v1/realtime", params={"websiteId": self.site.website_id}, headers=self.auth
        )
        self.gets.append((time.perf_counter() - started) * 1000)
        reply.raise_for_status()
        return int(reply.json()["currentVisitors"])

    def pageview(self) -> None:
        body = {"websiteId": self.site.website_id, "url": "https://lag.example/",
                "visitorId": uuid.uuid4().hex}  # fmt: skip
        started = time.perf_counter()
        reply = self.http.post("/api/v1/pageview", json=body)
        self.posts.append((time.perf_counter() - started) * 1000)
        if reply.status_code != 202:
            raise RuntimeError(f"pageview answered {reply.status_code}: {reply.text}")

    def round(self, pageviews: int) -> list[float]:
        """The lag in ms of each pageview: 0 when the first read counts it."""
        lags = []
        before = self.count()
        for _ in range(pageviews):
            self.pageview()
            accepted = time.perf_counter()
            now = self.count()
            lag = 0.0
            while now <= before:
                lag = (time.perf_counter() - accepted) * 1000
                if lag > POLL_FOR * 1000:
                    raise RuntimeError(f"a pageview was still not counted after {POLL_FOR} s")
                now = self.count()
            if lag:
                lag = (time.perf_counter() - accepted) * 1000
            lags.append(lag)
            before = now
        return lags


def _figures(results: list[list[float]], reader: Reader) -> list[Figure]:
    lags = [lag for r in results for lag in r]
    at_once = [100 * sum(1 for lag in r if lag == 0) / len(r) for r in results]
    share = 100 * sum(1 for lag in lags if lag == 0) / len(lags)
    late = [lag for lag in lags if lag]
    extra = {
        "pageviews": len(lags),
        "late": len(late),
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": max(lags),
        "post_p50_ms": round(percentile(reader.posts, 50), 3),
        "get_p50_ms": round(percentile(reader.gets, 50), 3),
        "transport": "httpx keep-alive, 1 uvicorn worker, valkey 8 (embedded)",
    }
    return [
        Figure(
            SCENARIO, "counted by the first read after the 202", share, "%",
            target="100%", met=share == 100, runs=at_once, extra=extra,
        ),
        Figure(
            SCENARIO, "lag from 202 to counted, median", median(lags), "ms",
            runs=[median(r) for r in results], extra=extra,
        ),
        Figure(
            SCENARIO, "lag from 202 to counted, max", max(lags), "ms",
            runs=[max(r) for r in results], extra=extra,
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    fx.main(run)
