"""The pipelined hot-path connection: coalescing keeps order, isolates errors, heals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis

from realtime_visitors.storage.connection import Connection, Script, StorageError

from .conftest import single_node, unique_id

T = TypeVar("T")

INCR = Script("return redis.call('INCR', KEYS[1])")
# Fails when asked to: an error reply in the middle of a coalesced batch.
ECHO_OR_FAIL = Script(
    "if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end return ARGV[1]"
)


@pytest.fixture
def redis_url(redis_url: str) -> str:
    return single_node(redis_url)


def run(url: str, action: Callable[[Connection], Awaitable[T]], timeout: float = 1.0) -> T:
    async def main() -> T:
        connection = Connection(url, timeout)
        try:
            return await action(connection)
        finally:
            connection.close()

    return asyncio.run(main())


def test_calls_of_one_tick_keep_their_order(redis_url: str, raw: redis.Redis) -> None:
    key = f"rtv:{{{unique_id()}}}:counter"

    async def burst(connection: Connection) -> list[Any]:
        return await asyncio.gather(*(connection.call(INCR, (key,), ()) for _ in range(500)))

    assert run(redis_url, burst) == list(range(1, 501))
    assert raw.get(key) == "500"
    raw.delete(key)


def test_an_error_fails_its_own_call_only(redis_url: str) -> None:
    words = [("fail" if i % 7 == 3 else f"w{i}") for i in range(100)]

    async def burst(connection: Connection) -> list[Any]:
        calls = (connection.call(ECHO_OR_FAIL, (), (word,)) for word in words)
        return await asyncio.gather(*calls, return_exceptions=True)

    results = run(redis_url, burst)
    for word, result in zip(words, results, strict=True):
        if word == "fail":
            assert isinstance(result, StorageError)
            assert "asked to fail" in str(result)
        else:
            assert result == word.encode()


def test_noscript_in_a_burst_reloads_once_and_answers_all(redis_url: str, raw: redis.Redis) -> None:
    key = f"rtv:{{{unique_id()}}}:counter"

    async def flushed_burst(connection: Connection) -> list[Any]:
        await connection.call(INCR, (key,), ())
        raw.script_flush()
        return await asyncio.gather(*(connection.call(INCR, (key,), ()) for _ in range(50)))

    results = run(redis_url, flushed_burst)
    assert sorted(results) == list(range(2, 52))
    assert raw.get(key) == "51"
    raw.delete(key)


def test_a_paused_server_times_out_then_heals(redis_url: str, raw: redis.Redis) -> None:
    async def paused(connection: Connection) -> tuple[float, Any]:
        assert await connection.command("PING") == b"PONG"
        raw.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.monotonic()
        with pytest.raises(StorageError, match="in time"):
            await connection.command("PING")
        waited = time.monotonic() - started
        raw.execute_command("CLIENT", "UNPAUSE")
        return waited, await connection.command("PING")

    waited, pong = run(redis_url, paused, timeout=0.3)
    assert waited < 1.0  # the timeout, not the pause, decided
    assert pong == b"PONG"


def test_a_killed_connection_is_reopened(redis_url: str, raw: redis.Redis) -> None:
    async def killed(connection: Connection) -> Any:
        await connection.command("CLIENT", "SETNAME", "rtv-test-kill")
        raw.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        # The loss is seen when the server closes the socket; wait for it, then call.
        deadline = time.monotonic() + 2
        while connection._protocol is not None and not connection._protocol.closed:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        return await connection.command("PING")

    assert run(redis_url, killed) == b"PONG"


def test_unreachable_server_fails_every_waiter_at_once(tmp_path) -> None:
    async def burst(connection: Connection) -> list[Any]:
        return await asyncio.gather(
            *(connection.command("PING") for _ in range(20)), return_exceptions=True
        )

    started = time.monotonic()
    results = run(f"unix://{tmp_path}/nothing.sock", burst)
    assert all(isinstance(result, StorageError) for result in results)
    assert time.monotonic() - started < 1.0


def test_the_database_in_the_url_is_selected(redis_url: str) -> None:
    if not redis_url.startswith("redis://"):
        pytest.skip("needs a TCP REDIS_URL (CI passes the machine's Redis)")
    url = redis_url.rsplit("/", 1)[0] + "/5"
    key = f"rtv:{{{unique_id()}}}:counter"
    assert run(url, lambda connection: connection.call(INCR, (key,), ())) == 1
    other = redis.Redis.from_url(url, decode_responses=True)
    assert other.get(key) == "1"
    other.delete(key)
