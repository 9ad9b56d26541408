"""Log lines of the real server: a time and a level on every one, text or JSON
(RTV_LOG_FORMAT), an access line per request unless RTV_ACCESS_LOG=0, and no token,
key, secret or client address in any of them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from realtime_visitors.config import ConfigError, Settings
from realtime_visitors.ops import accesslog
from realtime_visitors.ops.accesslog import PIPE_BUF, AccessLog

from .test_cli import command_line, one_error_line
from .test_live_server import Live, serve
from .test_public import public_key

ADMIN_TOKEN = "admin-token-for-the-log-test"
METRICS_TOKEN = "metrics-token-for-the-log-test"
# The client's own address, which no line may show: another loopback address than the
# server's 127.0.0.1, so that the startup line's bind address is not mistaken for it.
CLIENT = "127.0.0.2"
FORWARDED = "203.0.113.9"  # the visitor's address, given by a trusted proxy
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_LINE = re.compile(rf"({TIME}) ({'|'.join(LEVELS)}) (.*)")
TEXT_ACCESS = re.compile(r"([A-Z]+) (\S+) (\d{3}) (\d+\.\d\d)ms")


def session(live: Live, website_id: str, token: str, key: str) -> dict[str, str]:
    """A bit of everything that carries a secret or an address; the secrets sent."""
    transport = httpx.HTTPTransport(local_address=CLIENT)
    with httpx.Client(base_url=live.base_url, transport=transport) as client:
        read = f"/api/v1/realtime?websiteId={website_id}"
        assert client.get(read, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get(read, headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        assert client.get(f"{read}&key={token}").status_code == 400  # a secret in the URL
        assert client.get(f"{read}&key={key}").status_code == 200
        pageview = {"websiteId": website_id, "url": "https://site.example/p?session=abc"}
        forwarded = {"X-Forwarded-For": FORWARDED}
        assert client.post("/api/v1/pageview", json=pageview, headers=forwarded).status_code == 202
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.get(f"/api/v1/admin/websites/{website_id}", headers=admin).status_code == 200
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert client.get("/metrics", headers=scrape).status_code == 200
        # A decoded %0A must not start a line of its own, nor a space fake a field.
        assert client.get("/x%0Afake%20line").status_code == 404
    return {"token": token, "public key": key, "admin": ADMIN_TOKEN, "metrics": METRICS_TOKEN}


def run(
    tmp_path: Path, settings: Settings, make_site: Callable[..., tuple[str, str]], **env: str
) -> tuple[str, dict[str, str]]:
    """The session against `serve` with this environment; its whole output, once stopped."""
    website_id, token = make_site()
    key = public_key(settings, website_id).token
    assert settings.redis_url
    live = serve(
        tmp_path / "serve.log",
        REDIS_URL=settings.redis_url,
        RTV_ADMIN_TOKEN=ADMIN_TOKEN,
        RTV_METRICS_TOKEN=METRICS_TOKEN,
        RTV_TRUSTED_PROXIES="127.0.0.0/8",
        **env,
    )
    try:
        secrets = session(live, website_id, token, key)
    finally:
        code = live.stop()
    log = live.log.read_text()
    assert code == 0, log
    return log, secrets


def assert_nothing_secret(log: str, secrets: dict[str, str]) -> None:
    for name, secret in secrets.items():
        assert secret.removeprefix("vt_").removeprefix("pub_") not in log, f"the {name} is logged"
    for address in (CLIENT, FORWARDED):
        assert address not in log, f"a client address ({address}) is logged"
    assert "session=abc" not in log
    assert "?" not in log  # no query string, in no line


def test_json_lines(
    tmp_path: Path, settings: Settings, make_site: Callable[..., tuple[str, str]]
) -> None:
    log, secrets = run(tmp_path, settings, make_site, RTV_LOG_FORMAT="json")
    entries = [json.loads(line) for line in log.splitlines()]  # every line, JSON
    for entry in entries:
        assert re.fullmatch(TIME, entry["time"]), entry
        assert entry["level"] in LEVELS, entry
        assert isinstance(entry["message"], str), entry
    messages = [entry["message"] for entry in entries]
    assert any(message.startswith("Using ") for message in messages)  # serve's own
    assert "Application startup complete." in messages  # uvicorn's
    access = [entry for entry in entries if entry.get("logger") == "access"]
    seen = {(entry["method"], entry["path"], entry["status"]) for entry in access}
    assert {
        ("GET", "/api/v1/realtime", 200),
        ("GET", "/api/v1/realtime", 401),
        ("GET", "/api/v1/realtime", 400),
        ("POST", "/api/v1/pageview", 202),
        ("GET", "/metrics", 200),
        ("GET", "/x\nfake line", 404),
    } <= seen
    for entry in access:
        assert entry["level"] == "INFO"
        assert isinstance(entry["status"], int)
        assert isinstance(entry["duration_ms"], float)
        assert 0 <= entry["duration_ms"] < 10_000
        assert entry["message"] == f"{entry['method']} {entry['path']} {entry['status']}"
    assert_nothing_secret(log, secrets)


def test_text_lines(
    tmp_path: Path, settings: Settings, make_site: Callable[..., tuple[str, str]]
) -> None:
    log, secrets = run(tmp_path, settings, make_site)  # text is the default
    lines = log.splitlines()
    for line in lines:
        assert TEXT_LINE.fullmatch(line), line
    access = [
        match.groups()
        for line in lines
        if (match := TEXT_ACCESS.fullmatch(TEXT_LINE.fullmatch(line).group(3)))  # type: ignore[union-attr]
    ]
    assert ("GET", "/api/v1/realtime", "200") in [a[:3] for a in access]
    assert ("POST", "/api/v1/pageview", "202") in [a[:3] for a in access]
    # The path with a line break is quoted, whole, on its line.
    assert any(' GET "/x\\nfake line" 404 ' in line for line in lines)
    assert not any(line.startswith("fake") for line in lines)
    assert_nothing_secret(log, secrets)


def test_the_access_log_can_be_turned_off(
    tmp_path: Path, settings: Settings, make_site: Callable[..., tuple[str, str]]
) -> None:
    log, secrets = run(tmp_path, settings, make_site, RTV_ACCESS_LOG="0")
    assert "Application startup complete." in log
    assert "/api/v1/realtime" not in log
    assert "/api/v1/pageview" not in log
    assert_nothing_secret(log, secrets)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RTV_LOG_FORMAT", "xml", "RTV_LOG_FORMAT must be one of text, json"),
        ("RTV_ACCESS_LOG", "maybe", "RTV_ACCESS_LOG must be 1 or 0"),
    ],
)
def test_a_bad_log_setting_stops_serve_with_one_line(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})
    line = one_error_line(command_line("serve", **{name: value}), name)
    assert message in line


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("on", True), ("TRUE", True), ("0", False), ("off", False)]
)
def test_access_log_switch(raw: str, expected: bool) -> None:
    assert Settings.from_env({"RTV_ACCESS_LOG": raw}).access_log is expected
    assert Settings.from_env({}).access_log is True
    assert Settings.from_env({"RTV_LOG_FORMAT": "JSON"}).log_format == "json"


# --- The access log's writer, alone ------------------------------------------------


def add(log: AccessLog, paths: list[str]) -> None:
    for n, path in enumerate(paths):
        log.add(1_795_786_312.768 + n, "GET", path, 200, 0.00084)


def test_lines_are_written_whole_in_pieces_of_at_most_pipe_buf() -> None:
    written: list[bytes] = []
    log = AccessLog("text", write=written.append)
    paths = [f"/page/{n}" + "x" * (n % 300) for n in range(2_000)]
    add(log, paths)
    log.flush()
    assert len(written) > 1
    for piece in written:
        assert len(piece) <= PIPE_BUF
        assert piece.endswith(b"\n")
    lines = b"".join(written).decode().splitlines()
    assert [line.split()[3] for line in lines] == paths
    assert lines[0] == "2026-11-27T13:31:52.768Z INFO GET /page/0 200 0.84ms"
    pieces = len(written)
    log.flush()  # nothing new: nothing written
    assert len(written) == pieces


@pytest.mark.parametrize("path", ['/a"b', "/a\\b", "/caf\u00e9", "/a b", "/a\tb", "/\x00"])
def test_any_path_makes_one_json_line(path: str) -> None:
    written: list[bytes] = []
    log = AccessLog("json", write=written.append)
    add(log, [path])
    log.flush()
    [line] = b"".join(written).decode().splitlines()
    entry = json.loads(line)
    assert entry["path"] == path
    assert entry["message"] == f"GET {path} 200"
    assert entry["duration_ms"] == 0.84


def test_made_up_paths_do_not_grow_the_cache() -> None:
    log = AccessLog("text", write=lambda data: None)
    for n in range(3):
        add(log, [f"/scan/{n}/{m}" for m in range(accesslog.MOST_KEPT)])
        log.flush()
    assert len(log._middles) == accesslog.MOST_KEPT


def test_a_closed_stdout_drops_lines_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    def broken(data: bytes) -> None:
        raise BrokenPipeError("stdout is gone")

    log = AccessLog("text", write=broken)
    for _ in range(3):
        add(log, ["/x"])
        log.flush()
    warnings = [r for r in caplog.records if "cannot write the access log" in r.getMessage()]
    assert len(warnings) == 1
    assert log.lines == []
