"""The hot path's own Redis connection: every request of a process shares one socket.

Calls are written at once, pipelined behind the calls still in flight; the replies,
parsed by hiredis however many arrive in one read, complete their futures in the
order the calls were made, so nothing is reordered and an error reply fails its own
call only. No connection pool to walk, no per-call task or timer.

Writing each call at once beat gathering the calls of one event-loop tick into one
write (bench/, scenario 1: 23k against 14.5k requests/s): the server starts on the
first call while Python still parses the next requests, instead of the two taking
turns.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Awaitable
from typing import Any, cast

import hiredis
from redis.connection import parse_url


class StorageError(Exception):
    """Redis could not be reached, did not answer in time, or refused the call."""


class Redirected(StorageError):
    """A cluster node does not serve the call's slot (MOVED, ASK), or not right now
    (TRYAGAIN during a slot's migration, CLUSTERDOWN): the cluster router decides."""

    def __init__(self, reply: str) -> None:
        super().__init__(f"Redis refused the call: {reply}")
        self.kind, _, rest = reply.partition(" ")
        # "MOVED 3999 127.0.0.1:6381": the node that serves the slot now.
        self.address = rest.partition(" ")[2]


REDIRECTS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


def pack(command: tuple[str | int, ...]) -> bytes:
    """RESP encoding, in C."""
    # hiredis's stub types the command as a tuple of exactly one item.
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]
    return packed


ASKING = pack(("ASKING",))


class Script:
    """A Lua script called by SHA, and by source when the server has forgotten it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 (Redis's script id)

    def evalsha(self, keys: tuple[str, ...], args: tuple[str | int, ...]) -> bytes:
        return pack(("EVALSHA", self.sha, len(keys), *keys, *args))

    def load(self) -> bytes:
        return pack(("SCRIPT", "LOAD", self.source))


class Connection:
    """Opens (and after a failure reopens) one pipelined connection on demand."""

    def __init__(self, url: str, timeout: float) -> None:
        self.params: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self.tls = url.startswith("rediss://")
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Future[_Protocol] | None = None

    async def call(
        self,
        script: Script,
        keys: tuple[str, ...],
        args: tuple[str | int, ...],
        asking: bool = False,
    ) -> Any:
        """The script's reply; `asking`: the slot is being imported here (cluster ASK)."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._open_shared()
        return await protocol.send(script.evalsha(keys, args), script, asking)

    def submit(
        self,
        script: Script,
        keys: tuple[str, ...],
        args: tuple[str | int, ...],
        asking: bool = False,
    ) -> Awaitable[Any]:
        """call(), without a coroutine of its own while the connection is open: the
        cluster router awaits the reply's future directly."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            return self.call(script, keys, args, asking)
        return protocol.send(script.evalsha(keys, args), script, asking)

    async def command(self, *args: str | int) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._open_shared()
        return await protocol.send(pack(args), None)

    async def primaries(self) -> list[Connection]:
        """The nodes that serve keys: this one (a cluster has several)."""
        return [self]

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(StorageError("connection closed"))

    async def _open_shared(self) -> _Protocol:
        # Everyone waiting for a connection shares one attempt: when Redis is down,
        # a burst of requests costs one connect timeout, not one each.
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    def _opened(self, attempt: asyncio.Future[_Protocol]) -> None:
        self._opening = None
        if not attempt.cancelled() and attempt.exception() is None:
            self._protocol = attempt.result()

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        params = self.params
        try:
            if "path" in params:
                connecting = loop.create_unix_connection(
                    lambda: _Protocol(self.timeout), params["path"]
                )
            else:
                tls = ssl.create_default_context() if self.tls else None
                connecting = loop.create_connection(
                    lambda: _Protocol(self.timeout),
                    params.get("host", "localhost"),
                    params.get("port", 6379),
                    ssl=tls,
                )
            _, protocol = await asyncio.wait_for(connecting, self.timeout)
        except (OSError, TimeoutError) as exc:
            raise StorageError(f"cannot connect to Redis: {exc or type(exc).__name__}") from exc
        await self._handshake(protocol)
        return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        params = self.params
        if params.get("password"):
            credentials = [params["password"]]
            if params.get("username"):
                credentials.insert(0, params["username"])
            await protocol.send(pack(("AUTH", *credentials)), None)
        if params.get("db"):
            await protocol.send(pack(("SELECT", params["db"])), None)


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.reader = hiredis.Reader()
        # One entry per command in flight, in the order sent: its future (None when
        # nobody waits for the reply), the script it runs, the command itself, and
        # whether it follows an ASKING (a reply nobody waits for).
        self.pending: deque[tuple[asyncio.Future[Any] | None, Script | None, bytes, bool]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.watchdog: asyncio.TimerHandle | None = None
        self.progress_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but offer the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def send(
        self, command: bytes, script: Script | None, asking: bool = False
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        if not self.closed and self.transport is not None and self.transport.is_closing():
            self.fail(StorageError("connection to Redis lost"))  # the next call reconnects
        if self.closed:
            future.set_exception(StorageError("connection lost"))
        else:
            self._enqueue(future, script, command, asking)
        return future

    def _enqueue(
        self,
        future: asyncio.Future[Any] | None,
        script: Script | None,
        command: bytes,
        asking: bool = False,
    ) -> None:
        if not self.pending:
            self.progress_at = self.loop.time()
        if asking:
            # ASKING holds for the next command on this connection only: written
            # together, nothing can come between them.
            self.pending.append((None, None, ASKING, False))
            command = ASKING + command
        self.pending.append((future, script, command, asking))
        assert self.transport is not None
        self.transport.write(command)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout / 4, self._check_progress)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        self.progress_at = self.loop.time()
        pending = self.pending
        while (reply := self.reader.gets()) is not False:
            future, script, command, asking = pending.popleft()
            if future is None or future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                if script is not None and text.startswith("NOSCRIPT"):
                    # Redis restarted, SCRIPT FLUSH, or a replica just promoted: load the
                    # script again and repeat the call once; the load serves every
                    # later call too.
                    if asking:
                        command = command[len(ASKING) :]
                    self._enqueue(None, None, script.load())
                    self._enqueue(future, None, command, asking)
                elif text.startswith(REDIRECTS):
                    future.set_exception(Redirected(text))
                else:
                    future.set_exception(StorageError(f"Redis refused the call: {text}"))
            else:
                future.set_result(reply)

    def _check_progress(self) -> None:
        self.watchdog = None
        if self.closed or not self.pending:
            return
        if self.loop.time() - self.progress_at > self.timeout:
            self.fail(StorageError("Redis did not answer in time"))
            return
        self.watchdog = self.loop.call_later(self.timeout / 4, self._check_progress)

    def eof_received(self) -> bool:
        # The server closed its side: fail now, before more calls are written into a
        # socket that asyncio already counts as lost (and warns about each write).
        self.fail(StorageError("connection to Redis lost: closed by the server"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(StorageError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def fail(self, error: StorageError) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            future, *_ = self.pending.popleft()
            if future is not None and not future.done():
                future.set_exception(error)
