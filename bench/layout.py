"""Visitors written in bulk in the layout lua/pageview.lua keeps, checked against it.

A million visitors through the pageview script take over a minute (about 60 us of
server time per call, with page, source and country kept); the same data written with
ZADD and HSET of 10,000 members per command takes seconds. `check` writes the same
visitors both ways and compares every key of the two websites, so a change to the
layout (lua/lib/breakdowns.lua) fails the benchmark instead of measuring a stale one.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.commands.core import Script

from realtime_visitors.storage.connection import pack
from realtime_visitors.storage.keys import website_pattern
from realtime_visitors.storage.store import HISTORY_MINUTES, Where

from . import fixtures as fx

# Visitors the scenarios write through the pageview script; more are written here.
SCRIPT_UP_TO = 100_000


def script_up_to(quick: bool) -> int:
    """SCRIPT_UP_TO; smaller in a quick run, so that it writes both ways too."""
    return 10_000 if quick else SCRIPT_UP_TO


CHUNK = 10_000  # members per command
BATCH = 100  # commands per write
CHECKED = 300  # visitors written both ways by `check`
# Long digit runs are times (ms, minutes): they differ between the two writes.
TIME = re.compile(rb"\d{8,}")


def member_of(who: str) -> str:
    """The member pageview.lua makes of visitor id `who` (mode "v"): the first 72 bits
    of SHA-1 in URL-safe base64."""
    return members_of([who])[0]


def members_of(ids: Iterable[str]) -> list[str]:
    """member_of of each id, in one base64 pass."""
    sha1 = hashlib.sha1  # the script hashes with SHA-1 too
    raw = base64.urlsafe_b64encode(
        b"".join(sha1(b"v\0" + who.encode()).digest()[:9] for who in ids)
    )
    return [raw[i : i + 12].decode() for i in range(0, len(raw), 12)]


def entry(page: str, ms: int, member: str) -> str:
    """A member of the pages zset: the page, then the visitor's time, then the visitor."""
    return f"{page}\0{ms:013d}{member}"


def write(
    client: redis.Redis,
    site: fx.Website,
    start: int,
    wheres: Sequence[Where],
    spread_ms: int = 30_000,
) -> None:
    """Visitors bench-<start> .. (new to the website), one per item of `wheres`, each with
    one pageview there in the last `spread_ms`, as pageview.lua would keep them."""
    k = site.keys
    count = len(wheres)
    now = fx.server_ms(client)
    draw = random.Random(start).random
    members = members_of(f"bench-{i}" for i in range(start, start + count))
    times = [now - int(draw() * spread_ms) for _ in range(count)]
    # In order, each insertion lands next to the last one: several times faster on a
    # large sorted set than in random order, and the same set in the end.
    order = sorted(range(count), key=times.__getitem__)
    visitors = [(times[i], members[i]) for i in order]
    pages = sorted(entry(w.page, ms, m) for w, ms, m in zip(wheres, times, members, strict=True))
    details = [f"{w.country}\t{w.source}\t{w.page}" for w in wheres]
    commands: list[tuple[str | int, ...]] = []
    for first in range(0, count, CHUNK):
        last = first + CHUNK
        commands.append(("ZADD", k.visitors, *_flat(visitors[first:last])))
        kept = zip(members[first:last], details[first:last], strict=True)
        commands.append(("HSET", k.details, *_flat(kept)))
        commands.append(("ZADD", k.pages, *_flat((0, e) for e in pages[first:last])))
    for key, values in ((k.by_page, (w.page for w in wheres)),
                        (k.by_source, (w.source for w in wheres)),
                        (k.by_country, (w.country for w in wheres))):  # fmt: skip
        commands += (("ZINCRBY", key, n, value) for value, n in Counter(values).items())
    minute = now // 60_000
    commands += [
        ("HINCRBY", k.history, f"p{minute}", count),
        ("HINCRBY", k.history, f"v{minute}", count),
        ("HSETNX", k.history, "oldest", minute),
        ("PEXPIRE", k.history, (HISTORY_MINUTES + 1) * 60_000),
    ]
    # Everything else leaves one window after the latest pageview, rounded up to a whole
    # second, as in pageview.lua.
    expiry = -(-(now + fx.WINDOW_MS) // 1000) * 1000
    for key in (k.visitors, k.details, k.pages, k.by_page, k.by_source, k.by_country):
        commands.append(("PEXPIREAT", key, expiry))
    _send(client, commands)


def _flat(pairs: Iterable[tuple[int | str, str]]) -> list[str | int]:
    """ZADD's and HSET's arguments: score, member, score, member, ..."""
    flat: list[str | int] = []
    for score, member in pairs:
        flat += (score, member)
    return flat


def _send(client: redis.Redis, commands: list[tuple[str | int, ...]]) -> None:
    """Pipelined, packed by hiredis (redis-py's own packing takes longer than Redis), one
    batch in flight while the next is packed."""
    connection = client.connection_pool.get_connection()
    try:
        in_flight = 0
        for first in range(0, len(commands), BATCH):
            batch = commands[first : first + BATCH]
            packed = b"".join(pack(c) for c in batch)
            connection.send_packed_command([packed])  # type: ignore[no-untyped-call]
            for _ in range(in_flight):
                connection.read_response()
            in_flight = len(batch)
        for _ in range(in_flight):
            connection.read_response()
    finally:
        client.connection_pool.release(connection)


def check(client: redis.Redis, pv: Script) -> None:
    """Write the same visitors through the pageview script and with `write`; raise
    unless every key of the two websites holds the same, times aside."""
    wheres = fx.spread(0, CHECKED)
    by_script = fx.create_website(client, "layout-script")
    by_bulk = fx.create_website(client, "layout-bulk")
    fx.pageviews(client, pv, by_script, 0, CHECKED, wheres)
    write(client, by_bulk, 0, wheres)
    expected, got = _contents(client, by_script), _contents(client, by_bulk)
    for site in (by_script, by_bulk):
        client.delete(*fx.command(client, "KEYS", website_pattern(site.website_id)))
    if expected != got:
        differ = sorted(set(expected) ^ set(got)) or sorted(
            name for name in expected if expected[name] != got[name]
        )
        raise RuntimeError(
            "bench/layout.py no longer writes what lua/pageview.lua keeps "
            f"(keys that differ: {', '.join(differ)}): update layout.write"
        )


def _contents(client: redis.Redis, site: fx.Website) -> dict[str, Any]:
    """Every key of the website but the site hash, by the end of its name: its type,
    whether it expires, and its contents with times masked (scores that are times too)."""
    out: dict[str, Any] = {}
    prefix = website_pattern(site.website_id)[:-1]
    for key in fx.command(client, "KEYS", website_pattern(site.website_id)):
        name = key.decode()[len(prefix) :]
        if name == "site" or name.startswith("client:"):
            continue
        kind = fx.command(client, "TYPE", key).decode()
        contents: Any = kind
        if kind == "zset":
            reply = fx.command(client, "ZRANGE", key, 0, -1, "WITHSCORES")
            if reply and not isinstance(reply[0], list | tuple):  # RESP2: flat
                reply = zip(reply[::2], reply[1::2], strict=True)
            contents = sorted(
                (TIME.sub(b"#", member), "#" if float(score) >= 1e9 else float(score))
                for member, score in reply
            )
        elif kind == "hash":
            fields: dict[bytes, bytes | int] = {}
            for field, raw in fx.command(client, "HGETALL", key).items():
                masked, value = TIME.sub(b"#", field), TIME.sub(b"#", raw)
                if masked in fields and value.isdigit():  # two minutes of history
                    fields[masked] = int(fields[masked]) + int(value)
                else:
                    fields[masked] = int(value) if value.isdigit() else value
            contents = sorted(fields.items())
        out[name] = (kind, fx.command(client, "PTTL", key) > 0, contents)
    return out
