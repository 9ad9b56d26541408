"""GET /api/v1/realtime/stream: the live count pushed as Server-Sent Events.

Authenticated as the count itself: a secret token in the Authorization header (one
request of the website's budget, spent when the stream opens) or a publishable key
in `key=`. Every stream of a website and path in this process shares one poll a
second (live/counts.py); an event goes out when the count changes.

sse-starlette sends the pings, notices a client that leaves, and ends every stream
when the server is told to stop, so SIGTERM never waits on an open stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from ..live import Closed, Counts, Unavailable
from ..live.counts import Key
from ..storage.store import RealtimeResult, RealtimeStatus
from ..storage.tokens import digest
from .asgi import Headers
from .routes import Realtime

PING_SECONDS = 15
RETRY_MS = 2000  # how soon a browser reconnects after the connection drops
# A client that takes longer than this to take one event is dropped.
SEND_TIMEOUT_SECONDS = 30
SHUTDOWN_GRACE_SECONDS = 2
UNAVAILABLE = orjson.dumps({"error": "Service unavailable"}).decode()

Render = Callable[[int, int], str]  # visitors, now ms -> the event's data


class Stream(Realtime):
    """GET /api/v1/realtime/stream?websiteId=ID[&path=/p]"""

    params = ("path",)

    async def answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        result: RealtimeResult,
        params: dict[str, str],
        headers: Headers | None = None,
    ) -> None:
        # A secret token was checked once, as the stream opened (one request of the
        # budget); what follows costs the website nothing.
        await self.stream(scope, receive, send, website_id, result, params, headers or [], None)

    async def read_public(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        key: str,
        params: dict[str, str],
    ) -> None:
        path, window_ms = params.get("path", ""), self.settings.window_ms
        count = await self.public.admit(scope, send, website_id, key, path, window_ms)
        if count is None:
            return
        first = RealtimeResult(RealtimeStatus.OK, count.visitors, 0, 0, 0, 0, count.now_ms)
        headers = self.public.cors(scope, count, key)
        await self.stream(scope, receive, send, website_id, first, params, headers, digest(key))

    async def stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        website_id: str,
        first: RealtimeResult,
        params: dict[str, str],
        headers: Headers,
        public_key: str | None,
    ) -> None:
        def render(visitors: int, now_ms: int) -> str:
            ok = RealtimeResult(RealtimeStatus.OK, visitors, 0, 0, 0, 0, now_ms)
            return self.render(website_id, ok, params).decode()

        key = Key(website_id, params.get("path", ""), self.settings.window_ms)
        response = EventSourceResponse(
            visitor_events(self.public.counts, key, first, render, public_key),
            headers={name.decode(): value.decode() for name, value in headers},
            ping=PING_SECONDS,
            ping_message_factory=lambda: ServerSentEvent(comment="ping"),
            send_timeout=SEND_TIMEOUT_SECONDS,
            # At shutdown the stream ends by itself (Counts.stopping), well within this.
            shutdown_event=self.public.counts.stopping(),
            shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
        )
        await response(scope, receive, send)


async def visitor_events(
    counts: Counts, key: Key, first: RealtimeResult, render: Render, public_key: str | None
) -> AsyncIterator[ServerSentEvent]:
    """`visitors` at once and whenever the count changes; `unavailable` once while
    Redis does not answer, then `visitors` again. Ends when the website is deleted or
    the public key (its digest) revoked: the browser's reconnection then gets the
    refusal."""
    topic = counts.subscribe(key)
    try:
        seen = topic.version
        shown, down = first.visitors, False
        yield visitors_event(first.visitors, first.now_ms, render, retry=RETRY_MS)
        while True:
            seen = await topic.after(seen)
            state = topic.latest
            if isinstance(state, Unavailable):
                if not down:
                    yield ServerSentEvent(data=UNAVAILABLE, event="unavailable")
                    down = True
                continue
            if isinstance(state, Closed) or state is None or not state.found:
                return
            if public_key is not None and public_key not in state.public_keys:
                return
            if state.visitors != shown or down:
                yield visitors_event(state.visitors, state.now_ms, render)
                shown, down = state.visitors, False
    finally:
        counts.release(topic)


def visitors_event(
    visitors: int, now_ms: int, render: Render, retry: int | None = None
) -> ServerSentEvent:
    # The id is the count's time on the Redis clock: increasing, and the same for
    # every process that read the count in the same millisecond.
    return ServerSentEvent(
        data=render(visitors, now_ms), event="visitors", id=str(now_ms), retry=retry
    )
