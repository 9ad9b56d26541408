"""The access log: a line per request, written in batches off the request's path.

uvicorn's access log cost 38% of the realtime endpoint's throughput (a LogRecord, a
Formatter and a write per request). Here a request adds a line to a list, made with
one %-format of parts kept from line to line; `flush()`, a few times a second
(http/observe.py), writes them all at once.

A line holds the method, the path without its query string, the status and the
duration, never the client's address or a header: the query may hold a key, and the
address is personal data this service otherwise keeps only as a hash.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable, Iterator

import orjson

from .logformat import JSON

log = logging.getLogger("realtime_visitors")

# A write to a pipe of at most PIPE_BUF bytes is never interleaved with another
# process's: with --workers N sharing stdout, every line stays whole.
PIPE_BUF = getattr(select, "PIPE_BUF", 512)
# Lines held at most between two flushes, should the timer fall behind.
MOST_BUFFERED = 20_000

Write = Callable[[bytes], None]

# 2026-11-27T13:31:52.768Z INFO GET /api/v1/realtime 200 0.84ms
TEXT = "%sZ INFO %s %.2fms\n"
JSON_LINE = '{"time":"%sZ",%s%.3f}\n'
# The part of a line between its time and its duration, kept per method, path and
# status: a busy service answers the same few all day. At most this many, so that a
# scanner's made-up paths cannot grow it.
MOST_KEPT = 4096


def write_stdout(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


class AccessLog:
    def __init__(self, log_format: str, write: Write = write_stdout) -> None:
        self.lines: list[str] = []
        self.json = log_format == JSON
        self.line = JSON_LINE if self.json else TEXT
        self.write = write
        self._middles: dict[tuple[str, str, int], str] = {}
        self._second, self._date = -1, ""
        self._ms, self._stamp = -1, ""
        self._failed = False

    def add(self, ended: float, method: str, path: str, status: int, seconds: float) -> None:
        """A response ended at `ended` (wall-clock seconds), `seconds` after its request."""
        # Formatted now, while what it is made of is still in the CPU's cache: the same
        # %-format over a batch of tuples 0.2 s later took about twice as long in a
        # busy server, and stalled its event loop for milliseconds.
        # What is the same from line to line is formatted once: the time to the
        # millisecond, and the middle.
        ms = int(ended * 1000)
        if ms != self._ms:
            self._new_ms(ms)
        middle = self._middles.get((method, path, status)) or self._middle(method, path, status)
        self.lines.append(self.line % (self._stamp, middle, seconds * 1000))
        if len(self.lines) >= MOST_BUFFERED:
            self.flush()

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        if not lines:
            return
        data = "".join(lines).encode("utf-8", "backslashreplace")
        try:
            for piece in pieces(data, PIPE_BUF):
                self.write(piece)
        except OSError as exc:  # stdout closed or gone: the service goes on without it
            if not self._failed:
                log.warning("cannot write the access log, lines are dropped: %s", exc)
            self._failed = True
        else:
            self._failed = False

    def _new_ms(self, ms: int) -> None:
        whole, millis = divmod(ms, 1000)
        if whole != self._second:
            date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            self._second, self._date = whole, date
        self._ms, self._stamp = ms, f"{self._date}.{millis:03d}"

    def _middle(self, method: str, path: str, status: int) -> str:
        """The line between its time and its duration."""
        quoted = orjson.dumps(path).decode()
        if self.json:
            # An HTTP method is a token: no quote, backslash or control character.
            method = method if method.isalpha() else orjson.dumps(method).decode()[1:-1]
            middle = (
                f'"level":"INFO","logger":"access","message":"{method} {quoted[1:-1]} {status}",'
                f'"method":"{method}","path":{quoted},"status":{status},"duration_ms":'
            )
        else:
            # The path as it is, unless a space or a control character (a decoded %0A,
            # say) could pass for another field or another line: then as JSON.
            shown = path if path.isprintable() and " " not in path else quoted
            middle = f"{method} {shown} {status}"
        if len(self._middles) < MOST_KEPT:
            self._middles[method, path, status] = middle
        return middle


def pieces(data: bytes, most: int) -> Iterator[bytes]:
    """`data` in pieces of at most `most` bytes, each ending at a line's end (a line
    longer than that is a piece of its own)."""
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + most) + 1
        if end <= start:  # one line longer than `most`
            end = data.find(b"\n", start + most) + 1 or len(data)
        yield data[start:end]
        start = end
