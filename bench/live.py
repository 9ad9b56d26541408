"""Scenario 9: the public live count. Reads by publishable key under wrk, against bare
Starlette; then 10,000 Server-Sent Events subscribers on one `realtime-visitors serve`
process: the Redis calls they cost, the memory each holds, how soon a pageview reaches
them, and, when the memory is over its target, what holds it.

The subscribers are raw asyncio connections in this process (one Protocol each, no
HTTP library), opened in batches so that the server's accept backlog never overflows.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import resource
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import httpx
import redis
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from realtime_visitors.admin.sites import Sites
from realtime_visitors.config import Settings
from realtime_visitors.storage.store import Store

from . import http, servers
from .common import Figure, median, percentile
from .fixtures import log

SCENARIO = "9. public live count"
PLAN, PLAN_LIMIT = "bench", 1_000_000_000
ENV = {
    "RTV_PLANS": f"{PLAN}={PLAN_LIMIT}",
    # Every request of the benchmark comes from 127.0.0.1: no per-address limits, or
    # the reads (and the 10,000 streams) would be refused after the first 60.
    "RTV_PUBLIC_READS_PER_MINUTE": "0",
    "RTV_MAX_VISITORS_PER_IP": "0",
}
READ_SITE = "live-read"
BATCH = 500  # connections opened at once, well under uvicorn's backlog of 2048
TARGET_RATIO = 1.0
TARGET_BYTES = 10 * 1024
TARGET_P99_MS = 1500.0
SEEN_WITHIN = 10.0  # seconds a pageview may take to reach its subscribers before the run fails
# Round trips: a request's Redis work is one script call. INFO commandstats also counts
# every command a script runs, under that command's name.
SCRIPT_CALLS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")

T = TypeVar("T")
_COUNT = re.compile(rb'"currentVisitors":(\d+)')


@dataclass(frozen=True)
class Sizes:
    subscribers: int
    websites: int
    wrk_seconds: float
    rounds: int
    idle_seconds: float  # one window of Redis calls with no pageviews
    pageviews: int  # per round
    rate: float  # pageviews per second


FULL = Sizes(10_000, 100, 5, 3, 5, 100, 10)
QUICK = Sizes(1_000, 10, 2, 1, 2, 20, 10)


def run(workdir: Path, quick: bool) -> list[Figure]:
    sizes = QUICK if quick else FULL
    with open_files(), servers.valkey(workdir / "valkey") as url:
        public, secret = asyncio.run(create_sites(url, sizes.websites))
        figures = reads(url, public[READ_SITE], secret, sizes)
        env = {"REDIS_URL": url, "RTV_DATA_DIR": str(workdir / "data"), **ENV}
        watched = {site: key for site, key in public.items() if site != READ_SITE}
        command = ["realtime-visitors", "serve"]
        with start(command, env, workdir / "serve.log", "/healthz") as (base, pid):
            result = run_loop(LiveBench(base, pid, url, watched, sizes).measure())
        figures += live_figures(result, sizes)
        if result.bytes_per_stream > TARGET_BYTES:
            figures += memory_parts(workdir, sizes.subscribers, result.bytes_per_stream)
    return figures


# -- 1. the public read under wrk ---------------------------------------------------------


def reads(url: str, public: str, secret: str, sizes: Sizes) -> list[Figure]:
    env = {"REDIS_URL": url, **ENV}
    read = f"/api/v1/realtime?websiteId={READ_SITE}"
    cases = {
        "bare GET": ("bare", "/api/v1/realtime", {}),
        "public key": ("service", f"{read}&key={public}", {}),
        "secret token": ("service", read, {"Authorization": f"Bearer {secret}"}),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    with (
        servers.uvicorn("bench.bare_app:create_app", env) as bare,
        servers.uvicorn("realtime_visitors.app:create_app", env) as service,
    ):
        bases = {"bare": bare, "service": service}
        for which, path, headers in cases.values():
            http.wrk(bases[which] + path, 1, None, headers)  # warm up
        for _ in range(sizes.rounds):  # interleaved: drift hits every case alike
            for name, (which, path, headers) in cases.items():
                results[name].append(
                    http.wrk(bases[which] + path, sizes.wrk_seconds, None, headers)
                )
                log(f"  {name}: {results[name][-1]}")
    base = median([r["rps"] for r in results["bare GET"]])
    figures = []
    for name, label in (
        (
            "public key",
            "GET /api/v1/realtime?key=vt_pub_... (RTV_PUBLIC_READS_PER_MINUTE=0), 1 worker",
        ),
        ("secret token", "GET /api/v1/realtime, secret token (for context), 1 worker"),
    ):
        runs = [r["rps"] for r in results[name]]
        ratio = median(runs) / base
        target = name == "public key"
        figures.append(
            Figure(
                SCENARIO, label, round(median(runs)), "req/s",
                baseline=f"bare GET ({round(base)} req/s)", ratio=round(ratio, 3),
                target=f">= {TARGET_RATIO}x" if target else "",
                met=ratio >= TARGET_RATIO if target else None, runs=runs,
                extra={
                    "p50_ms": median([r["p50_ms"] for r in results[name]]),
                    "p99_ms": median([r["p99_ms"] for r in results[name]]),
                    "baseline_runs": [r["rps"] for r in results["bare GET"]],
                    "connections": http.CONNECTIONS,
                    "note": "RTV_PUBLIC_READS_PER_MINUTE=0 (the per-address limit off: "
                    "all load comes from 127.0.0.1)",
                },
            )
        )  # fmt: skip
    return figures


# -- 2. 10,000 subscribers on one process --------------------------------------------------


class Subscriber(asyncio.Protocol):
    """One SSE stream: every count it receives, with the time it arrived."""

    def __init__(self, request: bytes, opened: asyncio.Future[None]) -> None:
        self.request = request
        self.opened = opened
        self.pending = b""
        self.seen: list[tuple[float, int]] = []
        self.answered = False
        self.lost = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no subclass of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.answered:
            self.answered = True
            if not data.startswith(b"HTTP/1.1 200"):
                self.fail(RuntimeError(f"stream refused: {data[:300]!r}"))
                return
        data = self.pending + data
        # Events end with a blank line (sse-starlette ends lines with CRLF): whole ones only.
        end = max(0, data.rfind(b"\n\n"), data.rfind(b"\n\r\n"))
        self.pending = data[end:]
        for match in _COUNT.finditer(data, 0, end):
            self.seen.append((now, int(match.group(1))))
        if self.seen and not self.opened.done():
            self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.fail(ConnectionError(f"stream closed: {exc}"))

    def fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)

    @property
    def count(self) -> int:
        return self.seen[-1][1] if self.seen else -1

    def first_at(self, count: int) -> float:
        return next((t for t, c in self.seen if c >= count), float("inf"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Streams:
    """Streams of one server, opened from this process and held open."""

    def __init__(self, base: str, pid: int) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.pid = pid
        self.held: list[Subscriber] = []

    async def open(self, target: str) -> Subscriber:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        _, subscriber = await loop.create_connection(
            functools.partial(Subscriber, request, opened), self.host, self.port
        )
        await asyncio.wait_for(opened, 60)
        return subscriber

    async def memory(self, targets: list[str]) -> tuple[int, float, float]:
        """Open a stream to each target and hold it: (server RSS in kB before, with them
        open, seconds taken to open them). One stream opened and closed first, so that the
        idle figure is the process as it serves, not as it started."""
        (await self.open(targets[0])).close()
        await asyncio.sleep(1)
        idle = rss_kb(self.pid)
        started = time.perf_counter()
        for first in range(0, len(targets), BATCH):
            self.held += await asyncio.gather(*map(self.open, targets[first : first + BATCH]))
        seconds = time.perf_counter() - started
        samples = []
        for _ in range(3):
            await asyncio.sleep(1)  # the last batch's tasks settle
            samples.append(float(rss_kb(self.pid)))
        log(f"  {len(targets):,} streams open in {seconds:.1f} s: RSS {idle:,} -> "
            f"{median(samples):,.0f} kB")  # fmt: skip
        return idle, median(samples), seconds

    def close(self) -> None:
        lost = sum(sub.lost for sub in self.held)
        for sub in self.held:
            sub.close()
        if lost:
            raise RuntimeError(f"{lost} streams were closed by the server during the run")


@dataclass
class Sent:
    website: str
    count: int  # what the website's count becomes with this pageview
    accepted: float  # its 202 arrived


class Mark(NamedTuple):
    calls: tuple[int, int]  # LiveBench.calls()
    cpu: float  # the server's CPU seconds so far
    at: float


class Window(NamedTuple):
    scripts: float  # script calls (round trips) per second
    commands: float  # commands per second, those the scripts ran included
    cpu: float  # the server's CPU, % of one core


@dataclass
class Result:
    subscribers: int = 0
    idle_rss_kb: int = 0
    open_rss_kb: float = 0.0
    connect_seconds: float = 0.0
    per_pageview: tuple[float, float] = (0.0, 0.0)  # (script calls, commands) per pageview
    idle: list[Window] = field(default_factory=list)  # one per window
    busy: list[Window] = field(default_factory=list)
    first: list[list[float]] = field(default_factory=list)  # ms per pageview, per round
    every: list[list[float]] = field(default_factory=list)  # to the last subscriber
    post_ms: list[float] = field(default_factory=list)

    @property
    def bytes_per_stream(self) -> float:
        return (self.open_rss_kb - self.idle_rss_kb) * 1024 / self.subscribers


class LiveBench:
    def __init__(
        self, base: str, pid: int, redis_url: str, watched: dict[str, str], sizes: Sizes
    ) -> None:
        self.base = base
        self.pid = pid
        self.streams = Streams(base, pid)
        self.redis = redis.Redis.from_url(redis_url)
        self.watched = watched
        self.sizes = sizes
        self.subs: dict[str, list[Subscriber]] = {}
        self.result = Result(subscribers=sizes.subscribers)

    async def measure(self) -> Result:
        r = self.result
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            self.client = client
            await self.warm_up()
            r.per_pageview = await self.calibrate()
            sites = [list(self.watched)[i % len(self.watched)] for i in range(r.subscribers)]
            targets = [
                f"/api/v1/realtime/stream?websiteId={s}&key={self.watched[s]}" for s in sites
            ]
            r.idle_rss_kb, r.open_rss_kb, r.connect_seconds = await self.streams.memory(targets)
            for site, sub in zip(sites, self.streams.held, strict=True):
                self.subs.setdefault(site, []).append(sub)
            for _ in range(self.sizes.rounds):
                mark = self.mark()
                await asyncio.sleep(self.sizes.idle_seconds)
                r.idle.append(self.since(mark))
                w = r.idle[-1]
                log(f"  idle: {w.scripts:.1f} script calls/s ({w.commands:.0f} commands), "
                    f"server CPU {w.cpu:.0f}%")  # fmt: skip
                await self.pageview_round()
            self.streams.close()
        return r

    async def warm_up(self) -> None:
        site, key = next(iter(self.watched.items()))
        for _ in range(10):
            reply = await self.client.get(
                "/api/v1/realtime", params={"websiteId": site, "key": key}
            )
            reply.raise_for_status()
        await self.pageview(READ_SITE)

    async def calibrate(self, count: int = 20) -> tuple[float, float]:
        """Redis calls per pageview, taken on an idle server: subtracted later."""
        before = self.calls()
        for _ in range(count):
            await self.pageview(READ_SITE)
        after = self.calls()
        per = ((after[0] - before[0]) / count, (after[1] - before[1]) / count)
        log(f"  a pageview: {per[0]:g} script calls ({per[1]:g} commands)")
        return per

    def calls(self) -> tuple[int, int]:
        """(script calls, commands but INFO) the Redis server has run so far."""
        stats = self.redis.info("commandstats")
        scripts = sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in SCRIPT_CALLS
        )
        commands = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
        return scripts, commands

    def mark(self) -> Mark:
        return Mark(self.calls(), cpu_seconds(self.pid), time.perf_counter())

    def since(self, mark: Mark, pageviews: int = 0) -> Window:
        """Script calls and commands per second since `mark`, less those of the bench's
        own `pageviews`, and the server's CPU meanwhile."""
        calls, elapsed = self.calls(), time.perf_counter() - mark.at
        own = self.result.per_pageview
        return Window(
            (calls[0] - mark.calls[0] - pageviews * own[0]) / elapsed,
            (calls[1] - mark.calls[1] - pageviews * own[1]) / elapsed,
            100 * (cpu_seconds(self.pid) - mark.cpu) / elapsed,
        )

    async def pageview(self, site: str) -> float:
        """One pageview of a new visitor; the time its 202 arrived."""
        body = {"websiteId": site, "url": "https://live.example/", "visitorId": uuid.uuid4().hex}
        started = time.perf_counter()
        reply = await self.client.post("/api/v1/pageview", json=body)
        accepted = time.perf_counter()
        if reply.status_code != 202 or not reply.json().get("counted"):
            raise RuntimeError(f"pageview answered {reply.status_code}: {reply.text}")
        self.result.post_ms.append((accepted - started) * 1000)
        return accepted

    async def pageview_round(self) -> None:
        """Pageviews to random websites at a steady rate with the Redis calls meanwhile,
        then each one's lag to its website's first subscriber and to the last one."""
        n, rate = self.sizes.pageviews, self.sizes.rate
        sent: list[Sent] = []
        expected = {site: subs[0].count for site, subs in self.subs.items()}
        mark = self.mark()
        for k in range(n + 1):
            await asyncio.sleep(max(0.0, mark.at + k / rate - time.perf_counter()))
            if k < n:
                site = random.choice(list(self.subs))
                accepted = await self.pageview(site)
                expected[site] += 1
                sent.append(Sent(site, expected[site], accepted))
        window = self.since(mark, n)
        self.result.busy.append(window)
        deadline = time.perf_counter() + SEEN_WITHIN
        while not all(sub.count >= s.count for s in sent for sub in self.subs[s.website]):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"pageviews not seen by every subscriber in {SEEN_WITHIN} s")
            await asyncio.sleep(0.05)
        first = [lag(s, self.subs[s.website][:1]) for s in sent]
        every = [lag(s, self.subs[s.website]) for s in sent]
        self.result.first.append(first)
        self.result.every.append(every)
        log(f"  {n} pageviews at {rate:g}/s: {window.scripts:.1f} script calls/s besides them "
            f"(server CPU {window.cpu:.0f}%); "
            f"lag p50 {percentile(first, 50):.0f} ms, p99 {percentile(first, 99):.0f} ms "
            f"(to every subscriber: p99 {percentile(every, 99):.0f} ms)")  # fmt: skip


def lag(sent: Sent, subs: list[Subscriber]) -> float:
    """ms from the 202 to the event with the count at the last of `subs` (0 when the
    event came before this process read the 202)."""
    arrived = max(sub.first_at(sent.count) for sub in subs)
    return max(0.0, arrived - sent.accepted) * 1000


def live_figures(r: Result, sizes: Sizes) -> list[Figure]:
    sites = sizes.websites
    first = [lag for lags in r.first for lag in lags]
    every = [lag for lags in r.every for lag in lags]
    streams = f"{r.subscribers:,} streams over {sites} websites, 1 process"
    figures = []
    for when, windows in (("idle", r.idle), (f"{sizes.rate:g} pageviews/s", r.busy)):
        calls = [w.scripts for w in windows]
        figures.append(
            Figure(
                SCENARIO, f"Redis calls, {streams}, {when}", round(median(calls), 1), "calls/s",
                baseline=f"{sites} websites watched", ratio=round(median(calls) / sites, 3),
                target=f"<= {sites}/s", met=median(calls) <= sites, runs=calls,
                extra={
                    "polls_per_website_per_s": round(median(calls) / sites, 3),
                    "commands_per_s_scripts_included": median([w.commands for w in windows]),
                    "server_cpu_percent": median([w.cpu for w in windows]),
                    "per_pageview": r.per_pageview,
                    "note": "script calls (EVALSHA) from INFO commandstats before and after "
                    "each window, less the bench's own pageviews",
                },
            )
        )  # fmt: skip
    return [
        *figures,
        Figure(
            SCENARIO, f"server memory per subscriber, {streams}", round(r.bytes_per_stream),
            "bytes", baseline=f"idle process after warm-up ({r.idle_rss_kb / 1024:.1f} MiB RSS)",
            ratio=round(r.open_rss_kb / r.idle_rss_kb, 2),
            target=f"<= {TARGET_BYTES // 1024} KB", met=r.bytes_per_stream <= TARGET_BYTES,
            extra={"idle_rss_kb": r.idle_rss_kb, "open_rss_kb": r.open_rss_kb,
                   "connect_seconds": round(r.connect_seconds, 1)},
        ),
        Figure(
            SCENARIO, f"pageview to event at a subscriber, p99, {streams}",
            round(percentile(first, 99), 1), "ms",
            baseline="the poll interval (1000 ms)", ratio=round(percentile(first, 99) / 1000, 2),
            target=f"<= {TARGET_P99_MS:g} ms", met=percentile(first, 99) <= TARGET_P99_MS,
            runs=[percentile(lags, 99) for lags in r.first],
            extra={
                "pageviews": len(first), "rate_per_s": sizes.rate,
                "p50_ms": round(percentile(first, 50), 1),
                "p99_ms": round(percentile(first, 99), 1), "max_ms": round(max(first), 1),
                "every_subscriber_p50_ms": round(percentile(every, 50), 1),
                "every_subscriber_p99_ms": round(percentile(every, 99), 1),
                "post_p50_ms": round(percentile(r.post_ms, 50), 2),
                "from": "the 202 of POST /api/v1/pageview (a new visitorId each)",
            },
        ),
    ]  # fmt: skip


# -- what holds the memory of a stream ----------------------------------------------------

EVENT = b'event: visitors\r\ndata: {"currentVisitors":0}\r\n\r\n'


def held_open_app() -> ASGIApp:
    """The floor: uvicorn's connection and its ASGI task, one event sent, nothing more."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        found = scope["path"] == "/stream"
        headers = [(b"content-type", b"text/event-stream" if found else b"text/plain")]
        await send({"type": "http.response.start", "status": 200 if found else 404,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": EVENT, "more_body": found})
        while found and (await receive())["type"] != "http.disconnect":
            pass

    return app


def sse_app() -> ASGIApp:
    """sse-starlette as the service configures it, around a generator that sends one
    event and waits: its tasks and buffers, without our topics."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(data='{"currentVisitors":0}', event="visitors")
        await asyncio.Event().wait()

    async def stream(request: Request) -> Response:
        return EventSourceResponse(
            events(), ping=15, send_timeout=30,
            ping_message_factory=lambda: ServerSentEvent(comment="ping"),
        )  # fmt: skip

    return Starlette(routes=[Route("/stream", stream)])


def memory_parts(workdir: Path, count: int, service: float) -> list[Figure]:
    """The same streams held by less: what uvicorn costs, what sse-starlette adds."""
    figures = []
    for app, name in (
        ("bench.live:held_open_app", "a bare ASGI app holding each response open"),
        ("bench.live:sse_app", "sse-starlette alone (a generator that sends one event)"),
    ):
        command = ["uvicorn", app, "--factory", "--no-access-log", "--log-level", "warning"]
        with start(command, {}, workdir / f"{app.rsplit(':', 1)[1]}.log", "/") as (base, pid):
            idle, held = run_loop(hold(Streams(base, pid), count))
        per = (held - idle) * 1024 / count
        figures.append(
            Figure(
                SCENARIO, f"memory per stream, {count:,} streams: {name}", round(per), "bytes",
                baseline=f"the service ({service:,.0f} bytes)", ratio=round(per / service, 2),
                extra={"idle_rss_kb": idle, "open_rss_kb": held},
            )
        )  # fmt: skip
    return figures


async def hold(streams: Streams, count: int) -> tuple[int, float]:
    idle, held, _ = await streams.memory(["/stream"] * count)
    streams.close()
    return idle, held


# -- what both parts need -----------------------------------------------------------------


async def create_sites(url: str, websites: int) -> tuple[dict[str, str], str]:
    """`websites` websites and READ_SITE, each with a publishable key bound to no origin:
    ({website id: its key}, READ_SITE's secret token)."""
    store = Store(url, Settings(redis_url=url, plans={PLAN: PLAN_LIMIT}))
    sites = Sites(store, {PLAN: PLAN_LIMIT})
    public = {}
    try:
        for site_id in [*(f"live-{n:03d}" for n in range(websites)), READ_SITE]:
            _, secret = await sites.create(site_id, site_id, PLAN)
            public[site_id] = (await sites.create_token(site_id, True)).token
    finally:
        await store.close()
    return public, secret.token


@contextmanager
def open_files() -> Iterator[None]:
    """This process and the servers it starts may hold as many files as the system lets:
    10,000 sockets on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextmanager
def start(
    command: list[str], env: dict[str, str], log_path: Path, ready: str
) -> Iterator[tuple[str, int]]:
    """A server command of the venv on a free port, answering `ready`: (base URL, pid)."""
    port = servers.free_port()
    argv = [str(servers.BIN / command[0]), *command[1:], "--port", str(port)]
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + ready, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start: see {log_path}") from None
                time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(30)


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` and its descendants."""
    total = 0
    for process in tree(pid):
        try:
            status = (process / "status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(found.group(1)) if found else 0
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of `pid` and its descendants so far."""
    ticks = 0
    for process in tree(pid):
        try:
            ticks += sum(map(int, _stat(process)[11:13]))  # utime, stime
        except (OSError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[Path]:
    """/proc/<pid> of `pid` and of every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(entry)[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        found.append(Path(f"/proc/{current}"))
    return found


def _stat(process: Path) -> list[str]:
    """/proc/<pid>/stat from its third field on (the state), past the command's name."""
    return (process / "stat").read_text().rsplit(")", 1)[1].split()


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop when there is one (uvicorn's own choice): the client's share of two cores
    stays small."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


if __name__ == "__main__":
    from .fixtures import main

    main(run)
