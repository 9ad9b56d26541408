"""Scenario 11: the service on a 3-primary Valkey Cluster against one node, same run.

Three parts:
- HTTP: both hot endpoints under wrk, one worker, on the local 3+3 cluster against
  one valkey-server of the same binary over TCP (the cluster's nodes speak TCP too).
- Clients: the realtime script's calls per second through our own slot-routing
  connection, coredis and valkey-glide, from one process on the same cluster: the
  measurement behind the choice of the hot path's cluster client.
- Script ceiling: redis-benchmark driving the realtime script on 1 primary, then on
  all 3 at once (one redis-benchmark each): what the cluster adds in Redis capacity.
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import redis

from realtime_visitors.storage import embedded, localcluster, scripts
from realtime_visitors.storage.cluster import ClusterConnection, seed_addresses
from realtime_visitors.storage.connection import Script
from realtime_visitors.storage.keys import site_keys
from realtime_visitors.storage.localcluster import LocalCluster

from . import fixtures as fx
from . import http, servers
from .common import Figure, median

SCENARIO = "11. cluster"
CLIENT_TASKS = 64  # concurrent callers in the client comparison
CEILING_VISITORS = 10_000
PIPELINE, CLIENTS = 16, 4


def run(workdir: Path, quick: bool) -> list[Figure]:
    rounds = 1 if quick else 3
    figures: list[Figure] = []
    with (
        localcluster.start(workdir / "cluster") as cluster,
        valkey_tcp(workdir / "single") as single,
    ):
        figures += _http(workdir, cluster.url, single, 2 if quick else 8, rounds)
        figures += _clients(cluster, 1 if quick else 3, rounds)
        figures += _ceiling(cluster, 20_000 if quick else 300_000, rounds)
    return figures


@contextmanager
def valkey_tcp(data_dir: Path) -> Iterator[str]:
    """One valkey-server on a TCP port: the cluster's baseline on the same transport."""
    data_dir.mkdir(parents=True)
    port = servers.free_port()
    process = subprocess.Popen(
        [embedded.server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(data_dir), "--logfile", "valkey.log"],
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"valkey-server did not start: {data_dir}") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _http(
    workdir: Path, cluster_url: str, single_url: str, seconds: float, rounds: int
) -> list[Figure]:
    script = workdir / "pageview.lua"
    script.write_text(http.PAGEVIEW_LUA % http.WEBSITE)
    tokens = {url: http.create_site(url) for url in (single_url, cluster_url)}
    env = {"RTV_PLANS": http.PLANS, "RTV_MAX_VISITORS_PER_IP": "0"}
    results: dict[tuple[str, str], list[float]] = {}
    app = "realtime_visitors.app:create_app"
    with (
        servers.uvicorn(app, {**env, "REDIS_URL": single_url}) as one,
        servers.uvicorn(app, {**env, "REDIS_URL": cluster_url}) as three,
    ):
        bases = {"one node": (one, tokens[single_url]), "cluster": (three, tokens[cluster_url])}
        cases = {
            "GET /api/v1/realtime": (f"/api/v1/realtime?websiteId={http.WEBSITE}", None),
            "POST /api/v1/pageview": ("/api/v1/pageview", script),
        }
        for base, token in bases.values():
            for path, lua in cases.values():
                http.wrk(base + path, 1, lua, {"Authorization": f"Bearer {token}"})  # warm up
        for _ in range(rounds):
            for endpoint, (path, lua) in cases.items():
                for where, (base, token) in bases.items():
                    auth = {"Authorization": f"Bearer {token}"}
                    rps = http.wrk(base + path, seconds, lua, auth)["rps"]
                    results.setdefault((endpoint, where), []).append(rps)
                    fx.log(f"  {endpoint} on {where}: {rps:,.0f} req/s")
    figures = []
    for endpoint in cases:
        value, single = median(results[endpoint, "cluster"]), median(results[endpoint, "one node"])
        ratio = value / single
        figures.append(
            Figure(
                SCENARIO,
                f"{endpoint}, 1 worker, 3-primary cluster",
                round(value),
                "req/s",
                baseline=f"one node over TCP ({single:,.0f} req/s)",
                ratio=round(ratio, 3),
                target=">= 0.9x",
                met=ratio >= 0.9,
                runs=results[endpoint, "cluster"],
                extra={"baseline_runs": results[endpoint, "one node"]},
            )
        )
    return figures


def _clients(cluster: LocalCluster, seconds: float, rounds: int) -> list[Figure]:
    """The realtime script through each cluster client, CLIENT_TASKS callers at once."""
    site = _websites(cluster, 1)[0]
    source = scripts.source("realtime")
    keys, args = site.realtime_keys, [str(a) for a in site.realtime_args]
    host, port = seed_addresses(cluster.url)[0].split(":")
    makers: dict[str, Callable[[], Awaitable[tuple[Callable[[], Awaitable[Any]], Any]]]] = {
        "own connection": lambda: _own(cluster.url, source, keys, args),
        "coredis": lambda: _coredis(host, int(port), source, keys, args),
        "valkey-glide": lambda: _glide(host, int(port), source, keys, args),
    }
    results: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(rounds):
        for name, make in makers.items():
            rate = asyncio.run(_rate(make, seconds))
            results[name].append(rate)
            fx.log(f"  realtime script through {name}: {rate:,.0f} calls/s")
    own = median(results["own connection"])
    return [
        Figure(
            SCENARIO,
            f"realtime script through {name}, {CLIENT_TASKS} callers, one process",
            round(median(runs)),
            "calls/s",
            baseline="" if name == "own connection" else f"own connection ({own:,.0f} calls/s)",
            ratio=None if name == "own connection" else round(median(runs) / own, 3),
            runs=runs,
        )
        for name, runs in results.items()
    ]


async def _rate(
    make: Callable[[], Awaitable[tuple[Callable[[], Awaitable[Any]], Any]]], seconds: float
) -> float:
    call, close = await make()
    try:
        for _ in range(100):
            await call()  # connections open, the script loaded where it runs
        calls = 0
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal calls
            while time.perf_counter() < deadline:
                await call()
                calls += 1

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CLIENT_TASKS)))
        return calls / (time.perf_counter() - started)
    finally:
        await close()


async def _own(url: str, source: str, keys: list[str], args: list[str]) -> tuple[Any, Any]:
    connection, script = ClusterConnection(url, 5.0), Script(source)

    async def close() -> None:
        connection.close()

    return lambda: connection.call(script, tuple(keys), tuple(args)), close


async def _coredis(host: str, port: int, source: str, keys: list[str], args: list[str]) -> Any:
    import coredis

    client: Any = coredis.RedisCluster(host=host, port=port)
    await client.__aenter__()  # coredis 5+: a client is used inside its context
    script = client.register_script(source)

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return lambda: script(keys=keys, args=args), close


async def _glide(host: str, port: int, source: str, keys: list[str], args: list[str]) -> Any:
    import glide

    config = glide.GlideClusterClientConfiguration([glide.NodeAddress(host, port)])
    client = await glide.GlideClusterClient.create(config)
    script = glide.Script(source)
    return lambda: client.invoke_script(script, keys=keys, args=args), client.close


def _ceiling(cluster: LocalCluster, requests: int, rounds: int) -> list[Figure]:
    """Realtime-script calls/s that Redis sustains on 1 primary, and on 3 at once."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        fx.log(f"{SCENARIO}: no redis-benchmark (Debian's redis-tools): no ceiling figures")
        return []
    sites = _websites(cluster, 3)
    owners = _owners(cluster)
    sha = redis.Redis(port=owners[0]).script_load(scripts.source("realtime"))
    for port, site in zip(owners, sites, strict=True):
        with redis.Redis(port=port) as node:
            node.script_load(scripts.source("realtime"))
            fx.fill_active(node, site, CEILING_VISITORS)
    commands = [
        ["EVALSHA", sha, len(site.realtime_keys), *site.realtime_keys, *site.realtime_args]
        for site in sites
    ]
    one: list[float] = []
    three: list[float] = []
    for _ in range(rounds):
        one.append(_benchmark(tool, [(owners[0], commands[0])], requests))
        three.append(_benchmark(tool, list(zip(owners, commands, strict=True)), requests))
        fx.log(f"  realtime script on 1 primary: {one[-1]:,.0f}/s, on 3: {three[-1]:,.0f}/s")
    ratio = median(three) / median(one)
    return [
        Figure(
            SCENARIO,
            "realtime script ceiling, 3 primaries at once (redis-benchmark each)",
            round(median(three)),
            "calls/s",
            baseline=f"1 primary ({median(one):,.0f} calls/s)",
            ratio=round(ratio, 3),
            runs=three,
            extra={"baseline_runs": one, "visitors": CEILING_VISITORS},
        )
    ]


def _benchmark(tool: str, targets: list[tuple[int, list[Any]]], requests: int) -> float:
    """The summed calls/s of one redis-benchmark per (port, command), run at once."""
    started = []
    for port, command in targets:
        args = [tool, "-p", str(port), "-P", str(PIPELINE), "-c", str(CLIENTS)]
        args += ["-n", str(requests), "--csv", *map(str, command)]
        started.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    total = 0.0
    for process in started:
        out, err = process.communicate(timeout=300)
        rows = list(csv.DictReader(io.StringIO(out)))
        if not rows:
            raise RuntimeError(f"redis-benchmark printed no result: {out} {err}")
        total += float(rows[-1]["rps"])
    return total


def _owners(cluster: LocalCluster) -> list[int]:
    return sorted(cluster.primaries())


def _websites(cluster: LocalCluster, how_many: int) -> list[fx.Website]:
    """One benchmark website on each of the first `how_many` primaries."""
    wanted = _owners(cluster)[:how_many]
    host, port = seed_addresses(cluster.url)[0].split(":")
    found: dict[int, fx.Website] = {}
    with redis.RedisCluster(host=host, port=int(port)) as everyone:
        for n in count():
            website_id = f"bench-{n}"
            owner = int(everyone.get_node_from_key(site_keys(website_id).site).port)
            if owner in wanted and owner not in found:
                with redis.Redis(port=owner) as node:
                    found[owner] = fx.create_website(node, website_id)
            if len(found) == len(wanted):
                return [found[port] for port in wanted]
    raise AssertionError("unreachable")


if __name__ == "__main__":
    fx.main(run)
