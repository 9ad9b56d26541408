"""Faults: Redis down, paused or restarted; the embedded store killed; SIGTERM under load.

Each test drives the real server (`realtime-visitors serve`) over HTTP, with load
running while the fault happens.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from realtime_visitors.config import Settings
from realtime_visitors.storage import embedded
from realtime_visitors.storage.keys import site_keys

from .conftest import run_admin, unique_id
from .test_live_server import serve

OUTAGE_BOUND = 1.0  # seconds: the longest a request may take while Redis is away


def member_of(visitor_id: str) -> str:
    """What pageview.lua stores for a visitorId: 72 bits of SHA-1, URL-safe base64."""
    digest = hashlib.sha1(b"v\0" + visitor_id.encode()).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


@dataclass
class Load:
    """Threads sending realtime reads and pageviews until stopped, recording each answer."""

    base_url: str
    website_id: str
    token: str
    answers: list[tuple[str, int, float, str]] = field(
        default_factory=list
    )  # kind, status, s, body
    accepted: list[str] = field(default_factory=list)  # visitor ids answered 202
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, threads: int = 4) -> Load:
        for n in range(threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def statuses(self, since: int = 0) -> Counter[int]:
        with self._lock:
            return Counter(status for _, status, _, _ in self.answers[since:])

    def mark(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(
        self, condition: Callable[[Counter[int]], bool], since: int, seconds: float = 15
    ) -> None:
        deadline = time.monotonic() + seconds
        while not condition(self.statuses(since)):
            assert time.monotonic() < deadline, (
                f"not reached; answers since: {self.statuses(since)}"
            )
            time.sleep(0.02)

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                visitor = f"t{n}-{i}"
                started = time.monotonic()
                try:
                    if i % 2:
                        response = client.post(
                            "/api/v1/pageview",
                            json={"websiteId": self.website_id, "visitorId": visitor},
                        )
                        kind = "pageview"
                    else:
                        response = client.get(
                            f"/api/v1/realtime?websiteId={self.website_id}",
                            headers={"Authorization": f"Bearer {self.token}"},
                        )
                        kind = "realtime"
                except httpx.TransportError:
                    continue  # the server is going away (SIGTERM tests)
                elapsed = time.monotonic() - started
                with self._lock:
                    self.answers.append((kind, response.status_code, elapsed, response.text))
                    if kind == "pageview" and response.status_code == 202:
                        self.accepted.append(visitor)


def assert_outage_answers(load: Load, since: int) -> None:
    """While Redis was away: 503 JSON with Retry-After, fast, never anything else."""
    with load._lock:
        during = load.answers[since:]
    assert during
    for kind, status, elapsed, body in during:
        assert status in (200, 202, 503), (kind, status, body)
        assert elapsed < OUTAGE_BOUND, (kind, status, elapsed)
        if status == 503:
            assert body == '{"error":"Service unavailable"}'


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "db"
    socket_path = tmp_path / "db" / embedded.SOCKET_NAME
    if embedded.is_alive(socket_path):
        redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=True)


def start_site(url: str) -> tuple[str, str]:
    site, token = run_admin(
        Settings(redis_url=url), lambda s: s.create(unique_id(), "", "enterprise")
    )
    return site.website_id, token.token


def test_redis_stopped_then_started_under_load(store_dir: Path, tmp_path: Path) -> None:
    server = embedded.ensure(store_dir)
    website_id, token = start_site(server.url)
    live = serve(tmp_path / "serve.log", REDIS_URL=server.url)
    load = Load(live.base_url, website_id, token).start()
    try:
        load.wait_for(lambda s: s[200] > 20 and s[202] > 20, since=0)
        server.stop()
        outage = load.mark()
        load.wait_for(lambda s: s[503] > 40, since=outage)
        server = embedded.ensure(store_dir)
        back = load.mark()
        load.wait_for(lambda s: s[200] > 20 and s[202] > 20, since=back)
    finally:
        load.stop()
        server.stop()
        code = live.stop()
    assert_outage_answers(load, outage)
    assert code == 0, live.log.read_text()
    assert set(load.statuses()) <= {200, 202, 503}


@pytest.mark.parametrize("fault", ["CLIENT PAUSE", "DEBUG SLEEP"])
def test_redis_paused_or_sleeping_under_load(store_dir: Path, tmp_path: Path, fault: str) -> None:
    server = embedded.ensure(store_dir, extra=("--enable-debug-command", "local"))
    website_id, token = start_site(server.url)
    live = serve(tmp_path / "serve.log", REDIS_URL=server.url)
    load = Load(live.base_url, website_id, token).start()
    admin = redis.Redis(unix_socket_path=str(server.socket_path))
    try:
        load.wait_for(lambda s: s[200] > 20, since=0)
        stalled = load.mark()
        if fault == "CLIENT PAUSE":
            admin.execute_command("CLIENT", "PAUSE", "3000", "ALL")
        else:  # blocks the whole server for 3 s; run it beside the load
            threading.Thread(
                target=admin.execute_command, args=("DEBUG", "SLEEP", "3"), daemon=True
            ).start()
        load.wait_for(lambda s: s[503] > 10, since=stalled)
        if fault == "CLIENT PAUSE":
            admin.execute_command("CLIENT", "UNPAUSE")
        back = load.mark()
        load.wait_for(lambda s: s[200] > 20 and s[202] > 20, since=back)
    finally:
        load.stop()
        live.stop()
        server.stop()
    assert_outage_answers(load, stalled)


def test_scripts_flushed_and_redis_restarted_heal(store_dir: Path, tmp_path: Path) -> None:
    server = embedded.ensure(store_dir)
    website_id, token = start_site(server.url)
    live = serve(tmp_path / "serve.log", REDIS_URL=server.url)
    client = httpx.Client(base_url=live.base_url)
    read = lambda: client.get(  # noqa: E731
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        assert read().status_code == 200
        redis.Redis(unix_socket_path=str(server.socket_path)).script_flush()
        assert read().status_code == 200  # NOSCRIPT: loaded again, answered at once
        assert client.get("/readyz").status_code == 200
        server.stop()
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        server = embedded.ensure(store_dir)  # a restart: no scripts, data from the AOF
        assert read().status_code == 200
    finally:
        client.close()
        live.stop()
        server.stop()


def test_embedded_store_killed_is_restarted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = serve(tmp_path / "serve.log", RTV_DATA_DIR=str(data))
    socket_path = data / embedded.SOCKET_NAME
    admin = redis.Redis(unix_socket_path=str(socket_path))
    website_id, token = start_site(f"unix://{socket_path}")
    admin.execute_command("WAITAOF", "1", "0", "5000")  # the website is on disk
    load = Load(live.base_url, website_id, token).start(threads=2)
    try:
        load.wait_for(lambda s: s[200] > 10, since=0)
        os.kill(int((data / embedded.PID_NAME).read_text()), signal.SIGKILL)
        killed = load.mark()
        load.wait_for(lambda s: s[503] > 0, since=killed)
        load.wait_for(lambda s: s[200] > 20, since=load.mark())  # same token: it persisted
    finally:
        load.stop()
        code = live.stop()
    assert code == 0, live.log.read_text()
    assert set(load.statuses()) <= {200, 202, 503}
    assert "starting it again" in live.log.read_text()
    assert not embedded.is_alive(socket_path), "serve left the restarted store running"


def test_sigterm_finishes_in_flight_pageviews(
    redis_url: str, raw: redis.Redis, tmp_path: Path
) -> None:
    website_id, token = start_site(redis_url)
    live = serve(tmp_path / "serve.log", REDIS_URL=redis_url, RTV_MAX_VISITORS_PER_IP="0")
    load = Load(live.base_url, website_id, token).start(threads=6)
    try:
        load.wait_for(lambda s: s[202] > 200, since=0)
        live.process.send_signal(signal.SIGTERM)
        code = live.process.wait(15)
    finally:
        load.stop()
    assert code == 0, live.log.read_text()
    stored = set(raw.zrange(site_keys(website_id).visitors, 0, -1))
    missing = [visitor for visitor in load.accepted if member_of(visitor) not in stored]
    assert not missing, f"{len(missing)} pageviews answered 202 are not in Redis"
    assert len(stored) == len(set(load.accepted))


def test_member_encoding_matches_the_script(client, make_site, raw: redis.Redis) -> None:
    website_id, _ = make_site()
    client.post("/api/v1/pageview", json={"websiteId": website_id, "visitorId": "alice"})
    assert raw.zrange(site_keys(website_id).visitors, 0, -1) == [member_of("alice")]
