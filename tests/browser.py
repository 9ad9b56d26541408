"""What the browser tests share: Chromium through Playwright, and a customer's site.

A customer's page comes from one origin (http://shop.test:PORT, served by a tiny server
here) and the service's files from another (http://rtv.test:PORT, the live
`realtime-visitors serve`). Both names resolve to 127.0.0.1 through Chromium's
host-resolver rules: a page fulfilled by Playwright instead counts as a public origin,
and Chromium's Private Network Access then refuses to load a script from a loopback
address. The names also keep the page off `localhost`, which the tracker ignores.

conftest.py registers this module as a plugin: its fixtures serve every test module.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    sync_playwright,
)

from realtime_visitors.admin.sites import NewToken
from realtime_visitors.config import Settings

from .conftest import run_admin
from .test_live_server import Live, serve

T = TypeVar("T")
S = TypeVar("S", bound=ThreadingHTTPServer)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WAIT_MS = 10_000  # an upper bound on waiting for what must happen
PAGEVIEW = "/api/v1/pageview"


def in_thread(action: Callable[..., T], *args: Any) -> T:
    """The Playwright driver keeps an event loop running in this thread; the admin
    helpers run one of their own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(action, *args).result()


def publishable_key(settings: Settings, website_id: str, *origins: str) -> str:
    create = lambda sites: sites.create_token(website_id, True, origins)  # noqa: E731
    new: NewToken = in_thread(run_admin, settings, create)
    return new.token


# Headless Chromium says "HeadlessChrome", which the server answers 202 and does not
# count, as every crawler: the tests browse as the desktop Chrome a visitor uses.
def chrome_user_agent(version: str = "124.0.0.0") -> str:
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{version} Safari/537.36"
    )


def send_pageview(
    base_url: str, website_id: str, url: str, visitor: str, referrer: str | None = None
) -> None:
    """A visit, sent as a visitor's browser sends it, and counted."""
    body = {"websiteId": website_id, "url": url, "visitorId": visitor}
    if referrer:
        body["referrer"] = referrer
    headers = {"User-Agent": chrome_user_agent()}
    response = httpx.post(f"{base_url}{PAGEVIEW}", json=body, headers=headers)
    assert response.json() == {"status": "accepted", "counted": True}


def live_server(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    start: Callable[..., Live] = serve,
    **env: str,
) -> Iterator[Live]:
    """For a module's `live` fixture: `start(log, **env)`, the log in a folder `name`."""
    server = start(tmp_path_factory.mktemp(name) / "serve.log", **env)
    yield server
    server.stop()


def rtv_origin(live: Live) -> str:
    """The live server under a name of its own: another site than the shop's."""
    return live.base_url.replace("127.0.0.1", "rtv.test")


# --- The customer's site -------------------------------------------------------------


class ShopHandler(BaseHTTPRequestHandler):
    """Every path is the one page (as a single-page app's server does); POSTs are sentinels."""

    server: Shop

    def do_GET(self) -> None:
        body = self.server.page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Shop(ThreadingHTTPServer):
    """The customer's site, on every loopback address: 127.0.0.1, and ::1 when there is IPv6."""

    address_family = socket.AF_INET6
    daemon_threads = True
    page = ""

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def origin(self, host: str = "shop.test") -> str:
        return f"http://{host}:{self.server_address[1]}"


class Shop4(Shop):
    address_family = socket.AF_INET

    def server_bind(self) -> None:
        ThreadingHTTPServer.server_bind(self)


@contextmanager
def serving(server: S) -> Iterator[S]:
    """The server, answering from a thread of its own until the block ends."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shop() -> Iterator[Shop]:
    try:
        server: Shop = Shop(("::", 0), ShopHandler)
    except OSError:  # no IPv6 here: the [::1] case skips
        server = Shop4(("127.0.0.1", 0), ShopHandler)
    with serving(server):
        yield server


# --- Chromium -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: cannot run this test in a browser")
    with sync_playwright() as driver:
        yield driver


def launch(playwright: Playwright, *extra: str, **options: Any) -> Browser:
    assert CHROMIUM
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--host-resolver-rules=MAP *.test 127.0.0.1", *extra],
        **options,
    )


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch(playwright)
    yield browser
    browser.close()


class Recorded:
    """A page, recording every request it makes, every console message and every error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[Request] = []
        self.console: list[ConsoleMessage] = []
        self.errors: list[Exception] = []
        page.on("request", lambda request: self.requests.append(request))
        page.on("console", lambda message: self.console.append(message))
        page.on("pageerror", lambda error: self.errors.append(error))


class Watched(Protocol):
    @property
    def page(self) -> Page: ...

    @property
    def errors(self) -> Sequence[object]: ...


def close_all(tabs: Sequence[Watched]) -> None:
    """Close each tab; then a test whose pages saw an error fails."""
    for tab in tabs:
        tab.page.context.close()
    for tab in tabs:
        assert not tab.errors, f"the page saw errors: {tab.errors}"
