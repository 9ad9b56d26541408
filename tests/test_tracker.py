"""GET /script.js, and the tracker itself running in Chromium on a customer's page
(http://shop.test:PORT), loaded from the live server (http://rtv.test:PORT): browser.py.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Request
from starlette.testclient import TestClient

from realtime_visitors.http import assets

from .browser import (
    PAGEVIEW,
    WAIT_MS,
    Recorded,
    Shop,
    chrome_user_agent,
    close_all,
    in_thread,
    launch,
    live_server,
    rtv_origin,
)
from .test_live_server import Live

SOURCE = Path(assets.__file__).parents[1] / "web" / "script.js"
MAX_GZIPPED = 1000

# --- HTTP -----------------------------------------------------------------------


def test_script_is_served_as_written(client: TestClient) -> None:
    response = client.get("/script.js")
    assert response.status_code == 200
    assert response.content == SOURCE.read_bytes()
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.headers["x-content-type-options"] == "nosniff"
    digest = hashlib.sha256(response.content).hexdigest()[:32]
    assert response.headers["etag"] == f'"{digest}"'  # strong: no W/


def test_head_has_the_headers_and_no_body(client: TestClient) -> None:
    response = client.head("/script.js")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == assets.TRACKER.etag
    assert response.headers["content-length"] == str(len(assets.TRACKER.body))


@pytest.mark.parametrize(
    "if_none_match",
    [assets.TRACKER.etag, f"W/{assets.TRACKER.etag}", f'"old", {assets.TRACKER.etag}', "*"],
)
def test_a_matching_if_none_match_is_answered_304(client: TestClient, if_none_match: str) -> None:
    response = client.get("/script.js", headers={"If-None-Match": if_none_match})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == assets.TRACKER.etag
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert "content-type" not in response.headers


def test_another_etag_gets_the_script(client: TestClient) -> None:
    response = client.get("/script.js", headers={"If-None-Match": '"old"'})
    assert response.status_code == 200
    assert response.content == assets.TRACKER.body


def test_any_origin_may_load_it_with_cors(client: TestClient) -> None:
    response = client.get("/script.js", headers={"Origin": "https://shop.example"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_served_script_is_at_most_1000_bytes_gzipped(client: TestClient) -> None:
    served = client.get("/script.js").content
    size = len(gzip.compress(served, compresslevel=9))
    assert size <= MAX_GZIPPED, f"script.js is {size} bytes gzipped"


# --- In Chromium ------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(valkey_url: str) -> str:
    """One backend is enough: nothing here depends on which server runs the scripts."""
    return valkey_url


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from live_server(tmp_path_factory, "tracker", REDIS_URL=redis_url)


class Tab(Recorded):
    """A page of the shop, with every pageview it sends, in order."""

    def __init__(self, page: Page, shop: Shop, live: Live, website_id: str, token: str) -> None:
        super().__init__(page)
        self.shop, self.live = shop, live
        self.website_id, self.token = website_id, token
        self.tracker_origin = rtv_origin(live)
        self.seen = 0

    @property
    def sent(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.url.endswith(PAGEVIEW)]

    def url(self, path: str = "/", host: str = "shop.test") -> str:
        return self.shop.origin(host) + path

    def open(
        self, path: str = "/", host: str = "shop.test", before: str = "", **attributes: str | None
    ) -> None:
        """Serve a page with the install line (attributes: data-*) after `before`; go there."""
        self.shop.page = page_with(before + self.install_line(**attributes))
        self.page.goto(self.url(path, host), referer="https://search.example/?q=shoes")

    def install_line(self, src: str | None = None, **attributes: str | None) -> str:
        attributes = {"website-id": self.website_id, **attributes}
        data = "".join(
            f" data-{name}" if value is None else f' data-{name}="{html.escape(value)}"'
            for name, value in attributes.items()
        )
        return f'<script defer src="{src or self.tracker_origin + "/script.js"}"{data}></script>'

    def new(self) -> list[dict[str, Any]]:
        """The pageviews sent since the last call.

        A beacon of the test's own, sent after them, marks the end: requests are
        reported in the order the page makes them, so no wait on a clock is needed to
        know that nothing else was sent.
        """
        with self.page.expect_request(lambda r: r.url.endswith("/sentinel"), timeout=WAIT_MS):
            self.page.evaluate(
                """url => navigator.sendBeacon
                    ? navigator.sendBeacon(url, "")
                    : fetch(url, {method: "POST", keepalive: true})""",
                self.url("/sentinel"),
            )
        new = self.sent[self.seen :]
        self.seen = len(self.sent)
        for request in new:
            assert request.headers["content-type"] == "text/plain;charset=UTF-8"
        return [json.loads(request.post_data or "") for request in new]

    def view(self, path: str, referrer: str | None = None) -> dict[str, Any]:
        """The body the tracker sends for `path` of the shop."""
        body = {"websiteId": self.website_id, "url": self.url(path)}
        return body if referrer is None else {**body, "referrer": referrer}

    def count(self, path: str | None = None) -> int:
        params = {"websiteId": self.website_id} | ({"path": path} if path else {})
        response = httpx.get(
            f"{self.live.base_url}/api/v1/realtime",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        visitors: int = response.json()["currentVisitors"]
        return visitors

    def wait_for_count(self, expected: int, path: str | None = None) -> None:
        """Beacons are fire-and-forget: the server may count them a moment later."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while (found := self.count(path)) != expected:
            assert time.monotonic() < deadline, (
                f"{path or 'site'}: {found} visitors, not {expected}"
            )
            time.sleep(0.05)


def page_with(head: str) -> str:
    body = '<a id="anchor" href="#faq">FAQ</a><h2 id="faq">FAQ</h2>'
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


@pytest.fixture
def make_tab(
    shop: Shop, live: Live, make_site: Callable[..., tuple[str, str]]
) -> Iterator[Callable[..., Tab]]:
    tabs: list[Tab] = []

    def make(browser: Browser, init_script: str | None = None) -> Tab:
        context = browser.new_context(user_agent=chrome_user_agent(browser.version))
        if init_script:
            context.add_init_script(init_script)
        # Enterprise: reads at will, no rate limit in sight.
        website_id, token = in_thread(make_site, "enterprise")
        tab = Tab(context.new_page(), shop, live, website_id, token)
        tabs.append(tab)
        return tab

    yield make
    close_all(tabs)


@pytest.fixture
def tab(make_tab: Callable[..., Tab], browser: Browser) -> Tab:
    return make_tab(browser)


# Playwright sets navigator.webdriver, so the tracker ignores these pages as it ignores
# any automated browser: most tests opt back in with data-include-automation.
AUTOMATION: dict[str, str | None] = {"include-automation": None}


def test_a_visit_sends_one_pageview_and_is_counted(tab: Tab) -> None:
    tab.open("/", **AUTOMATION)
    assert tab.new() == [tab.view("/", referrer="https://search.example/?q=shoes")]
    (request,) = tab.sent
    assert request.url == f"{tab.tracker_origin}{PAGEVIEW}"
    assert request.resource_type == "ping"  # navigator.sendBeacon
    tab.wait_for_count(1)


def test_single_page_navigations_send_one_pageview_each(tab: Tab) -> None:
    tab.open("/", **AUTOMATION)
    assert len(tab.new()) == 1
    # In-site navigations carry no referrer: the server keeps the landing page's.
    tab.page.evaluate("history.pushState({}, '', '/pricing')")
    assert tab.new() == [tab.view("/pricing")]
    tab.page.evaluate("history.pushState({step: 2}, '', '/pricing')")  # same URL again
    assert tab.new() == []
    tab.page.evaluate("history.replaceState({}, '', '/pricing?plan=pro')")
    assert tab.new() == [tab.view("/pricing?plan=pro")]
    tab.page.evaluate("history.replaceState({saved: 1}, '', location.href)")  # router state
    assert tab.new() == []
    tab.page.evaluate("history.back()")  # popstate, to the first /pricing entry
    tab.page.wait_for_url(tab.url("/pricing"))
    assert tab.new() == [tab.view("/pricing")]
    tab.page.evaluate("history.back()")
    tab.page.wait_for_url(tab.url("/"))
    assert tab.new() == [tab.view("/")]
    tab.page.click("#anchor")  # an in-page anchor fires popstate too: the same page
    tab.page.wait_for_url(tab.url("/#faq"))
    assert tab.new() == []
    tab.page.evaluate("history.pushState({}, '', '/about#team')")
    assert tab.new() == [tab.view("/about#team")]


def test_rtv_sends_a_pageview_by_hand_and_is_the_only_global(tab: Tab) -> None:
    tab.shop.page = page_with("")
    tab.page.goto(tab.url("/"))
    without = set(tab.page.evaluate("Object.getOwnPropertyNames(window)"))
    tab.open("/", **AUTOMATION)
    with_tracker = set(tab.page.evaluate("Object.getOwnPropertyNames(window)"))
    assert with_tracker - without == {"rtv"}
    assert len(tab.new()) == 1
    # Routers without the History API call it after each navigation; it always sends.
    tab.page.evaluate("location.hash = 'step-2'; rtv()")
    assert tab.new() == [tab.view("/#step-2")]
    assert tab.page.evaluate("rtv()") is None
    assert tab.new() == [tab.view("/#step-2")]


def test_a_return_from_the_back_forward_cache_counts_again(
    playwright: Playwright, make_tab: Callable[..., Tab]
) -> None:
    # Playwright turns the back-forward cache off by default; this browser keeps it.
    browser = launch(playwright, ignore_default_args=["--disable-back-forward-cache"])
    try:
        tab = make_tab(browser)
        tab.open("/", **AUTOMATION)
        tab.page.evaluate("addEventListener('pageshow', e => window.restored = e.persisted)")
        assert len(tab.new()) == 1
        with tab.page.expect_navigation():  # a real one: the tracker loads again
            tab.page.evaluate("location.href = '/cart'")
        assert tab.new() == [tab.view("/cart", referrer=tab.url("/"))]
        with tab.page.expect_request(lambda r: r.url.endswith(PAGEVIEW), timeout=WAIT_MS):
            tab.page.evaluate("setTimeout(() => history.back())")
        tab.page.wait_for_function("window.restored === true", timeout=WAIT_MS)
        # The page was restored, not loaded: no referrer, the visit goes on.
        assert tab.new() == [tab.view("/")]
    finally:
        browser.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_a_local_page_sends_nothing_unless_asked(tab: Tab, host: str) -> None:
    if host == "[::1]" and tab.shop.address_family != socket.AF_INET6:
        pytest.skip("no IPv6 on this machine")
    tab.open("/", host=host, **AUTOMATION)
    assert tab.page.evaluate("typeof rtv") == "function"  # loaded and ran
    tab.page.evaluate("history.pushState({}, '', '/pricing'); rtv()")
    assert tab.new() == []
    tab.open("/", host=host, **AUTOMATION, **{"include-localhost": None})
    assert [view["url"] for view in tab.new()] == [tab.url("/", host)]


def test_a_file_page_sends_nothing_unless_asked(tab: Tab, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(page_with(tab.install_line(**AUTOMATION)))
    tab.page.goto(page.as_uri())
    assert tab.page.evaluate("typeof rtv") == "function"
    tab.page.evaluate("rtv()")
    assert tab.new() == []
    page.write_text(page_with(tab.install_line(**AUTOMATION, **{"include-localhost": None})))
    tab.page.goto(page.as_uri())
    assert [view["url"] for view in tab.new()] == [page.as_uri()]


def test_an_automated_browser_sends_nothing_unless_asked(tab: Tab) -> None:
    tab.open("/")
    assert tab.page.evaluate("navigator.webdriver") is True
    assert tab.page.evaluate("typeof rtv") == "function"
    tab.page.evaluate("history.pushState({}, '', '/pricing'); rtv()")
    assert tab.new() == []


NOT_WEBDRIVER = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false});"


MARKERS = [
    "window._phantom = {}",
    "window.callPhantom = () => {}",
    "window.Cypress = {}",
    "window.__nightmare = {}",
    "window.__selenium_unwrapped = true",
    "document.documentElement.setAttribute('webdriver', '')",
]


def test_each_automation_marker_is_recognised(
    make_tab: Callable[..., Tab], browser: Browser
) -> None:
    tab = make_tab(browser, NOT_WEBDRIVER)
    for marker in MARKERS:
        tab.open("/", before=f"<script>{marker}</script>")
        assert tab.page.evaluate("typeof rtv") == "function"
        tab.page.evaluate("rtv()")
        assert tab.new() == [], marker
        tab.open("/", before=f"<script>{marker}</script>", **AUTOMATION)
        assert len(tab.new()) == 1, marker


def test_without_markers_a_browser_is_a_visitor(
    make_tab: Callable[..., Tab], browser: Browser
) -> None:
    tab = make_tab(browser, NOT_WEBDRIVER)
    tab.open("/")
    assert tab.new() == [tab.view("/", referrer="https://search.example/?q=shoes")]


def test_rtv_ignore_in_local_storage_sends_nothing(tab: Tab) -> None:
    tab.shop.page = page_with("")
    tab.page.goto(tab.url("/"))
    tab.page.evaluate("localStorage.rtv_ignore = 'true'")
    tab.open("/", **AUTOMATION)
    assert tab.page.evaluate("typeof rtv") == "function"
    tab.page.evaluate("history.pushState({}, '', '/pricing'); rtv()")
    assert tab.new() == []
    tab.page.evaluate("localStorage.rtv_ignore = 'false'")
    tab.open("/", **AUTOMATION)
    assert len(tab.new()) == 1
    # Read on every pageview: it takes effect without a reload.
    tab.page.evaluate("localStorage.rtv_ignore = 'true'; history.pushState({}, '', '/pricing')")
    assert tab.new() == []


def test_a_throwing_local_storage_still_counts(
    make_tab: Callable[..., Tab], browser: Browser
) -> None:
    # As in a sandboxed frame, or with cookies blocked: reading localStorage throws.
    tab = make_tab(
        browser,
        """Object.defineProperty(window, "localStorage", {
            get() { throw new DOMException("denied", "SecurityError"); },
        });""",
    )
    tab.open("/", **AUTOMATION)
    assert len(tab.new()) == 1


def test_data_api_sends_to_another_host(tab: Tab) -> None:
    port = tab.live.base_url.rsplit(":", 1)[1]
    tab.open(
        "/",
        src=f"http://cdn.test:{port}/script.js",
        api=f"http://api.test:{port}/",  # an origin; a trailing slash is fine
        **AUTOMATION,
    )
    assert len(tab.new()) == 1
    assert tab.sent[0].url == f"http://api.test:{port}{PAGEVIEW}"
    tab.wait_for_count(1)


def test_without_send_beacon_it_posts_with_fetch_keepalive(
    make_tab: Callable[..., Tab], browser: Browser
) -> None:
    tab = make_tab(
        browser,
        """
        delete Navigator.prototype.sendBeacon;
        const fetch = window.fetch;
        window.fetched = [];
        window.fetch = (url, init) => (window.fetched.push({url, ...init}), fetch(url, init));
        """,
    )
    tab.open("/", **AUTOMATION)
    assert tab.new() == [tab.view("/", referrer="https://search.example/?q=shoes")]
    assert tab.sent[0].resource_type == "fetch"
    (fetched, _sentinel) = tab.page.evaluate("window.fetched")
    assert fetched["method"] == "POST"
    assert fetched["keepalive"] is True
    assert fetched["url"] == f"{tab.tracker_origin}{PAGEVIEW}"
    tab.wait_for_count(1)


def test_a_broken_install_sends_nothing_and_throws_nothing(tab: Tab) -> None:
    tab.open("/", **{"website-id": ""}, **AUTOMATION)
    tab.page.evaluate("rtv(); history.pushState({}, '', '/pricing')")
    tab.open("/", api="not a url", **AUTOMATION)
    tab.page.evaluate("rtv(); history.pushState({}, '', '/pricing')")
    assert tab.new() == []
    # make_tab checks that the page saw no error


def test_the_server_counts_each_page_as_the_visitor_moves(tab: Tab) -> None:
    tab.open("/", **AUTOMATION)
    tab.wait_for_count(1, "/")
    assert tab.count("/pricing") == 0
    tab.page.evaluate("history.pushState({}, '', '/pricing')")
    tab.wait_for_count(1, "/pricing")
    assert tab.count("/") == 0
    tab.page.evaluate("history.back()")
    tab.wait_for_count(1, "/")
    assert tab.count("/pricing") == 0
    assert tab.count() == 1  # one visitor throughout
