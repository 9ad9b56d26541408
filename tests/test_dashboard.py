"""The live dashboard (/dashboard): its files over HTTP, and the page itself in Chromium
against the real server: the count the stream pushes, the chart, the lists, the token
kept in the tab, and a clear message for each refusal.

A screenshot of each state goes to tests/artifacts/ (not committed), to look at.
"""

from __future__ import annotations

import gzip
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from realtime_visitors.config import DEFAULT_PLANS, Settings
from realtime_visitors.http import assets
from realtime_visitors.storage import embedded

from .browser import WAIT_MS, close_all, in_thread, live_server, publishable_key, send_pageview
from .conftest import run_admin, unique_id
from .test_live_server import Live, serve

WEB = Path(assets.__file__).parents[1] / "web"
ARTIFACTS = Path(__file__).parent / "artifacts"
FILES = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
}
MAX_GZIPPED = 16_000  # bytes: the three files, as served
TINY = 3  # requests an hour: a plan spent in three reads
PLANS = {**DEFAULT_PLANS, "tiny": TINY}
LIVE_MS = 3_000  # a new pageview shows within this, without a reload
# (path, referrer, visitors): three pages, two sources and direct visits.
TRAFFIC = [
    ("/pricing", "https://news.example/item?id=1", 3),
    ("/docs/start", "https://search.example/?q=counter", 2),
    ("/", None, 1),
]


# --- Over HTTP ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(valkey_url: str) -> str:
    """One backend is enough: the page does not know which server runs the scripts."""
    return valkey_url


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from live_server(
        tmp_path_factory, "dashboard", REDIS_URL=redis_url, RTV_PLANS=f"tiny={TINY}"
    )


@pytest.mark.parametrize("path", FILES)
def test_each_file_is_served_as_written_with_its_type(live: Live, path: str) -> None:
    name, media_type = FILES[path]
    response = httpx.get(live.base_url + path)
    assert response.status_code == 200
    assert response.content == (WEB / name).read_bytes()
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"].startswith('"')


def test_the_page_has_its_csp_and_no_referrer(live: Live) -> None:
    headers = httpx.get(f"{live.base_url}/dashboard").headers
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'none'" in csp
    assert headers["referrer-policy"] == "no-referrer"
    for path in ("/dashboard.css", "/dashboard.js"):
        assert "content-security-policy" not in httpx.get(live.base_url + path).headers


COMMENTS = {
    "dashboard.html": re.compile(r"<!--.*?-->", re.S),
    "dashboard.css": re.compile(r"/\*.*?\*/", re.S),
    # A line comment starts a line or follows a space; the // of a URL follows a colon.
    "dashboard.js": re.compile(r"/\*.*?\*/|(?:^|\s)//[^\n]*", re.S),
}


@pytest.mark.parametrize("name", COMMENTS)
def test_nothing_is_loaded_from_elsewhere(name: str) -> None:
    code = COMMENTS[name].sub("", (WEB / name).read_text())
    assert not re.findall(r"https?:|(?:src|href|url)\s*[=(]\s*['\"]?//|@import", code)


def test_the_dashboard_is_at_most_16_kb_gzipped(live: Live) -> None:
    served = b"".join(httpx.get(live.base_url + path).content for path in FILES)
    size = len(gzip.compress(served, compresslevel=9))
    assert size <= MAX_GZIPPED, f"the dashboard is {size} bytes gzipped"


def test_the_html_has_no_inline_script_or_style() -> None:
    page = (WEB / "dashboard.html").read_text()
    assert re.findall(r"<script\b[^>]*>", page) == ['<script src="/dashboard.js" defer>']
    assert re.findall(r"<link\b[^>]*>", page) == ['<link rel="stylesheet" href="/dashboard.css">']
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page)


# --- In Chromium ----------------------------------------------------------------------


class Dashboard:
    """A tab on /dashboard, recording every request it makes and every error it sees."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page, self.base_url = page, base_url
        self.urls: list[str] = []
        self.api: list[dict[str, str]] = []  # the headers of each request to the API
        self.errors: list[str] = []
        page.on("request", self._record)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _record(self, request: Request) -> None:
        self.urls.append(request.url)
        if "/api/" in request.url:
            self.api.append(request.headers)

    def _console(self, message: ConsoleMessage) -> None:
        # The browser logs each refused request (401, 429...): those are the tests' own.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)  # a CSP violation, say

    def open(self) -> None:
        self.page.goto(f"{self.base_url}/dashboard")

    def sign_in(self, website_id: str, token: str) -> None:
        self.open()
        self.page.fill("#website-id", website_id)
        self.page.fill("#token", token)
        self.page.click("#signin button[type=submit]")

    def rows(self, list_id: str) -> list[tuple[str, str]]:
        rows: list[list[str]] = self.page.locator(f"#{list_id} li").evaluate_all(
            "rows => rows.map(r => [r.querySelector('.name').textContent,"
            " r.querySelector('.num').textContent])"
        )
        return [(name, count) for name, count in rows]

    def message(self) -> Any:
        return expect(self.page.locator("#message"))

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits(self, width: int) -> None:
        """No horizontal scroll at this width."""
        scroll = self.page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"the page is {scroll} px wide in a {width} px window"

    def session_storage(self) -> str:
        stored: str = self.page.evaluate("JSON.stringify(sessionStorage)")
        return stored


@pytest.fixture
def make_dashboard(browser: Browser, live: Live) -> Iterator[Callable[..., Dashboard]]:
    tabs: list[Dashboard] = []

    def make(base_url: str | None = None, **context: Any) -> Dashboard:
        tab = Dashboard(browser.new_context(**context).new_page(), base_url or live.base_url)
        tabs.append(tab)
        return tab

    yield make
    close_all(tabs)


@pytest.fixture
def dashboard(make_dashboard: Callable[..., Dashboard]) -> Dashboard:
    return make_dashboard()


@pytest.fixture
def new_site(settings: Settings) -> Callable[..., tuple[str, str]]:
    """(website id, secret token) of a new website; any plan, tiny included."""
    config = replace(settings, plans=PLANS)

    def make(plan: str = "enterprise") -> tuple[str, str]:
        site, token = in_thread(
            run_admin, config, lambda sites: sites.create(unique_id(), "", plan)
        )
        return site.website_id, token.token

    return make


def pageview(base_url: str, website_id: str, path: str, visitor: str, referrer: str | None) -> None:
    send_pageview(base_url, website_id, f"https://shop.example{path}", visitor, referrer)


def send_traffic(base_url: str, website_id: str) -> int:
    """The pageviews of TRAFFIC, one visitor each; the number of visitors."""
    visitors = 0
    for path, referrer, count in TRAFFIC:
        for _ in range(count):
            visitors += 1
            pageview(base_url, website_id, path, f"visitor-{visitors}", referrer)
    return visitors


def clear_of_the_minute_end(margin: float = 10.0) -> None:
    """The chart's last bar is the current minute: wait for the next one rather than
    send pageviews the history might read a minute later (the server's clock is this
    machine's)."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60.2 - into)


def test_it_shows_the_count_the_chart_and_the_top_lists(
    dashboard: Dashboard, live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    clear_of_the_minute_end()
    visitors = send_traffic(live.base_url, website_id)
    dashboard.sign_in(website_id, token)
    page = dashboard.page
    expect(page.locator("#count")).to_have_text(str(visitors), timeout=WAIT_MS)
    expect(page.locator("#state")).to_have_text("Live")
    expect(page.locator("#site")).to_have_text(website_id)

    expect(page.locator("#pages li")).to_have_count(3, timeout=WAIT_MS)
    assert dashboard.rows("pages") == [("/pricing", "3"), ("/docs/start", "2"), ("/", "1")]
    expect(page.locator("#sources li")).to_have_count(3)
    assert dashboard.rows("sources") == [
        ("news.example", "3"),
        ("search.example", "2"),
        ("Direct / none", "1"),
    ]
    assert dashboard.rows("countries") == [("Unknown", str(visitors))]  # all from 127.0.0.1

    bars = page.locator("#chart rect.bar")
    expect(bars).to_have_count(30)
    heights = bars.evaluate_all("bars => bars.map(b => Number(b.dataset.visitors))")
    assert heights[-1] == visitors  # this minute: everyone
    assert sum(heights[:-1]) == 0  # a new website: nobody before
    assert page.locator("#chart").get_attribute("role") == "img"
    expect(page.locator("#chart title").first).to_have_text("Visitors per minute, last 30 minutes")
    expect(page.locator("#chart desc")).to_contain_text(f"This minute so far: {visitors} visitors")
    # The value axis tops at a round number at least the peak; the time axis ends now.
    ticks = page.locator("#chart text").all_text_contents()
    assert ticks[:3] == ["0", "3", "6"]
    assert ticks[-1] == "now"
    # Enterprise, 10,000 requests an hour: refreshed as often as the page allows.
    expect(page.locator("#refresh")).to_contain_text("refresh every 15 s, within half")
    expect(page.locator("#refresh")).to_contain_text("Next refresh at")
    dashboard.shot("light-desktop")

    # Live: a new visitor shows without a reload.
    pageview(live.base_url, website_id, "/pricing", "visitor-new", None)
    expect(page.locator("#count")).to_have_text(str(visitors + 1), timeout=LIVE_MS)
    expect(page.locator("#message")).to_be_empty()


def test_chart_and_lists_refresh_by_themselves(
    make_dashboard: Callable[..., Dashboard], live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    send_traffic(live.base_url, website_id)
    dashboard = make_dashboard()
    dashboard.page.clock.install()
    dashboard.sign_in(website_id, token)
    expect(dashboard.page.locator("#pages li")).to_have_count(3, timeout=WAIT_MS)
    reads = [url for url in dashboard.urls if "/breakdown" in url or "/history" in url]
    assert len(reads) == 4  # history and three breakdowns

    pageview(live.base_url, website_id, "/blog", "reader", None)
    assert dashboard.rows("pages")[-1] == ("/", "1")  # not yet
    dashboard.page.clock.run_for(16_000)  # the enterprise plan's 15 s
    expect(dashboard.page.locator("#pages li")).to_have_count(4, timeout=WAIT_MS)
    assert ("/blog", "1") in dashboard.rows("pages")
    reads = [url for url in dashboard.urls if "/breakdown" in url or "/history" in url]
    assert len(reads) == 8


# Every line ending the format allows, comments, a field without a space, an unknown
# field, and data over two lines (joined with a newline: still JSON).
ODD_STREAM = (
    ": hello\r\n"
    "retry: 60000\r"
    "id: 1\n"
    "event:visitors\r\n"
    'data: {"currentVisitors":\n'
    "data: 42}\r"
    "whatever: ignored\r\n"
    "\r\n"
    ": ping\n\n"
)


def test_the_stream_parser_reads_every_line_ending(
    dashboard: Dashboard, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    dashboard.page.route(
        "**/api/v1/realtime/stream?*",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=ODD_STREAM),
    )
    dashboard.page.clock.install()
    dashboard.sign_in(website_id, token)
    expect(dashboard.page.locator("#count")).to_have_text("42", timeout=WAIT_MS)
    # The body ended: the page opens another after the `retry` it gave, a minute.
    expect(dashboard.page.locator("#state")).to_contain_text("Reconnecting at")
    streams = lambda: [url for url in dashboard.urls if "/stream?" in url]  # noqa: E731
    dashboard.page.clock.run_for(50_000)
    assert len(streams()) == 1
    with dashboard.page.expect_request(lambda request: "/stream?" in request.url):
        dashboard.page.clock.run_for(15_000)
    assert len(streams()) == 2


def test_the_free_plan_refreshes_within_half_its_budget(
    dashboard: Dashboard, new_site: Callable[..., tuple[str, str]]
) -> None:
    # 4 reads per refresh, 50 of the plan's 100 requests an hour: every 4.8 minutes.
    website_id, token = new_site("free")
    dashboard.sign_in(website_id, token)
    refresh = dashboard.page.locator("#refresh")
    expect(refresh).to_contain_text("refresh every 4 min 48 s, within half", timeout=WAIT_MS)
    expect(refresh).to_contain_text("half of this plan")
    expect(dashboard.page.locator("#pages li")).to_have_text(["Nobody right now"])


def test_the_token_stays_in_the_tab_and_out_of_every_url(
    dashboard: Dashboard, live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    pageview(live.base_url, website_id, "/", "v1", None)
    dashboard.sign_in(website_id, token)
    page = dashboard.page
    expect(page.locator("#count")).to_have_text("1", timeout=WAIT_MS)
    expect(page.locator("#pages li")).to_have_count(1, timeout=WAIT_MS)

    assert token not in page.url
    assert page.evaluate("localStorage.length") == 0
    assert token in dashboard.session_storage()
    assert not [url for url in dashboard.urls if token in url]
    streams = [url for url in dashboard.urls if "/api/v1/realtime/stream" in url]
    assert streams == [f"{live.base_url}/api/v1/realtime/stream?websiteId={website_id}"]
    assert len(dashboard.api) == 5  # the stream, the history, three breakdowns
    for headers in dashboard.api:
        assert headers["authorization"] == f"Bearer {token}"

    # Another tab asks again: the token is this tab's only.
    other = page.context.new_page()
    other.goto(f"{live.base_url}/dashboard")
    expect(other.locator("#signin")).to_be_visible()
    assert other.evaluate("sessionStorage.length") == 0
    other.close()

    # A reload keeps it.
    page.reload()
    expect(page.locator("#count")).to_have_text("1", timeout=WAIT_MS)

    page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    assert dashboard.session_storage() == "{}"
    assert page.locator("#token").input_value() == ""
    assert not [url for url in dashboard.urls if token in url]


def test_dark_mode(
    dashboard: Dashboard, live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    send_traffic(live.base_url, website_id)
    dashboard.page.emulate_media(color_scheme="dark")
    dashboard.sign_in(website_id, token)
    expect(dashboard.page.locator("#pages li")).to_have_count(3, timeout=WAIT_MS)
    expect(dashboard.page.locator("#state")).to_have_text("Live", timeout=WAIT_MS)
    background = dashboard.page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = dashboard.page.evaluate("getComputedStyle(document.body).color")
    assert brightness(background) < 40 < 200 < brightness(text), (background, text)
    dashboard.fits(1280)
    dashboard.shot("dark-desktop")


def brightness(css_color: str) -> float:
    red, green, blue = (int(n) for n in re.findall(r"\d+", css_color)[:3])
    return 0.299 * red + 0.587 * green + 0.114 * blue


MOBILE = {"viewport": {"width": 360, "height": 760}, "device_scale_factor": 2, "is_mobile": True}


def test_a_360_px_phone_scrolls_only_down(
    make_dashboard: Callable[..., Dashboard], live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site()
    send_traffic(live.base_url, website_id)
    # A long path and a long referrer must not widen the page either.
    long_path = "/blog/" + "a-very-long-article-title-" * 6
    pageview(live.base_url, website_id, long_path, "long", "https://" + "sub." * 12 + "example")
    dashboard = make_dashboard(**MOBILE)
    dashboard.open()
    dashboard.fits(360)
    dashboard.shot("mobile-sign-in")
    dashboard.sign_in(website_id, token)
    expect(dashboard.page.locator("#pages li")).to_have_count(4, timeout=WAIT_MS)
    expect(dashboard.page.locator("#state")).to_have_text("Live", timeout=WAIT_MS)
    expect(dashboard.page.locator("#chart rect.bar")).to_have_count(30)
    dashboard.fits(360)
    dashboard.shot("mobile")
    dashboard.page.emulate_media(color_scheme="dark")
    dashboard.fits(360)
    dashboard.shot("mobile-dark")


# --- What goes wrong ---------------------------------------------------------------


def test_a_wrong_token_says_so_and_asks_again(
    dashboard: Dashboard, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, _ = new_site()
    dashboard.sign_in(website_id, "vt_not_the_token")
    dashboard.message().to_contain_text("Wrong token:", timeout=WAIT_MS)
    dashboard.message().to_contain_text(website_id)
    expect(dashboard.page.locator("#signin")).to_be_visible()
    expect(dashboard.page.locator("#board")).to_be_hidden()
    assert dashboard.page.locator("#website-id").input_value() == website_id
    assert dashboard.session_storage() == "{}"  # a wrong token is not kept
    dashboard.shot("error-wrong-token")


def test_an_unknown_website_says_so(dashboard: Dashboard) -> None:
    dashboard.sign_in("no-such-website", "vt_some_token")
    dashboard.message().to_contain_text("Unknown website:", timeout=WAIT_MS)
    dashboard.message().to_contain_text("“no-such-website”")
    expect(dashboard.page.locator("#signin")).to_be_visible()
    dashboard.shot("error-unknown-website")


def test_a_public_key_is_not_a_secret_token(
    dashboard: Dashboard, settings: Settings, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, _ = new_site()
    key = publishable_key(settings, website_id)
    assert key.startswith("vt_pub_")
    dashboard.sign_in(website_id, key)
    dashboard.message().to_contain_text("That is a public key:", timeout=WAIT_MS)
    dashboard.message().to_contain_text("secret token")
    expect(dashboard.page.locator("#signin")).to_be_visible()
    dashboard.shot("error-public-key")


def test_a_spent_budget_says_when_it_tries_again(
    dashboard: Dashboard, live: Live, new_site: Callable[..., tuple[str, str]]
) -> None:
    website_id, token = new_site("tiny")
    for _ in range(TINY):
        response = httpx.get(
            f"{live.base_url}/api/v1/realtime",
            params={"websiteId": website_id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200
    dashboard.sign_in(website_id, token)
    dashboard.message().to_contain_text("Rate limit reached:", timeout=WAIT_MS)
    dashboard.message().to_contain_text(f"allows {TINY} requests an hour")
    # One request every 20 minutes comes back (Retry-After: 1200).
    dashboard.message().to_contain_text("accepts requests again at")
    dashboard.message().to_contain_text(re.compile(r"\(in (20 min|19 min \d+ s)\)"))
    expect(dashboard.page.locator("#message .notice")).to_have_count(1)  # stream and lists: one
    # Not the end: the page stays, and says when it reads again.
    expect(dashboard.page.locator("#board")).to_be_visible()
    # The lists need four requests: three more 20-minute refills after the first.
    refresh = re.compile(r"Next refresh at .* \(in 1 h (20|19) min\)")
    expect(dashboard.page.locator("#refresh")).to_contain_text(refresh)
    assert token in dashboard.session_storage()
    dashboard.shot("error-rate-limit")


def test_a_service_without_its_database_says_it_is_unavailable(
    make_dashboard: Callable[..., Dashboard], tmp_path: Path
) -> None:
    # Nothing listens on port 1: every read is a 503.
    down = serve(tmp_path / "serve.log", REDIS_URL="redis://127.0.0.1:1/0")
    try:
        dashboard = make_dashboard(down.base_url)
        dashboard.sign_in("some-website", "vt_some_token")
        dashboard.message().to_contain_text("Service unavailable:", timeout=WAIT_MS)
        dashboard.message().to_contain_text("keeps trying")
        expect(dashboard.page.locator("#state")).to_contain_text("Reconnecting at")
        expect(dashboard.page.locator("#board")).to_be_visible()
        dashboard.shot("error-outage")
    finally:
        down.stop()


def test_an_outage_while_watching_shows_then_clears(
    make_dashboard: Callable[..., Dashboard], tmp_path: Path
) -> None:
    store = embedded.ensure(tmp_path / "db", persist=False)
    assert store.process is not None
    down = serve(tmp_path / "serve.log", REDIS_URL=store.url)
    try:
        site, token = in_thread(
            run_admin,
            Settings(redis_url=store.url),
            lambda sites: sites.create("watched", "", "enterprise"),
        )
        pageview(down.base_url, site.website_id, "/", "v1", None)
        dashboard = make_dashboard(down.base_url)
        page = dashboard.page
        page.clock.install()
        dashboard.sign_in(site.website_id, token.token)
        expect(page.locator("#state")).to_have_text("Live", timeout=WAIT_MS)
        expect(page.locator("#pages li")).to_have_count(1, timeout=WAIT_MS)
        # Frozen, the store answers nothing (as when paused or cut off, until it
        # comes back): the stream's poll times out and it says `event: unavailable`.
        store.process.send_signal(signal.SIGSTOP)
        dashboard.message().to_contain_text("Service unavailable:", timeout=WAIT_MS)
        expect(page.locator("#state")).to_have_text("Waiting for the service", timeout=WAIT_MS)
        expect(page.locator("#count")).to_have_text("1")  # the last count stays
        # The refresh comes round in the outage too, and fails (503).
        with page.expect_response(lambda r: "/history?" in r.url and r.status == 503):
            page.clock.run_for(16_000)
        expect(page.locator("#pages li")).to_have_text([re.compile("^/")], timeout=WAIT_MS)
        dashboard.shot("error-outage-live")
        store.process.send_signal(signal.SIGCONT)
        expect(page.locator("#state")).to_have_text("Live", timeout=WAIT_MS)
        # Back: the failed refresh is done again at once, not at its next turn.
        expect(page.locator("#message")).to_be_empty(timeout=WAIT_MS)
    finally:
        store.process.send_signal(signal.SIGCONT)
        down.stop()
        store.stop()
