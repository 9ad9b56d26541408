"""The real server over real HTTP: `realtime-visitors serve` driven by the spec's own clients."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from realtime_visitors.storage import embedded

CLI = Path(sys.executable).parent / "realtime-visitors"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
SPEC_HOST = "https://versatailor.com"

# Copied verbatim from the API document ("Node.js Server"); only SPEC_HOST is replaced.
SPEC_NODE_FUNCTION = """\
async function getCurrentVisitors(websiteId, apiKey) {
try {
const response = await fetch(
`https://versatailor.com/api/v1/realtime?websiteId=${websiteId}`,
{
headers: {
Authorization: `Bearer ${apiKey}`,
"Content-Type": "application/json",
},
}
);
if (!response.ok) {
throw new Error(`HTTP error! status: ${response.status}`);
}
const data = await response.json();
return data.currentVisitors;
} catch (error) {
console.error("Error fetching visitor count:", error);
return null;
}
}
"""
NODE_CALL = """
const result = await getCurrentVisitors(process.argv[2], process.argv[3]);
console.log(JSON.stringify(result));
"""


@dataclass
class Live:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, signum: int = signal.SIGTERM) -> int | None:
        """SIGTERM, as a service manager sends it; the exit code, or None if it hung."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(log: Path, port: int | None = None, workers: int = 1, **env: str) -> Live:
    """`realtime-visitors serve` on `port` (a free one by default), with this environment;
    its stdout and stderr both in `log`."""
    assert CLI.is_file(), f"{CLI} missing: install the project into this virtualenv"
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("RTV_")}
    port = port or free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port), "--workers", str(workers)],
            env=base | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    live = Live(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(live.base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            live.stop()
            pytest.fail(f"the server did not start; its output:\n{log.read_text()}")
        time.sleep(0.05)
    return live


def answers(base_url: str) -> bool:
    try:
        response = httpx.get(f"{base_url}/api/v1/realtime", timeout=1.0)
    except httpx.TransportError:
        return False
    # Our API refuses a request without a token; anything else is not our server.
    return response.status_code == 401


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = serve(tmp_path_factory.mktemp("live") / "serve.log", REDIS_URL=redis_url)
    yield server
    server.stop()


@pytest.fixture
def site(make_site: Callable[..., tuple[str, str]], live: Live) -> tuple[str, str]:
    """A website with one visitor counted through the live server."""
    website_id, token = make_site()
    response = httpx.post(
        f"{live.base_url}/api/v1/pageview", json={"websiteId": website_id, "visitorId": "v1"}
    )
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "counted": True}
    return website_id, token


def test_spec_curl_returns_the_current_visitors(live: Live, site: tuple[str, str]) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    website_id, token = site
    result = subprocess.run(
        [
            curl,
            f"{live.base_url}/api/v1/realtime?websiteId={website_id}",
            "-H",
            f"Authorization: Bearer {token}",
        ],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["currentVisitors"] == 1
    assert body["websiteId"] == website_id


def run_spec_node_function(
    live: Live, tmp_path: Path, website_id: str, api_key: str
) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot run the spec's Node.js example")
    assert SPEC_NODE_FUNCTION.count(SPEC_HOST) == 1
    script = tmp_path / "visitors.mjs"
    script.write_text(SPEC_NODE_FUNCTION.replace(SPEC_HOST, live.base_url) + NODE_CALL)
    return subprocess.run(
        [node, str(script), website_id, api_key],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_spec_node_function_returns_the_current_visitors(
    live: Live, site: tuple[str, str], tmp_path: Path
) -> None:
    website_id, token = site
    result = run_spec_node_function(live, tmp_path, website_id, token)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 1


def test_spec_node_function_returns_null_for_a_wrong_key(
    live: Live, site: tuple[str, str], tmp_path: Path
) -> None:
    website_id, _ = site
    result = run_spec_node_function(live, tmp_path, website_id, "vt_wrong")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is None
    assert "HTTP error! status: 401" in result.stderr


def test_spec_browser_fetch_passes_cors(live: Live, site: tuple[str, str]) -> None:
    website_id, token = site
    origin = "https://customer.example"
    url = f"{live.base_url}/api/v1/realtime?websiteId={website_id}"
    preflight = httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.is_success, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", origin)
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower().split(", ")
    assert "authorization" in allowed
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]

    fetched = httpx.get(url, headers={"Origin": origin, "Authorization": f"Bearer {token}"})
    assert fetched.status_code == 200
    assert fetched.headers["Access-Control-Allow-Origin"] in ("*", origin)
    assert fetched.json()["currentVisitors"] == 1


def test_sigterm_stops_the_server_with_exit_code_0(redis_url: str, tmp_path: Path) -> None:
    server = serve(tmp_path / "serve.log", REDIS_URL=redis_url)
    assert httpx.get(f"{server.base_url}/api/v1/realtime").status_code == 401
    assert server.stop() == 0, server.log.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_also_stops_the_embedded_store(tmp_path: Path, signum: int) -> None:
    # SIGHUP is what closing the terminal sends.
    socket_path = tmp_path / embedded.SOCKET_NAME
    server = serve(tmp_path / "serve.log", RTV_DATA_DIR=str(tmp_path))
    assert embedded.is_alive(socket_path)
    assert httpx.get(f"{server.base_url}/api/v1/realtime").status_code == 401
    code = server.stop(signum)
    orphaned = embedded.is_alive(socket_path)
    if orphaned:  # stop what the failure left behind before reporting it
        with redis.Redis(unix_socket_path=str(socket_path)) as client:
            client.shutdown(nosave=True)
    assert code == 0, server.log.read_text()
    assert not orphaned, "the embedded valkey-server outlived `serve`"


# The document's "JavaScript Fetch" example, verbatim but for the host.
SPEC_FETCH_SNIPPET = """\
fetch("https://versatailor.com/api/v1/realtime?websiteId=your_website_id", {
headers: {
Authorization: "Bearer vt_your_api_token_here",
},
})
.then((response) => response.json())
.then((data) => console.log(data));
"""
# Records what the snippet logs where --dump-dom can show it.
CAPTURE_CONSOLE = """\
console.log = (data) => document.body.setAttribute("data-logged", JSON.stringify(data));
"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
    "--dump-dom",
]


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static server on another port: another origin, as a customer's site is."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            httpx.get(base, timeout=1.0)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the page server did not start"
            time.sleep(0.05)
    yield base, tmp_path
    process.terminate()
    process.wait()


def test_spec_fetch_runs_in_a_browser_from_another_origin(
    live: Live, site: tuple[str, str], page_server: tuple[str, Path]
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed: cannot run the spec's browser example")
    website_id, token = site
    base, folder = page_server
    snippet = (
        SPEC_FETCH_SNIPPET.replace(SPEC_HOST, live.base_url)
        .replace("your_website_id", website_id)
        .replace("vt_your_api_token_here", token)
    )
    (folder / "index.html").write_text(
        f"<!doctype html><html><body><script>{CAPTURE_CONSOLE}{snippet}</script></body></html>"
    )
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'profile'}", f"{base}/index.html"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    logged = result.stdout.partition('data-logged="')[2].partition('"')[0]
    assert logged, f"the page logged nothing; chromium said:\n{result.stderr[-2000:]}"
    data = json.loads(logged.replace("&quot;", '"'))
    assert data["currentVisitors"] == 1
    assert data["websiteId"] == website_id
