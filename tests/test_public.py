"""Publishable keys (vt_pub_...) and the live stream: what a page may read without a
secret, what it costs the website, and the Server-Sent Events that push the count."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import queue
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from realtime_visitors.admin.sites import NewToken, SiteError
from realtime_visitors.app import create_app
from realtime_visitors.config import Settings
from realtime_visitors.live import AddressLimit
from realtime_visitors.storage import embedded

from .conftest import node_of, raw_client, run_admin
from .test_live_server import Live, serve

PUBLIC = re.compile(r"vt_pub_[A-Za-z0-9_-]{43}")
SHOP = "https://shop.example"
WAIT = 10.0  # seconds: an upper bound on waiting for what must happen


def public_key(settings: Settings, website_id: str, *origins: str) -> NewToken:
    return run_admin(settings, lambda s: s.create_token(website_id, True, origins))


def read(client: TestClient | httpx.Client, website_id: str, key: str, **params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in {"websiteId": website_id, "key": key, **params}.items())
    return client.get(f"/api/v1/realtime?{query}", headers=params.pop("headers", None) or {})


def pageview(
    client: TestClient | httpx.Client, website_id: str, visitor: str, url: str = ""
) -> None:
    body = {"websiteId": website_id, "visitorId": visitor, "url": url or "https://x.example/"}
    assert client.post("/api/v1/pageview", json=body).json()["counted"] is True


def eventually(condition: Callable[[], bool], within: float = WAIT) -> float:
    """Seconds until `condition()` held; fails after `within`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - start


# --- Keys -------------------------------------------------------------------------


def test_a_public_key_is_made_listed_and_revoked(settings: Settings, make_site) -> None:
    website_id, secret = make_site()
    key = public_key(settings, website_id, "HTTPS://Shop.Example/", "http://localhost:3000")
    assert PUBLIC.fullmatch(key.token)
    assert key.kind == "public"
    assert key.origins == (SHOP, "http://localhost:3000")  # as browsers send them
    listed = run_admin(settings, lambda s: s.list_tokens(website_id))
    assert [(t.kind, t.origins) for t in listed] == [("secret", ()), ("public", key.origins)]
    # The digest only: the key itself is nowhere in Redis.
    raw = raw_client(settings.redis_url or "")
    dump = b"".join(
        str(raw.hgetall(k)).encode() for k in raw.scan_iter(match=f"*{{{website_id}}}*")
    )
    assert key.token.encode() not in dump
    assert secret.encode() not in dump
    # By value as by id.
    assert run_admin(settings, lambda s: s.revoke_token(website_id, key.token)) == key.token_id
    listed = run_admin(settings, lambda s: s.list_tokens(website_id))
    assert [t.kind for t in listed] == ["secret"]


@pytest.mark.parametrize(
    "origin",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/path",
        "https://",
        "http://a b",
        "https://bücher.example",
    ],
)
def test_an_origin_that_is_not_one_is_refused(settings: Settings, make_site, origin: str) -> None:
    website_id, _ = make_site()
    with pytest.raises(SiteError, match="not an origin"):
        public_key(settings, website_id, origin)


def test_origins_need_a_public_key(settings: Settings, make_site) -> None:
    website_id, _ = make_site()
    with pytest.raises(SiteError, match="public keys only"):
        run_admin(settings, lambda s: s.create_token(website_id, False, [SHOP]))


# --- Reads ------------------------------------------------------------------------


def test_a_public_key_reads_the_count_without_spending_the_budget(
    settings: Settings, make_site, client: TestClient
) -> None:
    website_id, secret = make_site()
    key = public_key(settings, website_id).token
    pageview(client, website_id, "v1")
    before = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {secret}"}
    )
    for _ in range(20):
        by_query = read(client, website_id, key)
        assert by_query.status_code == 200
        assert by_query.json()["currentVisitors"] == 1
        assert "x-ratelimit-remaining" not in by_query.headers
    by_header = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert by_header.status_code == 200
    assert set(by_header.json()) == {"currentVisitors", "websiteId", "timestamp"}
    after = client.get(
        f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": f"Bearer {secret}"}
    )
    # Only the secret reads themselves spent the budget.
    spent = int(before.headers["x-ratelimit-remaining"]) - int(
        after.headers["x-ratelimit-remaining"]
    )
    assert spent == 1


def test_a_public_key_reads_a_path(settings: Settings, make_site, client: TestClient) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    pageview(client, website_id, "v1", "https://x.example/pricing")
    pageview(client, website_id, "v2", "https://x.example/")
    body = read(client, website_id, key, path="/pricing").json()
    assert (body["currentVisitors"], body["path"]) == (1, "/pricing")


def test_a_public_key_cannot_read_breakdowns_or_history(
    settings: Settings, make_site, client: TestClient
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    for path in ("/api/v1/realtime/breakdown?by=page&", "/api/v1/realtime/history?"):
        response = client.get(f"{path}websiteId={website_id}&key={key}")
        assert response.status_code == 403
        assert response.json() == {"error": "This key cannot read this resource"}
        unknown = client.get(f"{path}websiteId={website_id}&key=vt_pub_{'x' * 43}")
        assert unknown.status_code == 401


def test_refusals(settings: Settings, make_site, client: TestClient) -> None:
    website_id, secret = make_site()
    key = public_key(settings, website_id).token
    assert read(client, "no-such-site", key).status_code == 404
    assert read(client, website_id, "vt_pub_" + "x" * 43).json() == {"error": "Invalid API token"}
    other_id, _ = make_site()
    assert read(client, other_id, key).status_code == 401  # another website's key
    refused = read(client, website_id, secret)
    assert refused.status_code == 400
    assert "must not be sent in the URL" in refused.json()["error"]
    assert secret not in refused.text


def test_an_origin_bound_key_answers_its_origins_only(
    settings: Settings, make_site, client: TestClient
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id, SHOP).token
    ok = read(client, website_id, key, headers={"Origin": SHOP})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert ok.headers["vary"] == "Origin"
    for origin in ({"Origin": "https://evil.example"}, {}):
        refused = read(client, website_id, key, headers=origin)
        assert refused.status_code == 403
        assert refused.json() == {"error": "This key cannot be used from this origin"}
        # Readable by the page, so that a widget can say why.
        assert refused.headers["access-control-allow-origin"] == "*"


def test_a_key_bound_to_no_origin_is_open_to_all_even_when_cors_is_not(
    settings: Settings, make_site, make_client
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    client = make_client(cors_origins=("https://app.example",))
    ok = read(client, website_id, key, headers={"Origin": "https://blog.example"})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "*"


def test_public_reads_are_limited_per_client_address(
    settings: Settings, make_site, make_client
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    first = make_client(peer="198.51.100.1", public_reads_per_minute=3)
    answers = [read(first, website_id, key) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert answers[-1].json() == {"error": "Rate limit exceeded"}


def test_address_limit_forgets_a_minute_later(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("realtime_visitors.live.addresses.time.monotonic", lambda: now[0])
    limit = AddressLimit(2)
    assert [limit.wait("a"), limit.wait("a"), limit.wait("b")] == [0, 0, 0]
    assert limit.wait("a") == pytest.approx(60.0)
    now[0] += 59.5
    assert limit.wait("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limit.wait("a") == 0
    assert AddressLimit(0).wait("a") == 0  # 0: no limit


def test_the_count_is_at_most_a_second_old_and_a_revoked_key_goes_within_a_second(
    settings: Settings, make_site, make_client
) -> None:
    client = make_client(public_reads_per_minute=0)  # this test reads in a loop
    website_id, _ = make_site()
    key = public_key(settings, website_id)
    assert read(client, website_id, key.token).json()["currentVisitors"] == 0
    pageview(client, website_id, "v1")
    seen = eventually(lambda: read(client, website_id, key.token).json()["currentVisitors"] == 1)
    assert seen <= 1.5
    run_admin(settings, lambda s: s.revoke_token(website_id, key.token_id))
    gone = eventually(lambda: read(client, website_id, key.token).status_code == 401)
    assert gone <= 1.5


def evalsha_calls(raw: redis.Redis) -> int:
    stats = raw.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


def test_ten_thousand_public_reads_cost_one_redis_call_a_second(
    settings: Settings, make_site, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    app = create_app(replace(settings, public_reads_per_minute=0))
    url = f"/api/v1/realtime?websiteId={website_id}&key={key}"

    async def reads() -> tuple[int, float, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rtv") as http:
            before = evalsha_calls(node_of(raw, website_id))
            start = time.monotonic()
            statuses: list[int] = []
            for _ in range(100):
                batch = await asyncio.gather(*(http.get(url) for _ in range(100)))
                statuses += [r.status_code for r in batch]
            return (
                evalsha_calls(node_of(raw, website_id)) - before,
                time.monotonic() - start,
                statuses,
            )

    calls, elapsed, statuses = asyncio.run(reads())
    assert statuses == [200] * 10_000
    # One read per started second of the run, at most (plus this test's INFO: no EVAL).
    assert 1 <= calls <= math.ceil(elapsed) + 1, (calls, elapsed)


# --- The stream -------------------------------------------------------------------


class Events:
    """An SSE connection on a plain socket, read in a thread: each event as a dict of
    its fields. A plain socket, so that `close()` really closes it: httpx keeps a
    connection open while another thread reads from it."""

    def __init__(self, base_url: str, params: dict[str, str], headers: dict[str, str]) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        lines = [f"GET /api/v1/realtime/stream?{urlencode(params)} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.reader = self.sock.makefile("rb")
        self.status = int(self.reader.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.reader.readline().strip()) != b"":
            name, _, value = line.decode().partition(":")
            self.headers[name.lower()] = value.strip()
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._run, daemon=True).start()

    def _chunks(self) -> Iterator[bytes]:
        while size := int(self.reader.readline().strip() or b"0", 16):
            yield self.reader.read(size)
            self.reader.readline()

    def _run(self) -> None:
        buffer, event = b"", {}
        try:
            for chunk in self._chunks():
                buffer += chunk
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    line = raw.rstrip(b"\r").decode()
                    if not line:
                        if event:
                            self.events.put(event)
                        event = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        event[name] = value.removeprefix(" ")
        except (OSError, ValueError):
            pass
        self.events.put({"event": "closed"})

    def json(self) -> Any:
        """A refusal's body (sent whole, with a Content-Length)."""
        return json.loads(self.reader.read(int(self.headers["content-length"])))

    def next(self, within: float = WAIT) -> dict[str, str]:
        return self.events.get(timeout=within)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = serve(tmp_path_factory.mktemp("public") / "serve.log", REDIS_URL=redis_url)
    yield server
    server.stop()


@pytest.fixture
def stream(live: Live) -> Iterator[Callable[..., Events]]:
    opened: list[Events] = []

    def open_stream(website_id: str, key: str | None = None, **params: str) -> Events:
        headers = params.pop("headers", None) or {}
        query = {"websiteId": website_id, **({"key": key} if key else {}), **params}
        opened.append(Events(live.base_url, query, headers))
        return opened[-1]

    yield open_stream
    for events in opened:
        events.close()


def test_the_stream_pushes_the_count_when_it_changes(
    settings: Settings, make_site, live: Live, stream
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    events = stream(website_id, key)
    assert events.status == 200
    assert events.headers["content-type"].startswith("text/event-stream")
    first = events.next()
    assert first["event"] == "visitors"
    assert first["retry"] == "2000"
    body = json.loads(first["data"])
    assert set(body) == {"currentVisitors", "websiteId", "timestamp"}
    assert (body["currentVisitors"], body["websiteId"]) == (0, website_id)
    with httpx.Client(base_url=live.base_url) as http:
        sent = time.monotonic()
        pageview(http, website_id, "v1")
        second = events.next()
        assert time.monotonic() - sent <= 1.5
        assert second["event"] == "visitors"
        assert json.loads(second["data"])["currentVisitors"] == 1
        assert int(second["id"]) > int(first["id"])
        pageview(http, website_id, "v2")
        assert json.loads(events.next()["data"])["currentVisitors"] == 2


def test_a_secret_stream_costs_one_request_when_it_opens(make_site, live: Live, stream) -> None:
    website_id, secret = make_site()
    auth = {"Authorization": f"Bearer {secret}"}
    events = stream(website_id, headers=auth)
    assert json.loads(events.next()["data"])["currentVisitors"] == 0
    with httpx.Client(base_url=live.base_url, headers=auth) as http:
        pageview(http, website_id, "v1")
        assert json.loads(events.next()["data"])["currentVisitors"] == 1
        remaining = http.get(f"/api/v1/realtime?websiteId={website_id}").headers
    # free: 100 an hour; the stream's opening and this read spent two.
    assert remaining["x-ratelimit-remaining"] == "98"


def test_a_stream_of_a_path_counts_that_path(
    settings: Settings, make_site, live: Live, stream
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    events = stream(website_id, key, path="/pricing")
    assert json.loads(events.next()["data"])["path"] == "/pricing"
    with httpx.Client(base_url=live.base_url) as http:
        pageview(http, website_id, "v1", "https://x.example/")
        pageview(http, website_id, "v2", "https://x.example/pricing")
    assert json.loads(events.next()["data"])["currentVisitors"] == 1


@pytest.mark.parametrize(
    ("auth", "status"),
    [("none", 401), ("wrong", 401), ("secret-in-query", 400), ("other-origin", 403)],
)
def test_a_refused_stream_is_a_json_error(
    settings: Settings, make_site, stream, auth: str, status: int
) -> None:
    website_id, secret = make_site()
    key = public_key(settings, website_id, SHOP).token
    params = {"websiteId": website_id}
    headers = {"Origin": "https://evil.example"}
    if auth == "wrong":
        params["key"] = "vt_pub_" + "x" * 43
    elif auth == "secret-in-query":
        params["key"] = secret
    elif auth == "other-origin":
        params["key"] = key
    response = stream(params.pop("websiteId"), params.get("key"), headers=headers)
    assert response.status == status
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()


def test_a_revoked_key_ends_its_stream(settings: Settings, make_site, stream) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id)
    events = stream(website_id, key.token)
    assert events.next()["event"] == "visitors"
    run_admin(settings, lambda s: s.revoke_token(website_id, key.token_id))
    assert events.next()["event"] == "closed"


def test_many_streams_share_one_redis_read_a_second(
    settings: Settings, make_site, live: Live, stream, raw: redis.Redis
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    opened = [stream(website_id, key) for _ in range(30)]
    for events in opened:
        assert events.next()["event"] == "visitors"
    before, start = evalsha_calls(node_of(raw, website_id)), time.monotonic()
    time.sleep(3)  # a span of time to count calls in, not a wait for a condition
    calls, elapsed = evalsha_calls(node_of(raw, website_id)) - before, time.monotonic() - start
    assert calls <= math.ceil(elapsed) + 1, (calls, elapsed)


def test_a_client_that_leaves_frees_its_topic_at_once(settings: Settings, make_site) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    app = create_app(settings)

    async def one_event_then_leave() -> tuple[bytes, int, int]:
        public = app.app.routes  # type: ignore[attr-defined]
        counts = next(r.endpoint.public.counts for r in public if r.path.endswith("/stream"))
        sent: list[bytes] = []
        first = asyncio.Event()
        leave = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await leave.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                sent.append(message["body"])
                first.set()

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/realtime/stream",
            "query_string": f"websiteId={website_id}&key={key}".encode(),
            "headers": [],
            "client": ("127.0.0.1", 1),
            "server": ("rtv", 80),
            "scheme": "http",
            "root_path": "",
            "http_version": "1.1",
            "asgi": {"version": "3.0"},
        }
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(first.wait(), WAIT)
        during = counts.topics
        leave.set()
        await asyncio.wait_for(task, WAIT)
        return b"".join(sent), during, counts.topics

    body, during, after = asyncio.run(one_event_then_leave())
    assert b"event: visitors" in body
    assert (during, after) == (1, 0)


def test_an_outage_keeps_the_stream_open_and_it_resumes(tmp_path: Path) -> None:
    store = tmp_path / "db"
    server = embedded.ensure(store)
    config = Settings(redis_url=server.url)
    site, _ = run_admin(config, lambda s: s.create(None, "", "free"))
    key = public_key(config, site.website_id).token
    live = serve(tmp_path / "serve.log", REDIS_URL=server.url)
    try:
        events = Events(live.base_url, {"websiteId": site.website_id, "key": key}, {})
        with httpx.Client(base_url=live.base_url) as http:
            assert events.next()["event"] == "visitors"
            server.stop()
            down = events.next()
            assert down["event"] == "unavailable"
            assert json.loads(down["data"]) == {"error": "Service unavailable"}
            server = embedded.ensure(store)
            body = {"websiteId": site.website_id, "visitorId": "v1"}
            eventually(lambda: http.post("/api/v1/pageview", json=body).status_code == 202)
            back = events.next()
            assert back["event"] == "visitors"
            assert json.loads(back["data"])["currentVisitors"] == 1
    finally:
        events.close()
        live.stop()
        server.stop()


def test_sigterm_ends_open_streams_at_once(
    settings: Settings, make_site, redis_url: str, tmp_path: Path
) -> None:
    website_id, _ = make_site()
    key = public_key(settings, website_id).token
    live = serve(tmp_path / "serve.log", REDIS_URL=redis_url)
    opened = [Events(live.base_url, {"websiteId": website_id, "key": key}, {}) for _ in range(5)]
    try:
        for events in opened:
            assert events.next()["event"] == "visitors"
        start = time.monotonic()
        live.process.send_signal(signal.SIGTERM)
        code = live.process.wait(timeout=WAIT)
        took = time.monotonic() - start
        for events in opened:
            assert events.next()["event"] == "closed"
    finally:
        for events in opened:
            events.close()
        live.stop()
    log = live.log.read_text()
    assert code == 0, log
    # The streams end themselves (stream.py notices the signal within a quarter of a
    # second): no wait for uvicorn's graceful timeout, no response cut off.
    assert took < 3.0, log
    assert "without completing response" not in log, log


def test_a_secret_in_the_query_is_never_logged(make_site, live: Live) -> None:
    website_id, secret = make_site()
    for path in ("/api/v1/realtime", "/api/v1/realtime/stream", "/api/v1/realtime/history"):
        response = httpx.get(f"{live.base_url}{path}?websiteId={website_id}&key={secret}")
        assert response.status_code == 400
    # The access lines, written within a flush of the log, hold no query string.
    for path in ("/api/v1/realtime", "/api/v1/realtime/stream", "/api/v1/realtime/history"):
        eventually(lambda path=path: f"GET {path} 400" in live.log.read_text())
    assert secret not in live.log.read_text()
    assert "key=" not in live.log.read_text()
