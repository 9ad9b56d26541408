"""The embedded valkey-server: start, reuse, stop, persistence, and its failure modes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from realtime_visitors.cli import main
from realtime_visitors.storage import embedded
from realtime_visitors.storage.embedded import EmbeddedError, EmbeddedServer

from .conftest import unique_id

CLI = Path(sys.executable).parent / "realtime-visitors"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    assert len(str(tmp_path / embedded.SOCKET_NAME)) <= embedded.MAX_SOCKET_PATH, (
        f"{tmp_path} is too long for a unix socket: run pytest with a shorter --basetemp"
    )
    return tmp_path


@pytest.fixture
def start() -> Iterator[Callable[[Path], EmbeddedServer]]:
    """embedded.ensure, with every server it starts stopped after the test."""
    servers: list[EmbeddedServer] = []

    def ensure(data_dir: Path) -> EmbeddedServer:
        server = embedded.ensure(data_dir)
        servers.append(server)
        return server

    yield ensure
    for server in servers:
        server.stop()


def ping(server: EmbeddedServer) -> bool:
    with redis.Redis.from_url(server.url) as client:
        return bool(client.ping())


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed command, in a process of its own, on the embedded store of data_dir."""
    assert CLI.is_file(), f"{CLI} missing: install the project into this virtualenv"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("RTV_")}
    env["RTV_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def json_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    out: dict[str, str] = json.loads(result.stdout)
    return out


def test_ensure_starts_a_server_on_its_socket(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    server = start(data_dir)
    assert server.owned
    assert server.socket_path == data_dir / embedded.SOCKET_NAME
    assert server.url == f"unix://{data_dir / embedded.SOCKET_NAME}"
    assert server.alive()
    assert ping(server)


def test_second_ensure_reuses_the_running_server(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    first = start(data_dir)
    second = start(data_dir)
    assert not second.owned
    assert second.socket_path == first.socket_path
    with redis.Redis.from_url(first.url) as client:
        client.set("written-by", "first")
    with redis.Redis.from_url(second.url) as client:
        assert client.get("written-by") == b"first"
    second.stop()  # not its server: leaves it running
    assert first.alive()


def test_stop_shuts_the_owner_down_cleanly(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    server = start(data_dir)
    assert server.process is not None
    server.stop()
    assert not server.alive()
    assert server.process.returncode == 0
    server.stop()  # a second stop is harmless
    assert server.process.returncode == 0


def test_data_survives_stop_and_restart(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    server = start(data_dir)
    with redis.Redis.from_url(server.url) as client:
        client.hset("kept", mapping={"a": "1"})
    server.stop()
    assert not server.alive()
    restarted = start(data_dir)
    assert restarted.owned
    with redis.Redis.from_url(restarted.url) as client:
        assert client.hgetall("kept") == {b"a": b"1"}


def test_cli_website_survives_restart_and_cli_stops_its_server(data_dir: Path) -> None:
    website_id = unique_id()
    created = json_of(run_cli(data_dir, "sites", "create", "--id", website_id, "--json"))
    assert created["websiteId"] == website_id
    assert not embedded.is_alive(data_dir / embedded.SOCKET_NAME)

    shown = json_of(run_cli(data_dir, "sites", "show", website_id, "--json"))
    assert shown["websiteId"] == website_id
    assert not embedded.is_alive(data_dir / embedded.SOCKET_NAME)


def test_cli_reuses_a_running_server_and_leaves_it_running(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    server = start(data_dir)
    website_id = unique_id()
    json_of(run_cli(data_dir, "sites", "create", "--id", website_id, "--json"))
    assert server.alive()
    with redis.Redis.from_url(server.url, decode_responses=True) as client:
        assert client.hget(f"rtv:{{{website_id}}}:site", "plan") == "free"


def test_too_long_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    long_dir = tmp_path / ("d" * embedded.MAX_SOCKET_PATH)
    with pytest.raises(EmbeddedError, match=r"too long for a unix socket.*RTV_DATA_DIR"):
        embedded.ensure(long_dir)


def test_too_long_data_dir_is_a_clear_cli_error(tmp_path: Path) -> None:
    env = {"REDIS_URL": None, "RTV_DATA_DIR": str(tmp_path / ("d" * embedded.MAX_SOCKET_PATH))}
    result = CliRunner().invoke(main, ["sites", "list"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert "too long for a unix socket" in result.stderr


def leftover_file(path: Path) -> None:
    path.write_text("left over")


def dead_socket(path: Path) -> None:
    # What a killed server leaves behind: a socket file nobody listens on.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize("leave", [leftover_file, dead_socket])
def test_stale_socket_path_does_not_prevent_starting(
    data_dir: Path, start: Callable[[Path], EmbeddedServer], leave: Callable[[Path], None]
) -> None:
    leave(data_dir / embedded.SOCKET_NAME)
    assert (data_dir / embedded.SOCKET_NAME).exists()
    server = start(data_dir)
    assert server.owned
    assert ping(server)


def test_a_store_whose_owner_died_is_adopted_and_stopped(
    data_dir: Path, start: Callable[[Path], EmbeddedServer]
) -> None:
    # A command that started the store and died without stopping it (kill -9, or a
    # terminal closed under it): its process id is no longer running.
    orphan_maker = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    first = start(data_dir)
    (data_dir / embedded.OWNER_NAME).write_text(f"{orphan_maker.stdout.strip()} gone\n")
    assert not first.owned

    adopter = start(data_dir)
    assert adopter.owned
    adopter.stop()
    assert not adopter.alive(), "the adopted store outlived the command that adopted it"


def test_a_short_command_never_stops_the_store_under_serve(data_dir: Path) -> None:
    short = embedded.ensure(data_dir)  # a short command starts the store
    assert short.owned
    # `serve`, in a process of its own, reuses it and takes it over.
    serve_like = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys; from pathlib import Path; from realtime_visitors.storage import embedded;"
            "server = embedded.ensure(Path(sys.argv[1]), take_over=True);"
            "print(server.owned, flush=True); sys.stdin.readline(); server.stop()",
            str(data_dir),
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve_like.stdout is not None
        assert serve_like.stdout.readline().strip() == "True"
        assert not short.owned
        short.stop()  # the short command exits
        assert short.alive(), "a short command stopped the store that serve uses"
    finally:
        serve_like.communicate("\n", timeout=30)
    assert not short.alive(), "serve did not stop the store it took over"
