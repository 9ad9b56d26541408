"""Scenario 12: what the operator's view costs the hot endpoints. The same service with
the metrics on (RTV_METRICS_TOKEN, multiprocess mode as `serve` sets it up), with the
access log on (written to a file), with both, and with neither, under wrk, interleaved
in the same run: the throughputs, the server's CPU time per request, and the
observation's own cost measured in process."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime_visitors.http.asgi import respond
from realtime_visitors.http.cors import CorsPolicy
from realtime_visitors.http.fastlane import FastLane
from realtime_visitors.http.observe import Observer
from realtime_visitors.ops.accesslog import AccessLog
from realtime_visitors.ops.metrics import Metrics

from . import http, servers
from .common import Figure, median

SCENARIO = "12. observability"
METRICS_TOKEN = "bench-metrics-token-0123456789"
# What each server adds to the environment: the baseline turns both off.
MODES = {
    "neither": {},
    "metrics": {"RTV_METRICS_TOKEN": METRICS_TOKEN},
    "access log": {"RTV_ACCESS_LOG": "1"},
    "both": {"RTV_METRICS_TOKEN": METRICS_TOKEN, "RTV_ACCESS_LOG": "1"},
}
TARGETS = {"metrics": 0.95, "access log": 0.90}


def run(workdir: Path, quick: bool) -> list[Figure]:
    seconds = 2 if quick else 8
    rounds = 1 if quick else 3
    script = workdir / "pageview.lua"
    script.write_text(http.PAGEVIEW_LUA % http.WEBSITE)
    with servers.valkey(workdir / "valkey") as redis_url:
        token = http.create_site(redis_url)
        env = {"REDIS_URL": redis_url, "RTV_PLANS": http.PLANS, "RTV_MAX_VISITORS_PER_IP": "0"}
        endpoints = {
            "GET /api/v1/realtime": (
                f"/api/v1/realtime?websiteId={http.WEBSITE}",
                None,
                {"Authorization": f"Bearer {token}"},
            ),
            "POST /api/v1/pageview": ("/api/v1/pageview", script, {}),
        }
        # Per mode and endpoint: each run's requests a second, and the server's CPU
        # time per request (steadier than throughput when other work shares the cores).
        rps: dict[tuple[str, str], list[float]] = {(m, n): [] for m in MODES for n in endpoints}
        cpu: dict[tuple[str, str], list[float]] = {(m, n): [] for m in MODES for n in endpoints}
        p99: dict[tuple[str, str], list[float]] = {(m, n): [] for m in MODES for n in endpoints}
        with ExitStack() as stack:
            started = {
                mode: stack.enter_context(
                    servers.uvicorn_process(
                        "realtime_visitors.app:create_app",
                        {**env, **extra, **multiprocess(workdir / mode, extra)},
                        output=workdir / f"{mode}.out",
                    )
                )
                for mode, extra in MODES.items()
            }
            for base, _ in started.values():
                for path, lua, headers in endpoints.values():
                    http.wrk(base + path, 1, lua, headers)  # warm up
            # Interleaved rounds, each in another order: drift on a shared machine, and
            # whatever the run before leaves behind, hit every mode alike.
            for round_ in range(rounds):
                order = list(MODES)[round_:] + list(MODES)[:round_]
                for name, (path, lua, headers) in endpoints.items():
                    for mode in order:
                        base, pid = started[mode]
                        before = cpu_seconds(pid)
                        measured = http.wrk(base + path, seconds, lua, headers)
                        used = cpu_seconds(pid) - before
                        result = measured["rps"]
                        rps[mode, name].append(result)
                        p99[mode, name].append(measured["p99_ms"])
                        cpu[mode, name].append(used / (result * seconds) * 1e6)
                        print(
                            f"  {mode}, {name}: {result:,.0f} req/s, "
                            f"{cpu[mode, name][-1]:.1f} us of CPU a request",
                            file=sys.stderr,
                        )
        lines = sum(1 for _ in (workdir / "access log.out").open("rb"))
        print(f"  access log: {lines:,} lines written", file=sys.stderr)
    figures = []
    for name in endpoints:
        for mode in ("metrics", "access log", "both"):
            figure = throughput(mode, name, rps[mode, name], rps["neither", name])
            figure.extra |= {"p99_ms": p99[mode, name], "baseline_p99_ms": p99["neither", name]}
            figures.append(figure)
        for mode in ("metrics", "access log", "both"):
            figures.append(cpu_figure(mode, name, cpu[mode, name], cpu["neither", name]))
    realtime_us = median(cpu["neither", "GET /api/v1/realtime"])
    return figures + in_process(realtime_us, 20_000 if quick else 200_000)


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(request_us: float, requests: int) -> list[Figure]:
    """The observation's own CPU time per request in isolation, without wrk, Redis or
    the network: FastLane around an endpoint that only answers, each mode against
    none, interleaved over five rounds. Steady where the throughputs drift, so it shows
    a change in our own code; but a lower bound: in the running server, whose caches
    hold everything else a request does, the same code took two to three times as long
    (timed inside it). Set against the server's CPU time for a realtime request."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(5):
        for mode, extra in MODES.items():
            times[mode].append(asyncio.run(_lane_us(extra, requests)))
    base = median(times["neither"])
    return [
        Figure(
            scenario=SCENARIO,
            name=f"{mode} on: CPU time added per request, in isolation",
            value=round(median(times[mode]) - base, 3),
            unit="us",
            baseline=f"the server's CPU time for a realtime request: {request_us:.1f} us",
            ratio=round((median(times[mode]) - base) / request_us, 3),
            target="",
            runs=times[mode],
            extra={"baseline_runs": times["neither"]},
        )
        for mode in ("metrics", "access log", "both")
    ]


async def _lane_us(extra: dict[str, str], requests: int) -> float:
    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b'{"currentVisitors":1}')

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    path = "/api/v1/realtime"
    metrics = Metrics() if "RTV_METRICS_TOKEN" in extra else None
    access = AccessLog("text", write=_discard) if "RTV_ACCESS_LOG" in extra else None
    observer = Observer([Route(path, endpoint)], metrics, access) if metrics or access else None
    routes: dict[tuple[str, str], ASGIApp] = {("GET", path): endpoint}
    lane = FastLane(endpoint, routes, CorsPolicy(["*"], []), observer)
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"websiteId=bench",
        "headers": [(b"host", b"bench"), (b"authorization", b"Bearer vt_x")],
    }
    started = time.perf_counter()
    for n in range(requests):
        await lane(scope, receive, send)
        if observer is not None and n % 5_000 == 0:  # the timer's flushes, inline
            observer.flush()
    if observer is not None:
        observer.flush()
    return (time.perf_counter() - started) / requests * 1e6


def _discard(data: bytes) -> None:
    pass


def multiprocess(directory: Path, extra: dict[str, str]) -> dict[str, str]:
    """As `serve` runs with RTV_METRICS_TOKEN: prometheus_client's multiprocess mode,
    which writes its mmap'ed files at each flush."""
    if "RTV_METRICS_TOKEN" not in extra:
        return {}
    directory.mkdir()
    return {"PROMETHEUS_MULTIPROC_DIR": str(directory)}


def throughput(mode: str, name: str, runs: list[float], base_runs: list[float]) -> Figure:
    rps, base = median(runs), median(base_runs)
    ratio = rps / base
    target = TARGETS.get(mode)
    return Figure(
        scenario=SCENARIO,
        name=f"{name}, {mode} on, 1 worker",
        value=round(rps),
        unit="req/s",
        baseline=f"the same, neither ({round(base)} req/s)",
        ratio=round(ratio, 3),
        target=f">= {target}x" if target else "",
        met=ratio >= target if target else None,
        runs=runs,
        extra={"baseline_runs": base_runs},
    )


def cpu_figure(mode: str, name: str, runs: list[float], base_runs: list[float]) -> Figure:
    """The server's CPU time per request, as a throughput ratio: neither's over this
    mode's, what the throughputs would show on cores of their own."""
    used, base = median(runs), median(base_runs)
    ratio = base / used
    target = TARGETS.get(mode)
    return Figure(
        scenario=SCENARIO,
        name=f"{name}, {mode} on: the server's CPU time per request",
        value=round(used, 2),
        unit="us",
        baseline=f"the same, neither ({base:.2f} us)",
        ratio=round(ratio, 3),
        target=f">= {target}x" if target else "",
        met=ratio >= target if target else None,
        runs=runs,
        extra={"baseline_runs": base_runs},
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rtv-bench-") as tmp:
        for result in run(Path(tmp), quick="--full" not in sys.argv):
            print(result)
