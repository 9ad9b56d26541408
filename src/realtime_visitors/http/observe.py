"""One observation of every HTTP request, taken where FastLane sees them all, for the
metrics and the access log alike; and the timer that flushes both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from time import perf_counter

from starlette.routing import BaseRoute, Route

from ..ops.accesslog import AccessLog
from ..ops.metrics import Metrics

# The label of a method outside these, and of a path that is no route's: what a
# scanner sends must not grow the metrics without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"
LOG_EVERY = 0.2  # seconds between two writes of the access log
METRICS_EVERY = 1.0  # seconds between two flushes of the metrics


class Observer:
    def __init__(
        self, routes: Iterable[BaseRoute], metrics: Metrics | None, access: AccessLog | None
    ) -> None:
        self.metrics = metrics
        self.access = access
        plain = [route for route in routes if isinstance(route, Route)]
        self.static = {route.path for route in plain if not route.param_convertors}
        self.templates = [(r.path_regex, r.path) for r in plain if r.param_convertors]
        if metrics is not None:
            metrics.labels = self.labels
        # perf_counter() to the wall clock, set again at each flush.
        self._offset = time.time() - perf_counter()
        self._timer: asyncio.TimerHandle | None = None
        self._metrics_due = 0.0

    def labels(self, method: str, path: str) -> tuple[str, str]:
        """A bounded set of labels, whatever a scanner sends: the method, or "other" for
        one no client of this API sends, and the route's template."""
        return method if method in METHODS else OTHER, self.endpoint(path)

    def endpoint(self, path: str) -> str:
        """The route's template (`/api/v1/admin/websites/{websiteId}`), or "other"."""
        if path in self.static:
            return path
        for regex, template in self.templates:
            if regex.match(path):
                return template
        return OTHER

    def done(self, method: str, path: str, status: int, started: float) -> None:
        """A response ended (`started`: its request's perf_counter())."""
        ended = perf_counter()
        seconds = ended - started
        if self.metrics is not None:
            self.metrics.request(method, path, status, seconds)
        if self.access is not None:
            self.access.add(ended + self._offset, method, path, status, seconds)

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(LOG_EVERY, self._tick)

    def flush(self) -> None:
        if self.access is not None:
            self.access.flush()
        if self.metrics is not None:
            self.metrics.flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.access is not None:
            self.access.flush()
        if self.metrics is not None:
            self.metrics.close()

    def _tick(self) -> None:
        # Armed first: a flush that fails must not stop the next ones.
        self._timer = asyncio.get_running_loop().call_later(LOG_EVERY, self._tick)
        self._offset = time.time() - perf_counter()
        if self.access is not None:
            self.access.flush()
        if self.metrics is not None and time.monotonic() >= self._metrics_due:
            self._metrics_due = time.monotonic() + METRICS_EVERY
            self.metrics.flush()
