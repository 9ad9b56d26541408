"""Scenario 1: the HTTP layer under wrk, against bare Starlette served the same way."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import common, servers
from .common import Figure, median

SCENARIO = "1. HTTP layer"
PLANS = "bench=1000000000"
WEBSITE = "bench"
CONNECTIONS = 32

PAGEVIEW_LUA = """
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, nil,
    '{"websiteId":"%s","visitorId":"v' .. (i %% 50000) .. '","url":"https://bench.example/"}')
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: `apt-get install wrk` (make bench installs it)")
    return found


def create_site(url: str) -> str:
    return common.create_site(url, WEBSITE, "bench", 1_000_000_000)


def wrk(url: str, seconds: float, script: Path | None, headers: dict[str, str]) -> dict[str, float]:
    command = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx.group(1)} failed responses under load:\n{output}")
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _latency(output, "50%"),
        "p99_ms": _latency(output, "99%"),
    }


def _latency(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    assert match, output
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run(workdir: Path, quick: bool, workers: tuple[int, ...] = (1, 2)) -> list[Figure]:
    seconds = 2 if quick else 8
    rounds = 1 if quick else 3
    script = workdir / "pageview.lua"
    script.write_text(PAGEVIEW_LUA % WEBSITE)
    figures: list[Figure] = []
    with servers.valkey(workdir / "valkey") as redis_url:
        token = create_site(redis_url)
        # All load comes from 127.0.0.1: no per-address cap, or most pageviews would
        # stop early as "over the cap" and measure less work than real ones.
        env = {"REDIS_URL": redis_url, "RTV_PLANS": PLANS, "RTV_MAX_VISITORS_PER_IP": "0"}
        for count in workers:
            figures += _compare(count, env, token, script, seconds, rounds)
    return figures


def _compare(
    workers: int, env: dict[str, str], token: str, script: Path, seconds: float, rounds: int
) -> list[Figure]:
    auth = {"Authorization": f"Bearer {token}"}
    cases = {
        "bare GET": ("bare", "/api/v1/realtime", None, {}),
        "GET /api/v1/realtime": ("service", f"/api/v1/realtime?websiteId={WEBSITE}", None, auth),
        "bare POST": ("bare", "/api/v1/pageview", script, {}),
        "POST /api/v1/pageview": ("service", "/api/v1/pageview", script, {}),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    with (
        servers.uvicorn("bench.bare_app:create_app", env, workers) as bare,
        servers.uvicorn("realtime_visitors.app:create_app", env, workers) as service,
    ):
        bases = {"bare": bare, "service": service}
        for which, path, lua, headers in cases.values():
            wrk(bases[which] + path, 1, lua, headers)  # warm up
        # Interleaved rounds: drift on a shared machine hits every case alike.
        for _ in range(rounds):
            for name, (which, path, lua, headers) in cases.items():
                results[name].append(wrk(bases[which] + path, seconds, lua, headers))
                print(f"  {workers}w {name}: {results[name][-1]}", file=sys.stderr)
    return [
        _figure(workers, name, results[name], baseline, results[baseline])
        for name, baseline in (
            ("GET /api/v1/realtime", "bare GET"),
            ("POST /api/v1/pageview", "bare POST"),
        )
    ]


def _figure(
    workers: int,
    name: str,
    runs: list[dict[str, float]],
    baseline: str,
    base_runs: list[dict[str, float]],
) -> Figure:
    rps = median([r["rps"] for r in runs])
    base = median([r["rps"] for r in base_runs])
    ratio = rps / base
    return Figure(
        scenario=SCENARIO,
        name=f"{name}, {workers} worker{'s' if workers > 1 else ''}",
        value=round(rps),
        unit="req/s",
        baseline=f"{baseline} ({round(base)} req/s)",
        ratio=round(ratio, 3),
        target=">= 0.75x" if workers == 1 else "",
        met=ratio >= 0.75 if workers == 1 else None,
        runs=[r["rps"] for r in runs],
        extra={
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "baseline_p50_ms": median([r["p50_ms"] for r in base_runs]),
            "baseline_p99_ms": median([r["p99_ms"] for r in base_runs]),
            "baseline_runs": [r["rps"] for r in base_runs],
        },
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rtv-bench-") as tmp:
        for figure in run(Path(tmp), quick="--full" not in sys.argv, workers=(1,)):
            print(figure)
