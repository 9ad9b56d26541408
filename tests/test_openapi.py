"""GET /openapi.json: served, valid OpenAPI 3.1, in step with the code, and kept by the app.

The last test is Schemathesis against the live app (the embedded Valkey, and REDIS_URL
when set), the admin API enabled: over a thousand generated requests, each answered
without a 5xx and as the document says, status code, content type, headers and body.
All but the stream's: a stream that works never ends, so its refusals are checked here
one by one instead.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from realtime_visitors.admin import NotFound, Sites
from realtime_visitors.app import create_app
from realtime_visitors.config import DEFAULT_PLANS, Settings
from realtime_visitors.http import admin, fastlane, public, routes, stream
from realtime_visitors.http.openapi import PUBLIC_KEY, TOKEN_ID, WEBSITE_ID, document
from realtime_visitors.storage import keys, tokens

from .conftest import run_admin, unique_id

Site = Callable[..., tuple[str, str]]
Answer = tuple[str, str, int, str | None]  # method, path, status, error message

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A route's own answers, by the class that answers it.
ENDPOINTS = {
    ("GET", "/api/v1/realtime"): "Realtime",
    ("POST", "/api/v1/pageview"): "Pageview",
    ("GET", "/api/v1/realtime/breakdown"): "Breakdown",
    ("GET", "/api/v1/realtime/history"): "History",
}
# Served in front of Starlette's stack (fastlane.py).
FAST = {("GET", "/api/v1/realtime"), ("POST", "/api/v1/pageview")}
# The reads' shared answers come from their base class, and from public.py for a
# publishable key.
READS = {"Realtime", "Breakdown", "History"}
STREAM = ("GET", "/api/v1/realtime/stream")
ADMIN_TOKEN = "admin-0123456789abcdef-secret"
METRICS_TOKEN = "metrics-0123456789abcdef-secret"
# Served only with RTV_ADMIN_TOKEN set.
ADMIN = {
    ("POST", admin.WEBSITES),
    ("GET", admin.WEBSITES),
    ("GET", admin.WEBSITE),
    ("PATCH", admin.WEBSITE),
    ("DELETE", admin.WEBSITE),
    ("POST", admin.TOKENS),
    ("GET", admin.TOKENS),
    ("DELETE", admin.TOKEN),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Generated requests per operation and mode; operations without parameters stop
# after their one distinct request.
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
EXAMPLES = {
    ("GET", "/api/v1/realtime", POSITIVE): 420,
    ("GET", "/api/v1/realtime", NEGATIVE): 200,
    ("POST", "/api/v1/pageview", POSITIVE): 380,
    ("POST", "/api/v1/pageview", NEGATIVE): 200,
    ("GET", "/api/v1/realtime/breakdown", POSITIVE): 150,
    ("GET", "/api/v1/realtime/breakdown", NEGATIVE): 60,
    ("GET", "/api/v1/realtime/history", POSITIVE): 120,
    ("GET", "/api/v1/realtime/history", NEGATIVE): 60,
    # The admin API: about 300 requests in all.
    ("POST", admin.WEBSITES, POSITIVE): 50,
    ("POST", admin.WEBSITES, NEGATIVE): 25,
    ("GET", admin.WEBSITES, POSITIVE): 12,
    ("GET", admin.WEBSITE, POSITIVE): 25,
    ("GET", admin.WEBSITE, NEGATIVE): 8,
    ("PATCH", admin.WEBSITE, POSITIVE): 40,
    ("PATCH", admin.WEBSITE, NEGATIVE): 20,
    ("DELETE", admin.WEBSITE, POSITIVE): 25,
    ("DELETE", admin.WEBSITE, NEGATIVE): 8,
    ("POST", admin.TOKENS, POSITIVE): 20,
    ("POST", admin.TOKENS, NEGATIVE): 8,
    ("GET", admin.TOKENS, POSITIVE): 20,
    ("GET", admin.TOKENS, NEGATIVE): 8,
    ("DELETE", admin.TOKEN, POSITIVE): 30,
    ("DELETE", admin.TOKEN, NEGATIVE): 10,
}
# Where a positive request goes: a real website with its token (sometimes as a
# repeated or empty id), a well-formed id of no website, one with a 3-request
# budget, one sent only wrong tokens, the website with a publishable key (the count:
# 200; another read: 403) or one bound to an origin (403 from any other), or as
# generated (malformed ids and tokens).
REALTIME_TARGETS = (
    ["site"] * 8
    + ["repeated", "empty", "unknown"]
    + ["limited", "guarded"] * 2
    + ["public", "bound"]
    + ["as is"] * 4
)
# Six reads in sixteen go to these targets in turn, whatever was drawn, so that each
# read meets 429 (a spent budget, wrong tokens), 403 (a publishable key from another
# origin, or for another read), 404 and 400 in every run however Hypothesis leans.
FORCED = {0: "limited", 1: "guarded", 2: "bound", 3: "public", 4: "unknown", 5: "empty"}
ROTATION = 16
SHOP, ELSEWHERE = "https://shop.example", "https://elsewhere.example"
WRONG_TOKENS = st.from_regex(r"vt_[A-Za-z0-9_-]{1,43}", fullmatch=True)
PAGEVIEW_TARGETS = ["site"] * 6 + ["too large"] + ["as is"] * 3
# Who calls the admin API when the operator does not: no header, another scheme, a
# wrong token or a website's own token.
OTHER_CALLERS = ["missing", "basic", "wrong", "website"]
# Where a positive admin request goes: a known website (with its tokens, a configured
# plan, an id that is new or exists) or as generated (unknown websites and tokens,
# plans that are not configured).
ADMIN_TARGETS = ["known"] * 3 + ["as is"] * 2
MIN_REQUESTS = 1000
PLANS = {**DEFAULT_PLANS, "tiny": 3}


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def documented_statuses(method: str, path: str) -> set[int]:
    return {int(code) for code in document()["paths"][path][method.lower()]["responses"]}


def test_served_document_is_the_module_document(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json() == document()


def test_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(doc).validate()  # the OpenAPI 3.1 meta-schema
    # And each schema in it against JSON Schema 2020-12, the dialect of OpenAPI 3.1.
    for found in [*schemas_in(doc), *doc["components"]["schemas"].values()]:
        jsonschema_rs.meta.validate(found)


def schemas_in(node: Any) -> Iterator[Any]:
    """The schemas of parameters, bodies, responses and headers."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "schema":
                yield value
            yield from schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from schemas_in(value)


def served_operations(app: Any) -> set[tuple[str, str]]:
    assert isinstance(app, fastlane.FastLane)
    assert isinstance(app.app, Starlette)
    served: set[tuple[str, str]] = set()
    for route in app.app.routes:
        assert isinstance(route, Route)
        assert route.methods
        # Starlette answers HEAD wherever GET is routed: GET without a body.
        implied = {"HEAD"} if "GET" in route.methods else set()
        served |= {(method, route.path) for method in route.methods - implied}
    assert set(app.routes) <= served  # the fast lane serves routed operations only
    assert set(app.routes) == FAST
    return served


def test_document_and_routes_agree() -> None:
    never = "redis://127.0.0.1:1/0"  # never connects
    documented = documented_operations(document())
    enabled = create_app(
        Settings(redis_url=never, admin_token=ADMIN_TOKEN, metrics_token=METRICS_TOKEN)
    )
    assert served_operations(enabled) == documented
    # Without RTV_ADMIN_TOKEN and RTV_METRICS_TOKEN, their operations and only they are
    # not served.
    bare = create_app(Settings(redis_url=never))
    assert served_operations(bare) == documented - ADMIN - {("GET", "/metrics")}


def test_the_admin_operations_are_those_documented_as_admin() -> None:
    doc = document()
    tagged = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if operation.get("tags") == ["admin"]
    }
    assert tagged == ADMIN
    assert {path for _, path in ADMIN} == {p for p in doc["paths"] if p.startswith(admin.PREFIX)}
    for method, path in ADMIN:
        operation = doc["paths"][path][method.lower()]
        assert operation["security"] == [{"admin": []}]
        assert "RTV_ADMIN_TOKEN" in operation["description"]


def test_documented_token_id_is_the_one_made() -> None:
    assert re.fullmatch(TOKEN_ID, tokens.new_token_id())


def respond_calls(module: Any) -> Iterator[tuple[str | None, ast.Call]]:
    """Every `respond(send, status, ...)` call of a module, with its top-level class."""
    for node in ast.parse(inspect.getsource(module)).body:
        owner = node.name if isinstance(node, ast.ClassDef) else None
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "respond":
                yield owner, call


def answered_statuses(module: Any, owner: str) -> set[int]:
    statuses = set()
    for found_in, call in respond_calls(module):
        status = call.args[1]
        # A computed status could be anything: the test could not hold it to the document.
        assert isinstance(status, ast.Constant), ast.unparse(call)
        assert isinstance(status.value, int)
        if found_in == owner:
            statuses.add(status.value)
    return statuses


@pytest.mark.parametrize(("method", "path"), list(ENDPOINTS))
def test_every_status_the_code_answers_is_documented(method: str, path: str) -> None:
    owner = ENDPOINTS[(method, path)]
    # Every answer of routes.py comes from one of its endpoint classes.
    classes = {*ENDPOINTS.values(), "Read"}
    assert {found_in for found_in, _ in respond_calls(routes)} <= classes
    from_route = answered_statuses(routes, owner)
    if owner in READS:
        from_route |= answered_statuses(routes, "Read") | public_statuses()
    # The fast lane adds 503 when Redis fails; its 500 is an unexpected error, a bug
    # that the Schemathesis test below would report, never a documented answer.
    from_lane = answered_statuses(fastlane, "FastLane") - {500}
    assert from_route | from_lane == documented_statuses(method, path)


def public_statuses() -> set[int]:
    """What a read answers a publishable key it refuses: public.py's answers, all of
    them from PublicReads."""
    assert {found_in for found_in, _ in respond_calls(public)} == {"PublicReads"}
    return answered_statuses(public, "PublicReads")


def test_the_stream_refuses_what_the_document_says() -> None:
    # The stream is the realtime read answered with events: it refuses as Read,
    # Realtime and public.py do, and answers nothing of its own but the stream, in
    # place of Read.answer's 200.
    assert issubclass(stream.Stream, routes.Realtime)
    assert list(respond_calls(stream)) == []
    assert "answer" in vars(stream.Stream)
    answered = answered_statuses(routes, "Read") | answered_statuses(routes, "Realtime")
    refusals = (answered | public_statuses()) - {200}
    # And 503, from app.py's StorageError handler (the stream is not in the fast lane).
    assert refusals == documented_statuses(*STREAM) - {200, 503} == {400, 401, 403, 404, 429}


def test_the_stream_refusals_are_the_documented_answers(
    settings: Settings, make_site: Site, make_client: Callable[..., TestClient]
) -> None:
    website_id, secret = make_site()
    key = run_admin(settings, lambda sites: sites.create_token(website_id, True)).token
    bound = run_admin(settings, lambda sites: sites.create_token(website_id, True, [SHOP])).token
    assert re.fullmatch(PUBLIC_KEY, key)
    site, unknown = {"websiteId": website_id}, {"websiteId": unique_id("nosite"), "key": key}
    # Refusals only: a stream that opens does not end.
    cases: list[tuple[dict[str, str], dict[str, str], int, bytes | str]] = [
        ({**site, "key": secret}, {}, 400, routes.SECRET_IN_QUERY),
        ({"key": key}, {}, 400, routes.MISSING_ID),
        ({**site, "key": key, "path": "pricing"}, {}, 400, "path must start with /"),
        (site, {}, 401, routes.AUTH_ERROR),
        ({**site, "key": "vt_pub_" + "x" * 43}, {}, 401, routes.INVALID_TOKEN),
        (site, {"Authorization": "Bearer vt_wrong"}, 401, routes.INVALID_TOKEN),
        ({**site, "key": bound}, {"Origin": ELSEWHERE}, 403, public.WRONG_ORIGIN),
        (unknown, {}, 404, routes.NOT_FOUND),
        # The address's fourth read by publishable key within the minute.
        (unknown, {}, 429, routes.RATE_LIMITED),
    ]
    client = make_client(peer="192.0.2.7", public_reads_per_minute=3)
    answers = [(client.get(STREAM[1], params=q, headers=h), s, m) for q, h, s, m in cases]
    # Redis down as the stream would start: 503, from app.py.
    down = make_client(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2)
    answers.append((down.get(STREAM[1], params={**site, "key": key}), 503, fastlane.UNAVAILABLE))
    documented = document()["paths"][STREAM[1]]["get"]["responses"]
    for response, status, error in answers:
        assert (response.status_code, response.json()) == (status, {"error": message(error)})
        assert response.headers["content-type"] == "application/json"
        answer = documented[str(status)]
        jsonschema_rs.validate(answer["content"]["application/json"]["schema"], response.json())
        for name, header in answer["headers"].items():
            values = response.headers.get_list(name)
            assert values or not header["required"], name
            for value in values:
                jsonschema_rs.validate(header["schema"], header_value(value))


def message(error: bytes | str) -> str:
    """The message of an error body rendered ahead, or the message itself."""
    return error if isinstance(error, str) else str(orjson.loads(error)["error"])


def header_value(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def test_documented_website_id_is_the_key_schema() -> None:
    assert f"^{keys.WEBSITE_ID.pattern}$" == WEBSITE_ID


@pytest.fixture
def live_app(settings: Settings) -> Iterator[Any]:
    # Schemathesis serves the app in its own event loop, lifespan included; the store's
    # connection belongs to that loop, so the app is this test's alone.
    # Without the limit on reads by publishable key (test_public.py tests it): most of
    # them must reach the key's checks, so that 403 comes up in every run.
    config = replace(settings, plans=PLANS, admin_token=ADMIN_TOKEN, public_reads_per_minute=0)
    app = create_app(config)
    yield app
    asgi.shutdown_lifespans()


@pytest.mark.slow
def test_schemathesis_against_the_live_app(
    live_app: Any, make_site: Site, settings: Settings
) -> None:
    site, token = make_site("enterprise")  # 200 all along
    limited, limited_token = make_site("tiny", config=replace(settings, plans=PLANS))
    guarded, _ = make_site()
    public_keys = {
        "public": run_admin(settings, lambda sites: sites.create_token(site, True)).token,
        "bound": run_admin(settings, lambda sites: sites.create_token(site, True, [SHOP])).token,
    }
    # The admin API's: one website and its spare tokens, and websites to delete.
    owner, _ = make_site()
    spare = run_admin(settings, lambda sites: new_token_ids(sites, owner, 6))
    doomed = [make_site()[0] for _ in range(6)]

    reads = itertools.count()

    def realtime(case: Any, data: st.DataObject) -> None:
        # All drawn every time, whatever FORCED says: as for the admin caller below.
        drawn = data.draw(st.sampled_from(REALTIME_TARGETS))
        scheme = data.draw(st.sampled_from(["Bearer", "bearer", "BEARER"]))
        wrong_token = data.draw(WRONG_TOKENS)
        in_query = data.draw(st.booleans())
        origin = data.draw(st.sampled_from([None, ELSEWHERE, SHOP]))
        target = FORCED.get(next(reads) % ROTATION, drawn)
        window = case.query.get("window")
        if target in ("site", "public", "bound") and isinstance(window, int):
            # The document cannot say the configured window: most asks stay within it.
            case.query["window"] = window % (settings.window_seconds + 20) + 1
        if target in ("site", "repeated", "empty"):
            case.query["websiteId"] = {"site": site, "repeated": [site, site], "empty": ""}[target]
            case.headers["Authorization"] = f"{scheme} {token}"
        elif target in ("public", "bound"):  # in key= or in the header, from an origin
            case.query["websiteId"] = site
            case.query.pop("key", None)
            case.headers.pop("Authorization", None)
            if in_query:
                case.query["key"] = public_keys[target]
            else:
                case.headers["Authorization"] = f"{scheme} {public_keys[target]}"
            if origin:
                case.headers["Origin"] = origin
        elif target == "limited":  # 200 until its budget is spent, then 429 with X-RateLimit-*
            case.query["websiteId"] = limited
            case.headers["Authorization"] = f"{scheme} {limited_token}"
        elif target == "guarded":  # well-formed wrong tokens: 401, then 429 for a minute
            case.query["websiteId"] = guarded
            case.headers["Authorization"] = f"{scheme} {wrong_token}"
        elif target == "unknown":  # a well-formed id of no website: 404
            case.query["websiteId"] = unique_id("nosite")
            case.headers["Authorization"] = f"{scheme} {token}"

    def pageview(case: Any, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(PAGEVIEW_TARGETS))
        if target != "as is":
            case.body["websiteId"] = site
        if target == "too large":
            case.body["url"] = "https://my-site.example/" + "x" * routes.MAX_BODY

    calls = itertools.count()

    def admin_caller(case: Any, data: st.DataObject) -> None:
        # Every third call comes from someone else (401), so that each operation meets
        # one however Hypothesis leans in its draws; the others from the operator. Both
        # are drawn every time: Hypothesis wants the same draws whatever the counter says.
        other = data.draw(st.sampled_from(OTHER_CALLERS))
        scheme = data.draw(st.sampled_from(["Bearer", "bearer"]))
        caller = "admin" if next(calls) % 3 else other
        case.headers = case.headers or {}
        case.headers.pop("Authorization", None)
        if caller != "missing":
            case.headers["Authorization"] = {
                "admin": f"{scheme} {ADMIN_TOKEN}",
                "basic": f"Basic {ADMIN_TOKEN}",
                "wrong": f"Bearer {ADMIN_TOKEN}x",
                "website": f"Bearer {token}",
            }[caller]

    creations, tokens_made = itertools.count(), itertools.count()

    def admin_target(case: Any, data: st.DataObject) -> None:
        admin_caller(case, data)
        if data.draw(st.sampled_from(ADMIN_TARGETS)) == "as is":
            return
        operation = (case.method.upper(), case.path)
        if "websiteId" in case.path_parameters:
            doomed_or_owner = doomed if operation == ("DELETE", admin.WEBSITE) else [owner]
            case.path_parameters["websiteId"] = data.draw(st.sampled_from(doomed_or_owner))
        if "tokenId" in case.path_parameters:  # revoked the first time, then 404
            case.path_parameters["tokenId"] = data.draw(st.sampled_from(spare))
        # An aimed plan change always names a configured plan, so that 200 comes up
        # in every run; unaimed ones bring the unknown plans (400).
        is_update = operation == ("PATCH", admin.WEBSITE)
        has_plan = is_update or operation == ("POST", admin.WEBSITES)
        if isinstance(case.body, dict) and has_plan and (is_update or data.draw(st.booleans())):
            case.body["plan"] = data.draw(st.sampled_from(list(PLANS)))
        if operation == ("POST", admin.TOKENS) and isinstance(case.body, dict):
            # Every fourth aimed token asks origins for a secret token (400), and the
            # next a publishable key bound to one (201), however Hypothesis leans.
            turn = next(tokens_made) % 4
            if turn < 2:
                case.body.clear()
                case.body.update(origins=[SHOP], **({"public": True} if turn else {}))
        if operation == ("POST", admin.WEBSITES) and isinstance(case.body, dict):
            # Every fourth aimed creation reuses an existing id, with a valid plan, so
            # that 409 comes up however Hypothesis leans in its draws.
            if next(creations) % 4 == 0:
                case.body.update(websiteId=owner, plan="free")
            else:
                case.body["websiteId"] = unique_id("fuzz")

    aim = {
        "/api/v1/realtime": realtime,
        "/api/v1/pageview": pageview,
        "/api/v1/realtime/breakdown": realtime,
        "/api/v1/realtime/history": realtime,
        **{path: admin_target for _, path in ADMIN},
    }
    created: list[str] = []  # by the admin API, deleted at the end
    # Loaded from the module: loaded from /openapi.json, Schemathesis would leave out
    # that operation (test_served_document_is_the_module_document compares the two).
    schema = schemathesis.openapi.from_dict(document())
    schema.app = live_app
    answered: Counter[Answer] = Counter()
    started = time.monotonic()
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            method, path = operation.method.upper(), operation.path
            if (method, path) == STREAM:
                # A stream that opens never ends: the refusal tests above check it.
                continue
            examples = EXAMPLES.get((method, path, POSITIVE), 10)
            answered += fuzz(operation, POSITIVE, examples, aim.get(path), created)
            # Operations without parameters have no invalid request to make. An invalid
            # admin request is sent as generated, but mostly by the operator.
            if (method, path, NEGATIVE) in EXAMPLES:
                negative_aim = admin_caller if (method, path) in ADMIN else None
                examples = EXAMPLES[(method, path, NEGATIVE)]
                answered += fuzz(operation, NEGATIVE, examples, negative_aim, created)
    finally:
        run_admin(settings, lambda sites: delete_all(sites, created))
    elapsed = time.monotonic() - started

    lines = sorted(
        f"{method} {path} {status} {error or ''}: {n}"
        for (method, path, status, error), n in answered.items()
    )
    report = "\n".join([f"{answered.total()} requests in {elapsed:.1f} s", *lines])
    print(report)
    assert answered.total() >= MIN_REQUESTS, report
    by_status = Counter({(m, path, status): n for (m, path, status, _), n in answered.items()})
    # A good share reaches the counting paths, and every documented answer comes up
    # (but 503: Redis is up).
    assert by_status[("GET", "/api/v1/realtime", 200)] >= 150, report
    assert by_status[("POST", "/api/v1/pageview", 202)] >= 200, report
    for method, path in [*ENDPOINTS, *ADMIN]:
        seen = {status for m, at, status in by_status if (m, at) == (method, path)}
        assert seen == documented_statuses(method, path) - {503}, report
    too_many = {error for _, _, status, error in answered if status == 429}
    assert too_many == {"Rate limit exceeded", "Too many failed authentication attempts"}, report
    forbidden = {error for _, _, status, error in answered if status == 403}
    assert forbidden == {message(routes.CANNOT_READ), message(public.WRONG_ORIGIN)}, report
    refused = {
        error
        for method, path, status, error in answered
        if (method, path) in ADMIN and status == 401
    }
    assert refused >= {routes.AUTH_ERROR, admin.INVALID_ADMIN_TOKEN}, report


async def new_token_ids(sites: Sites, website_id: str, n: int) -> list[str]:
    return [(await sites.create_token(website_id)).token_id for _ in range(n)]


async def delete_all(sites: Sites, website_ids: list[str]) -> None:
    for website_id in website_ids:
        with contextlib.suppress(NotFound):  # deleted by the fuzzing itself
            await sites.delete(website_id)


def fuzz(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    aim: Callable[[Any, st.DataObject], None] | None,
    created: list[str],
) -> Counter[Answer]:
    """Up to `examples` generated requests, each checked; how many got which answer.
    The websites the admin API created go to `created`."""
    answered: Counter[Answer] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any, data: st.DataObject) -> None:
        if aim is not None:
            aim(case, data)
        response = case.call_and_validate(checks=CHECKS)
        # Not JSON: the browser files and the answers without content.
        is_json = response.headers.get("content-type") == ["application/json"]
        body = response.json() if is_json else None
        error = body.get("error") if isinstance(body, dict) else None
        answered[(case.method.upper(), case.path, response.status_code, error)] += 1
        if (case.path, response.status_code) == (admin.WEBSITES, 201):
            assert isinstance(body, dict)
            created.append(body["websiteId"])

    run()
    return answered
