"""`make bench`: every scenario, one markdown table, the same figures as JSON.

Each figure is a median of several runs, printed as a ratio against a baseline
measured in the same run: absolute numbers on a shared machine drift, ratios less.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from . import (
    ceiling,
    cluster,
    crawlers,
    growth,
    http,
    lag,
    live,
    memory,
    observability,
    peers,
    toppages,
)
from .common import Figure

RESULTS = Path(__file__).resolve().parent / "results"

SCENARIOS: dict[str, Callable[[Path, bool], list[Figure]]] = {
    "http": http.run,
    "growth": growth.run,
    "peers": peers.run,
    "memory": memory.run,
    "ceiling": ceiling.run,
    "lag": lag.run,
    "crawlers": crawlers.run,
    "toppages": toppages.run,
    "live": live.run,
    "cluster": cluster.run,
    "observability": observability.run,
}


def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD"),
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def table(figures: list[Figure]) -> str:
    rows = [
        "| Scenario | Figure | Median | Baseline (same run) | Ratio | Target | Met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:g}x"
        met = {True: "yes", False: "**no**", None: ""}[f.met]
        rows.append(
            f"| {f.scenario} | {f.name} | {_number(f.value)} {f.unit} | {f.baseline} "
            f"| {ratio} | {f.target} | {met} |"
        )
    return "\n".join(rows)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def ceiling_ratios(figures: list[Figure]) -> None:
    """Scenario 5 against scenario 1: how far the HTTP layer is from Redis itself."""
    http_rps = {
        f.name.split(",")[0]: f.value
        for f in figures
        if f.scenario == http.SCENARIO and "1 worker" in f.name
    }
    for figure in figures:
        if figure.scenario.startswith("5.") and figure.unit == "calls/s" and figure.ratio is None:
            endpoint = (
                "GET /api/v1/realtime" if "realtime" in figure.name else "POST /api/v1/pageview"
            )
            if http_rps.get(endpoint):
                figure.baseline = f"{endpoint}, 1 worker ({http_rps[endpoint]:,.0f} req/s)"
                figure.ratio = round(figure.value / http_rps[endpoint], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and short runs: a smoke test"
    )
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these")
    options = parser.parse_args()
    chosen = options.only or list(SCENARIOS)
    started = time.monotonic()
    figures: list[Figure] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rtv-bench-") as tmp:
        for name in chosen:
            print(f"== {name}", file=sys.stderr)
            workdir = Path(tmp) / name
            workdir.mkdir()
            # One failing scenario must not cost the figures of the others.
            try:
                figures += SCENARIOS[name](workdir, options.quick)
            except Exception:
                traceback.print_exc()
                failed.append(name)
    ceiling_ratios(figures)
    elapsed = time.monotonic() - started
    info = machine()
    markdown = table(figures)
    print(
        f"\nMachine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['date']}"
    )
    mode = " (quick)" if options.quick else ""
    print(f"Commit {info['commit']}; {elapsed / 60:.1f} minutes{mode}\n")
    print(markdown)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "machine": info,
        "quick": options.quick,
        "seconds": round(elapsed),
        "figures": [f.as_dict() for f in figures],
    }
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.md").write_text(markdown + "\n")
    print(f"\nWritten: {RESULTS / (stamp + '.json')}", file=sys.stderr)
    if failed:
        sys.exit(f"failed scenarios: {', '.join(failed)}")


if __name__ == "__main__":
    main()
