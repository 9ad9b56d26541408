"""GET /api/v1/realtime/stream: the live count pushed as Server-Sent Events.

Authenticated as the count itself: a secret token in the Authorization header (one
request of the website's budget, spent when the stream opens) or a publishable key
in `key=`. Every stream of a website and path in this process shares one poll a
second (live/counts.py); an event goes out when the count changes.

Plain ASGI, and the request's own task is the only one a stream keeps: it sends the
first event, registers a Subscriber with the topic and waits for the client to
leave. The topic's poller hands each change to every Subscriber, which sends it from
a short-lived task, one at a time, keeping only the newest event while a send is in
flight, so a slow client delays nobody else. One task per endpoint sends the pings
and notices shutdown. (sse-starlette's response kept four tasks per stream: three
quarters of a stream's memory.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from sse_starlette.sse import AppStatus
from starlette.types import Message, Receive, Scope, Send

from ..config import Settings
from ..live import Closed, State, Unavailable
from ..live.counts import Key
from ..storage.store import RealtimeResult, Store
from .asgi import Headers
from .public import PublicReads, key_digest
from .routes import Realtime

PING_SECONDS = 15
RETRY_MS = 2000  # how soon a browser reconnects after the connection drops
# A client that takes longer than this to take one event is dropped.
SEND_TIMEOUT_SECONDS = 30
# How often the keeper looks for a shutdown: streams end within this of SIGTERM.
EXIT_POLL_SECONDS = 0.25
UNAVAILABLE = orjson.dumps({"error": "Service unavailable"}).decode()

Render = Callable[[int, int], str]  # visitors, now ms -> the event's data


def event(data: str, name: str, id: str | None = None, retry: int | None = None) -> bytes:
    """One event in the text/event-stream format (data holds no line break: JSON)."""
    lines = [f"id: {id}"] if id is not None else []
    lines += [f"event: {name}", f"data: {data}"]
    if retry is not None:
        lines.append(f"retry: {retry}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


PING = b": ping\r\n\r\n"
UNAVAILABLE_EVENT = event(UNAVAILABLE, "unavailable")
END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx would otherwise hold the events back to fill its buffer.
    (b"x-accel-buffering", b"no"),
]


class Stream(Realtime):
    """GET /api/v1/realtime/stream?websiteId=ID[&path=/p]"""

    params = ("path",)

    def __init__(self, settings: Settings, store: Store, public: PublicReads) -> None:
        super().__init__(settings, store, public)
        self.open: set[Subscriber] = set()
        self._keeper: asyncio.Task[None] | None = None

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        first: RealtimeResult,
        params: dict[str, str],
        headers: Headers | None = None,
        key: str | None = None,
    ) -> None:
        """The stream. A secret token was checked once, as it opened (one request of
        the budget); a publishable key is watched, so that revoking it ends the stream."""
        public_key = key_digest(key) if key is not None else None

        def render(visitors: int, now_ms: int) -> str:
            return self.render(
                website_id, RealtimeResult.counted(visitors, now_ms), params
            ).decode()

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": STREAM_HEADERS + (headers or []),
            }
        )
        if scope["method"] == "HEAD":
            await send(END)  # the headers only: a HEAD has no stream to wait for
            return
        await send(body(visitors_event(first.visitors, first.now_ms, render, retry=RETRY_MS)))
        handler = asyncio.current_task()
        assert handler is not None
        subscriber = Subscriber(send, render, public_key, first.visitors, handler)
        counts = self.public.counts
        topic = counts.subscribe(
            Key(website_id, params.get("path", ""), self.settings.window_ms), subscriber
        )
        self.open.add(subscriber)
        self._keep()
        try:
            # Until the client leaves, or the stream's END was sent: uvicorn then
            # completes the response and answers this receive() with http.disconnect.
            while (await receive())["type"] != "http.disconnect":
                pass
        except asyncio.CancelledError:
            if not subscriber.dropped:
                raise
            # Dropped for taking too long to read: returning with the response
            # unfinished makes the server close the connection.
            handler.uncancel()
        finally:
            subscriber.stop()
            self.open.discard(subscriber)
            counts.release(topic, subscriber)

    def _keep(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.ensure_future(self._keep_streams())

    async def _keep_streams(self) -> None:
        """One task for all the endpoint's streams, while there are any: the pings,
        and shutdown. uvicorn waits for open responses before it tells the app to stop
        (lifespan), and offers no hook in between; sse-starlette, still installed,
        patches uvicorn's Server.handle_exit to set AppStatus.should_exit, which is
        read here (sse-starlette's own watcher does the same, twice as slowly)."""
        pinged = asyncio.get_running_loop().time()
        while self.open:
            if AppStatus.should_exit:
                self.public.counts.close()  # every stream sends its END
                return
            now = asyncio.get_running_loop().time()
            if now - pinged >= PING_SECONDS:
                pinged = now
                for subscriber in list(self.open):
                    subscriber.ping()
            await asyncio.sleep(EXIT_POLL_SECONDS)


class Subscriber:
    """One open stream: what it showed last, and at most one send in flight."""

    __slots__ = (
        "_ended",
        "_queued",
        "_sending",
        "down",
        "dropped",
        "handler",
        "public_key",
        "render",
        "send",
        "shown",
    )

    def __init__(
        self,
        send: Send,
        render: Render,
        public_key: str | None,
        shown: int,
        handler: asyncio.Task[object],
    ) -> None:
        self.send = send
        self.render = render
        self.public_key = public_key  # its digest; None for a secret token's stream
        self.shown, self.down = shown, False
        self.handler = handler
        self.dropped = False
        self._ended = False
        self._sending: asyncio.Task[None] | None = None
        self._queued: Message | None = None

    def publish(self, state: State) -> None:
        """`visitors` when the count changes; `unavailable` once while Redis does not
        answer, then `visitors` again. Ends when the website is deleted or the public
        key revoked (the browser's reconnection then gets the refusal) or the server
        stops."""
        if isinstance(state, Unavailable):
            if not self.down:
                self.down = True
                self._write(body(UNAVAILABLE_EVENT))
        elif (
            isinstance(state, Closed)
            or not state.found
            or (self.public_key is not None and self.public_key not in state.public_keys)
        ):
            self._write(END)
            self._ended = True
        elif state.visitors != self.shown or self.down:
            self.shown, self.down = state.visitors, False
            self._write(body(visitors_event(state.visitors, state.now_ms, self.render)))

    def ping(self) -> None:
        # A connection that is sending needs no ping to stay open.
        if self._sending is None:
            self._write(body(PING))

    def stop(self) -> None:
        self._ended = True
        if self._sending is not None:
            self._sending.cancel()

    def _write(self, message: Message) -> None:
        if self._ended:
            return
        if self._sending is None:
            self._sending = asyncio.ensure_future(self._send(message))
        else:
            self._queued = message  # only the newest state matters

    async def _send(self, message: Message | None) -> None:
        try:
            while message is not None:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    await self.send(message)
                message, self._queued = self._queued, None
        except Exception:  # too slow (TimeoutError), or the connection broke
            self.dropped = True
            self.handler.cancel()
        finally:
            self._sending = None


def body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


def visitors_event(visitors: int, now_ms: int, render: Render, retry: int | None = None) -> bytes:
    # The id is the count's time on the Redis clock: increasing, and the same for
    # every process that read the count in the same millisecond.
    return event(render(visitors, now_ms), "visitors", id=str(now_ms), retry=retry)
