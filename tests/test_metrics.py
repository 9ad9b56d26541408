"""GET /metrics: behind its token, parsed by prometheus_client's own parser, and the
counters moving as requests, pageviews, outages, streams and store restarts happen;
in one process, and summed over `serve --workers 2`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from realtime_visitors.config import Settings
from realtime_visitors.ops import metrics
from realtime_visitors.storage import embedded

from .test_faults import start_site
from .test_live_server import serve
from .test_pageview import GOOGLEBOT
from .test_public import Events, public_key

TOKEN = "metrics-token-0123456789"
WAIT = 10.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample, by name and labels; the parser fails on a malformed exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient | httpx.Client) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def requests(samples: Samples, method: str, endpoint: str, status: int) -> float:
    labels = {"method": method, "endpoint": endpoint, "status": str(status)}
    return value(samples, "rtv_http_requests_total", **labels)


def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def metered(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(metrics_token=TOKEN, access_log=False)


# --- Exposure ---------------------------------------------------------------------


def test_without_a_token_there_is_no_metrics_endpoint(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", "Bearer"],
)
def test_a_scrape_without_the_right_token_is_401(
    metered: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = metered.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "rtv_" not in response.text


def test_the_right_token_gets_the_text_format(metered: TestClient) -> None:
    response = metered.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "rtv_http_requests",
        "rtv_http_request_duration_seconds",
        "rtv_pageviews",
        "rtv_redis_errors",
        "rtv_open_streams",
        "rtv_embedded_store_restarts",
    } <= names
    # For servers, not browsers: no CORS answer, whatever RTV_CORS_ORIGINS says.
    browser = metered.get(
        "/metrics",
        headers={"Authorization": f"Bearer {TOKEN}", "Origin": "https://shop.example"},
    )
    assert "access-control-allow-origin" not in browser.headers


def test_a_short_metrics_token_is_refused_at_start() -> None:
    from realtime_visitors.config import ConfigError

    with pytest.raises(ConfigError, match="RTV_METRICS_TOKEN must be at least 16") as refused:
        Settings.from_env({"RTV_METRICS_TOKEN": "short-secret"})
    assert "short-secret" not in str(refused.value)


# --- Counters ---------------------------------------------------------------------


def test_requests_are_counted_by_route_and_status(
    metered: TestClient, make_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = make_site()
    before = scrape(metered)
    read = f"/api/v1/realtime?websiteId={website_id}"
    assert metered.get(read, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert metered.get(read, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert metered.get(read).status_code == 401
    assert metered.get("/no/such/page").status_code == 404
    assert metered.request("BREW", "/healthz").status_code == 405
    after = scrape(metered)

    def moved(method: str, endpoint: str, status: int) -> float:
        return requests(after, method, endpoint, status) - requests(
            before, method, endpoint, status
        )

    assert moved("GET", "/api/v1/realtime", 200) == 2
    assert moved("GET", "/api/v1/realtime", 401) == 1
    # A path that is no route's, or a method no client sends, is one label each.
    assert moved("GET", "other", 404) == 1
    assert moved("other", "/healthz", 405) == 1
    assert moved("GET", "/metrics", 200) == 1  # the scrape before
    labels = {"method": "GET", "endpoint": "/api/v1/realtime"}
    count = value(after, "rtv_http_request_duration_seconds_count", **labels)
    assert count - value(before, "rtv_http_request_duration_seconds_count", **labels) == 3
    inf = value(after, "rtv_http_request_duration_seconds_bucket", le="+Inf", **labels)
    assert inf == count
    assert value(after, "rtv_http_request_duration_seconds_sum", **labels) > 0


def test_admin_routes_are_labelled_by_their_template(
    make_client: Callable[..., TestClient], make_site: Callable[..., tuple[str, str]]
) -> None:
    admin_token = "admin-token-0123456789"
    client = make_client(metrics_token=TOKEN, admin_token=admin_token, access_log=False)
    website_id, _ = make_site()
    auth = {"Authorization": f"Bearer {admin_token}"}
    assert client.get(f"/api/v1/admin/websites/{website_id}", headers=auth).status_code == 200
    samples = scrape(client)
    assert requests(samples, "GET", "/api/v1/admin/websites/{websiteId}", 200) >= 1
    assert not [key for key in samples if website_id in str(key)]


def test_pageviews_are_counted_by_outcome(
    make_client: Callable[..., TestClient], make_site: Callable[..., tuple[str, str]]
) -> None:
    client = make_client(metrics_token=TOKEN, access_log=False, max_visitors_per_ip=1)
    website_id, _ = make_site()
    before = scrape(client)
    sent = [
        ({"websiteId": website_id, "visitorId": "a"}, {}, "counted"),
        ({"websiteId": website_id, "visitorId": "b"}, {}, "over_address_cap"),
        ({"websiteId": website_id}, {"User-Agent": GOOGLEBOT}, "crawler"),
        ({"websiteId": "no-such-site"}, {}, "unknown_website"),
        ({"websiteId": "not a possible id!"}, {}, "unknown_website"),
    ]
    for body, headers, _ in sent:
        assert client.post("/api/v1/pageview", json=body, headers=headers).status_code in (202, 404)
    after = scrape(client)
    moved = {
        outcome: value(after, "rtv_pageviews_total", outcome=outcome)
        - value(before, "rtv_pageviews_total", outcome=outcome)
        for outcome in metrics.PAGEVIEW_OUTCOMES
    }
    assert moved == {"counted": 1, "over_address_cap": 1, "crawler": 1, "unknown_website": 2}


def test_an_outage_counts_redis_errors_and_503s(make_client: Callable[..., TestClient]) -> None:
    down = make_client(
        metrics_token=TOKEN, access_log=False, redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2
    )
    before = scrape(down)
    auth = {"Authorization": "Bearer vt_whatever"}
    assert down.get("/api/v1/realtime?websiteId=w", headers=auth).status_code == 503
    assert down.post("/api/v1/pageview", json={"websiteId": "w"}).status_code == 503
    # Served by Starlette, not the fast lane: the same count through app.py's handler.
    breakdown = down.get("/api/v1/realtime/breakdown?websiteId=w&by=page", headers=auth)
    assert breakdown.status_code == 503
    after = scrape(down)
    assert value(after, "rtv_redis_errors_total") - value(before, "rtv_redis_errors_total") == 3
    for method, endpoint in [
        ("GET", "/api/v1/realtime"),
        ("POST", "/api/v1/pageview"),
        ("GET", "/api/v1/realtime/breakdown"),
    ]:
        moved = requests(after, method, endpoint, 503) - requests(before, method, endpoint, 503)
        assert moved == 1, endpoint


def test_a_flush_writes_what_observe_would_have() -> None:
    """metrics.observe() adds many observations through prometheus_client's private
    fields: the output must be exactly what Histogram.observe() makes."""
    durations = [0.0001, 0.0003, 0.001, 0.001, 0.07, 3.0, 9.5]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = Histogram("h", "h", buckets=metrics.BUCKETS, registry=ours)
    one_by_one = Histogram("h", "h", buckets=metrics.BUCKETS, registry=theirs)
    counts = metrics.Metrics()
    for seconds in durations:
        counts.request("GET", "/x", 200, seconds)
        one_by_one.observe(seconds)
    metrics.observe(batched, counts.tallies["GET", "/x", 200])
    created = "_created"
    assert [
        line for line in generate_latest(ours).decode().splitlines() if created not in line
    ] == [line for line in generate_latest(theirs).decode().splitlines() if created not in line]


def test_a_dead_workers_live_gauges_are_forgotten(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine, its = (
        tmp_path / f"gauge_livesum_{os.getpid()}.db",
        tmp_path / f"gauge_livesum_{dead.pid}.db",
    )
    counter = tmp_path / f"counter_{dead.pid}.db"
    for path in (mine, its, counter):
        path.write_bytes(b"")
    metrics.forget_the_dead(str(tmp_path))
    # Its streams are gone with it; what it counted still adds up.
    assert mine.exists()
    assert counter.exists()
    assert not its.exists()


# --- serve --workers 2: prometheus_client's multiprocess mode ---------------------


def shared_directory(pid: int) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR that `serve` (`pid`) handed its workers, read from
    their environment (its own, in /proc, is the one it started with)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        for item in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
            name, _, found = item.partition(b"=")
            if name == b"PROMETHEUS_MULTIPROC_DIR":
                return Path(found.decode())
    raise AssertionError(f"no worker of serve has a PROMETHEUS_MULTIPROC_DIR: {children}")


def counted_by_file(directory: Path) -> list[float]:
    """Each process's own count of pageviews answered 202, from its file."""
    found = []
    for path in directory.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])
        found.append(
            sum(
                sample.value
                for family in merged
                for sample in family.samples
                if sample.name == "rtv_http_requests_total"
                and sample.labels.get("endpoint") == "/api/v1/pageview"
                and sample.labels.get("status") == "202"
            )
        )
    return found


def fresh_scrape(base_url: str) -> Samples:
    """A scrape on a new connection: with two workers, either may answer it."""
    with httpx.Client(base_url=base_url) as client:
        return scrape(client)


def test_two_workers_scrape_the_same_sums(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    website_id, token = start_site(redis_url)
    key = public_key(settings, website_id).token
    live = serve(tmp_path / "serve.log", workers=2, REDIS_URL=redis_url, RTV_METRICS_TOKEN=TOKEN)
    opened: list[Events] = []
    try:
        directory = shared_directory(live.process.pid)
        assert directory.is_dir()
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        pageviews = 40
        for n in range(pageviews):  # a connection each: the kernel spreads them out
            with httpx.Client(base_url=live.base_url) as client:
                body = {"websiteId": website_id, "visitorId": f"v{n}"}
                assert client.post("/api/v1/pageview", json=body).status_code == 202
        # Both workers counted some (in their own files), and whichever answers a
        # scrape sums them all.
        eventually(lambda: sum(counted_by_file(directory)) == pageviews)
        assert len([count for count in counted_by_file(directory) if count]) == 2
        eventually(
            lambda: (
                requests(fresh_scrape(live.base_url), "POST", "/api/v1/pageview", 202) == pageviews
            )
        )
        for _ in range(6):
            samples = fresh_scrape(live.base_url)
            assert requests(samples, "POST", "/api/v1/pageview", 202) == pageviews
            assert value(samples, "rtv_pageviews_total", outcome="counted") == pageviews
        # Open streams are a gauge summed over the live workers.
        opened = [Events(live.base_url, {"websiteId": website_id, "key": key}, {}) for _ in "ab"]
        for events in opened:
            assert events.next()["event"] == "visitors"
        eventually(lambda: value(fresh_scrape(live.base_url), "rtv_open_streams") == 2)
        for events in opened:
            events.close()
        eventually(lambda: value(fresh_scrape(live.base_url), "rtv_open_streams") == 0)
        read = f"/api/v1/realtime?websiteId={website_id}"
        assert httpx.get(live.base_url + read, headers={"Authorization": f"Bearer {token}"})
    finally:
        for events in opened:
            events.close()
        code = live.stop()
    assert code == 0, live.log.read_text()
    assert not directory.exists(), "serve left its metrics directory behind"


def test_an_embedded_store_restart_is_counted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = serve(tmp_path / "serve.log", workers=2, RTV_DATA_DIR=str(data), RTV_METRICS_TOKEN=TOKEN)
    try:
        assert value(fresh_scrape(live.base_url), "rtv_embedded_store_restarts_total") == 0
        os.kill(int((data / embedded.PID_NAME).read_text()), signal.SIGKILL)
        # Counted by `serve` itself, which supervises the store, and read by a worker.
        eventually(
            lambda: value(fresh_scrape(live.base_url), "rtv_embedded_store_restarts_total") == 1
        )
    finally:
        code = live.stop()
    assert code == 0, live.log.read_text()
