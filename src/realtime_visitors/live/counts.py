"""One read of a live count per second per process, shared by everyone who asks.

Public reads ask `latest()`: the answer is at most `interval` old, and concurrent
askers of a stale count share one Redis call. Streams `subscribe()` to a Topic: one
poller per website, path and window reads through the same cache each interval and
hands the answer to each subscriber when it changed.

Polling was chosen over keyspace notifications or pub/sub: a pageview would have to
publish (one more command on the hottest path, for every pageview of every website,
watched or not), notifications are off by default and unrouted in a Cluster, and the
count also changes when visitors leave the window, which no write announces. A poll a
second per watched website costs one EVALSHA, whatever the number of subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..storage import StorageError, Store
from ..storage.store import LiveCount

log = logging.getLogger("realtime_visitors")

INTERVAL = 1.0  # seconds: how old a shared count may be
CLOCK_SLACK = 0.005  # seconds a poll waits past the interval
MAX_ENTRIES = 10_000  # cached counts kept at most; stale ones go first


class Key(NamedTuple):
    website_id: str
    path: str  # "" for the whole website
    window_ms: int


@dataclass(frozen=True, slots=True)
class Unavailable:
    """What a topic holds while Redis does not answer."""

    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    """What every topic holds once the server is stopping: its streams end."""


State = LiveCount | Unavailable | Closed


class Subscriber(Protocol):
    def publish(self, state: State) -> None:
        """Takes a new state without waiting: the poller serves every subscriber."""


@dataclass(slots=True)
class _Entry:
    count: LiveCount
    read_at: float  # monotonic time the read began: no two reads less than INTERVAL apart


class Counts:
    def __init__(
        self,
        store: Store,
        interval: float = INTERVAL,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.interval = interval
        self.on_error = on_error  # told of each poll that Redis did not answer (metrics)
        self._entries: dict[Key, _Entry] = {}
        self._pending: dict[Key, asyncio.Future[LiveCount]] = {}
        self._topics: dict[Key, Topic] = {}
        self.closed = False

    async def latest(self, key: Key) -> LiveCount:
        """The count, at most `interval` old. Raises StorageError."""
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry.read_at < self.interval:
            return entry.count
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._read(key))
            self._pending[key] = pending
            pending.add_done_callback(lambda done: self._settle(key, done))
        # Shielded: a client that goes away does not cancel the others' read.
        return await asyncio.shield(pending)

    async def _read(self, key: Key) -> LiveCount:
        began = time.monotonic()
        count = await self.store.live(*key)
        if len(self._entries) >= MAX_ENTRIES:
            self._evict(began)
        self._entries[key] = _Entry(count, began)
        return count

    def read_at(self, key: Key, default: float) -> float:
        """When the read behind the cached count began; `default` when there is none."""
        entry = self._entries.get(key)
        return entry.read_at if entry is not None else default

    def _settle(self, key: Key, done: asyncio.Future[LiveCount]) -> None:
        self._pending.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here: a shielded caller may be gone

    def _evict(self, now: float) -> None:
        stale = [k for k, e in self._entries.items() if now - e.read_at >= self.interval]
        for key in stale or list(self._entries):
            del self._entries[key]

    def subscribe(self, key: Key, subscriber: Subscriber) -> Topic:
        """The key's topic, polled while it has subscribers; `release()` it after."""
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = Topic(self, key)
        topic.subscribers.add(subscriber)
        if self.closed:
            subscriber.publish(Closed())
        else:
            topic.start()
        return topic

    def close(self) -> None:
        """The server stops: every topic holds Closed, so each stream ends its response
        cleanly instead of being cut off."""
        self.closed = True
        for topic in list(self._topics.values()):
            topic.stop()
            topic.publish(Closed())

    def release(self, topic: Topic, subscriber: Subscriber) -> None:
        topic.subscribers.discard(subscriber)
        if not topic.subscribers:
            # Freed at once: the last subscriber gone, nobody polls for it.
            topic.stop()
            if self._topics.get(topic.key) is topic:
                del self._topics[topic.key]

    @property
    def topics(self) -> int:
        return len(self._topics)


class Topic:
    """The latest count of one key, handed to each subscriber when it changes."""

    def __init__(self, counts: Counts, key: Key) -> None:
        self.counts = counts
        self.key = key
        self.subscribers: set[Subscriber] = set()
        self.latest: State | None = None
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.ensure_future(self._poll())

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def publish(self, state: State) -> None:
        if same(state, self.latest):
            return
        self.latest = state
        # A copy: a subscriber that ends may leave the set while it is walked.
        for subscriber in list(self.subscribers):
            subscriber.publish(state)

    async def _poll(self) -> None:
        while True:
            began = time.monotonic()
            due = began + self.counts.interval
            try:
                count = await self.counts.latest(self.key)
            except StorageError as exc:
                if self.counts.on_error is not None:
                    self.counts.on_error()
                self.publish(Unavailable(str(exc)))
            except Exception as exc:  # a bug must not leave the subscribers waiting
                log.exception("live count of %s failed", self.key.website_id)
                self.publish(Unavailable(str(exc)))
            else:
                # The next read is due an interval after this count's read began, which
                # is later than `began` (the read is a task of its own) or, when a public
                # read made it, earlier. Waking from `began` instead finds the count still
                # fresh whenever the loop is busy, and skips a whole second.
                due = self.counts.read_at(self.key, began) + self.counts.interval
                self.publish(count)
            # A hair late rather than early: the loop's clock (uvloop's counts whole
            # milliseconds) may wake the poller before the cached count is stale.
            await asyncio.sleep(max(0.0, due - time.monotonic()) + CLOCK_SLACK)


def same(state: State, before: State | None) -> bool:
    """Nothing a subscriber shows has changed: a count's time of reading is no change."""
    if isinstance(state, LiveCount) and isinstance(before, LiveCount):
        return (state.found, state.visitors, state.public_keys) == (
            before.found, before.visitors, before.public_keys
        )  # fmt: skip
    return state == before
