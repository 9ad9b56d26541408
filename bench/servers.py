"""The processes a benchmark needs, started here and stopped here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from realtime_visitors.storage import embedded

BIN = Path(sys.executable).parent


@contextmanager
def valkey(data_dir: Path) -> Iterator[str]:
    """The embedded valkey-server 8 (what `make run` uses), without persistence."""
    server = embedded.ensure(data_dir, persist=False)
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def redis7(data_dir: Path) -> Iterator[str | None]:
    """This machine's redis-server binary on a private socket; None where there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = data_dir / "redis.sock"
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
         "--dir", str(data_dir), "--logfile", str(data_dir / "redis.log")],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not embedded.is_alive(sock):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: see {data_dir / 'redis.log'}")
            time.sleep(0.02)
        yield f"unix://{sock}"
    finally:
        process.terminate()
        process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def uvicorn(
    app: str, env: dict[str, str], workers: int = 1, output: Path | None = None
) -> Iterator[str]:
    """`app` ("module:factory") served by uvicorn with the same settings for every app;
    its standard output (the service's access log, when on) to `output`."""
    with uvicorn_process(app, env, workers, output) as (base, _):
        yield base


@contextmanager
def uvicorn_process(
    app: str, env: dict[str, str], workers: int = 1, output: Path | None = None
) -> Iterator[tuple[str, int]]:
    """The same, and uvicorn's process id: with one worker, the process that serves."""
    port = free_port()
    command = [
        str(BIN / "uvicorn"), app, "--factory", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--no-server-header", "--no-proxy-headers", "--log-level", "warning",
    ]  # fmt: skip
    # No access log unless asked for, the service's as uvicorn's: scenario observability
    # measures it; the others measure the service without it, as they always did.
    env = {"RTV_ACCESS_LOG": "0", **env}
    with open(output or os.devnull, "ab") as out:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(20)
