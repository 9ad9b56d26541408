"""Scenario 5: how many script calls per second Redis itself sustains, with no HTTP."""

from __future__ import annotations

import csv
import io
import random
import shutil
import subprocess
import time
from pathlib import Path

import redis

from . import fixtures as fx
from .common import Figure, median
from .servers import valkey

SCENARIO = "5. redis ceiling"
VISITORS = 100_000  # already in each set when the runs start
PIPELINE, CLIENTS = 16, 4
RAND = "__rand_int__"  # redis-benchmark puts a random number there (with -r)
RAND_RANGE = 1_000_000
DRIVER_BATCH = 1_024


def run(workdir: Path, quick: bool) -> list[Figure]:
    requests, rounds = (5_000, 3) if quick else (300_000, 3)
    tool = shutil.which("redis-benchmark")
    how = f"redis-benchmark -P {PIPELINE} -c {CLIENTS} -n {requests:,}"
    if not tool:
        how = f"redis-py, one connection, pipelines of {DRIVER_BATCH} (latency per pipeline)"
    fx.log(f"{SCENARIO}: {how}, {rounds} rounds")
    with valkey(workdir / "ceiling") as url:
        client = fx.connect(url)
        rt, pv = fx.script(client, "realtime"), fx.script(client, "pageview")
        rt_sha, pv_sha = client.script_load(rt.script), client.script_load(pv.script)
        counting, viewed = (
            fx.create_website(client, "ceiling-rt"),
            fx.create_website(client, "ceiling-pv"),
        )
        fx.fill_active(client, counting, VISITORS)
        fx.fill_active(client, viewed, VISITORS)
        cases: dict[str, list[str | int]] = {
            "ZCOUNT": ["ZCOUNT", counting.keys.visitors, "-inf", "+inf"],
            "realtime": _evalsha(rt_sha, counting.realtime_keys, counting.realtime_args),
            "pageview": _evalsha(
                pv_sha, viewed.pageview_keys, viewed.pageview_args(f"bench-{RAND}")
            ),
        }
        _check(client, cases)
        version = client.info("server").get("valkey_version", "?")
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, command in cases.items():
                if tool:
                    result = _redis_benchmark(tool, url, command, requests)
                else:
                    result = _driver(client, command, requests)
                results[name].append(result)
                fx.log(f"  {name}: {result[0]:,.0f} req/s")
        grown = int(client.zcard(viewed.keys.visitors))
    zcount = median([r[0] for r in results["ZCOUNT"]])
    names = {
        "ZCOUNT": "ZCOUNT alone (no script), same set",
        "realtime": f"realtime script, {VISITORS:,} visitors",
        "pageview": f"pageview script, {VISITORS:,} visitors and growing",
    }
    figures = []
    for name, runs in results.items():
        value = median([r[0] for r in runs])
        extra: dict[str, object] = {
            "tool": how,
            "server": f"valkey {version} (embedded), unix socket",
            "p50_ms": median([r[1] for r in runs]),
            "p99_ms": median([r[2] for r in runs]),
        }
        if name == "ZCOUNT":
            unit = "commands/s"
        else:
            # calls/s with no ratio: bench/run.py sets the ratio against scenario 1's HTTP.
            unit = "calls/s"
            extra["share_of_zcount"] = round(value / zcount, 3)
        if name == "pageview":
            extra["set_size_at_end"] = grown
        runs_rps = [r[0] for r in runs]
        figures.append(Figure(SCENARIO, names[name], value, unit, runs=runs_rps, extra=extra))
    return figures


def _evalsha(sha: str, keys: list[str], args: list[str | int]) -> list[str | int]:
    return ["EVALSHA", sha, len(keys), *keys, *args]


def _check(client: redis.Redis, cases: dict[str, list[str | int]]) -> None:
    # redis-benchmark counts error replies as answers: make sure there are none.
    for name, command in cases.items():
        reply = fx.command(client, *(str(a).replace(RAND, "0") for a in command))
        expected = {"realtime": reply[0] == 0 if isinstance(reply, list) else False,
                    "pageview": reply == 1}.get(name, isinstance(reply, int))  # fmt: skip
        if not expected:
            raise RuntimeError(f"{name}: unexpected reply {reply!r}")


def _redis_benchmark(
    tool: str, url: str, command: list[str | int], requests: int
) -> tuple[float, float, float]:
    """(requests per second, p50 ms, p99 ms) as redis-benchmark measures them."""
    socket_path = url.removeprefix("unix://")
    args = [tool, "-s", socket_path, "-P", str(PIPELINE), "-c", str(CLIENTS), "-n", str(requests)]
    args += ["-r", str(RAND_RANGE), "--csv", *map(str, command)]
    done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {done.stdout} {done.stderr}")
    row = rows[-1]
    return float(row["rps"]), float(row["p50_latency_ms"]), float(row["p99_latency_ms"])


def _driver(
    client: redis.Redis, command: list[str | int], requests: int
) -> tuple[float, float, float]:
    """The same measure without redis-benchmark: one connection, big pipelines."""
    batch = DRIVER_BATCH
    batches = []
    started = time.perf_counter()
    for start in range(0, requests, batch):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(batch, requests - start)):
            rand = str(random.randrange(RAND_RANGE))
            fx.command(pipe, *(str(a).replace(RAND, rand) for a in command))
        began = time.perf_counter()
        pipe.execute()
        batches.append((time.perf_counter() - began) * 1000)
    rps = requests / (time.perf_counter() - started)
    # Per pipeline, not per request: what a caller waits for one batch.
    return rps, median(batches), max(batches)


if __name__ == "__main__":
    fx.main(run)
