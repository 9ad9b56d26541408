"""GET /widget.js, and the live-counter widget itself running in Chromium on a customer's page.

As in every browser test (browser.py), the page comes from http://shop.test:PORT and
the widget from the live `realtime-visitors serve` at http://rtv.test:PORT.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Request, Route, expect
from starlette.testclient import TestClient

from realtime_visitors.config import Settings
from realtime_visitors.http import assets

from .browser import (
    WAIT_MS,
    Recorded,
    Shop,
    close_all,
    in_thread,
    live_server,
    publishable_key,
    rtv_origin,
    send_pageview,
)
from .conftest import run_admin
from .test_live_server import Live, serve

SOURCE = Path(assets.__file__).parents[1] / "web" / "widget.js"
MAX_GZIPPED = 2048
LIVE_MS = 3_000  # a pageview shows in the widget within this, without a reload
STREAM = "/api/v1/realtime/stream"
POLL = "/api/v1/realtime"
NONE = "0 people viewing this page"
ONE = "1 person viewing this page"
TWO = "2 people viewing this page"

# --- HTTP -----------------------------------------------------------------------


def test_widget_is_served_as_written(client: TestClient) -> None:
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.content == SOURCE.read_bytes()
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    digest = hashlib.sha256(response.content).hexdigest()[:32]
    assert response.headers["etag"] == f'"{digest}"'  # strong: no W/


def test_a_matching_etag_is_answered_304(client: TestClient) -> None:
    etag = client.get("/widget.js").headers["etag"]
    response = client.get("/widget.js", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert client.get("/widget.js", headers={"If-None-Match": '"old"'}).status_code == 200


def test_any_origin_may_load_it(client: TestClient) -> None:
    response = client.get("/widget.js", headers={"Origin": "https://shop.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_served_widget_is_at_most_2048_bytes_gzipped(client: TestClient) -> None:
    served = client.get("/widget.js").content
    size = len(gzip.compress(served, compresslevel=9))
    assert size <= MAX_GZIPPED, f"widget.js is {size} bytes gzipped"


# --- In Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(valkey_url: str) -> str:
    """One backend, for speed: REDIS_URL when set (the server CI runs), else the embedded
    valkey. The stream's reads are tested on each in test_public.py."""
    return os.environ.get("REDIS_URL") or valkey_url


def start(log: Path, redis_url: str, port: int | None = None) -> Live:
    # Every page here reads from 127.0.0.1: no per-address limit in the way.
    return serve(log, port, REDIS_URL=redis_url, RTV_PUBLIC_READS_PER_MINUTE="0")


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from live_server(tmp_path_factory, "widget", start, redis_url=redis_url)


class Tab(Recorded):
    """A page of the shop showing the widget."""

    def __init__(self, page: Page, shop: Shop, live: Live, website_id: str, secret: str) -> None:
        super().__init__(page)
        self.shop, self.live = shop, live
        self.website_id, self.secret = website_id, secret
        self.origin = shop.origin()
        self.widget_origin = rtv_origin(live)

    @property
    def widget(self) -> Locator:
        return self.page.locator(".rtv-widget")

    def open(self, body: str, path: str = "/") -> None:
        self.shop.page = f"<!doctype html><html><head></head><body>{body}</body></html>"
        self.page.goto(self.origin + path)

    def tag(self, key: str, **attributes: str) -> str:
        """The install line, with these data-* attributes."""
        attributes = {"website-id": self.website_id, "key": key, **attributes}
        data = "".join(f' data-{name}="{html.escape(value)}"' for name, value in attributes.items())
        return f'<script async src="{self.widget_origin}/widget.js"{data}></script>'

    def pageview(self, path: str = "/", visitor: str = "alice") -> float:
        """A visit to `path` of the shop, counted; the time it was."""
        send_pageview(self.live.base_url, self.website_id, self.origin + path, visitor)
        return time.monotonic()

    def made(self, path: str) -> list[Request]:
        """The requests the page made to this API path of the live server."""
        return [r for r in self.requests if urlsplit(r.url).path == path]

    def warnings(self) -> list[str]:
        return [m.text for m in self.console if m.type == "warning"]


def statuses(requests: list[Request]) -> list[int]:
    """The status of each request's response; 0 for one that got none."""
    return [response.status if (response := r.response()) else 0 for r in requests]


@pytest.fixture
def make_tab(
    shop: Shop, live: Live, make_site: Callable[..., tuple[str, str]], settings: Settings
) -> Iterator[Callable[..., tuple[Tab, Callable[..., str]]]]:
    tabs: list[Tab] = []

    def make(
        browser: Browser, init_script: str | None = None, live_server: Live | None = None
    ) -> tuple[Tab, Callable[..., str]]:
        """A tab, and a function that makes publishable keys of its website."""
        context = browser.new_context()
        if init_script:
            context.add_init_script(init_script)
        website_id, secret = in_thread(make_site, "enterprise")
        tab = Tab(context.new_page(), shop, live_server or live, website_id, secret)
        tabs.append(tab)

        def key(*origins: str) -> str:
            """A publishable key bound to `origins`, by default the shop's."""
            return publishable_key(settings, website_id, *(origins or (tab.origin,)))

        return tab, key

    yield make
    close_all(tabs)


@pytest.fixture
def tab_and_key(
    make_tab: Callable[..., tuple[Tab, Callable[..., str]]], browser: Browser
) -> tuple[Tab, Callable[..., str]]:
    return make_tab(browser)


def test_the_count_shows_and_follows_pageviews_without_a_reload(
    tab_and_key: tuple[Tab, Callable[..., str]], tmp_path: Path
) -> None:
    tab, key = tab_and_key
    tab.open(f"<p>{tab.tag(key())}</p>")
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    expect(tab.widget).to_be_visible()
    tab.page.evaluate("window.loaded = true")  # gone if the page reloads

    sent = tab.pageview()
    tab.page.wait_for_function(
        "text => document.querySelector('.rtv-widget').textContent == text",
        arg=ONE,
        timeout=LIVE_MS,
    )
    assert time.monotonic() - sent < LIVE_MS / 1000
    assert tab.page.evaluate("window.loaded") is True
    tab.page.screenshot(path=tmp_path / "widget.png")
    assert len(tab.made(STREAM)) == 1  # one stream did it all
    assert tab.made(POLL) == []


def test_a_key_bound_to_another_origin_shows_nothing_and_says_why(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    tab.pageview()
    with tab.page.expect_console_message(lambda m: m.type == "warning", timeout=WAIT_MS):
        tab.open(tab.tag(key("https://elsewhere.example"), interval="0.2"))
    assert tab.warnings() == [
        'realtime-visitors widget: 403 {"error":"This key cannot be used from this origin"}'
    ]
    expect(tab.widget).to_be_hidden()
    assert tab.widget.text_content() != ONE  # the count (1) never came
    # Refused is final: after five poll intervals, still one try of each kind.
    tab.page.wait_for_timeout(1000)
    assert statuses(tab.made(STREAM)) == statuses(tab.made(POLL)) == [403]


def test_a_key_revoked_while_shown_hides_the_count(
    tab_and_key: tuple[Tab, Callable[..., str]], settings: Settings
) -> None:
    tab, key = tab_and_key
    public = key()
    tab.open(tab.tag(public))
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    expect(tab.widget).to_be_visible()
    revoke = lambda s: s.revoke_token(tab.website_id, public)  # noqa: E731
    # The server ends the stream; the browser's reconnection is refused, and so is the read.
    with tab.page.expect_console_message(lambda m: m.type == "warning", timeout=WAIT_MS):
        in_thread(run_admin, settings, revoke)
    expect(tab.widget).to_be_hidden()
    assert tab.warnings() == ['realtime-visitors widget: 401 {"error":"Invalid API token"}']
    assert statuses(tab.made(STREAM)) == [200, 401]


def test_a_key_bound_to_the_pages_origin_works_and_none_other_is_sent(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    public = key()
    tab.open(tab.tag(public))
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    tab.pageview()
    expect(tab.widget).to_have_text(ONE, timeout=LIVE_MS)

    (stream,) = tab.made(STREAM)
    assert parse_qs(urlsplit(stream.url).query) == {
        "websiteId": [tab.website_id],
        "key": [public],
        "path": ["/"],
    }
    for request in tab.requests:
        headers = request.all_headers()
        assert tab.secret not in request.url
        assert tab.secret not in str(headers)
        assert tab.secret not in (request.post_data or "")
        assert public not in str(headers)  # no Authorization, no Referer with it
        assert "cookie" not in headers
        if public in request.url:
            assert parse_qs(urlsplit(request.url).query)["key"] == [public]


def test_data_path_counts_this_page_the_website_or_a_path(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    public = key()
    tab.pageview("/pricing", "alice")
    tab.pageview("/blog", "bob")
    tab.open(
        f'<p id="auto">{tab.tag(public)}</p>'
        f'<p id="none">{tab.tag(public, path="none")}</p>'
        f'<p id="blog">{tab.tag(public, path="/blog")}</p>',
        path="/pricing?plan=pro",
    )
    expect(tab.page.locator("#auto .rtv-widget")).to_have_text(ONE, timeout=WAIT_MS)
    expect(tab.page.locator("#none .rtv-widget")).to_have_text(TWO, timeout=WAIT_MS)
    expect(tab.page.locator("#blog .rtv-widget")).to_have_text(ONE, timeout=WAIT_MS)
    paths = {parse_qs(urlsplit(r.url).query).get("path", [""])[0] for r in tab.made(STREAM)}
    assert paths == {"/pricing", "", "/blog"}

    tab.pageview("/pricing", "carol")
    expect(tab.page.locator("#auto .rtv-widget")).to_have_text(TWO, timeout=LIVE_MS)
    expect(tab.page.locator("#none .rtv-widget")).to_have_text(
        "3 people viewing this page", timeout=LIVE_MS
    )
    expect(tab.page.locator("#blog .rtv-widget")).to_have_text(ONE)


def test_data_text_has_a_singular_and_a_plural(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    public = key()
    tab.open(
        f'<p id="two">{tab.tag(public, text="{count} reader here|{count} readers here")}</p>'
        f'<p id="one">{tab.tag(public, text="Live: {count}")}</p>'
    )
    two, one = tab.page.locator("#two .rtv-widget"), tab.page.locator("#one .rtv-widget")
    expect(two).to_have_text("0 readers here", timeout=WAIT_MS)
    expect(one).to_have_text("Live: 0", timeout=WAIT_MS)
    tab.pageview()
    expect(two).to_have_text("1 reader here", timeout=LIVE_MS)
    expect(one).to_have_text("Live: 1", timeout=LIVE_MS)
    tab.pageview(visitor="bob")
    expect(two).to_have_text("2 readers here", timeout=LIVE_MS)
    expect(one).to_have_text("Live: 2", timeout=LIVE_MS)
    expect(two.locator(".rtv-widget-count")).to_have_text("2")


def test_data_target_renders_into_that_element(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    # The tag comes first, in <body>, the target later: it waits for the document.
    tab.open(f'{tab.tag(key(), target="#live")}<header><b id="live"></b></header>')
    expect(tab.page.locator("#live > .rtv-widget")).to_have_text(NONE, timeout=WAIT_MS)
    assert tab.page.locator(".rtv-widget").count() == 1


def test_it_is_accessible_and_keeps_its_place_before_the_count(
    tab_and_key: tuple[Tab, Callable[..., str]], tmp_path: Path
) -> None:
    tab, key = tab_and_key
    tab.page.add_init_script(
        """window.shifts = [];
        new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) shifts.push([entry.startTime, entry.value]);
        }).observe({type: "layout-shift", buffered: true});"""
    )
    held: list[Route] = []
    tab.page.route(f"**{STREAM}?*", lambda route: held.append(route))  # the test lets it go
    tab.open(f'<p style="font: 16px sans-serif">Now: {tab.tag(key())} <i id="after">!</i></p>')
    deadline = time.monotonic() + WAIT_MS / 1000
    while not held:  # the widget is in the page, and waiting on its stream
        assert time.monotonic() < deadline, "the widget opened no stream"
        tab.page.wait_for_timeout(20)
    expect(tab.widget).to_have_attribute("aria-live", "polite")
    expect(tab.widget).to_have_class("rtv-widget")
    expect(tab.widget).to_be_hidden()  # visibility: hidden, its box laid out
    box = "sel => JSON.stringify(document.querySelector(sel).getBoundingClientRect())"
    before = [tab.page.evaluate(box, sel) for sel in (".rtv-widget", "#after")]
    assert tab.page.evaluate("document.querySelector('.rtv-widget').offsetWidth") > 100
    # Inserting the widget after the first paint moves what follows it on its line, as
    # any late content does (an async script cannot help it). What the widget promises is
    # that nothing moves when the count comes: shifts after two frames from now.
    painted = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    since = tab.page.evaluate(f"{painted}.then(() => performance.now())")

    held[0].continue_()
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    expect(tab.widget).to_be_visible()
    tab.page.evaluate(painted)
    after = [tab.page.evaluate(box, sel) for sel in (".rtv-widget", "#after")]
    assert after == before
    assert tab.page.evaluate("since => shifts.filter(([t]) => t > since)", since) == []
    tab.page.screenshot(path=tmp_path / "widget-accessible.png")


def test_without_eventsource_it_polls(
    make_tab: Callable[..., tuple[Tab, Callable[..., str]]], browser: Browser
) -> None:
    tab, key = make_tab(browser, init_script="delete window.EventSource")
    tab.open(tab.tag(key(), interval="1"))
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    tab.pageview()
    # One poll interval, plus the second the server may keep a count.
    expect(tab.widget).to_have_text(ONE, timeout=LIVE_MS)
    assert tab.made(STREAM) == []
    assert len(tab.made(POLL)) >= 2


def test_a_stream_that_fails_falls_back_to_polling_and_is_tried_again(
    tab_and_key: tuple[Tab, Callable[..., str]],
) -> None:
    tab, key = tab_and_key
    tab.page.route(f"**{STREAM}?*", lambda route: route.fulfill(status=502, body="proxy"))
    tab.open(tab.tag(key(), interval="1"))
    expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
    tab.pageview()
    expect(tab.widget).to_have_text(ONE, timeout=LIVE_MS)
    assert len(tab.made(STREAM)) >= 2  # after each poll that worked
    assert tab.warnings() == []


def test_the_stream_comes_back_after_the_server_restarts(
    make_tab: Callable[..., tuple[Tab, Callable[..., str]]],
    browser: Browser,
    redis_url: str,
    tmp_path: Path,
) -> None:
    first = start(tmp_path / "first.log", redis_url)
    port = int(first.base_url.rsplit(":", 1)[1])
    second: Live | None = None
    try:
        tab, key = make_tab(browser, live_server=first)
        tab.open(tab.tag(key()))
        expect(tab.widget).to_have_text(NONE, timeout=WAIT_MS)
        assert first.stop() == 0
        second = start(tmp_path / "second.log", redis_url, port)
        tab.live = second
        tab.pageview()
        # The browser reconnects on its own, `retry: 2000` after the stream ended.
        expect(tab.widget).to_have_text(ONE, timeout=WAIT_MS)
        assert len(tab.made(STREAM)) >= 2
        assert tab.made(POLL) == []  # never gave up on the stream
    finally:
        first.stop()
        if second is not None:
            second.stop()
