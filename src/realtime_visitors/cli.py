"""The realtime-visitors command: serve the API, manage websites and tokens."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
import orjson

from .admin import Site, SiteError, Sites
from .admin.views import created_site_json, iso, new_token_json, site_json, token_json
from .config import DEFAULT_PLANS, MAX_PORT, ConfigError, Settings, parse_plans
from .ops import multiprocess
from .ops.logformat import logging_config
from .storage import StorageError, Store, embedded
from .storage.cluster import is_cluster_url, seed_urls

T = TypeVar("T")

log = logging.getLogger("realtime_visitors")


def settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def redis_url(
    config: Settings, supervise: bool = False, on_restart: Callable[[], object] | None = None
) -> Iterator[str]:
    """REDIS_URL when set; otherwise the embedded server, started here if need be
    and, with `supervise`, started again whenever it dies (`on_restart` is told)."""
    if config.redis_url:
        yield config.redis_url
        return
    try:
        # `serve` takes the store over: a short command that started it must not stop
        # it under `serve` when it exits.
        server = embedded.ensure(config.data_dir, take_over=supervise)
    except embedded.EmbeddedError as exc:
        raise click.ClickException(str(exc)) from exc
    if supervise:
        with embedded.Supervisor(config.data_dir, server, on_restart):
            yield server.url
        return
    try:
        yield server.url
    finally:
        server.stop()


def run_admin(action: Callable[[Sites], Awaitable[T]]) -> T:
    config = settings()

    async def main(url: str) -> T:
        store = Store(url, config)
        try:
            return await action(Sites(store, config.plans))
        finally:
            await store.close()

    with redis_url(config) as url:
        try:
            return asyncio.run(main(url))
        except SiteError as exc:
            raise click.ClickException(str(exc)) from exc
        except StorageError as exc:
            raise click.ClickException(f"cannot reach Redis: {exc}") from exc


class PlanChoice(click.Choice[str]):
    """The configured plans, read when the command runs: RTV_PLANS may add some."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        try:
            return tuple(parse_plans(os.environ.get("RTV_PLANS", "")))
        except ConfigError:
            # --help still works; the command itself then reports the bad variable.
            return tuple(DEFAULT_PLANS)

    @choices.setter
    def choices(self, value: tuple[str, ...]) -> None:
        """Choice.__init__ stores a fixed list here; ours is read each time instead."""


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def emit_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.group()
@click.version_option(package_name="realtime-visitors")
def main() -> None:
    """Realtime visitors: how many people are on a website right now."""


@main.command()
@click.option("--host", default=None, help="Interface to bind [RTV_HOST, default 127.0.0.1].")
@click.option(
    "--port",
    type=click.IntRange(1, MAX_PORT),
    default=None,
    help="Port [RTV_PORT, default 8000].",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Serve the HTTP API (with the embedded store unless REDIS_URL is set)."""
    import uvicorn

    config = settings()
    # Every line from here on, ours and uvicorn's, with its time and level; Python's
    # warnings too, as log lines rather than bare text on stderr.
    logging.config.dictConfig(logging_config(config.log_format))
    logging.captureWarnings(True)
    # After a graceful shutdown uvicorn raises the signal again; SIGTERM's default
    # action would then kill this process before it stops the embedded store, and
    # SIGINT's would end it with "Aborted!" and status 1. Both are a normal stop.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, exit_cleanly)
    # SIGHUP (the terminal closed) ends `serve` as SIGTERM does: uvicorn shuts down
    # gracefully on SIGTERM, and the embedded store is stopped after it.
    signal.signal(signal.SIGHUP, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    with (
        process_metrics(config) as on_restart,
        redis_url(config, supervise=True, on_restart=on_restart) as url,
    ):
        # Workers are separate processes that read their settings from the
        # environment, so they all reach the store this process chose.
        os.environ["REDIS_URL"] = url
        # Said at start: a command run from another folder finds another store.
        log.info("Using %s", config.store_description())
        uvicorn.run(
            "realtime_visitors.app:create_app",
            factory=True,
            host=host or config.host,
            port=port or config.port,
            workers=workers,
            # Client addresses come from RTV_TRUSTED_PROXIES, not uvicorn's defaults.
            proxy_headers=False,
            server_header=False,
            # Ours instead (ops/accesslog.py, RTV_ACCESS_LOG): a fraction of the cost,
            # and no query string (where a key may be) nor client address in a line.
            access_log=False,
            log_config=logging_config(config.log_format),
        )


@contextmanager
def process_metrics(config: Settings) -> Iterator[Callable[[], object] | None]:
    """With RTV_METRICS_TOKEN: the workers' metrics in one private directory, summed by
    /metrics, and the embedded store's restarts counted by this process; without it,
    nothing (the restart callback is None)."""
    if not config.metrics_token:
        yield None
        return
    with multiprocess.shared_directory():
        from .ops import metrics  # only now: prometheus_client reads the directory at import

        yield metrics.STORE_RESTARTS.inc


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@main.command("redis-cli", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def redis_cli(args: tuple[str, ...]) -> None:
    """Run valkey-cli against the store (the embedded one unless REDIS_URL is set)."""
    import subprocess

    config = settings()
    with redis_url(config) as url:
        if url.startswith("unix://"):
            target = ["-s", url.removeprefix("unix://")]
        elif is_cluster_url(url):
            # Cluster mode: valkey-cli follows MOVED and ASK to the node that holds a key.
            target = ["-c", "-u", seed_urls(url)[0]]
        else:
            target = ["-u", url]
        try:
            code = subprocess.call([embedded.cli_binary(), *target, *args])  # noqa: S603
        except embedded.EmbeddedError as exc:
            raise click.ClickException(str(exc)) from exc
    raise SystemExit(code)


@main.command("cluster")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where each node keeps its config and log [default: RTV_DATA_DIR/cluster].",
)
@click.option(
    "--port",
    type=click.IntRange(0, MAX_PORT),
    default=7000,
    show_default=True,
    help="The first of consecutive ports, bus ports 10000 above; 0: any free ports.",
)
@click.option("--primaries", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
    "--replicas", type=click.IntRange(min=0), default=1, show_default=True, help="Per primary."
)
def cluster(directory: Path | None, port: int, primaries: int, replicas: int) -> None:
    """Run a local Valkey Cluster until Ctrl-C, to try the service on a cluster.

    The nodes keep no data: every run starts an empty cluster."""
    from .storage import localcluster

    directory = directory or settings().data_dir / "cluster"
    # As in `serve`: a signal becomes a normal exit, so the nodes are stopped below.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, exit_cleanly)
    try:
        running = localcluster.start(directory, primaries, replicas, port=port or None)
    except (localcluster.LocalClusterError, embedded.EmbeddedError) as exc:
        raise click.ClickException(str(exc)) from exc
    with running:
        ports = [node.port for node in running.nodes]
        click.echo(
            f"A cluster of {primaries} primaries and {primaries * replicas} replicas "
            f"on ports {', '.join(map(str, ports))}; logs in {directory.resolve()}/node-PORT."
        )
        click.echo("Serve the API on it with:")
        click.echo(f"REDIS_URL={running.url} realtime-visitors serve")
        click.echo("Ctrl-C stops every node.")
        while True:
            signal.pause()


@main.group()
def sites() -> None:
    """Create, list, show, re-plan and delete websites."""


@sites.command("create")
@click.option("--id", "website_id", default=None, help="Website id (default: random).")
@click.option("--name", default="", help="Display name (default: the id).")
@click.option("--plan", type=PlanChoice(), default="free", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sites_create(website_id: str | None, name: str, plan: str, as_json: bool) -> None:
    """Create a website and its first API token (shown once)."""
    site, token = run_admin(lambda s: s.create(website_id, name, plan))
    if as_json:
        emit_json(created_site_json(site, token))
        return
    click.echo(f"Created website {site.website_id} ({site.name}, plan {site.plan}).")
    click.echo(f"API token {token.token_id}, shown only this once, keep it safe:")
    click.echo(f"  {token.token}")


@sites.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sites_list(as_json: bool) -> None:
    """List all websites."""
    found = run_admin(lambda s: s.all())
    if as_json:
        emit_json([site_json(site) for site in found])
        return
    if not found:
        where = settings().store_description()
        click.echo(f"No websites in {where}; create one with `realtime-visitors sites create`.")
        return
    click.echo("ID\tPLAN\tCREATED\tNAME")
    for site in found:
        click.echo(f"{site.website_id}\t{site.plan}\t{iso(site.created_ms)}\t{site.name}")


@sites.command("show")
@click.argument("website_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sites_show(website_id: str, as_json: bool) -> None:
    """Show one website and its visitors now (without spending its rate limit)."""
    window_ms = settings().window_ms
    site, visitors = run_admin(lambda s: site_and_visitors(s, website_id, window_ms))
    if as_json:
        emit_json(site_json(site, visitors))
        return
    for label, value in site_json(site).items():
        click.echo(f"{label}: {value}")
    click.echo(f"visitors now: {visitors}")


async def site_and_visitors(sites: Sites, website_id: str, window_ms: int) -> tuple[Site, int]:
    return await sites.get(website_id), await sites.current_visitors(website_id, window_ms)


@sites.command("set-plan")
@click.argument("website_id")
@click.argument("plan", type=PlanChoice())
def sites_set_plan(website_id: str, plan: str) -> None:
    """Move a website to another plan (its rate limit follows at once)."""
    run_admin(lambda s: s.set_plan(website_id, plan))
    click.echo(f"Website {website_id} is now on plan {plan}.")


@sites.command("delete")
@click.argument("website_id")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking (for scripts).")
def sites_delete(website_id: str, yes: bool) -> None:
    """Delete a website with its tokens and live visitors."""
    if not yes:
        confirm_delete(website_id)
    run_admin(lambda s: s.delete(website_id))
    click.echo(f"Deleted website {website_id}.")


def confirm_delete(website_id: str) -> None:
    if not stdin_is_terminal():
        raise click.ClickException("stdin is not a terminal: pass --yes to delete without a prompt")
    run_admin(lambda s: s.get(website_id))  # an unknown website fails before the question
    click.confirm(
        f"Delete website {website_id} with its tokens and live visitors?", default=False, abort=True
    )


@main.group()
def tokens() -> None:
    """Create, list and revoke the API tokens of a website."""


@tokens.command("create")
@click.argument("website_id")
@click.option(
    "--public",
    is_flag=True,
    help="A publishable key (vt_pub_...) for web pages: reads the live count only, "
    "and never spends the plan's budget.",
)
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="ORIGIN",
    help="With --public: an origin (https://shop.example) the key may be used from; "
    "repeat for several. None: any origin.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_create(website_id: str, public: bool, origins: tuple[str, ...], as_json: bool) -> None:
    """Add an API token (shown once); the old ones keep working until revoked."""
    token = run_admin(lambda s: s.create_token(website_id, public, origins))
    if as_json:
        emit_json(new_token_json(website_id, token))
        return
    if public:
        where = ", ".join(token.origins) or "any origin"
        click.echo(f"Public key {token.token_id} for {where}, shown only this once:")
        click.echo(f"  {token.token}")
        click.echo("It may sit in a web page: it reads the live count and nothing else.")
        return
    click.echo(f"API token {token.token_id}, shown only this once, keep it safe:")
    click.echo(f"  {token.token}")


@tokens.command("list")
@click.argument("website_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_list(website_id: str, as_json: bool) -> None:
    """List a website's tokens: id, creation time, kind and origins (never the values)."""
    infos = run_admin(lambda s: s.list_tokens(website_id))
    if as_json:
        emit_json([token_json(info) for info in infos])
        return
    for info in infos:
        origins = " ".join(info.origins) or ("any origin" if info.kind == "public" else "")
        click.echo(f"{info.token_id}\t{iso(info.created_ms)}\t{info.kind}\t{origins}".rstrip())


@tokens.command("revoke")
@click.argument("website_id")
@click.argument("token_id_or_token")
def tokens_revoke(website_id: str, token_id_or_token: str) -> None:
    """Revoke a token or public key by its id (tok_...) or its value (vt_...): refused
    from the next request (a public key within a second)."""
    token_id = run_admin(lambda s: s.revoke_token(website_id, token_id_or_token))
    if token_id == token_id_or_token:
        click.echo(f"Revoked token {token_id} of website {website_id}.")
    else:
        # Never echo the value: it may sit in a terminal's scrollback or a CI log.
        click.echo(f"Revoked the token given by value ({token_id}) of website {website_id}.")
