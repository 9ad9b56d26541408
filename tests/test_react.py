"""The API document's React component, bundled with esbuild from npm, in Chromium.

The document's example puts `process.env.NEXT_PUBLIC_API_KEY` in every visitor's copy of
the bundle; the README says to make that a publishable key (vt_pub_...), never a secret
token, and that the component works unchanged with one. These tests hold it to that: the
component, as the document has it but for the host, runs on a customer's page
(http://shop.test:PORT) against the live server (http://rtv.test:PORT), as every
browser test does (browser.py).

React and esbuild come from the npm registry once, into a folder under ~/.cache kept
between runs; the tests skip when npm is missing or the registry cannot be reached.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Response, expect

from realtime_visitors.config import Settings

from .browser import (
    WAIT_MS,
    Recorded,
    Shop4,
    ShopHandler,
    close_all,
    in_thread,
    live_server,
    publishable_key,
    rtv_origin,
    send_pageview,
    serving,
)
from .test_live_server import SPEC_HOST, Live

# Copied verbatim from the API document ("React Component"); only SPEC_HOST is replaced.
SPEC_REACT_COMPONENT = """\
import { useState, useEffect } from "react";
function VisitorCounter() {
const [visitors, setVisitors] = useState(0);
useEffect(() => {
const fetchVisitors = async () => {
try {
const response = await fetch(
`https://versatailor.com/api/v1/realtime?websiteId=${process.env.NEXT_PUBLIC_WEBSITE_ID}`,
{
headers: {
Authorization: `Bearer ${process.env.NEXT_PUBLIC_API_KEY}`,
},
}
);
const data = await response.json();
setVisitors(data.currentVisitors);
} catch (error) {
console.error("Failed to fetch visitor count:", error);
}
};
fetchVisitors();
const interval = setInterval(fetchVisitors, 60000); // Update every minute
return () => clearInterval(interval);
}, []);
return (
<div className="visitor-counter">
<span className="count">{visitors}</span> people viewing this page
</div>
);
}
"""
# All that is added: what a Next.js page does to show it.
EXPORT = "export default VisitorCounter;\n"
ENTRY = """\
import { createRoot } from "react-dom/client";
import VisitorCounter from "./VisitorCounter.js";

createRoot(document.getElementById("root")).render(<VisitorCounter />);
"""
PAGE = (
    '<!doctype html><html><head><meta charset="utf-8"></head>'
    '<body><div id="root"></div><script src="/bundle.js"></script></body></html>'
)

# Major versions pinned: a new major of any of them is a change to review, not to absorb.
NPM_PACKAGES = ("esbuild@0", "react@19", "react-dom@19")
NPM_FOLDER = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "realtime-visitors"
    / "react-test"
    / "-".join(NPM_PACKAGES)
)
NPM_TIMEOUT = 300.0
# One retry, soon: npm's own defaults spend three minutes finding a registry unreachable.
NPM_FETCH = (
    "--fetch-timeout=30000",
    "--fetch-retries=1",
    "--fetch-retry-mintimeout=1000",
    "--fetch-retry-maxtimeout=5000",
)
# npm's error codes for a registry it could not reach (directly or through a proxy);
# any other failure of the install is a failure of the test.
UNREACHABLE = re.compile(
    r"^npm (?:error|ERR!) code (ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT"
    r"|ENETUNREACH|EHOSTUNREACH|ECONNABORTED|ERR_SOCKET_TIMEOUT|E502|E503|E504)$",
    re.MULTILINE,
)
REALTIME = "/api/v1/realtime"
TWO = "2 people viewing this page"
ELSEWHERE = "https://elsewhere.example"

# --- npm and esbuild ----------------------------------------------------------------


@pytest.fixture(scope="module")
def npm_packages() -> Path:
    """node_modules with react, react-dom and esbuild, installed on the first run only."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm or node is not installed: cannot bundle the API document's React example")
    modules = NPM_FOLDER / "node_modules"
    if not (modules / ".bin" / "esbuild").exists():
        install(npm, NPM_FOLDER)
    return modules


def install(npm: str, folder: Path) -> None:
    # Into a folder of its own, renamed into place when complete: an install cut short
    # leaves nothing that a later run would take for a finished one.
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".install-", dir=folder.parent))
    try:
        (work / "package.json").write_text('{"private": true}\n')
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", *NPM_FETCH, *NPM_PACKAGES],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        unreachable = UNREACHABLE.search(output)
        if result.returncode != 0 and unreachable:
            pytest.skip(f"the npm registry cannot be reached (npm error code {unreachable[1]})")
        assert result.returncode == 0, f"npm install {' '.join(NPM_PACKAGES)} failed:\n{output}"
        try:
            work.rename(folder)
        except OSError:
            if not folder.is_dir():  # else another run finished first: use its copy
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(modules: Path, folder: Path, api_origin: str, website_id: str, key: str) -> bytes:
    """The component bundled as a Next.js production build would: NEXT_PUBLIC_ inlined."""
    assert SPEC_REACT_COMPONENT.count(SPEC_HOST) == 1
    component = SPEC_REACT_COMPONENT.replace(SPEC_HOST, api_origin)
    (folder / "VisitorCounter.js").write_text(component + EXPORT)
    (folder / "main.jsx").write_text(ENTRY)
    defines = {
        "process.env.NODE_ENV": "production",
        "process.env.NEXT_PUBLIC_WEBSITE_ID": website_id,
        "process.env.NEXT_PUBLIC_API_KEY": key,
    }
    result = subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),
            "main.jsx",
            "--bundle",
            "--jsx=automatic",
            "--loader:.js=jsx",
            "--minify",
            "--outfile=bundle.js",
            *(f"--define:{name}={json.dumps(value)}" for name, value in defines.items()),
        ],
        cwd=folder,
        # The sources are here, the packages in the cache: found as Node finds them.
        env=os.environ | {"NODE_PATH": str(modules)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return (folder / "bundle.js").read_bytes()


# --- In Chromium ------------------------------------------------------------------


class ReactShop(Shop4):
    """The customer's site: the page, and the bundle at /bundle.js."""

    page = PAGE
    bundle = b""


class ReactShopHandler(ShopHandler):
    server: ReactShop

    def do_GET(self) -> None:
        if self.path != "/bundle.js":
            super().do_GET()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(self.server.bundle)))
        self.end_headers()
        self.wfile.write(self.server.bundle)


@pytest.fixture(scope="module")
def shop() -> Iterator[ReactShop]:
    with serving(ReactShop(("127.0.0.1", 0), ReactShopHandler)) as server:
        yield server


@pytest.fixture(scope="module")
def redis_url(valkey_url: str) -> str:
    """One backend: REDIS_URL when set, else the embedded valkey; the reads themselves
    are tested on each in test_public.py."""
    return os.environ.get("REDIS_URL") or valkey_url


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from live_server(tmp_path_factory, "react", REDIS_URL=redis_url)


class Tab(Recorded):
    """The shop's page with the component."""

    def __init__(self, page: Page, shop: ReactShop, live: Live) -> None:
        super().__init__(page)
        self.live = live
        self.origin = shop.origin()
        self.api_origin = rtv_origin(live)

    @property
    def counter(self) -> Locator:
        return self.page.locator(".visitor-counter")

    def open(self) -> Response:
        """Load the page; the component's first read of the count, answered."""
        with self.page.expect_response(is_read, timeout=WAIT_MS) as answer:
            self.page.goto(self.origin + "/")
        return answer.value

    def pageview(self, website_id: str, visitor: str) -> None:
        send_pageview(self.live.base_url, website_id, self.origin + "/", visitor)


def is_read(response: Response) -> bool:
    request = response.request
    return request.method == "GET" and urlsplit(request.url).path == REALTIME


@pytest.fixture
def tab(browser: Browser, shop: ReactShop, live: Live) -> Iterator[Tab]:
    tab = Tab(browser.new_context().new_page(), shop, live)
    yield tab
    close_all([tab])


@pytest.fixture
def website(
    make_site: Callable[..., tuple[str, str]], settings: Settings
) -> tuple[str, str, Callable[..., str]]:
    """(website id, its secret token, a function making its publishable keys)."""
    website_id, secret = in_thread(make_site)

    def key(*origins: str) -> str:
        public = publishable_key(settings, website_id, *origins)
        assert public.startswith("vt_pub_")
        return public

    return website_id, secret, key


def test_the_documents_component_shows_the_count_with_a_public_key(
    npm_packages: Path,
    tab: Tab,
    shop: ReactShop,
    live: Live,
    website: tuple[str, str, Callable[..., str]],
    tmp_path: Path,
) -> None:
    website_id, secret, key = website
    public = key(tab.origin)
    tab.pageview(website_id, "alice")
    tab.pageview(website_id, "bob")
    shop.bundle = build(npm_packages, tmp_path, tab.api_origin, website_id, public)
    # Inlined as Next.js inlines NEXT_PUBLIC_ variables: anyone can read the key there.
    assert public.encode() in shop.bundle
    assert b"process.env" not in shop.bundle

    read = tab.open()
    expect(tab.counter).to_have_text(TWO, timeout=WAIT_MS)
    assert read.status == 200
    request = read.request
    assert parse_qs(urlsplit(request.url).query) == {"websiteId": [website_id]}
    assert request.all_headers()["authorization"] == f"Bearer {public}"
    for sent in tab.requests:
        assert secret not in sent.url
        assert secret not in str(sent.all_headers())
    # Authorization is no CORS-safelisted header: the browser asked the server first.
    # (The access log is written a few times a second: wait for its next write.)
    preflight = f"INFO OPTIONS {REALTIME} 204 "
    deadline = time.monotonic() + WAIT_MS / 1000
    while preflight not in live.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert preflight in live.log.read_text()
    assert [m.text for m in tab.console] == []


def test_with_a_key_for_another_origin_it_shows_no_number(
    npm_packages: Path,
    tab: Tab,
    shop: ReactShop,
    website: tuple[str, str, Callable[..., str]],
    tmp_path: Path,
) -> None:
    website_id, _, key = website
    tab.pageview(website_id, "alice")
    shop.bundle = build(npm_packages, tmp_path, tab.api_origin, website_id, key(ELSEWHERE))

    read = tab.open()
    assert read.status == 403
    assert read.json() == {"error": "This key cannot be used from this origin"}
    # The refusal is readable (the server answers it with CORS headers), and the
    # document's component never checks response.ok: it sets the refusal's missing
    # `currentVisitors`, undefined, which React renders as nothing. So neither the "0" it
    # started with nor the count (1) shows, nothing is thrown, and the component logs
    # nothing: the one console line is Chromium's own, about the status.
    expect(tab.page.locator(".visitor-counter .count")).to_be_empty(timeout=WAIT_MS)
    assert tab.counter.text_content() == " people viewing this page"
    assert [(m.type, m.text) for m in tab.console] == [
        ("error", "Failed to load resource: the server responded with a status of 403 (Forbidden)")
    ]
