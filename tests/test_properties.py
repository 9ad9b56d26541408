"""The Lua scripts against a small Python model of the window and the token bucket.

Random programs of pageviews, reads and clock steps run on the real server. Its clock
cannot be moved, so a step of d ms moves every stored time back by d instead (visitor
scores, bucket_ts, key expiry times): the scripts only ever compare stored times with
TIME, so to them the two are the same. Steps are whole seconds and every window ends
half a second off a whole second, so the few ms an example really takes never decide
an outcome; reads return the script's own clock, so they are checked to the ms.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import ceil, floor
from typing import NamedTuple

import pytest
import redis
from hypothesis import assume, example, given, note, settings
from hypothesis import strategies as st

from realtime_visitors.storage import scripts
from realtime_visitors.storage.keys import client_keys, site_keys
from realtime_visitors.storage.tokens import digest, new_token

from .conftest import single_node, unique_id

STEP = 1_000  # ms: every clock step is a multiple
WINDOW = 60_500  # ms: half a step off any sum of steps
FAILURE_WINDOW = 60_500
MARGIN = 0.4  # s of real time an example may take before half a step stops covering it
HOUR = 3_600_000
EPS = Fraction(1, 10**9)  # the script's float rounding, far below one ms of refill
PLAN = "prop"
POOL = 8  # distinct visitors
WRONG = digest("vt_not-a-token")

Operation = tuple[str, int]  # a method of Lab and its argument
Program = list[Operation]

# The clock moves forward by ARGV[1] ms (backward if negative): every stored time
# moves the other way. KEYS[1] site hash, KEYS[2] visitors, KEYS[3] pages (whose
# entries hold a time), KEYS[2..] keys that expire.
SHIFT = """
local d = tonumber(ARGV[1])
local scored = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #scored, 2 do
  redis.call('ZADD', KEYS[2], tonumber(scored[i + 1]) - d, scored[i])
end
local entries = redis.call('ZRANGE', KEYS[3], 0, -1)
for i = 1, #entries do
  local e = entries[i]
  local at = string.find(e, '\0', 1, true)
  local ms = string.format('%013.0f', tonumber(string.sub(e, at + 1, at + 13)) - d)
  -- Added before the old one goes: a set emptied for a moment would lose its expiry.
  if d ~= 0 then
    redis.call('ZADD', KEYS[3], 0, string.sub(e, 1, at) .. ms .. string.sub(e, at + 14))
    redis.call('ZREM', KEYS[3], e)
  end
end
local ts = redis.call('HGET', KEYS[1], 'bucket_ts')
if ts then redis.call('HSET', KEYS[1], 'bucket_ts', tonumber(ts) - d) end
for i = 2, #KEYS do
  local at = redis.call('PEXPIRETIME', KEYS[i])
  if at > 0 then redis.call('PEXPIREAT', KEYS[i], at - d) end
end
"""

SOURCES = {name: scripts.source(name) for name in ("pageview", "realtime", "breakdown")}
# A view's argument picks the visitor, and the page, source and country it brings.
PAGES, REFERRERS, COUNTRIES = ("/", "/pricing", "/docs"), ("direct", "news.example"), ("US", "DE")
KINDS = len(PAGES) * len(REFERRERS) * len(COUNTRIES)
HISTORY = 1440


def member_of(who: str) -> str:
    """pageview.lua's member for a visitor's own id: 72 bits of SHA-1 in base64url."""
    return base64.urlsafe_b64encode(hashlib.sha1(f"v\0{who}".encode()).digest()[:9]).decode()


@dataclass(frozen=True)
class Limits:
    limit: int = 1_000  # requests per hour
    cap: int = 0  # new visitors per client address per window; 0: off
    budget: int = 1_000  # expired members trimmed per pageview at most
    max_failures: int = 1_000


class Reply(NamedTuple):
    status: int
    visitors: int
    limit: int
    remaining: int
    reset: int
    retry: int
    now: int


@dataclass(frozen=True)
class Want:
    status: int
    visitors: int = 0
    limit: int = 0
    remaining: frozenset[int] = frozenset({0})
    reset: int = 0
    retry: int = 0

    def check(self, reply: Reply) -> None:
        got = (reply.status, reply.visitors, reply.limit)
        assert got == (self.status, self.visitors, self.limit), reply
        assert reply.remaining in self.remaining, reply
        # The script rounds a float quotient up: one ms either way.
        assert abs(reply.reset - self.reset) <= 1, (reply, self)
        assert abs(reply.retry - self.retry) <= 1, (reply, self)


@dataclass
class Expiring:
    value: int
    at: int | None  # None: created by the current operation, learnt from the server


@dataclass
class Model:
    """What the scripts promise, in the server's frame of time (ms)."""

    limits: Limits
    scores: dict[str, int] = field(default_factory=dict)  # the visitors set
    # (country, source, page) of each visitor in the set: the details hash
    details: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    visitors_at: int | None = None  # when the visitors key expires
    counter: Expiring | None = None  # new visitors from the client address
    failures: Expiring | None = None  # failed authentications from the address
    level: Fraction | None = None
    exact: bool = True  # whole tokens since the bucket was full: the script's float is exact
    ts: int | None = None

    def shift(self, ms: int) -> None:
        self.scores = {member: score - ms for member, score in self.scores.items()}
        for expiring in (self.counter, self.failures):
            if expiring is not None and expiring.at is not None:
                expiring.at -= ms
        if self.visitors_at is not None:
            self.visitors_at -= ms
        if self.ts is not None:
            self.ts -= ms

    def expire(self, now: int) -> None:
        if self.visitors_at is not None and now > self.visitors_at:
            staying = sorted(m for m, score in self.scores.items() if score > now - WINDOW)
            assert not staying, f"the set expired with {staying} in"
            self.scores, self.details, self.visitors_at = {}, {}, None
        if self.counter is not None and self.counter.at is not None and now > self.counter.at:
            self.counter = None
        if self.failures is not None and self.failures.at is not None and now > self.failures.at:
            self.failures = None

    def count(self, now: int, page: str | None = None, since: int = WINDOW) -> int:
        return sum(
            score > now - since and (page is None or self.details[m][2] == page)
            for m, score in self.scores.items()
        )

    def trim(self, now: int, budget: int) -> None:
        expired = sorted((score, m) for m, score in self.scores.items() if score <= now - WINDOW)
        for _, m in expired[:budget]:
            del self.scores[m]
            self.details.pop(m, None)

    def counts(self, dimension: int) -> dict[str, int]:
        """What a breakdown holds: visitors per value among the untrimmed visitors."""
        found: dict[str, int] = {}
        for kept in self.details.values():
            found[kept[dimension]] = found.get(kept[dimension], 0) + 1
        return found

    def charges(self, member: str, now: int) -> list[bool]:
        """Whether a pageview is charged to its address: one counted right now is not."""
        if not self.limits.cap:
            return [False]
        score = self.scores.get(member)
        if score is None:
            return [True]
        if score > now - WINDOW:
            return [False]
        # Left the window, not trimmed yet: it comes back as a new visitor
        # (test_a_visitor_back_after_the_window_is_new).
        return [True]

    def view(self, member: str, now: int, charge: bool, where: tuple[str, str, str]) -> int:
        if charge:
            self.counter = self.counter or Expiring(0, None)
            self.counter.value += 1
            if self.counter.value > self.limits.cap:
                return 3
        last = self.scores.get(member)
        if last is not None and last > now - WINDOW and member in self.details:
            # The same visit: it keeps its country and source, and moves to the page.
            country, source, _ = self.details[member]
            self.details[member] = (country, source, where[2])
        else:
            self.details[member] = where
        self.scores[member] = max(self.scores.get(member, now), now)
        self.trim(now, self.limits.budget)
        self.visitors_at = None  # the script has just set it
        return 1

    def read(self, valid: bool, now: int, status: int) -> Want:
        """What a read answers; `status` only breaks a tie at exactly one token."""
        failed = self.failures.value if self.failures else 0
        if failed >= self.limits.max_failures:
            assert self.failures is not None
            assert self.failures.at is not None
            return Want(4, retry=max(1, self.failures.at - now))
        if not valid:
            self.failures = self.failures or Expiring(0, None)
            self.failures.value += 1
            return Want(2)
        limit = self.limits.limit
        rate = Fraction(limit, HOUR)
        level, ts = (self.level, self.ts) if self.level is not None else (Fraction(limit), now)
        assert ts is not None
        if now > ts:
            level, ts, self.exact = level + (now - ts) * rate, now, False
        if level > limit + EPS:
            self.exact = True
        level = min(level, Fraction(limit))
        # After a refill the script's float is off by rounding: within that of one
        # token either answer is right, and the script's is followed.
        slack = 0 if self.exact else EPS
        allowed = status == 0 if abs(level - 1) < slack else level >= 1
        if allowed:
            level -= 1
        self.level, self.ts = level, ts
        reset = ceil((limit - level) / rate)
        if not allowed:
            return Want(3, limit=limit, reset=reset, retry=ceil((1 - level) / rate))
        remaining = frozenset({floor(level - slack), floor(level + slack)})
        return Want(0, self.count(now), limit, remaining, reset)


@dataclass(frozen=True)
class Seen:
    """The website's keys as the server holds them, at the server's time `now`."""

    scores: dict[str, int]
    visitors_at: int
    counter: int | None
    counter_at: int
    failures: int | None
    failures_at: int
    bucket: tuple[str | None, str | None]
    now: int
    details: dict[str, str] = field(default_factory=dict)
    pages: frozenset[str] = frozenset()
    by: tuple[dict[str, int], ...] = ()


def adopt(
    expiring: Expiring | None, value: int | None, at: int, window: int, lo: int, hi: int
) -> None:
    if expiring is None:
        assert value is None
        return
    assert value == expiring.value
    if expiring.at is None:  # created by this operation: one window after the script's clock
        assert lo + window - 1 <= at <= hi + window
        expiring.at = at
    else:
        assert at == expiring.at


class Lab:
    """One fresh website, the scripts called as the store calls them, and the model."""

    def __init__(self, server: redis.Redis, limits: Limits) -> None:
        self.server, self.limits = server, limits
        website_id = unique_id("prop")
        self.keys = site_keys(website_id)
        address = client_keys(website_id, "prop-client")
        self.token = digest(new_token())
        keys = self.keys
        self.expiring = [keys.visitors, address.new_visitors, address.failures]
        self.breakdown_keys = [
            keys.details,
            keys.pages,
            keys.by_page,
            keys.by_source,
            keys.by_country,
        ]
        self.pageview_keys = [
            keys.site, keys.visitors, keys.salt, address.new_visitors, *self.breakdown_keys,
            keys.history,
        ]  # fmt: skip
        self.realtime_keys = [keys.site, keys.visitors, address.failures, keys.pages]
        self.read_keys = [keys.site, keys.visitors, address.failures, *self.breakdown_keys]
        self.pageview = server.register_script(SOURCES["pageview"])
        self.realtime = server.register_script(SOURCES["realtime"])
        self.breakdown = server.register_script(SOURCES["breakdown"])
        self.shift = server.register_script(SHIFT)
        server.hset(
            self.keys.site,
            mapping={"name": website_id, "plan": PLAN, "created": 0, self.token: "tok_prop:0"},
        )
        self.model = Model(limits)
        self.started = time.monotonic()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *_: object) -> None:
        self.server.delete(*self.keys.all, *self.expiring)

    def server_ms(self) -> int:
        seconds, micros = self.server.time()
        return seconds * 1000 + micros // 1000

    def call_pageview(self, who: str, where: tuple[str, str, str] = ("US", "direct", "/")) -> int:
        limits = self.limits
        country, source, page = where
        args: list[str | int] = [WINDOW, "v", who, "", "", limits.budget, limits.cap]
        args += [page, source, country, HISTORY]
        return int(self.pageview(keys=self.pageview_keys, args=args))

    def call_realtime(self, valid: bool, page: str = "", since: int = WINDOW) -> Reply:
        args: list[str | int] = [since, self.token if valid else WRONG, self.limits.max_failures]
        args += [FAILURE_WINDOW, page, PLAN, self.limits.limit]
        return Reply(*self.realtime(keys=self.realtime_keys, args=args))

    def call_breakdown(self, by: str) -> tuple[Reply, list[tuple[str, int]]]:
        args: list[str | int] = [WINDOW, self.token, self.limits.max_failures, FAILURE_WINDOW]
        args += [by, len(PAGES), self.limits.budget, PLAN, self.limits.limit]
        reply = self.breakdown(keys=self.read_keys, args=args)
        rows = reply[7:]
        return Reply(*reply[:7]), [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]

    def view(self, arg: int) -> None:
        i, kind = arg % POOL, arg // POOL
        page, kind = PAGES[kind % len(PAGES)], kind // len(PAGES)
        where = (COUNTRIES[kind // len(REFERRERS)], REFERRERS[kind % len(REFERRERS)], page)
        who, member = f"v{i}", member_of(f"v{i}")
        lo = self.server_ms()
        status = self.call_pageview(who, where)
        seen = self.observe()
        stored = seen.scores.get(member)
        # The script's clock lies in [lo, seen.now]; a score it has just set tells it.
        now = stored if stored is not None and lo <= stored <= seen.now else lo
        self.model.expire(now)
        outcomes = []
        for charge in self.model.charges(member, now):
            candidate = copy.deepcopy(self.model)
            outcomes.append((candidate.view(member, now, charge, where), candidate))
        got = (status, seen.scores, seen.counter)
        allowed = [(s, c.scores, c.counter and c.counter.value) for s, c in outcomes]
        assert got in allowed, f"pageview of {who}"
        self.model = outcomes[allowed.index(got)][1]
        self.check(seen, lo, seen.now)

    def crowd(self, mask: int) -> None:
        for i in range(POOL):
            if mask >> i & 1:
                self.view(i)

    def read(self, _: int = 0, valid: bool = True) -> None:
        reply = self.call_realtime(valid)
        seen = self.observe()
        self.model.expire(reply.now)
        self.model.read(valid, reply.now, reply.status).check(reply)
        self.check(seen, reply.now, seen.now)

    def wrong(self, _: int = 0) -> None:
        self.read(valid=False)

    def on_page(self, arg: int) -> None:
        """A read of one page's count, over the whole window or the last `since` ms."""
        page = PAGES[arg % len(PAGES)]
        since = WINDOW if arg < len(PAGES) else (arg // len(PAGES)) * STEP + STEP // 2
        reply = self.call_realtime(True, page, since)
        seen = self.observe()
        self.model.expire(reply.now)
        want = self.model.read(True, reply.now, reply.status)
        if want.status == 0:
            assert reply.visitors == self.model.count(reply.now, page, since), (page, since)
            want = replace(want, visitors=reply.visitors)
        want.check(reply)
        self.check(seen, reply.now, seen.now)

    def top(self, dimension: int) -> None:
        """A breakdown: it trims first, then its items are the model's counts."""
        reply, items = self.call_breakdown(("country", "source", "page")[dimension])
        seen = self.observe()
        self.model.expire(reply.now)
        want = self.model.read(True, reply.now, reply.status)
        want.check(reply)
        if reply.status == 0:
            self.model.trim(reply.now, self.limits.budget)
            counts = self.model.counts(dimension)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            assert items == ranked[: len(PAGES)]
            if len(self.model.scores) == reply.visitors:  # trimmed within the budget
                assert sum(n for _, n in items) <= reply.visitors
        self.check(seen, reply.now, seen.now)

    def advance(self, ms: int) -> None:
        keys = [self.keys.site, self.keys.visitors, self.keys.pages, *self.expiring[1:]]
        others = [key for key in self.breakdown_keys if key != self.keys.pages]
        self.shift(keys=[*keys, *others], args=[ms])
        self.model.shift(ms)
        seen = self.observe()
        self.check(seen, seen.now, seen.now)

    def back(self, ms: int) -> None:
        self.advance(-ms)

    def observe(self) -> Seen:
        pipe = self.server.pipeline()
        pipe.zrange(self.keys.visitors, 0, -1, withscores=True)
        pipe.pexpiretime(self.keys.visitors)
        for key in self.expiring[1:]:
            pipe.get(key)
            pipe.pexpiretime(key)
        pipe.hmget(self.keys.site, "bucket", "bucket_ts")
        pipe.time()
        pipe.hgetall(self.keys.details)
        pipe.zrange(self.keys.pages, 0, -1)
        for key in (self.keys.by_country, self.keys.by_source, self.keys.by_page):
            pipe.zrange(key, 0, -1, withscores=True)
        (
            scored, visitors_at, counter, counter_at, failures, failures_at, bucket, clock,
            details, pages, *by,
        ) = pipe.execute()  # fmt: skip
        # Past the margin a step may land within real ms of a window's end.
        assume(time.monotonic() - self.started < MARGIN)
        return Seen(
            scores={member: int(score) for member, score in scored},
            visitors_at=visitors_at,
            counter=None if counter is None else int(counter),
            counter_at=counter_at,
            failures=None if failures is None else int(failures),
            failures_at=failures_at,
            bucket=tuple(bucket),
            now=clock[0] * 1000 + clock[1] // 1000,
            details=details,
            pages=frozenset(pages),
            by=tuple({value: int(n) for value, n in counts} for counts in by),
        )

    def check(self, seen: Seen, lo: int, hi: int) -> None:
        model = self.model
        model.expire(seen.now)
        assert seen.scores == model.scores
        # Every untrimmed visitor, and only they, in every breakdown: a visitor leaves
        # them all at once.
        assert seen.details == {m: "\t".join(kept) for m, kept in model.details.items()}
        entries = {f"{kept[2]}\0{model.scores[m]:013d}{m}" for m, kept in model.details.items()}
        assert seen.pages == entries
        assert seen.by == tuple(model.counts(dimension) for dimension in range(3))
        if model.scores:
            last = max(model.scores.values())
            if model.visitors_at is not None:
                assert seen.visitors_at == model.visitors_at
            else:
                # The set disappears by itself when its last visitor has left (give or
                # take the script's run), rounded up to a whole second.
                earliest = last
                latest = max(last, hi)
                assert earliest + WINDOW - 1 <= seen.visitors_at <= latest + WINDOW + 999, "expiry"
            model.visitors_at = seen.visitors_at
        adopt(model.counter, seen.counter, seen.counter_at, WINDOW, lo, hi)
        adopt(model.failures, seen.failures, seen.failures_at, FAILURE_WINDOW, lo, hi)
        if model.level is None:
            assert seen.bucket == (None, None)
            return
        level, ts = seen.bucket
        assert level is not None
        assert ts is not None
        assert 0 <= Fraction(level) <= self.limits.limit, "the bucket holds at most its limit"
        slack = 0 if model.exact else EPS
        assert abs(Fraction(level) - model.level) <= slack, (level, float(model.level))
        assert int(float(ts)) == model.ts


def run(server: redis.Redis, program: Program, limits: Limits) -> None:
    # Hypothesis's own report of the arguments comes out blank beside the schemathesis
    # plugin (run with -p no:schemathesis to see it): a note always shows.
    note(f"{limits}: {program}")
    with Lab(server, limits) as lab:
        for step, (operation, argument) in enumerate(program):
            try:
                getattr(lab, operation)(argument)
            except AssertionError as exc:
                exc.add_note(f"at step {step}: {operation} {argument}")
                raise


def views(pool: int = POOL) -> st.SearchStrategy[Operation]:
    return st.tuples(st.just("view"), st.integers(0, pool * KINDS - 1))


def page_reads() -> st.SearchStrategy[Operation]:
    # The whole window, or the last 1.5 to 60.5 s: never more than the window.
    return st.tuples(st.just("on_page"), st.integers(0, len(PAGES) * 61 - 1))


def breakdowns() -> st.SearchStrategy[Operation]:
    return st.tuples(st.just("top"), st.integers(0, 2))


def crowds(pool: int = POOL) -> st.SearchStrategy[Operation]:
    """Several visitors at once (a bit mask): later they leave together, past the budget."""
    return st.tuples(st.just("crowd"), st.integers(1, 2**pool - 1))


def steps(kind: str, most: int) -> st.SearchStrategy[Operation]:
    # Short steps too, so that a visitor stays while the ones before it leave.
    short = st.integers(0, min(most, 40)).map(lambda k: k * STEP)
    return st.tuples(st.just(kind), short | st.integers(0, most).map(lambda k: k * STEP))


READ = st.just(("read", 0))
WRONG_READ = st.just(("wrong", 0))


def programs(*operations: st.SearchStrategy[Operation]) -> st.SearchStrategy[Program]:
    return st.lists(st.one_of(*operations), max_size=40)


examples = settings(max_examples=250, deadline=None, database=None, print_blob=True)


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[redis.Redis]:
    # The scripts' semantics against a model: a cluster's node runs the very same
    # scripts, so they are checked on single nodes; the cluster's own behaviour (routing,
    # redirections, failover) is tested in test_cluster.py.
    client = redis.Redis.from_url(single_node(redis_url), decode_responses=True)
    yield client
    client.close()


@examples
@given(
    program=programs(views(), crowds(), READ, steps("advance", 120)),
    budget=st.sampled_from([1, 2, 1_000]),
)
def test_the_count_is_the_model_count(server: redis.Redis, program: Program, budget: int) -> None:
    run(server, program, Limits(budget=budget))


@examples
@given(program=programs(views(), crowds(), READ, steps("advance", 120), steps("back", 120)))
def test_a_visitor_never_moves_backward(server: redis.Redis, program: Program) -> None:
    run(server, program, Limits())


@examples
@example(
    program=[
        ("view", 0), ("view", 1 + POOL), ("on_page", 1), ("view", 1 + 2 * POOL),
        ("advance", 30_000), ("view", 0 + POOL), ("on_page", 1 + 3 * 30), ("top", 2),
        ("advance", 31_000), ("top", 2), ("on_page", 1),
    ],
    budget=1_000,
)  # fmt: skip
@given(
    program=programs(
        views(), crowds(), page_reads(), breakdowns(), steps("advance", 120), steps("back", 120)
    ),
    budget=st.sampled_from([1, 2, 1_000]),
)
def test_pages_sources_and_countries_are_the_model_ones(
    server: redis.Redis, program: Program, budget: int
) -> None:
    run(server, program, Limits(budget=budget))


@examples
@example(program=[("view", 0), ("back", 1_000), ("view", 0), ("advance", 61_000), ("read", 0)])
@given(program=programs(views(), crowds(), READ, steps("advance", 120), steps("back", 120)))
def test_the_set_expires_after_its_last_visitor(server: redis.Redis, program: Program) -> None:
    run(server, program, Limits())


@examples
@given(
    program=programs(READ, WRONG_READ, steps("advance", 4_000), steps("back", 120)),
    limit=st.sampled_from([1, 2, 5, 60]),
)
def test_the_bucket_is_the_model_bucket(server: redis.Redis, program: Program, limit: int) -> None:
    run(server, program, Limits(limit=limit))


@examples
@given(
    program=programs(READ, WRONG_READ, steps("advance", 120)),
    max_failures=st.sampled_from([1, 2, 3]),
)
def test_failed_authentications_block_the_address(
    server: redis.Redis, program: Program, max_failures: int
) -> None:
    run(server, program, Limits(max_failures=max_failures))


@examples
@given(
    program=programs(views(), crowds(), READ, steps("advance", 120)),
    cap=st.sampled_from([1, 2, 3]),
    budget=st.sampled_from([1, 1_000]),
)
def test_an_address_adds_at_most_cap_new_visitors_per_window(
    server: redis.Redis, program: Program, cap: int, budget: int
) -> None:
    run(server, program, Limits(cap=cap, budget=budget))


@examples
@example(
    program=[
        ("view", 0),
        ("advance", 60_000),
        ("view", 0),
        ("advance", 1_000),
        ("view", 1),
        ("advance", 60_000),
        ("view", 0),
        ("read", 0),
    ]
)
@given(program=programs(views(), crowds(), READ, steps("advance", 120)))
def test_a_visitor_back_after_the_window_is_new(server: redis.Redis, program: Program) -> None:
    run(server, program, Limits(cap=1))


@settings(max_examples=40, deadline=None, database=None)
@given(offset=st.integers(-30, 30))
def test_the_window_ends_to_the_millisecond(server: redis.Redis, offset: int) -> None:
    note(f"offset {offset} ms")
    with Lab(server, Limits()) as lab:
        gone = member_of("v0")
        score = lab.server_ms() - WINDOW + offset
        server.zadd(lab.keys.visitors, {gone: score})
        reply = lab.call_realtime(valid=True)
        assert reply.visitors == (score > reply.now - WINDOW)
        assert lab.call_pageview("v1") == 1
        now = server.zscore(lab.keys.visitors, member_of("v1"))
        assert now is not None
        # The pageview trims exactly the visitors that the count no longer sees.
        assert (server.zscore(lab.keys.visitors, gone) is not None) == (score > now - WINDOW)
