"""Client-side rate limiting, in-process backend, against the emulator over HTTP.

Every ``RateLimitConfig`` option changes something observed here or in
``test_ratelimit_redis.py`` (F23):

=====================  ===========================================================
requests_per_minute    test_rpm_burst_admits_exactly_the_limit
tokens_per_minute      test_tpm_reserves_estimates_then_reconciles_with_usage
max_concurrency        test_max_concurrency_bounds_requests_in_flight
max_queue_wait         test_queue_wait_then_success / test_max_queue_wait_bounds_the_wait
backend                test_ratelimit_redis.py::test_backend_option_shares_or_not
on_backend_failure     test_ratelimit_redis.py::test_redis_down_fail_closed / _fail_open
learn_from_headers     test_header_limit_tightens_bucket / test_429_pauses_the_queue
=====================  ===========================================================
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, web

from aiport._config import RateLimitConfig
from aiport._context import CallContext, call_scope
from aiport._credentials import StaticCredential
from aiport._errors import ProviderRateLimitError
from aiport._http import HttpClient
from aiport._limits import (
    Bucket,
    Denial,
    Lease,
    LimitExceededError,
    MemoryLimiter,
    create_limiter,
    estimate_completion,
    estimate_embedding,
    estimate_image,
    limit_scope,
    parse_duration,
    parse_rate_limit_headers,
)
from aiport._provider import ModelProvider, ProviderLayer
from aiport._types import (
    ImageGenerationOptions,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    StreamEvent,
    TextPart,
    Tool,
    ToolCall,
)
from aiport.layers._ratelimit import RateLimitLayer
from aiport.providers.anthropic import AnthropicProvider
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

MODEL = "gpt-4o-mini"
SCOPE = "openai-test"


def ask(text: str = "hi", **extra: Any) -> ModelCompletionOptions:
    return ModelCompletionOptions(model=extra.pop("model", MODEL), messages=text, **extra)


def limits_of(
    provider: RateLimitConfig | None, models: Mapping[str, RateLimitConfig] | None = None
) -> Callable[[str | None], RateLimitConfig | None]:
    tables = dict(models or {})
    return lambda model: provider if model is None else tables.get(model)


def limited(
    inner: ModelProvider,
    limiter: MemoryLimiter | None = None,
    models: Mapping[str, RateLimitConfig] | None = None,
    **config: Any,
) -> RateLimitLayer:
    return RateLimitLayer(
        inner,
        limits=limits_of(RateLimitConfig(**config), models),
        limiter=limiter or MemoryLimiter(),
        scope=SCOPE,
    )


async def outcomes(calls: list[Any]) -> tuple[list[Any], list[ProviderRateLimitError]]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, ProviderRateLimitError)]
    assert not [r for r in results if isinstance(r, BaseException) and r not in errors]
    return [r for r in results if not isinstance(r, BaseException)], errors


class InFlight(ProviderLayer):
    """Counts calls running below the limiter (what the provider would see)."""

    def __init__(self, inner: ModelProvider) -> None:
        super().__init__(inner)
        self.running = 0
        self.peak = 0
        self.order: list[str] = []

    def _enter(self, options: ModelCompletionOptions) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.order.append(options.messages[0].text)

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        self._enter(options)
        try:
            return await self.inner.complete(options)
        finally:
            self.running -= 1

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        self._enter(options)
        try:
            async for event in self.inner.stream(options):
                yield event
        finally:
            self.running -= 1


# --------------------------------------------------------------------------- requests/minute


async def test_rpm_burst_admits_exactly_the_limit(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    layer = limited(openai, requests_per_minute=20, max_queue_wait=0.5)
    started = time.monotonic()
    ok, errors = await outcomes([layer.complete(ask()) for _ in range(50)])
    assert len(ok) == 20 and len(errors) == 30
    assert emulator.count() == 20
    elapsed = time.monotonic() - started
    for error in errors:
        assert error.reason == "local_rate_limit" and error.retryable
        assert error.provider == "openai" and error.model == MODEL
        # The window ends 60 s after the first admission.
        assert error.retry_after is not None and abs(error.retry_after - (60 - elapsed)) < 1.0
    # Waiting is pointless when the window frees later than the budget: they failed at once.
    assert elapsed < 0.5


def test_sliding_window_never_admits_more_than_the_limit_in_any_window() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    bucket = (Bucket("s", None, requests_per_minute=7),)
    rng = random.Random(7)
    admitted: list[float] = []
    for _ in range(3000):
        now[0] += rng.expovariate(1 / 3.0)  # about 20 offered per minute, for a limit of 7
        in_window = [t for t in admitted if t > now[0] - 60]
        outcome = limiter.try_acquire(bucket)
        if isinstance(outcome, Lease):
            assert len(in_window) < 7
            admitted.append(now[0])
        else:
            # Refused only when really full, and told exactly when room appears.
            assert len(in_window) == 7 and outcome.reason == "requests"
            assert outcome.retry_after == pytest.approx(in_window[0] + 60 - now[0])
            assert outcome.until[bucket[0].key] == pytest.approx(outcome.retry_after)
    assert len(admitted) > 200
    for i, start in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < start + 60) <= 7


def test_retry_after_is_exact() -> None:
    now = [100.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    bucket = (Bucket("s", None, requests_per_minute=2),)
    assert isinstance(limiter.try_acquire(bucket), Lease)
    now[0] = 110.0
    assert isinstance(limiter.try_acquire(bucket), Lease)
    now[0] = 130.0
    denial = limiter.try_acquire(bucket)
    assert isinstance(denial, Denial) and denial.retry_after == pytest.approx(30.0)
    now[0] = 159.999
    assert isinstance(limiter.try_acquire(bucket), Denial)
    now[0] = 160.0
    assert isinstance(limiter.try_acquire(bucket), Lease)


# --------------------------------------------------------------------------- tokens/minute


async def test_tpm_reserves_estimates_then_reconciles_with_usage(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    limiter = MemoryLimiter()
    layer = limited(openai, limiter, tokens_per_minute=1000, max_queue_wait=0)
    options = ask(max_tokens=400)
    _, reserved = estimate_completion(options)
    assert 400 < reserved < 500
    # In flight together, each call holds its whole estimate: only two fit in 1000.
    ok, errors = await outcomes([layer.complete(options) for _ in range(5)])
    assert len(ok) == 2 and len(errors) == 3
    assert all(e.reason == "local_rate_limit" and "tokens" in e.message for e in errors)
    # Once done, each holds what the provider reported instead.
    used = sum(r.usage.total_tokens for r in ok)
    assert 0 < used < 100
    provider_bucket = layer.buckets(MODEL)[0]
    assert limiter.usage(provider_bucket).tokens == used
    # So one after the other, many more calls fit than the estimates would allow.
    for _ in range(8):
        used += (await layer.complete(options)).usage.total_tokens
    assert limiter.usage(provider_bucket).tokens == used
    assert emulator.count() == 10


async def test_stream_reconciles_with_final_usage(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    limiter = MemoryLimiter()
    layer = limited(openai, limiter, tokens_per_minute=10_000, max_concurrency=2)
    bucket = layer.buckets(MODEL)[0]
    finish = None
    async for event in layer.stream(ask(max_tokens=900)):
        if event.type == "finish":
            finish = event.response
        assert limiter.usage(bucket).in_flight == 1  # held for the whole stream
    assert finish is not None
    usage = limiter.usage(bucket)
    assert usage.in_flight == 0
    assert usage.tokens == finish.usage.total_tokens < 900


def test_token_window_with_reconciliation_is_exact() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    bucket = (Bucket("s", None, tokens_per_minute=1000),)
    rng = random.Random(3)
    log: list[tuple[float, int]] = []
    for _ in range(1500):
        now[0] += rng.uniform(0, 2)
        estimate, actual = rng.randint(1, 400), rng.randint(1, 400)
        held = sum(n for t, n in log if t > now[0] - 60)
        outcome = limiter.try_acquire(bucket, tokens=estimate)
        if isinstance(outcome, Lease):
            assert held + estimate <= 1000
            limiter.release_now(outcome, tokens=actual)
            log.append((now[0], actual))
        else:
            assert held + estimate > 1000 and outcome.reason == "tokens"
    # An estimate above the whole limit waits for an empty window instead of forever.
    now[0] += 61
    big = limiter.try_acquire(bucket, tokens=5000)
    assert isinstance(big, Lease)


# --------------------------------------------------------------------------- concurrency


async def test_max_concurrency_bounds_requests_in_flight() -> None:
    async with Emulator(stream_delay=0.02) as emu:
        http = HttpClient()
        adapter = OpenAIProvider(
            name="openai", base_url=emu.openai_base_url, credential=StaticCredential("k"), http=http
        )
        probe = InFlight(adapter)
        layer = limited(probe, max_concurrency=3, max_queue_wait=10)

        async def consume(i: int) -> str:
            text = ""
            async for event in layer.stream(ask(f"call {i}")):
                if event.type == "text-delta":
                    text += event.text
            return text

        ok, errors = await outcomes([consume(i) for i in range(12)])
        await http.aclose()
    assert len(ok) == 12 and not errors
    assert probe.peak == 3
    assert emu.count() == 12
    # Requests reached the emulator in waves of three.
    times = sorted(r.time for r in emu.requests)
    assert times[3] - times[0] > 0.05


async def test_cancelled_waiter_and_call_leak_nothing(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    limiter = MemoryLimiter()
    layer = limited(
        openai, limiter, max_concurrency=1, tokens_per_minute=100_000, max_queue_wait=30
    )
    bucket = layer.buckets(MODEL)[0]
    emulator.add_fault(Fault.slow_first_token(0.3))
    first = asyncio.create_task(layer.complete(ask("first")))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(layer.complete(ask("second")))
    await asyncio.sleep(0.05)
    assert limiter.queued == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.queued == 0
    assert limiter.usage(bucket).in_flight == 1  # only the first call's slot
    await first
    assert limiter.usage(bucket).in_flight == 0
    # A call cancelled while in flight gives its slot back too.
    emulator.add_fault(Fault.slow_first_token(5))
    running = asyncio.create_task(layer.complete(ask("third")))
    await asyncio.sleep(0.1)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert limiter.usage(bucket).in_flight == 0
    # A stream closed early gives its slot back.
    stream = layer.stream(ask("fourth"))
    await stream.__anext__()
    assert limiter.usage(bucket).in_flight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert limiter.usage(bucket).in_flight == 0
    started = time.monotonic()
    await layer.complete(ask("fifth"))
    assert time.monotonic() - started < 0.5
    assert limiter.usage(bucket).in_flight == 0


# --------------------------------------------------------------------------- queue


async def test_fifo_order_and_priority(emulator: Emulator, openai: OpenAIProvider) -> None:
    probe = InFlight(openai)
    layer = limited(probe, max_concurrency=1, max_queue_wait=10)
    emulator.add_fault(Fault.slow_first_token(0.2))
    tasks = [asyncio.create_task(layer.complete(ask("head")))]
    await asyncio.sleep(0.05)
    for i in range(5):
        tasks.append(asyncio.create_task(layer.complete(ask(f"low {i}"))))
        await asyncio.sleep(0)
    with call_scope(CallContext(priority=5)):
        tasks.append(asyncio.create_task(layer.complete(ask("urgent"))))
    await asyncio.gather(*tasks)
    assert probe.order == ["head", "urgent", "low 0", "low 1", "low 2", "low 3", "low 4"]


async def test_queue_wait_then_success(emulator: Emulator, openai: OpenAIProvider) -> None:
    layer = limited(openai, max_concurrency=1, max_queue_wait=5)
    emulator.add_fault(Fault.slow_first_token(0.3))
    started = time.monotonic()
    first = asyncio.create_task(layer.complete(ask("slow")))
    await asyncio.sleep(0.02)
    second = await layer.complete(ask("queued"))
    assert second.text
    waited = time.monotonic() - started
    assert 0.25 < waited < 1.0
    await first


async def test_max_queue_wait_bounds_the_wait(emulator: Emulator, openai: OpenAIProvider) -> None:
    layer = limited(openai, max_concurrency=1, max_queue_wait=0.2)
    emulator.add_fault(Fault.slow_first_token(1.0))
    first = asyncio.create_task(layer.complete(ask("slow")))
    await asyncio.sleep(0.02)
    started = time.monotonic()
    with pytest.raises(ProviderRateLimitError) as caught:
        await layer.complete(ask("queued"))
    assert 0.15 < time.monotonic() - started < 0.6
    assert caught.value.reason == "local_rate_limit" and caught.value.retry_after
    # The call's deadline is a tighter budget than max_queue_wait.
    patient = limited(openai, layer.limiter, max_concurrency=1, max_queue_wait=30)  # type: ignore[arg-type]
    started = time.monotonic()
    with (
        call_scope(CallContext(deadline=time.monotonic() + 0.2)),
        pytest.raises(ProviderRateLimitError),
    ):
        await patient.complete(ask("deadline"))
    assert time.monotonic() - started < 0.6
    await first
    assert emulator.count() == 1


async def test_waiter_behind_others_gives_up_with_an_estimate() -> None:
    limiter = MemoryLimiter()
    bucket = (Bucket("q", None, max_concurrency=1),)
    held = await limiter.acquire(bucket)
    patient = asyncio.create_task(limiter.acquire(bucket, max_wait=5))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(LimitExceededError) as caught:
        await limiter.acquire(bucket, max_wait=0.1)  # behind `patient`: never its turn
    assert 0.08 < time.monotonic() - started < 0.4
    assert caught.value.reason == "concurrency" and caught.value.retry_after > 0
    assert limiter.queued == 1
    await limiter.release(held)
    await limiter.release(await patient)
    assert limiter.usage(bucket[0]).in_flight == 0 and limiter.queued == 0


def test_idle_buckets_are_swept() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    for i in range(1100):
        now[0] += 0.1
        lease = limiter.try_acquire((Bucket("s", f"m{i}", requests_per_minute=5),))
        assert isinstance(lease, Lease)
    assert len(limiter._states) < 700  # the buckets idle for a window were dropped


async def test_model_bucket_limits_only_its_model(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    provider = RateLimitConfig(requests_per_minute=100, max_queue_wait=0)
    gpt4o = RateLimitConfig(requests_per_minute=2, max_queue_wait=0)
    layer = limited(openai, models={"gpt-4o": gpt4o}, **provider.model_dump())
    ok, errors = await outcomes([layer.complete(ask(model="gpt-4o")) for _ in range(4)])
    assert len(ok) == 2 and len(errors) == 2
    ok, errors = await outcomes([layer.complete(ask()) for _ in range(4)])
    assert len(ok) == 4 and not errors
    # Calls to another model are not held up behind a queued call to a full model.
    patient = RateLimitConfig(max_concurrency=1, max_queue_wait=5)
    waiting = limited(openai, models={"gpt-4o": patient}, requests_per_minute=100)
    emulator.add_fault(Fault.slow_first_token(0.5), model="gpt-4o")
    running = asyncio.create_task(waiting.complete(ask(model="gpt-4o")))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(waiting.complete(ask(model="gpt-4o")))
    await asyncio.sleep(0.05)
    assert waiting.limiter.queued == 1  # type: ignore[attr-defined]
    started = time.monotonic()
    await waiting.complete(ask())
    assert time.monotonic() - started < 0.3
    assert not queued.done()
    await asyncio.gather(running, queued)


async def test_embeddings_and_images_count(emulator: Emulator, openai: OpenAIProvider) -> None:
    limiter = MemoryLimiter()
    layer = limited(openai, limiter, requests_per_minute=2, tokens_per_minute=10_000)
    await layer.embed(ModelEmbeddingOptions(model="text-embedding-3-small", input=["a" * 400]))
    await layer.generate_image(ImageGenerationOptions(model="dall-e-2", prompt="a red square"))
    with pytest.raises(ProviderRateLimitError):
        await layer.embed(ModelEmbeddingOptions(model="text-embedding-3-small", input="x"))
    assert limiter.usage(layer.buckets("x")[0]).requests == 2
    assert emulator.count() == 2


def test_one_memory_limiter_serves_several_event_loops() -> None:
    limiter = MemoryLimiter()
    bucket = (Bucket("s", None, requests_per_minute=20, max_concurrency=1),)
    admitted: list[int] = []

    async def worker() -> None:
        for _ in range(30):
            try:
                lease = await limiter.acquire(bucket, max_wait=1)
            except LimitExceededError:
                continue
            admitted.append(1)
            await asyncio.sleep(0.001)
            await limiter.release(lease)

    threads = [threading.Thread(target=asyncio.run, args=(worker(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == 20


# --------------------------------------------------------------------------- learning


class HeaderProxy:
    """Forwards to the emulator and adds response headers the emulator does not send."""

    def __init__(self, target: str, extra: Callable[[int], dict[str, str]]) -> None:
        self._target = target
        self._extra = extra
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.count = 0
        self.url = ""

    async def __aenter__(self) -> HeaderProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        self._session = ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None and self._runner is not None
        await self._session.close()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        n, self.count = self.count, self.count + 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with self._session.request(
            request.method,
            self._target + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            out = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
        out.update(self._extra(n))
        return web.Response(status=upstream.status, body=body, headers=out)


@pytest.mark.parametrize("learn", [True, False])
async def test_header_limit_tightens_bucket(
    emulator: Emulator, http: HttpClient, learn: bool
) -> None:
    async with HeaderProxy(emulator.url, lambda n: {"x-ratelimit-limit-requests": "3"}) as proxy:
        adapter = OpenAIProvider(
            name="openai",
            base_url=proxy.url + "/v1",
            credential=StaticCredential(OPENAI_KEY),
            http=http,
        )
        layer = limited(
            adapter, requests_per_minute=100, max_queue_wait=0, learn_from_headers=learn
        )
        results, errors = await outcomes([layer.complete(ask()) for _ in range(1)])
        for _ in range(4):  # one after the other, after the first answer taught the limit
            more, refused = await outcomes([layer.complete(ask())])
            results += more
            errors += refused
        assert all(e.reason == "local_rate_limit" for e in errors)
        assert len(results) == (3 if learn else 5)
        assert layer.buckets(MODEL)[1].requests_per_minute == (3 if learn else None)
        assert proxy.count == len(results)
        # A reported limit above the configured one changes nothing.
        layer.observe(200, {"x-ratelimit-limit-requests": "1000"}, MODEL)
        assert layer.buckets(MODEL)[1].requests_per_minute == (100 if learn else None)
        await layer.aclose()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_remaining_zero_pauses_until_reset(
    emulator: Emulator, http: HttpClient, kind: str
) -> None:
    def exhausted(n: int) -> dict[str, str]:
        if n:
            return {}
        if kind == "openai":
            return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.2s"}
        reset = datetime.now(UTC) + timedelta(seconds=1.2)
        return {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": reset.isoformat(),
        }

    async with HeaderProxy(emulator.url, exhausted) as proxy:
        adapter: ModelProvider
        if kind == "openai":
            adapter = OpenAIProvider(
                name="p",
                base_url=proxy.url + "/v1",
                credential=StaticCredential(OPENAI_KEY),
                http=http,
            )
            model = MODEL
        else:
            adapter = AnthropicProvider(
                name="p", base_url=proxy.url, credential=StaticCredential(ANTHROPIC_KEY), http=http
            )
            model = "claude-sonnet-4-5-20250929"
        layer = limited(adapter, max_queue_wait=5)
        await layer.complete(ask(model=model))
        first = time.monotonic()
        await layer.complete(ask(model=model))
        assert time.monotonic() - first > 0.9
    times = [r.time for r in emulator.requests]
    assert len(times) == 2 and times[1] - times[0] > 0.9


@pytest.mark.parametrize("learn", [True, False])
async def test_429_pauses_the_queue(
    emulator: Emulator, openai: OpenAIProvider, learn: bool
) -> None:
    emulator.add_fault(Fault.status(429, retry_after="1"))
    layer = limited(openai, max_concurrency=1, max_queue_wait=10, learn_from_headers=learn)
    ok, errors = await outcomes([layer.complete(ask()) for _ in range(50)])
    assert len(ok) == 49 and len(errors) == 1 and errors[0].status_code == 429
    assert layer.limiter.paused_for(layer.buckets(MODEL)[1]) == 0  # type: ignore[attr-defined]
    times = sorted(r.time for r in emulator.requests)
    assert len(times) == 50  # no stampede: one request per caller
    gap = times[1] - times[0]
    if learn:
        assert gap >= 1.0  # nothing reached the provider during its Retry-After
    else:
        assert gap < 0.5


def test_a_pause_is_extended_never_shortened() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    bucket = Bucket("p", "m")
    limiter.pause(bucket, 2)
    limiter.pause(bucket, 15)  # a second 429 asks for longer: the later deadline wins
    limiter.pause(bucket, 1)
    limiter.pause(bucket, 0)
    assert limiter.paused_for(bucket) == 15
    denial = limiter.try_acquire((Bucket("p", None), bucket))
    assert isinstance(denial, Denial) and denial.reason == "paused"
    assert denial.until == {bucket.key: 15} and denial.blocked == {bucket.key}
    now[0] = 15.0
    assert limiter.paused_for(bucket) == 0
    assert isinstance(limiter.try_acquire((bucket,)), Lease)


async def test_429_without_listener_pauses_too() -> None:
    class Refuses(ModelProvider):
        name = "fake"
        models: Mapping[str, Any] = {}
        calls: list[float] = []  # noqa: RUF012

        async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
            self.calls.append(time.monotonic())
            raise ProviderRateLimitError("busy", status_code=429, retry_after=0.3)

        def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
            raise NotImplementedError

    fake = Refuses()
    layer = limited(fake, max_queue_wait=5)
    for _ in range(2):
        with pytest.raises(ProviderRateLimitError, match="busy"):
            await layer.complete(ask())
    assert fake.calls[1] - fake.calls[0] >= 0.3


def test_parse_duration() -> None:
    assert parse_duration("6ms") == pytest.approx(0.006)
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("6m0s") == 360
    assert parse_duration("1h2m3s") == 3723
    assert parse_duration("20") == 20
    assert parse_duration("0s") == 0
    for bad in ("", "abc", "1x", "s", "-1", "2026-01-01T00:00:00Z", "1s junk"):
        assert parse_duration(bad) is None


def test_parse_rate_limit_headers() -> None:
    info = parse_rate_limit_headers(
        {
            "X-RateLimit-Limit-Requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1m0s",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "12",
            "x-ratelimit-reset-tokens": "6ms",
            "retry-after-ms": "2500",
        }
    )
    assert (info.request_limit, info.request_remaining, info.request_reset) == (500, 0, 60)
    assert (info.token_limit, info.token_remaining) == (30000, 12)
    assert info.pause == 60 and info.retry_after == 2.5
    reset = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = parse_rate_limit_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "10",
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": reset,
            "anthropic-ratelimit-tokens-limit": "bogus",
            "retry-after": "7",
        }
    )
    assert info.request_limit == 50 and info.token_limit is None
    assert info.pause is not None and 28 < info.pause <= 30
    assert info.retry_after == 7
    assert parse_rate_limit_headers({"content-type": "x"}).pause is None


def test_estimates_count_messages_tools_and_output() -> None:
    plain = ask("x" * 400)
    prompt, total = estimate_completion(plain)
    assert prompt == 104 and total == 104 + 256
    with_tools = ask("x" * 400, max_tokens=10, tools=[Tool(name="t", parameters={"a": "b" * 100})])
    prompt2, total2 = estimate_completion(with_tools)
    assert prompt2 > prompt and total2 == prompt2 + 10
    image = ImagePart(url="https://example.com/a.png")
    call = ToolCall(id="c1", name="lookup", arguments='{"q": "' + "y" * 80 + '"}')
    conversation = [
        Message.user("look", image),
        Message.assistant("", tool_calls=[call]),
        Message.tool_result("c1", [TextPart(text="z" * 200), image]),
        Message.tool_result("c1", "w" * 40),
    ]
    schema = JsonSchemaFormat.model_validate(
        {"name": "r", "schema": {"type": "object", "properties": {}}}
    )
    rich = ModelCompletionOptions(
        model=MODEL, messages=conversation, response_format=schema, max_tokens=1
    )
    prompt3, _ = estimate_completion(rich)
    assert prompt3 > 2 * 765 + (4 + 6 + 89 + 200 + 40) // 4
    assert estimate_embedding(ModelEmbeddingOptions(model="e", input=["a" * 10, "b" * 10])) == 5
    assert estimate_image(ImageGenerationOptions(model="i", prompt="p" * 9)) == 3


def test_scope_hides_the_key_and_factory_picks_backends() -> None:
    scope = limit_scope("openai", "sk-very-secret-key")
    assert scope.startswith("openai-") and "secret" not in scope and len(scope) == 19
    assert limit_scope("openai", "sk-very-secret-key") == scope != limit_scope("openai", "other")
    assert limit_scope("a{b}", None) == "a(b)"
    assert isinstance(create_limiter("memory"), MemoryLimiter)
    with pytest.raises(ValueError, match="redis_url"):
        create_limiter("redis")
    with pytest.raises(ValueError, match="unknown"):
        create_limiter("disk")  # type: ignore[arg-type]
