"""The Redis backend against a real Redis, and without one: a cache that is down or slow
is bypassed within ~20 ms and the call succeeds (gateways F16)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from aiport._cache import CacheBackend, backend_from_config
from aiport._cache._redis import RedisCache
from aiport._config import CacheConfig
from aiport._types import ModelCompletionOptions
from aiport.testing import Emulator
from tests.cache.conftest import CHAT_PATH, OPENAI_MODEL, MakeLayer
from tests.resilience.conftest import RedisServer

HELLO = ModelCompletionOptions(model=OPENAI_MODEL, messages="hello there")
#: The bypass budget of the spec, plus room for a loaded CI machine.
BYPASS_BUDGET = 0.05


@pytest.fixture
async def make_cache(
    redis_url: str, redis_namespace: str
) -> AsyncIterator[Callable[..., RedisCache]]:
    made: list[RedisCache] = []

    def make(**kwargs: object) -> RedisCache:
        kwargs.setdefault("namespace", redis_namespace)
        kwargs.setdefault("timeout", 0.5)  # a real Redis: generous, never the point here
        cache = RedisCache(redis_url, **kwargs)  # type: ignore[arg-type]
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (a Redis stuck or far away)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


async def test_redis_cache_basics(make_cache: Callable[..., RedisCache]) -> None:
    cache = make_cache()
    assert isinstance(cache, CacheBackend)
    await cache.set("k", b"\x00\xffvalue", 60)
    assert await cache.get("k") == b"\x00\xffvalue"
    await cache.set_many([("a", b"1"), ("b", b"2")], 60)
    assert await cache.get_many(["a", "zz", "b"]) == [b"1", None, b"2"]
    assert await cache.get_many([]) == []
    await cache.set_many([], 60)
    await cache.delete("a")
    assert await cache.get("a") is None
    await cache.set("short", b"x", 0.05)  # Redis expires it itself (PX)
    await asyncio.sleep(0.1)
    assert await cache.get("short") is None
    assert cache.available and cache.bypasses == 0
    assert "redis://" not in repr(cache)


async def test_two_caches_share_entries_through_redis(
    emulator: Emulator, make_layer: MakeLayer, make_cache: Callable[..., RedisCache]
) -> None:
    first = make_layer(backend=make_cache())
    second = make_layer(backend=make_cache())  # another process, as far as Redis knows
    answer = await first.complete(HELLO)
    again = await second.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 1
    assert again.text == answer.text
    assert second.stats.hits == 1


async def test_redis_down_is_bypassed_quickly(
    emulator: Emulator, make_layer: MakeLayer, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", retry_interval=0)
    layer = make_layer(backend=cache)
    try:
        with caplog.at_level(logging.WARNING, logger="aiport"):
            for _ in range(3):
                started = time.perf_counter()
                assert await cache.get("k") is None
                assert time.perf_counter() - started < BYPASS_BUDGET
                answer = await layer.complete(HELLO)
                assert answer.text == "You said: hello there"
        assert emulator.count(CHAT_PATH) == 3
        assert cache.bypasses >= 6  # each get and set went without Redis
        assert not cache.available
        outage_warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
        assert len(outage_warnings) == 1  # once per outage, not per call
    finally:
        await cache.aclose()


async def test_slow_redis_is_bypassed_within_the_timeout(
    emulator: Emulator, make_layer: MakeLayer, black_hole: int
) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{black_hole}/0", timeout=0.02, retry_interval=0)
    layer = make_layer(backend=cache)
    try:
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            assert await cache.get_many(["a", "b"]) == [None, None]
            timings.append(time.perf_counter() - started)
        assert max(timings) < BYPASS_BUDGET, timings
        started = time.perf_counter()
        await layer.complete(HELLO)  # a read and a write bypassed, the call itself served
        assert emulator.count(CHAT_PATH) == 1
        assert cache.bypasses == 5
    finally:
        await cache.aclose()


async def test_during_an_outage_redis_is_left_alone(black_hole: int) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{black_hole}/0", timeout=0.02, retry_interval=60)
    try:
        await cache.get("k")  # times out: Redis is marked down
        started = time.perf_counter()
        for _ in range(100):
            await cache.set("k", b"v", 1)
        assert time.perf_counter() - started < 0.02  # no wait at all while down
        assert cache.bypasses == 101
    finally:
        await cache.aclose()


async def test_redis_coming_back_is_used_again(
    redis_server_factory: Callable[[], RedisServer],
    redis_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = redis_server_factory()
    cache = RedisCache(server.url, namespace=redis_namespace, timeout=0.5, retry_interval=0)
    try:
        await cache.set("k", b"v", 60)
        server.stop()
        with caplog.at_level(logging.INFO, logger="aiport"):
            assert await cache.get("k") is None
            assert not cache.available
            await asyncio.to_thread(server.start)
            await cache.set("k", b"back", 60)
            assert await cache.get("k") == b"back"
        assert cache.available
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await cache.aclose()
        server.stop()


async def test_backend_from_config_makes_a_redis_cache(redis_url: str) -> None:
    cache = backend_from_config(
        CacheConfig(backend="redis", redis_timeout=0.1), redis_url=redis_url
    )
    assert isinstance(cache, RedisCache)
    assert cache.timeout == 0.1
    await cache.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await cache.get("k")


def test_missing_redis_package_explains_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"pip install 'aiport\[redis\]'"):
        RedisCache("redis://localhost")


async def test_waiting_for_a_free_connection_is_not_an_outage(
    make_cache: Callable[..., RedisCache],
) -> None:
    cache = make_cache(timeout=0.02, max_connections=1)
    await cache.set("k", b"v", 60)
    gate = cache._conn().gate
    async with gate:  # every connection busy: the next operation cannot start in time
        assert await cache.get("k") is None
    assert cache.bypasses == 1
    assert cache.available  # load, not an outage: the next call uses Redis at once
    assert await cache.get("k") == b"v"
