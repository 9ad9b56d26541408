"""The click commands, run in-process against the suite's Redis backends."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from realtime_visitors import cli as cli_module
from realtime_visitors.cli import main
from realtime_visitors.storage import embedded
from realtime_visitors.storage.keys import site_keys

from .conftest import unique_id

TOKEN = re.compile(r"vt_[A-Za-z0-9_-]{43,}")
ISO_SECOND = "%Y-%m-%dT%H:%M:%SZ"
CLI = Path(sys.executable).parent / "realtime-visitors"
PASSWORD = "hunter2-secret"

Cli = Callable[..., Result]
NewSite = Callable[..., tuple[str, str]]


@pytest.fixture
def cli(redis_url: str) -> Cli:
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None, **env: str) -> Result:
        env = {"REDIS_URL": redis_url, **env}
        return runner.invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)

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
        "currentVisitors": 0,
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
    fails(cli("sites", "set-plan", website_id, "gold"), "'gold' is not one of 'free', 'pro'")
    assert json_of(cli("sites", "show", website_id, "--json"))["plan"] == "free"


def test_create_refuses_an_unknown_plan(cli: Cli, raw: redis.Redis) -> None:
    website_id = unique_id()
    fails(
        cli("sites", "create", "--id", website_id, "--plan", "gold"),
        "'gold' is not one of 'free', 'pro', 'enterprise'",
    )
    assert website_strings(raw, website_id) == []


def test_delete_removes_every_key_of_the_website(
    cli: Cli,
    new_site: NewSite,
    client: TestClient,
    raw: redis.Redis,
) -> None:
    website_id, token = new_site()
    # Fill every key the website can have: visitors, salt (anonymous visitor), a
    # public key, and the client counters (new visitors, failed authentications).
    for body in ({"websiteId": website_id, "visitorId": "v1"}, {"websiteId": website_id}):
        assert client.post("/api/v1/pageview", json=body).status_code == 202
    assert cli("tokens", "create", website_id, "--public").exit_code == 0
    assert realtime(client, website_id, token).status_code == 200
    assert realtime(client, website_id, "vt_wrong").status_code == 401
    keys = set(raw.scan_iter(match=f"*{{{website_id}}}*"))
    assert set(site_keys(website_id).all) < keys
    assert {key.rsplit(":", 1)[1] for key in keys - set(site_keys(website_id).all)} == {
        "new",
        "fails",
    }

    result = cli("sites", "delete", website_id, "--yes")
    assert result.exit_code == 0, result.output
    assert list(raw.scan_iter(match=f"*{{{website_id}}}*")) == []
    assert realtime(client, website_id, token).status_code == 404
    fails(cli("sites", "delete", website_id, "-y"), f"website {website_id!r} not found")


def test_tokens_create_adds_a_working_token(
    cli: Cli, new_site: NewSite, client: TestClient
) -> None:
    website_id, first = new_site()
    out = json_of(cli("tokens", "create", website_id, "--json"))
    assert set(out) == {"websiteId", "tokenId", "token", "kind", "origins"}
    assert (out["kind"], out["origins"]) == ("secret", [])
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
        assert set(entry) == {"tokenId", "created", "kind", "origins"}
        assert entry["kind"] == "secret"
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
        ("sites", "delete", "ID", "--yes"),
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
        ("sites", "delete", "ID", "--yes"),
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


# What a new user meets first: a mistyped variable, another folder, a leaked token.


def command_line(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own, for `serve` (which takes over
    signals) and for what a shell user sees."""
    assert CLI.is_file(), f"{CLI} missing: install the project into this virtualenv"
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("RTV_")}
    return subprocess.run(
        [str(CLI), *args], env=base | env, capture_output=True, text=True, timeout=60
    )


def one_error_line(process: subprocess.CompletedProcess[str], *names: str) -> str:
    assert process.returncode != 0, process.stdout
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, process.stderr
    for name in names:
        assert name in lines[0], process.stderr
    return lines[0]


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "redis://127.0.0.1:notaport",
        f"redis://:{PASSWORD}@127.0.0.1:99999/0",
        f"redis+cluster://:{PASSWORD}@10.0.0.1:7000,10.0.0.2",  # a seed without its port
        f"redis+cluster://:{PASSWORD}@10.0.0.1:7000/0",  # a cluster has one database
        "redis+cluster://",
    ],
)
@pytest.mark.parametrize("command", [("sites", "list"), ("serve",)], ids="-".join)
def test_a_malformed_redis_url_is_one_error_line(url: str, command: tuple[str, ...]) -> None:
    process = command_line(*command, REDIS_URL=url)
    one_error_line(process, "REDIS_URL")
    assert PASSWORD not in process.stdout + process.stderr


def test_a_port_out_of_range_is_refused_not_wrapped() -> None:
    from_env = command_line("serve", REDIS_URL="redis://127.0.0.1:1/0", RTV_PORT="99999")
    one_error_line(from_env, "RTV_PORT", "65535")
    one_error_line(command_line("serve", "--port", "70000"), "--port", "65535")


@pytest.fixture(scope="module")
def secured_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty store of its own that wants a password (an ACL user)."""
    user = ("--user", "admin", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    server = embedded.ensure(tmp_path_factory.mktemp("secured"), persist=False, extra=user)
    try:
        yield f"unix://admin:{PASSWORD}@{server.socket_path}"
    finally:
        server.stop()


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on: `serve` starts, says its store, and stops."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_says_which_redis_it_uses_without_the_password(
    secured_url: str, busy_port: int
) -> None:
    process = command_line("serve", "--port", str(busy_port), REDIS_URL=secured_url)
    hidden = secured_url.replace(PASSWORD, "***")
    # A log line, with its time and level, on stderr as the others.
    assert f"INFO Using {hidden} (REDIS_URL)" in process.stderr, process.stderr
    assert PASSWORD not in process.stdout + process.stderr


def test_serve_says_which_embedded_store_it_uses(tmp_path: Path, busy_port: int) -> None:
    process = command_line("serve", "--port", str(busy_port), RTV_DATA_DIR=str(tmp_path))
    where = f"the embedded store at {tmp_path.resolve()} (RTV_DATA_DIR)"
    assert f"INFO Using {where}" in process.stderr, process.stderr


def test_an_empty_list_says_where_it_looked(secured_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sites", "list"], env={"REDIS_URL": secured_url})
    assert result.exit_code == 0, result.output
    hidden = secured_url.replace(PASSWORD, "***")
    assert f"No websites in {hidden} (REDIS_URL); create one with" in result.stdout
    assert PASSWORD not in result.output

    env = {"REDIS_URL": "", "RTV_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["sites", "list"], env=env)
    assert result.exit_code == 0, result.output
    where = f"the embedded store at {tmp_path.resolve()} (RTV_DATA_DIR)"
    assert f"No websites in {where}; create one with" in result.stdout


def test_list_prints_a_header(cli: Cli, new_site: NewSite) -> None:
    website_id, _ = new_site("--name", "Shop")
    result = cli("sites", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "ID\tPLAN\tCREATED\tNAME"
    (row,) = [line.split("\t") for line in lines[1:] if line.startswith(f"{website_id}\t")]
    assert (row[0], row[1], row[3]) == (website_id, "free", "Shop")
    datetime.strptime(row[2], ISO_SECOND)


def test_revoke_by_value_never_shows_the_value(
    cli: Cli, new_site: NewSite, client: TestClient
) -> None:
    website_id, leaked = new_site()
    (first,) = json_of(cli("tokens", "list", website_id, "--json"))
    second = json_of(cli("tokens", "create", website_id, "--json"))

    result = cli("tokens", "revoke", website_id, leaked)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"Revoked the token given by value ({first['tokenId']}) of website {website_id}.\n"
    )
    assert realtime(client, website_id, leaked).status_code == 401
    assert realtime(client, website_id, second["token"]).status_code == 200

    again = cli("tokens", "revoke", website_id, leaked)
    fails(again, f"no such token for website {website_id!r}")
    # Without its prefix (a bad copy) it is still a secret, not an id to echo.
    stripped = cli("tokens", "revoke", website_id, leaked[3:])
    fails(stripped, f"no such token for website {website_id!r}")
    for output in (result, again, stripped):
        assert leaked[3:] not in output.stdout + output.stderr


def test_plan_choices_follow_the_configuration(cli: Cli, created: list[str]) -> None:
    assert "--plan [free|pro|enterprise]" in cli("sites", "create", "--help").stdout
    help_text = cli("sites", "create", "--help", RTV_PLANS="team=500").stdout
    assert "--plan [free|pro|enterprise|team]" in help_text
    website_id = unique_id()
    created.append(website_id)
    made = cli(
        "sites", "create", "--id", website_id, "--plan", "team", "--json", RTV_PLANS="team=500"
    )
    assert json_of(made)["plan"] == "team"
    # A broken RTV_PLANS still leaves --help readable, and the command names it.
    assert "--plan [free|pro|enterprise]" in cli("sites", "create", "--help", RTV_PLANS="x").stdout
    fails(cli("sites", "create", RTV_PLANS="x"), "RTV_PLANS")


def test_delete_off_a_terminal_wants_yes(cli: Cli, new_site: NewSite) -> None:
    website_id, _ = new_site()
    fails(cli("sites", "delete", website_id), "pass --yes to delete without a prompt")
    assert json_of(cli("sites", "show", website_id, "--json"))["websiteId"] == website_id


def test_delete_on_a_terminal_asks_first(
    cli: Cli, new_site: NewSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "stdin_is_terminal", lambda: True)
    website_id, _ = new_site()
    question = f"Delete website {website_id} with its tokens and live visitors? [y/N]"
    kept = cli("sites", "delete", website_id, stdin="\n")
    assert kept.exit_code != 0
    assert question in kept.output
    assert json_of(cli("sites", "show", website_id, "--json"))["websiteId"] == website_id

    deleted = cli("sites", "delete", website_id, stdin="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert f"Deleted website {website_id}." in deleted.stdout
    fails(cli("sites", "show", website_id), f"website {website_id!r} not found")
    # An unknown website fails before the question.
    gone = cli("sites", "delete", website_id, stdin="y\n")
    fails(gone, f"website {website_id!r} not found")
    assert question not in gone.output


def test_show_counts_visitors_now_without_spending_the_budget(
    cli: Cli, new_site: NewSite, client: TestClient, raw: redis.Redis
) -> None:
    website_id, token = new_site()
    for visitor in ("v1", "v2"):
        body = {"websiteId": website_id, "visitorId": visitor}
        assert client.post("/api/v1/pageview", json=body).status_code == 202
    raw.zadd(site_keys(website_id).visitors, {"left-long-ago": 0})

    assert json_of(cli("sites", "show", website_id, "--json"))["currentVisitors"] == 2
    text = cli("sites", "show", website_id)
    assert text.exit_code == 0, text.output
    assert "visitors now: 2" in text.stdout.splitlines()
    first_read = realtime(client, website_id, token)
    assert first_read.json()["currentVisitors"] == 2
    assert first_read.headers["X-RateLimit-Remaining"] == "99"


def test_tokens_create_public_prints_a_key_bound_to_its_origins(
    cli: Cli, new_site: NewSite
) -> None:
    website_id, secret = new_site()
    made = cli(
        "tokens", "create", website_id, "--public", "--origin", "https://Shop.Example",
        "--origin", "http://localhost:3000",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.stdout.splitlines()[1].strip()
    assert re.fullmatch(r"vt_pub_[A-Za-z0-9_-]{43}", key)
    assert "https://shop.example, http://localhost:3000" in made.stdout.splitlines()[0]
    listed = cli("tokens", "list", website_id)
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[2:] for row in rows] == [
        ["secret"],
        ["public", "https://shop.example http://localhost:3000"],
    ]
    assert key not in listed.stdout
    assert secret not in listed.stdout
    as_json = json.loads(cli("tokens", "list", website_id, "--json").stdout)
    assert [t["kind"] for t in as_json] == ["secret", "public"]
    assert cli("tokens", "revoke", website_id, key).exit_code == 0
    assert "public" not in cli("tokens", "list", website_id).stdout


def test_tokens_create_refuses_a_bad_origin_or_origins_without_public(
    cli: Cli, new_site: NewSite
) -> None:
    website_id, _ = new_site()
    fails(
        cli("tokens", "create", website_id, "--public", "--origin", "shop.example"), "not an origin"
    )
    fails(cli("tokens", "create", website_id, "--origin", "https://a.example"), "public keys only")
