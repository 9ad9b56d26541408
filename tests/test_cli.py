"""The click commands, run in-process against the suite's Redis backends."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from realtime_visitors.cli import main
from realtime_visitors.storage.keys import site_keys

from .conftest import unique_id

TOKEN = re.compile(r"vt_[A-Za-z0-9_-]{43,}")
ISO_SECOND = "%Y-%m-%dT%H:%M:%SZ"

Cli = Callable[..., Result]
NewSite = Callable[..., tuple[str, str]]


@pytest.fixture
def cli(redis_url: str) -> Cli:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        env = {"REDIS_URL": redis_url}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def created(raw: redis.Redis) -> Iterator[list[str]]:
    """Website ids to remove from the shared backend after the test."""
    ids: list[str] = []
    yield ids
    for website_id in ids:
        leftovers = list(raw.scan_iter(match=f"*{{{website_id}}}*"))
        if leftovers:
            raw.delete(*leftovers)


@pytest.fixture
def new_site(cli: Cli, created: list[str]) -> NewSite:
    """Create a website through the CLI; return (website id, its first token)."""

    def make(*options: str) -> tuple[str, str]:
        website_id = unique_id()
        created.append(website_id)
        out = json_of(cli("sites", "create", "--id", website_id, "--json", *options))
        return website_id, out["token"]

    return make


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fails(result: Result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def realtime(client: TestClient, website_id: str, token: str) -> httpx.Response:
    response: httpx.Response = client.get(
        "/api/v1/realtime",
        params={"websiteId": website_id},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response


def website_strings(raw: redis.Redis, website_id: str) -> list[str]:
    """Every key name, field, member and value stored for a website."""
    found: list[str] = []
    for key in raw.scan_iter(match=f"*{{{website_id}}}*"):
        kind = raw.type(key)
        values: list[Any]
        if kind == "hash":
            values = [text for pair in raw.hgetall(key).items() for text in pair]
        elif kind == "zset":
            values = raw.zrange(key, 0, -1)
        elif kind == "string":
            values = [raw.get(key)]
        else:
            pytest.fail(f"unexpected {kind!r} key {key!r}")
        found += [str(text) for text in (key, *values)]
    return found


def test_create_json_prints_id_token_its_id_and_plan(cli: Cli, created: list[str]) -> None:
    website_id = unique_id()
    created.append(website_id)
    out = json_of(cli("sites", "create", "--id", website_id, "--json"))
    assert set(out) == {"websiteId", "token", "tokenId", "plan"}
    # The id is the one `tokens list` shows and `tokens revoke` takes.
    listed = json_of(cli("tokens", "list", website_id, "--json"))
    assert [item["tokenId"] for item in listed] == [out["tokenId"]]
    assert out["websiteId"] == website_id
    assert out["plan"] == "free"
    assert TOKEN.fullmatch(out["token"]), out["token"]


def test_create_json_token_works_at_once(new_site: NewSite, client: TestClient) -> None:
    website_id, token = new_site()
    response = realtime(client, website_id, token)
    assert response.status_code == 200
    assert response.json()["currentVisitors"] == 0


def test_create_without_id_picks_a_fresh_random_id(cli: Cli, created: list[str]) -> None:
    first = json_of(cli("sites", "create", "--json"))
    second = json_of(cli("sites", "create", "--json"))
    created += [first["websiteId"], second["websiteId"]]
    assert first["websiteId"] != second["websiteId"]
    for out in (first, second):
        assert re.fullmatch(r"[0-9a-f]{12}", out["websiteId"])
        assert json_of(cli("sites", "show", out["websiteId"], "--json"))["plan"] == "free"


def test_create_text_output_shows_the_token(cli: Cli, created: list[str]) -> None:
    website_id = unique_id()
    created.append(website_id)
    result = cli("sites", "create", "--id", website_id, "--name", "Shop")
    assert result.exit_code == 0, result.output
    assert f"Created website {website_id} (Shop, plan free)" in result.stdout
    assert TOKEN.search(result.stdout)


def test_create_existing_id_fails_and_keeps_the_original(
    cli: Cli,
    new_site: NewSite,
    client: TestClient,
    raw: redis.Redis,
) -> None:
    website_id, token = new_site("--name", "Original")
    again = cli("sites", "create", "--id", website_id, "--name", "Other", "--plan", "pro")
    fails(again, "already exists")
    assert not TOKEN.search(again.output)
    shown = json_of(cli("sites", "show", website_id, "--json"))
    assert (shown["name"], shown["plan"]) == ("Original", "free")
    assert token_digests(raw, website_id) == {sha256(token)}
    assert realtime(client, website_id, token).status_code == 200


def test_list_json_includes_created_sites(cli: Cli, new_site: NewSite) -> None:
    first, _ = new_site()
    second, _ = new_site("--plan", "enterprise")
    listed = {site["websiteId"]: site for site in json_of(cli("sites", "list", "--json"))}
    assert listed[first]["plan"] == "free"
    assert listed[second]["plan"] == "enterprise"
    assert set(listed[first]) == {"websiteId", "name", "plan", "created"}


def test_show_json(cli: Cli, new_site: NewSite) -> None:
    website_id, _ = new_site("--name", "My shop", "--plan", "pro")
    shown = json_of(cli("sites", "show", website_id, "--json"))
    assert {k: v for k, v in shown.items() if k != "created"} == {
        "websiteId": website_id,
        "name": "My shop",
        "plan": "pro",
    }
    created = datetime.strptime(shown["created"], ISO_SECOND).replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - created).total_seconds()) < 300


def test_show_name_defaults_to_the_id(cli: Cli, new_site: NewSite) -> None:
    website_id, _ = new_site()
    assert json_of(cli("sites", "show", website_id, "--json"))["name"] == website_id


def test_set_plan_changes_plan_and_rate_limit(
    cli: Cli, new_site: NewSite, client: TestClient
) -> None:
    website_id, token = new_site()
    assert realtime(client, website_id, token).headers["X-RateLimit-Limit"] == "100"
    result = cli("sites", "set-plan", website_id, "pro")
    assert result.exit_code == 0, result.output
    assert json_of(cli("sites", "show", website_id, "--json"))["plan"] == "pro"
    assert realtime(client, website_id, token).headers["X-RateLimit-Limit"] == "1000"


def test_set_plan_refuses_an_unknown_plan(cli: Cli, new_site: NewSite) -> None:
    website_id, _ = new_site()
    fails(cli("sites", "set-plan", website_id, "gold"), "unknown plan 'gold'")
    assert json_of(cli("sites", "show", website_id, "--json"))["plan"] == "free"


def test_create_refuses_an_unknown_plan(cli: Cli, raw: redis.Redis) -> None:
    website_id = unique_id()
    fails(cli("sites", "create", "--id", website_id, "--plan", "gold"), "unknown plan 'gold'")
    assert website_strings(raw, website_id) == []


def test_delete_removes_every_key_of_the_website(
    cli: Cli,
    new_site: NewSite,
    client: TestClient,
    raw: redis.Redis,
) -> None:
    website_id, token = new_site()
    # Fill every key the website can have: visitors, salt (anonymous visitor), and
    # the client counters (new visitors, failed authentications).
    for body in ({"websiteId": website_id, "visitorId": "v1"}, {"websiteId": website_id}):
        assert client.post("/api/v1/pageview", json=body).status_code == 202
    assert realtime(client, website_id, token).status_code == 200
    assert realtime(client, website_id, "vt_wrong").status_code == 401
    keys = set(raw.scan_iter(match=f"*{{{website_id}}}*"))
    assert set(site_keys(website_id).all) < keys
    assert {key.rsplit(":", 1)[1] for key in keys - set(site_keys(website_id).all)} == {
        "new",
        "fails",
    }

    result = cli("sites", "delete", website_id)
    assert result.exit_code == 0, result.output
    assert list(raw.scan_iter(match=f"*{{{website_id}}}*")) == []
    assert realtime(client, website_id, token).status_code == 404
    fails(cli("sites", "delete", website_id), f"website {website_id!r} not found")


def test_tokens_create_adds_a_working_token(
    cli: Cli, new_site: NewSite, client: TestClient
) -> None:
    website_id, first = new_site()
    out = json_of(cli("tokens", "create", website_id, "--json"))
    assert set(out) == {"websiteId", "tokenId", "token"}
    assert out["websiteId"] == website_id
    assert TOKEN.fullmatch(out["token"])
    assert out["token"] != first
    for token in (first, out["token"]):
        assert realtime(client, website_id, token).status_code == 200


def test_tokens_list_shows_ids_and_times_never_secrets(cli: Cli, new_site: NewSite) -> None:
    website_id, first = new_site()
    second = json_of(cli("tokens", "create", website_id, "--json"))
    result = cli("tokens", "list", website_id, "--json")
    listed = json_of(result)
    assert len(listed) == 2
    assert second["tokenId"] in {entry["tokenId"] for entry in listed}
    for entry in listed:
        assert set(entry) == {"tokenId", "created"}
        assert re.fullmatch(r"tok_[0-9a-f]{8}", entry["tokenId"])
        datetime.strptime(entry["created"], ISO_SECOND)
    text = cli("tokens", "list", website_id)
    assert text.exit_code == 0, text.output
    assert second["tokenId"] in text.stdout
    for output in (result.output, text.output):
        assert first not in output
        assert second["token"] not in output
        assert "vt_" not in output


def test_revoke_refuses_the_token_on_the_next_request(
    cli: Cli, new_site: NewSite, client: TestClient
) -> None:
    website_id, first = new_site()
    second = json_of(cli("tokens", "create", website_id, "--json"))
    listed = json_of(cli("tokens", "list", website_id, "--json"))
    (first_id,) = {entry["tokenId"] for entry in listed} - {second["tokenId"]}
    assert realtime(client, website_id, first).status_code == 200

    result = cli("tokens", "revoke", website_id, first_id)
    assert result.exit_code == 0, result.output
    refused = realtime(client, website_id, first)
    assert refused.status_code == 401
    assert refused.json() == {"error": "Invalid API token"}
    assert realtime(client, website_id, second["token"]).status_code == 200
    remaining = json_of(cli("tokens", "list", website_id, "--json"))
    assert [entry["tokenId"] for entry in remaining] == [second["tokenId"]]
    fails(cli("tokens", "revoke", website_id, first_id), f"token {first_id!r} not found")


@pytest.mark.parametrize(
    "command",
    [
        ("sites", "create", "--id", "ID"),
        ("sites", "show", "ID"),
        ("sites", "set-plan", "ID", "pro"),
        ("sites", "delete", "ID"),
        ("tokens", "create", "ID"),
        ("tokens", "list", "ID"),
        ("tokens", "revoke", "ID", "tok_00000000"),
    ],
    ids=lambda command: "-".join(command[:2]),
)
@pytest.mark.parametrize("website_id", ["a b", "{x}", "x" * 65, "a:b"])
def test_invalid_website_id_is_refused(cli: Cli, command: tuple[str, ...], website_id: str) -> None:
    args = [website_id if arg == "ID" else arg for arg in command]
    fails(cli(*args), f"invalid website id {website_id!r}")


@pytest.mark.parametrize(
    "command",
    [
        ("sites", "show", "ID"),
        ("sites", "set-plan", "ID", "pro"),
        ("sites", "delete", "ID"),
        ("tokens", "create", "ID"),
        ("tokens", "list", "ID"),
    ],
    ids=lambda command: "-".join(command[:2]),
)
def test_unknown_website_is_refused(cli: Cli, command: tuple[str, ...], raw: redis.Redis) -> None:
    website_id = unique_id("missing")
    args = [website_id if arg == "ID" else arg for arg in command]
    fails(cli(*args), f"website {website_id!r} not found")
    assert website_strings(raw, website_id) == []


def test_token_secret_is_never_stored(
    cli: Cli, new_site: NewSite, client: TestClient, raw: redis.Redis
) -> None:
    website_id, first = new_site()
    second = json_of(cli("tokens", "create", website_id, "--json"))["token"]
    assert client.post("/api/v1/pageview", json={"websiteId": website_id}).status_code == 202
    assert realtime(client, website_id, first).status_code == 200
    stored = website_strings(raw, website_id)
    assert len(stored) > 5
    for token in (first, second):
        assert not [text for text in stored if token in text or token[3:] in text]
    assert token_digests(raw, website_id) == {sha256(first), sha256(second)}


@pytest.mark.parametrize(
    "command",
    [
        ("sites", "show", "site-1"),
        ("sites", "list"),
    ],
    ids=lambda command: "-".join(command[:2]),
)
def test_unreachable_redis_is_a_clear_error(command: tuple[str, ...]) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    fails(CliRunner().invoke(main, list(command), env=env), "cannot reach Redis")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_digests(raw: redis.Redis, website_id: str) -> set[str]:
    return {field for field in raw.hkeys(site_keys(website_id).site) if len(field) == 64}
