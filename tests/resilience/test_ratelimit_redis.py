"""Rate limits shared through Redis: exact across processes (F1), shared pauses, leases
that expire, and a Redis that goes away and comes back.

Redis comes from ``conftest.py`` (``AIPORT_TEST_REDIS_URL`` or a private server);
every test uses its own key prefix or scope.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiport._config import RateLimitConfig
from aiport._credentials import StaticCredential
from aiport._errors import ProviderRateLimitError
from aiport._http import HttpClient
from aiport._limits import (
    Bucket,
    Lease,
    LimiterUnavailableError,
    LimitExceededError,
    create_limiter,
    limit_scope,
)
from aiport._limits._redis import RedisLimiter
from aiport._types import ModelCompletionOptions
from aiport.layers._ratelimit import RateLimitLayer
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault
from tests.conftest import OPENAI_KEY
from tests.resilience.conftest import RedisServer

MODEL = "gpt-4o-mini"
OPTIONS = ModelCompletionOptions(model=MODEL, messages="hi")


@pytest.fixture
async def make_limiter(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[Callable[..., RedisLimiter]]:
    made: list[RedisLimiter] = []

    def make(**kwargs: Any) -> RedisLimiter:
        kwargs.setdefault("prefix", redis_prefix)
        limiter = RedisLimiter(kwargs.pop("url", redis_url), **kwargs)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def layer_over(
    emulator: Emulator, http: HttpClient, limiter: RedisLimiter | Any, scope: str, **config: Any
) -> RateLimitLayer:
    adapter = OpenAIProvider(
        name="openai",
        base_url=emulator.openai_base_url,
        credential=StaticCredential(OPENAI_KEY),
        http=http,
    )
    table = RateLimitConfig(**config)
    return RateLimitLayer(
        adapter, limits=lambda m: table if m is None else None, limiter=limiter, scope=scope
    )


# --------------------------------------------------------------------------- F1

_CHILD = r"""
import asyncio, json, sys, threading, time
from aiport._config import RateLimitConfig
from aiport._credentials import StaticCredential
from aiport._errors import ProviderRateLimitError
from aiport._http import HttpClient
from aiport._limits._redis import RedisLimiter
from aiport._types import ModelCompletionOptions
from aiport.layers._ratelimit import RateLimitLayer
from aiport.providers.openai import OpenAIProvider

redis_url, prefix, base_url, key, scope = sys.argv[1:6]
calls, loops, waves, gap = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), float(sys.argv[9])
config = RateLimitConfig(requests_per_minute=100, max_queue_wait=0.5, backend="redis")
http = HttpClient()
limiter = RedisLimiter(redis_url, prefix=prefix)
adapter = OpenAIProvider(
    name="openai", base_url=base_url, credential=StaticCredential(key), http=http
)
layer = RateLimitLayer(
    adapter, limits=lambda m: config if m is None else None, limiter=limiter, scope=scope
)
options = ModelCompletionOptions(model="gpt-4o-mini", messages="hi")
results, lock = [], threading.Lock()

async def one():
    start = time.monotonic()
    try:
        await layer.complete(options)
        out = {"ok": True, "start": start, "at": time.monotonic()}
    except ProviderRateLimitError as exc:
        out = {"ok": False, "start": start, "at": time.monotonic(),
               "retry_after": exc.retry_after, "reason": exc.reason}
    with lock:
        results.append(out)

async def run_loop():
    for wave in range(waves):
        size = calls // waves + (1 if wave < calls % waves else 0)
        await asyncio.gather(*(one() for _ in range(size)))
        await asyncio.sleep(gap)
    await limiter.aclose_loop()
    await http.aclose()

print("ready", flush=True)
sys.stdin.readline()
threads = [threading.Thread(target=asyncio.run, args=(run_loop(),)) for _ in range(loops)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results), flush=True)
"""


def test_f1_four_processes_two_loops_admit_exactly_the_limit(
    redis_url: str, redis_prefix: str, emulator: Emulator
) -> None:
    processes, loops, total = 4, 2, 1000
    per_loop = total // (processes * loops)
    scope = f"f1-{uuid.uuid4().hex[:8]}"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CHILD,
                redis_url,
                redis_prefix,
                emulator.openai_base_url,
                OPENAI_KEY,
                scope,
                str(per_loop),
                str(loops),
                "10",
                "0.25",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:  # every process imported and built everything: start together
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60)[0] for child in children]
    finally:
        for child in children:
            child.kill()
    results = [r for out in outputs for r in json.loads(out.strip().splitlines()[-1])]
    assert len(results) == total
    admitted = [r for r in results if r["ok"]]
    refused = [r for r in results if not r["ok"]]
    reasons = Counter((r["reason"], round(r["retry_after"])) for r in refused)
    assert len(admitted) == 100, f"admitted {len(admitted)} of {total}; refused: {reasons}"
    assert emulator.count() == 100
    # The window opened with the first admission: after the first call started, before
    # the first request reached the emulator (CLOCK_MONOTONIC is system-wide).
    opened_after = min(r["start"] for r in results)
    opened_before = min(r.time for r in emulator.requests)
    assert max(r["at"] for r in results) - opened_after < 10
    for r in refused:
        assert r["reason"] == "local_rate_limit"
        low, high = opened_after + 60 - r["at"], opened_before + 60 - r["at"]
        assert low - 1.0 <= r["retry_after"] <= high + 1.0, (r, low, high)


# --------------------------------------------------------------------------- exactness


async def test_redis_sliding_window_is_exact(make_limiter: Callable[..., RedisLimiter]) -> None:
    limiter = make_limiter(window=1.0)
    other = make_limiter(window=1.0)  # another process, as far as Redis can tell
    bucket = (Bucket("w", None, requests_per_minute=3),)
    admitted_at = []
    for limiter_ in (limiter, other, limiter):
        await limiter_.acquire(bucket)
        admitted_at.append(time.monotonic())
        await asyncio.sleep(0.2)
    with pytest.raises(LimitExceededError) as caught:
        await other.acquire(bucket)
    assert caught.value.reason == "requests"
    expected = admitted_at[0] + 1.0 - time.monotonic()
    assert abs(caught.value.retry_after - expected) < 0.05
    # Waiting for it: admitted once the oldest entry leaves the window, not before.
    await asyncio.sleep(0.01)
    lease = await other.acquire(bucket, max_wait=2)
    assert time.monotonic() >= admitted_at[0] + 0.99
    assert isinstance(lease, Lease)
    assert (await other.usage(bucket[0])).requests == 3  # the two later ones, and this one


async def test_redis_tokens_reconcile(make_limiter: Callable[..., RedisLimiter]) -> None:
    limiter = make_limiter()
    bucket = (Bucket("t", None, tokens_per_minute=1000), Bucket("t", "m"))
    first = await limiter.acquire(bucket, tokens=600)
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire(bucket, tokens=600)
    assert caught.value.reason == "tokens"
    await limiter.release(first, tokens=50)
    assert (await limiter.usage(bucket[0])).tokens == 50
    second = await limiter.acquire(bucket, tokens=600)
    await limiter.release(second)  # nothing reported: the reservation stays
    assert (await limiter.usage(bucket[0])).tokens == 650
    await limiter.release(second, tokens=1)  # a second release does nothing
    assert (await limiter.usage(bucket[0])).tokens == 650


async def test_leases_expire_when_a_process_dies_and_renew_while_alive(
    make_limiter: Callable[..., RedisLimiter],
) -> None:
    bucket = (Bucket("c", None, max_concurrency=1),)
    alive = make_limiter(lease_ttl=0.3)
    other = make_limiter(lease_ttl=0.3)
    lease = await alive.acquire(bucket)
    await asyncio.sleep(0.6)  # twice the ttl: renewed meanwhile
    with pytest.raises(LimitExceededError) as caught:
        await other.acquire(bucket)
    assert caught.value.reason == "concurrency"
    await alive.release(lease)
    await other.release(await other.acquire(bucket))
    # A process that dies holding a slot: it is back within the ttl.
    crashed = make_limiter(lease_ttl=0.3)
    await crashed.acquire(bucket)
    await crashed.aclose()  # stops renewing without releasing, as a crash would
    started = time.monotonic()
    lease = await other.acquire(bucket, max_wait=2)
    assert 0.1 < time.monotonic() - started < 0.6
    await other.release(lease)
    assert (await other.usage(bucket[0])).in_flight == 0


async def test_cancelled_redis_waiter_leaks_nothing(
    make_limiter: Callable[..., RedisLimiter],
) -> None:
    limiter = make_limiter()
    bucket = (Bucket("x", None, max_concurrency=1, tokens_per_minute=10_000),)
    held = await limiter.acquire(bucket, tokens=10)
    waiter = asyncio.create_task(limiter.acquire(bucket, tokens=10, max_wait=5))
    await asyncio.sleep(0.12)  # a few polls
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.queued == 0
    await limiter.release(held, tokens=10)
    # A call cancelled while Redis is admitting it hands the lease back.
    for _ in range(5):
        task = asyncio.create_task(limiter.acquire(bucket, tokens=10))
        await asyncio.sleep(0)
        task.cancel()
        try:
            lease = await task
        except asyncio.CancelledError:
            continue
        await limiter.release(lease, tokens=10)
    await asyncio.sleep(0.05)
    usage = await limiter.usage(bucket[0])
    assert usage.in_flight == 0 and usage.tokens == 10 * (1 + usage.requests)


async def test_one_redis_limiter_serves_several_event_loops(
    make_limiter: Callable[..., RedisLimiter],
) -> None:
    limiter = make_limiter()
    bucket = (Bucket(f"l-{uuid.uuid4().hex[:8]}", None, requests_per_minute=5),)
    counts: list[int] = []

    async def work() -> None:
        admitted = 0
        for _ in range(5):
            try:
                await limiter.acquire(bucket)
                admitted += 1
            except LimitExceededError:
                pass
        counts.append(admitted)
        await limiter.aclose_loop()

    threads = [threading.Thread(target=asyncio.run, args=(work(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 5
    # A loop still running when the limiter closes gets its connection closed on it.
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        other = (Bucket(bucket[0].scope, "m", max_concurrency=1),)
        lease = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(limiter.acquire(other), loop)
        )
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(limiter.release(lease), loop))
        await limiter.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await limiter.acquire(other)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()


def test_redis_limiter_checks_its_arguments(redis_url: str) -> None:
    with pytest.raises(ValueError, match="on_failure"):
        RedisLimiter(redis_url, on_failure="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be > 0"):
        RedisLimiter(redis_url, window=0)


# --------------------------------------------------------------------------- shared pause


async def test_429_pause_is_shared_by_every_process(
    emulator: Emulator, http: HttpClient, make_limiter: Callable[..., RedisLimiter]
) -> None:
    scope = f"pause-{uuid.uuid4().hex[:8]}"
    first = layer_over(emulator, http, make_limiter(), scope, max_queue_wait=5)
    second = layer_over(emulator, http, make_limiter(), scope, max_queue_wait=5)
    emulator.add_fault(Fault.status(429, retry_after="1"))
    with pytest.raises(ProviderRateLimitError):
        await first.complete(OPTIONS)
    await asyncio.sleep(0.05)  # the pause reaches Redis
    await asyncio.gather(*(second.complete(OPTIONS) for _ in range(10)))
    times = sorted(r.time for r in emulator.requests)
    assert len(times) == 11 and times[1] - times[0] >= 1.0


# --------------------------------------------------------------------------- backends


async def test_backend_option_shares_or_not(redis_url: str) -> None:
    bucket = (Bucket(f"b-{uuid.uuid4().hex[:8]}", None, requests_per_minute=3),)

    async def admitted(backend: str) -> int:
        limiters = [create_limiter(backend, redis_url=redis_url) for _ in range(2)]  # type: ignore[arg-type]
        count = 0
        for limiter in limiters:
            for _ in range(3):
                try:
                    await limiter.acquire(bucket)
                    count += 1
                except LimitExceededError:
                    pass
        for limiter in limiters:
            await limiter.aclose()
        return count

    assert await admitted("memory") == 6  # each process counts its own
    assert await admitted("redis") == 3  # every process counts together


async def test_keys_never_hold_the_secret(
    redis_url: str, redis_prefix: str, make_limiter: Callable[..., RedisLimiter]
) -> None:
    import redis.asyncio

    secret = "sk-live-" + uuid.uuid4().hex
    scope = limit_scope("openai", secret)
    limiter = make_limiter()
    lease = await limiter.acquire(
        (Bucket(scope, None, 10, 100, 2), Bucket(scope, MODEL, 10, 100, 2)), tokens=5
    )
    limiter.pause(Bucket(scope, MODEL), 1)
    await asyncio.sleep(0.05)
    client = redis.asyncio.Redis.from_url(redis_url)
    found = await client.keys(f"{redis_prefix}:*")
    keys = sorted(k.decode() if isinstance(k, bytes) else k for k in found)
    await client.aclose()
    await limiter.release(lease)
    assert keys, "nothing written"
    assert all(k.startswith(f"{redis_prefix}:{{{scope}}}:") for k in keys), keys
    assert not any(secret in k or secret[8:20] in k for k in keys)
    assert {k.rsplit(":", 2)[-2] for k in keys} == {"*", MODEL}
    assert secret not in repr(limiter) and "redis://" not in repr(limiter)


def test_missing_redis_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"pip install 'aiport\[redis\]'"):
        RedisLimiter(redis_url)


# --------------------------------------------------------------------------- outages


@pytest.fixture
def private_redis(redis_server_factory: Callable[[], RedisServer]) -> Iterator[RedisServer]:
    server = redis_server_factory()
    yield server
    server.stop()


async def test_redis_down_fail_closed(
    emulator: Emulator,
    http: HttpClient,
    private_redis: RedisServer,
    make_limiter: Callable[..., RedisLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_limiter(url=private_redis.url, probe_interval=0.2)
    layer = layer_over(emulator, http, limiter, "down", requests_per_minute=2, max_queue_wait=5)
    await layer.complete(OPTIONS)
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="aiport"):
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(ProviderRateLimitError) as caught:
                await layer.complete(OPTIONS)
            assert time.monotonic() - started < 1.0
            assert caught.value.reason == "limiter_unavailable"
            assert caught.value.retry_after == pytest.approx(0.2)
    assert emulator.count() == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    # Redis comes back (empty): limits apply again without a restart of the client.
    private_redis.start()
    await asyncio.sleep(0.25)
    with caplog.at_level(logging.INFO, logger="aiport"):
        await layer.complete(OPTIONS)
        await layer.complete(OPTIONS)
        with pytest.raises(ProviderRateLimitError) as caught:
            await layer.complete(OPTIONS)
    assert caught.value.reason == "local_rate_limit"
    assert limiter.available
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_redis_down_fail_open(
    emulator: Emulator,
    http: HttpClient,
    private_redis: RedisServer,
    make_limiter: Callable[..., RedisLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_limiter(url=private_redis.url, probe_interval=0.2)
    layer = layer_over(
        emulator,
        http,
        limiter,
        "open",
        requests_per_minute=2,
        max_concurrency=1,
        on_backend_failure="fail_open",
    )
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="aiport"):
        await asyncio.gather(*(layer.complete(OPTIONS) for _ in range(10)))
    assert emulator.count() == 10  # unlimited while Redis is away
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "fail_open" in warnings[0].getMessage()
    private_redis.start()
    await asyncio.sleep(0.25)
    ok = 0
    for _ in range(4):
        try:
            await layer.complete(OPTIONS)
            ok += 1
        except ProviderRateLimitError:
            pass
    assert ok == 2


async def test_unresponsive_redis_never_hangs(make_limiter: Callable[..., RedisLimiter]) -> None:
    # A server that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        limiter = make_limiter(url=url)
        bucket = (Bucket("h", None, requests_per_minute=5),)
        started = time.monotonic()
        with pytest.raises(LimiterUnavailableError):
            await limiter.acquire(bucket, max_wait=10)
        assert time.monotonic() - started < 2.0  # two socket timeouts of 0.5 s, not 10 s
        started = time.monotonic()
        lease = await limiter.acquire(bucket, on_failure="fail_open")  # skips Redis: known down
        assert not lease.tracked and time.monotonic() - started < 0.1
        await limiter.release(lease)
    finally:
        silent.close()


class StallingProxy:
    """A TCP proxy to Redis that can hold Redis's answers back (commands still run)."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("redis://").partition("/")[0].partition(":")
        self._target = (host, int(port))
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.flowing.set()
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, held: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    if held:
                        await self.flowing.wait()
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(
            pump(reader, upstream_writer, False), pump(upstream_reader, writer, True)
        )


async def test_lost_answer_is_counted_once_then_handed_back(
    redis_url: str, make_limiter: Callable[..., RedisLimiter]
) -> None:
    async with StallingProxy(redis_url) as proxy:
        limiter = make_limiter(url=proxy.url, probe_interval=0.5)
        observer = make_limiter()  # straight to Redis, with the same prefix
        bucket = (Bucket(f"lost-{uuid.uuid4().hex[:8]}", None, 10, 1000, 2),)
        await limiter.release(await limiter.acquire(bucket, tokens=5), tokens=5)
        proxy.flowing.clear()  # Redis runs the next commands; their answers are held
        with pytest.raises(LimiterUnavailableError):
            await limiter.acquire(bucket, tokens=7)
        proxy.flowing.set()
        # Sent twice (a timeout is retried once) but counted once...
        usage = await observer.usage(bucket[0])
        assert (usage.requests, usage.tokens, usage.in_flight) == (2, 12, 1)
        # ...then handed back, as it was never used.
        await asyncio.sleep(0.8)
        usage = await observer.usage(bucket[0])
        assert (usage.requests, usage.tokens, usage.in_flight) == (1, 5, 0)
