"""`make soak`: minutes of mixed load at half the measured capacity.

Watches what a short benchmark cannot: responses other than 2xx and 429, latency
percentiles over the whole run, and whether the server's resident memory grows.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from . import common, servers
from .http import wrk_binary
from .run import RESULTS, machine

SCRIPT = Path(__file__).with_name("soak.lua")
WEBSITE = "soak"
# An hourly limit the realtime share of the load cannot spend.
PLAN, PLAN_LIMIT = "soak", 100_000_000
CONNECTIONS = 32
REALTIME_SHARE = 0.3  # the rest are pageviews
CAPACITY_SECONDS = 5
CALIBRATION_SECONDS = 3
CALIBRATION_ROUNDS = 2  # the time to answer shrinks as the delay grows: one round falls short
SAMPLE_EVERY = 10  # seconds between RSS samples
MAX_GROWTH_PCT = 10.0


@dataclass
class Load:
    """What one wrk run of bench/soak.lua reports."""

    seconds: float
    requests: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    latency_us: dict[str, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def failures(self) -> dict[str, int]:
        """Statuses other than 2xx and 429, and socket errors (timeouts included)."""
        bad = {s: n for s, n in self.statuses.items() if not (s.startswith("2") or s == "429")}
        return bad | {name: n for name, n in self.socket_errors.items() if n}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def create_site(url: str) -> str:
    return common.create_site(url, WEBSITE, PLAN, PLAN_LIMIT)


def wrk(
    base: str,
    token: str,
    seconds: int,
    delay_ms: float,
    tick: Callable[[], None] = lambda: None,
) -> Load:
    """One mixed run; `tick` is called every SAMPLE_EVERY seconds while it lasts."""
    command = [
        wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(SCRIPT), base,
        "--", WEBSITE, token, str(REALTIME_SHARE), f"{delay_ms:.4f}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            out, err = process.communicate(timeout=SAMPLE_EVERY)
            break
        except subprocess.TimeoutExpired:
            tick()
    for line in out.splitlines():
        if line.startswith("SOAK-RESULT "):
            found = json.loads(line.removeprefix("SOAK-RESULT "))
            return Load(
                seconds=found["duration_us"] / 1e6,
                requests=found["requests"],
                statuses=dict(sorted(found["statuses"].items())),
                socket_errors=found["socket_errors"],
                latency_us=found["latency_us"],
            )
    raise RuntimeError(f"wrk exited {process.returncode} without a result:\n{out}{err}")


def delay_for(rate: float, cycle_overhead_ms: float) -> float:
    """The delay before each request that makes CONNECTIONS connections send `rate` req/s:
    each connection sends one request per delay + the time to answer it."""
    return max(0.0, CONNECTIONS * 1000 / rate - cycle_overhead_ms)


def overhead_ms(load: Load, delay_ms: float) -> float:
    """What a connection's cycle took beyond the delay, in this run."""
    return CONNECTIONS * 1000 / load.rate - delay_ms


def worker_process(port: int) -> psutil.Process:
    """The uvicorn process serving `port`: the worker, not a supervisor, when there is one."""
    listening = [
        child
        for child in psutil.Process().children(recursive=True)
        if any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in child.net_connections(kind="tcp")
        )
    ]
    pids = {p.pid for p in listening}
    workers = [p for p in listening if p.ppid() in pids] or listening
    if not workers:
        raise RuntimeError(f"no child process listens on port {port}")
    return workers[0]


def current_visitors(base: str, token: str) -> int:
    response = httpx.get(
        f"{base}/api/v1/realtime",
        params={"websiteId": WEBSITE},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    count: int = response.json()["currentVisitors"]
    return count


def soak(workdir: Path, seconds: int, rate: float | None) -> dict[str, Any]:
    with servers.valkey(workdir / "valkey") as redis_url:
        token = create_site(redis_url)
        env = {"REDIS_URL": redis_url, "RTV_PLANS": f"{PLAN}={PLAN_LIMIT}"}
        # Every request comes from 127.0.0.1, which the per-address cap would stop counting.
        env["RTV_MAX_VISITORS_PER_IP"] = "0"
        with servers.uvicorn("realtime_visitors.app:create_app", env) as base:
            worker = worker_process(urlsplit(base).port or 80)

            log(f"capacity: {CAPACITY_SECONDS} s unthrottled")
            full = wrk(base, token, CAPACITY_SECONDS, 0)
            log(f"  {full.rate:,.0f} req/s, statuses {full.statuses}")
            target = rate or full.rate / 2
            delay = delay_for(target, overhead_ms(full, 0))

            for _ in range(CALIBRATION_ROUNDS):
                log(f"calibration: {CALIBRATION_SECONDS} s, delay {delay:.2f} ms")
                trial = wrk(base, token, CALIBRATION_SECONDS, delay)
                delay = delay_for(target, overhead_ms(trial, delay))
                log(f"  {trial.rate:,.0f} req/s for {target:,.0f}; delay now {delay:.2f} ms")

            started = time.monotonic()
            samples: list[tuple[float, int]] = []

            def sample() -> None:
                rss = worker.memory_info().rss
                samples.append((round(time.monotonic() - started, 1), rss))
                log(f"  {samples[-1][0]:>6.0f} s  RSS {rss / 2**20:.1f} MiB")

            log(f"soak: {seconds} s, worker pid {worker.pid}")
            sample()
            load = wrk(base, token, seconds, delay, tick=sample)
            sample()
            visitors = current_visitors(base, token)

    start_rss, end_rss = samples[0][1], samples[-1][1]
    growth = (end_rss - start_rss) / start_rss * 100
    failures = load.failures
    return {
        "machine": machine(),
        "seconds": seconds,
        "connections": CONNECTIONS,
        "realtime_share": REALTIME_SHARE,
        "capacity_rps": round(full.rate),
        "capacity_statuses": full.statuses,
        "target_rps": round(target),
        "achieved_rps": round(load.rate),
        "delay_ms": round(delay, 3),
        "requests": load.requests,
        "statuses": load.statuses,
        "socket_errors": load.socket_errors,
        "failures": failures,
        "latency_ms": {name: us / 1000 for name, us in load.latency_us.items()},
        "rss_bytes": {
            "start": start_rss,
            "end": end_rss,
            "max": max(rss for _, rss in samples),
            "samples": samples,
        },
        "rss_growth_pct": round(growth, 2),
        "visitors_at_end": visitors,
        "passed": {"errors": not failures, "memory": growth < MAX_GROWTH_PCT},
    }


def markdown(report: dict[str, Any]) -> str:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    share = round(report["realtime_share"] * 100)
    statuses = ", ".join(
        f"{status}: {n:,}" + {"200": " (realtime)", "202": " (pageview)"}.get(status, "")
        for status, n in report["statuses"].items()
    )
    failures = ", ".join(f"{name}: {n:,}" for name, n in report["failures"].items()) or "none"
    latency = ", ".join(f"{name} {ms:.2f} ms" for name, ms in report["latency_ms"].items())
    rss = {name: value / 2**20 for name, value in report["rss_bytes"].items() if name != "samples"}
    passed = report["passed"]
    info = report["machine"]
    return "\n".join(
        [
            f"## Soak: {report['seconds']} s, {share}% GET /api/v1/realtime, "
            f"{100 - share}% POST /api/v1/pageview, {report['connections']} connections",
            "",
            f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
            f"commit {info['commit']}, {info['date']}",
            "",
            "| | |",
            "|---|---|",
            f"| Capacity ({CAPACITY_SECONDS} s unthrottled) | {report['capacity_rps']:,} req/s |",
            f"| Rate targeted / achieved | {report['target_rps']:,} / "
            f"{report['achieved_rps']:,} req/s "
            f"({report['achieved_rps'] / report['capacity_rps']:.0%} of capacity) |",
            f"| Requests | {report['requests']:,} ({statuses}) |",
            f"| Other than 2xx and 429, socket errors | {failures}: "
            f"{verdict(passed['errors'])} (target: none) |",
            f"| Latency | {latency} |",
            f"| Server RSS (uvicorn worker) | start {rss['start']:.1f} MiB, end {rss['end']:.1f} "
            f"MiB, max {rss['max']:.1f} MiB: {report['rss_growth_pct']:+.1f}%: "
            f"{verdict(passed['memory'])} (target: < {MAX_GROWTH_PCT:g}%) |",
            f"| Visitors counted at the end | {report['visitors_at_end']:,} |",
            "",
            f"Result: {verdict(all(passed.values()))}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=300, help="length of the soak (300)")
    parser.add_argument(
        "--rate", type=float, help="requests per second (default: half the measured capacity)"
    )
    options = parser.parse_args()
    if options.seconds < 1 or (options.rate is not None and options.rate <= 0):
        parser.error("--seconds and --rate must be positive")
    with tempfile.TemporaryDirectory(prefix="rtv-soak-") as tmp:
        report = soak(Path(tmp), options.seconds, options.rate)
    text = markdown(report)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2))
    log(f"\nWritten: {path}")
    sys.exit(0 if all(report["passed"].values()) else 1)


if __name__ == "__main__":
    main()
