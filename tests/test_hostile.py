"""Hostile and malformed input: always a clear 4xx JSON error, never a write.

Each case runs against a website that exists, so that a mistake in parsing would
have somewhere to write; the test compares every key of that website before and
after.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from .test_live_server import Live, serve

Site = Callable[..., tuple[str, str]]


def snapshot(raw: redis.Redis, website_id: str) -> dict[str, object]:
    state: dict[str, object] = {}
    for key in raw.scan_iter(match=f"*{{{website_id}}}*"):
        kind = raw.type(key)
        if kind == "hash":
            state[key] = raw.hgetall(key)
        elif kind == "zset":
            state[key] = raw.zrange(key, 0, -1, withscores=True)
        else:
            state[key] = raw.get(key)
    return state


def assert_clear_error(status: int, content_type: str, body: bytes) -> None:
    assert 400 <= status < 500, (status, body[:200])
    assert content_type.startswith("application/json")
    assert set(json.loads(body)) == {"error"}


@pytest.fixture
def website(make_site: Site) -> tuple[str, str]:
    return make_site()


REALTIME_QUERIES = [
    "websiteId=%7Bsite%7D",  # braces: would close a hash tag
    "websiteId=a%20b",
    "websiteId=a%0Ab",  # newline
    "websiteId=a%00b",  # NUL
    "websiteId=%C3%A9t%C3%A9",  # unicode
    "websiteId=%257Bx%257D",  # double percent-encoding
    "websiteId=%ZZ",  # broken percent-encoding
    "websiteId=a*",  # a glob
    "websiteId=" + "a" * 65,
    "websiteId=" + "x" * 20_000,  # very long query string
    "websiteId=a&websiteId=b",
    "websiteid=a",  # the parameter is case-sensitive
    "websiteId",
    "websiteId=",
    "=&&&=",
]


@pytest.mark.parametrize("query", REALTIME_QUERIES, ids=lambda q: q[:24])
def test_bad_website_ids_are_clear_errors(
    client: TestClient, raw: redis.Redis, website: tuple[str, str], query: str
) -> None:
    website_id, token = website
    before = snapshot(raw, website_id)
    response = client.get(f"/api/v1/realtime?{query}", headers={"Authorization": f"Bearer {token}"})
    assert_clear_error(response.status_code, response.headers["content-type"], response.content)
    assert snapshot(raw, website_id) == before


def test_case_and_encoding_variants_never_reach_the_website(
    client: TestClient, raw: redis.Redis, website: tuple[str, str]
) -> None:
    website_id, token = website
    before = snapshot(raw, website_id)
    for variant in (website_id.upper(), f"{website_id}%20", f"%20{website_id}", f"{website_id}%00"):
        response = client.get(
            f"/api/v1/realtime?websiteId={variant}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 404, variant
    assert snapshot(raw, website_id) == before
    # The website itself still answers: percent-encoding of plain letters is the same id.
    encoded = "".join(f"%{ord(c):02X}" for c in website_id)
    response = client.get(
        f"/api/v1/realtime?websiteId={encoded}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer  {token}  x",
        "Bearer {token} {token}",
        "Bearer {token},{token}",
        "Bearer\t{token}",
        "Token {token}",
        "{token}",
        "Bearer vt_\u00e9",
    ],
)
def test_malformed_authorization_is_401(
    client: TestClient, raw: redis.Redis, website: tuple[str, str], header: str
) -> None:
    website_id, token = website
    before = snapshot(raw, website_id)
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}",
        headers={"Authorization": header.format(token=token).encode("utf-8")},
    )
    assert response.status_code == 401
    assert_clear_error(response.status_code, response.headers["content-type"], response.content)
    assert snapshot(raw, website_id) == before


def test_a_huge_token_is_a_failed_authentication(
    client: TestClient, raw: redis.Redis, website: tuple[str, str]
) -> None:
    website_id, _ = website
    before = snapshot(raw, website_id)
    response = client.get(
        f"/api/v1/realtime?websiteId={website_id}",
        headers={"Authorization": "Bearer " + "a" * 10_000},
    )
    assert response.json() == {"error": "Invalid API token"}
    after = snapshot(raw, website_id)
    # Only the failure counter of this client address moved; the budget did not.
    assert [key.rsplit(":", 1)[1] for key in set(after) - set(before)] == ["fails"]
    assert {key: after[key] for key in before} == before


def test_authorization_variants_that_are_fine(client: TestClient, website: tuple[str, str]) -> None:
    website_id, token = website
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER   {token} "):
        response = client.get(
            f"/api/v1/realtime?websiteId={website_id}", headers={"Authorization": header}
        )
        assert response.status_code == 200, header


def nested(depth: int) -> bytes:
    return b'{"websiteId": "x", "url": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    "body",
    [
        nested(5_000),
        b"[" * 8_000 + b"]" * 8_000,
        b'{"websiteId": {"$ne": null}}',
        b'{"websiteId": ["a", "b"]}',
        b'{"websiteId": true}',
        b'{"websiteId": "a", "visitorId": {"id": 1}}',
        b'{"websiteId": "a", "url": 1e999}',
        b'{"websiteId": "\\u0000"}',
        b'{"websiteId": "{x}"}',
        b"\xff\xfe\xfd",
        b'{"websiteId": "\xff"}',
        b"",
        b"null",
        b"x" * 20_000,
    ],
    ids=lambda b: repr(b[:20]),
)
def test_bad_pageview_bodies_are_clear_errors(
    client: TestClient, raw: redis.Redis, website: tuple[str, str], body: bytes
) -> None:
    website_id, _ = website
    before = snapshot(raw, website_id)
    keys_before = raw.dbsize()
    response = client.post("/api/v1/pageview", content=body)
    assert_clear_error(response.status_code, response.headers["content-type"], response.content)
    assert snapshot(raw, website_id) == before
    assert raw.dbsize() <= keys_before


def test_a_wrong_website_in_the_body_writes_nothing(
    client: TestClient, raw: redis.Redis, website: tuple[str, str]
) -> None:
    website_id, _ = website
    before = snapshot(raw, website_id)
    for variant in (
        website_id.upper(),
        f" {website_id}",
        f"{website_id}\n",
        "{" + website_id + "}",
    ):
        response = client.post("/api/v1/pageview", json={"websiteId": variant})
        assert response.status_code == 404, variant
    assert snapshot(raw, website_id) == before


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = serve(tmp_path_factory.mktemp("hostile") / "serve.log", REDIS_URL=redis_url)
    yield server
    server.stop()


def raw_request(live: Live, request: bytes) -> tuple[int, str, bytes]:
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = [
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= int(length[0].split(b":")[1]):
                break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


@pytest.mark.parametrize(
    "request_bytes",
    [
        # a huge header
        b"GET /api/v1/realtime?websiteId={site} HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000
        + b"\r\nConnection: close\r\n\r\n",
        # a very long query string
        b"GET /api/v1/realtime?websiteId={site}&pad=" + b"p" * 60_000
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        # non-UTF-8 bytes in the Authorization header
        b"GET /api/v1/realtime?websiteId={site} HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
        # non-UTF-8 bytes as the body
        b"POST /api/v1/pageview HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\n\xff\xfe\xfd\xfc\xfb",
        # a Content-Length over the limit is refused before the body is read
        b"POST /api/v1/pageview HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
        b"Connection: close\r\n\r\n{",
    ],
    ids=["huge-header", "long-query", "non-utf8-auth", "non-utf8-body", "huge-length"],
)  # fmt: skip
def test_raw_http_abuse_gets_json_errors(
    live: Live, raw: redis.Redis, website: tuple[str, str], request_bytes: bytes
) -> None:
    website_id, _ = website
    before = snapshot(raw, website_id)
    status, content_type, body = raw_request(
        live, request_bytes.replace(b"{site}", website_id.encode())
    )
    assert_clear_error(status, content_type, body)
    assert snapshot(raw, website_id) == before


def test_unparseable_http_is_refused_by_the_server_before_the_app(
    live: Live, raw: redis.Redis, website: tuple[str, str]
) -> None:
    """Bytes that are not HTTP (here: raw non-ASCII in the request line) never reach the
    app: uvicorn's parser answers a plain-text 400 itself, and nothing is written."""
    website_id, _ = website
    before = snapshot(raw, website_id)
    status, _, _ = raw_request(
        live,
        b"GET /api/v1/realtime?websiteId=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert status == 400
    assert snapshot(raw, website_id) == before


def test_every_response_has_nosniff_and_no_server_banner(
    live: Live, website: tuple[str, str]
) -> None:
    website_id, token = website
    with httpx.Client(base_url=live.base_url) as client:
        responses = [
            client.get(
                f"/api/v1/realtime?websiteId={website_id}",
                headers={"Authorization": f"Bearer {token}"},
            ),
            client.get("/api/v1/realtime"),
            client.post("/api/v1/pageview", json={"websiteId": website_id}),
            client.post("/api/v1/pageview", content=b"nope"),
            client.get("/healthz"),
            client.get("/readyz"),
            client.get("/no-such-path"),
            client.delete("/api/v1/realtime"),
            client.options(
                "/api/v1/realtime",
                headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
            ),
            client.get(
                f"/api/v1/realtime?websiteId={website_id}",
                headers={"Authorization": f"Bearer {token}", "Origin": "https://a.example"},
            ),
        ]
    for response in responses:
        assert response.headers.get("x-content-type-options") == "nosniff", response.request.url
        assert "server" not in response.headers
        assert "access-control-allow-credentials" not in response.headers
