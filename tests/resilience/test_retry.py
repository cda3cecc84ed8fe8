"""The retry layer, end to end over HTTP against the emulator (F3, F4, F5, F23).

Timing tests use real sleeps and the emulator's arrival times (``RecordedRequest.time``,
``time.monotonic``); count tests use a recording fake ``sleep`` so they run instantly.
Pure-logic properties (the backoff schedule, the budget) run against a scripted provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import math
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiport._config import RetryConfig
from aiport._context import CallContext, call_scope
from aiport._credentials import StaticCredential
from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._http import HttpClient, HttpTimeouts
from aiport._provider import ModelProvider
from aiport._types import (
    Attempt,
    ImageGenerationOptions,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
    TextDeltaEvent,
)
from aiport.layers._retry import LOCAL_RATE_LIMIT, RetryBudget, RetryLayer, retry_delay
from aiport.providers.anthropic import AnthropicProvider
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault, RecordedRequest

KEY = "sk-test-retry-0123456789abcdef"
GPT = ModelCompletionOptions(model="gpt-4o", messages="Hello")
ANSWER = "You said: Hello"
#: Scheduling slack allowed above an asked wait (loopback request + event loop jitter).
SLACK = 0.25

ProviderKind = Literal["openai", "anthropic"]
PROVIDERS: tuple[ProviderKind, ...] = ("openai", "anthropic")


# --------------------------------------------------------------------------- fixtures


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSleep:
    """Records every wait and returns at once (advancing ``clock`` when given)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._clock is not None:
            self._clock.now += seconds
        await asyncio.sleep(0)


class CeilingJitter(random.Random):
    """Jitter that always draws the top of its range: makes backoff deterministic."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={KEY}) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    # Room for the 200 concurrent callers of F5, so the pool does not pace them.
    client = HttpClient(max_connections=256)
    yield client
    await client.aclose()


Build = Callable[..., RetryLayer]


@pytest.fixture
def build(emu: Emulator, http: HttpClient) -> Build:
    """A pipeline ``RetryLayer(adapter)`` against the emulator.

    Keyword arguments other than those named below become the ``RetryConfig``; the
    budget defaults to the one that config describes.
    """

    def make(
        provider: ProviderKind = "openai",
        *,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        timeouts: HttpTimeouts | None = None,
        policy: Callable[[str], RetryConfig] | None = None,
        **retry: Any,
    ) -> RetryLayer:
        config = RetryConfig(**retry)
        adapter: ModelProvider
        if provider == "openai":
            adapter = OpenAIProvider(
                name="openai",
                base_url=emu.openai_base_url,
                credential=StaticCredential(KEY),
                http=http,
                timeouts=timeouts,
            )
        else:
            adapter = AnthropicProvider(
                name="anthropic",
                base_url=emu.anthropic_base_url,
                credential=StaticCredential(KEY),
                http=http,
                timeouts=timeouts,
            )
        return RetryLayer(
            adapter,
            policy=policy or (lambda _model: config),
            budget=budget or RetryBudget.from_config(config),
            sleep=sleep,
            rng=rng or random.Random(20240611),
        )

    return make


def options_for(provider: ProviderKind, text: str = "Hello") -> ModelCompletionOptions:
    model = "gpt-4o" if provider == "openai" else "claude-sonnet-5"
    return ModelCompletionOptions(model=model, messages=text)


def overloaded(provider: ProviderKind) -> Fault:
    """The provider's usual "try again later" status."""
    return Fault.status(503 if provider == "openai" else 529)


def gaps(requests: list[RecordedRequest]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [b.time - a.time for a, b in itertools.pairwise(requests)]


async def failure(awaitable: Awaitable[object]) -> ProviderError:
    """The ProviderError ``awaitable`` raises."""
    with pytest.raises(ProviderError) as info:
        await awaitable
    return info.value


async def collect(layer: ModelProvider, options: ModelCompletionOptions) -> list[StreamEvent]:
    return [event async for event in layer.stream(options)]


# --------------------------------------------------------------------------- F3: Retry-After


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_f3_each_wait_is_what_the_provider_asked(
    build: Build, emu: Emulator, provider: ProviderKind
) -> None:
    """HTTP date, then ``Retry-After: 1``, then ``retry-after-ms: 300``: each retry
    arrives no earlier than asked, and not much later."""
    layer = build(provider, max_attempts=4, initial_backoff=5.0)  # backoff would be obvious
    wall_offset = time.time() - time.monotonic()
    retry_at = math.floor(time.time() + 2.0)  # HTTP dates have whole seconds
    date = email.utils.formatdate(retry_at, usegmt=True)
    emu.add_fault(Fault.status(429, retry_after=date))
    emu.add_fault(Fault.status(429, retry_after="1"))
    emu.add_fault(Fault.status(429, retry_after_ms=300))
    context = CallContext()
    with call_scope(context):
        reply = await layer.complete(options_for(provider))
    assert reply.message.text == ANSWER
    requests = emu.requests
    assert len(requests) == 4
    date_gap, seconds_gap, millis_gap = gaps(requests)
    # The date: the retry arrives at (not before) the second the provider named; the
    # date's own 1 s granularity is the only allowed shortfall against "2 s from now".
    second_arrival = requests[1].time + wall_offset
    assert second_arrival >= retry_at - 0.01
    assert second_arrival <= retry_at + SLACK
    assert date_gap >= 2.0 - 1.0
    assert 1.0 <= seconds_gap <= 1.0 + SLACK
    assert 0.3 <= millis_gap <= 0.3 + SLACK
    waited = [a.waited for a in context.attempts]
    assert waited[0] == 0.0
    assert waited[2:] == [1.0, 0.3]
    assert 0.0 < waited[1] <= 2.0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_f3_retry_after_above_the_cap_fails_at_once(
    build: Build, emu: Emulator, provider: ProviderKind
) -> None:
    layer = build(provider, max_attempts=5, max_retry_after=5.0)
    emu.add_fault(Fault.status(429, retry_after="30"), times=None)
    start = time.monotonic()
    error = await failure(layer.complete(options_for(provider)))
    assert time.monotonic() - start < 0.5
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after == 30.0  # kept, so the caller can decide
    assert error.attempts == 1
    assert emu.count() == 1


# --------------------------------------------------------------------------- F4: one owner


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("max_attempts", [4, 1])
async def test_f4_persistent_overload_gets_exactly_max_attempts(
    build: Build, emu: Emulator, provider: ProviderKind, max_attempts: int
) -> None:
    sleep = RecordingSleep()
    layer = build(provider, max_attempts=max_attempts, sleep=sleep)
    emu.add_fault(overloaded(provider), times=None)
    error = await failure(layer.complete(options_for(provider)))
    assert isinstance(error, ProviderAPIError)
    assert error.retryable
    assert emu.count() == max_attempts
    assert error.attempts == max_attempts
    assert len(sleep.delays) == max_attempts - 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(400), InvalidRequestError),
        (Fault.status(401), ProviderAuthError),
        (Fault.status(403), ProviderAuthError),
        (Fault.status(404), InvalidRequestError),
        (Fault.context_length(), ContextLengthExceededError),
    ],
    ids=["400", "401", "403", "404", "context-length"],
)
async def test_f4_errors_that_cannot_succeed_are_sent_once(
    build: Build,
    emu: Emulator,
    provider: ProviderKind,
    fault: Fault,
    expected: type[ProviderError],
) -> None:
    sleep = RecordingSleep()
    layer = build(provider, max_attempts=4, sleep=sleep)
    emu.add_fault(fault, times=None)
    error = await failure(layer.complete(options_for(provider)))
    assert isinstance(error, expected)
    assert not error.retryable
    assert emu.count() == 1
    assert error.attempts == 1
    assert sleep.delays == []


async def test_f4_adapters_never_retry_on_their_own(emu: Emulator, http: HttpClient) -> None:
    """The layer is the only retry owner: the bare adapter sends exactly one request."""
    adapter = OpenAIProvider(
        name="openai", base_url=emu.openai_base_url, credential=StaticCredential(KEY), http=http
    )
    emu.add_fault(Fault.status(503), times=None)
    error = await failure(adapter.complete(GPT))
    assert error.retryable
    assert emu.count() == 1


# --------------------------------------------------------------------------- F5: no storms

CALLERS = 200


def requests_by_caller(requests: list[RecordedRequest]) -> dict[str, list[RecordedRequest]]:
    """Each caller's requests, told apart by the unique text of its message."""
    by_caller: dict[str, list[RecordedRequest]] = {}
    for request in requests:
        text = request.body["messages"][-1]["content"]
        by_caller.setdefault(text, []).append(request)
    return by_caller


async def storm(layer: RetryLayer) -> list[BaseException | object]:
    calls = [layer.complete(options_for("openai", f"caller {i}")) for i in range(CALLERS)]
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_f5_retries_of_callers_that_failed_together_are_spread(
    build: Build, emu: Emulator
) -> None:
    """200 callers meet a 429 without Retry-After at once: their retries do not."""
    budget = RetryBudget(ratio=1.0, window=60, min_retries=0)  # out of the way here
    layer = build(max_attempts=2, initial_backoff=0.5, budget=budget)
    emu.add_fault(Fault.status(429), times=None)
    results = await storm(layer)
    assert all(isinstance(r, ProviderRateLimitError) for r in results)
    first_retry_delays = [
        reqs[1].time - reqs[0].time for reqs in requests_by_caller(emu.requests).values()
    ]
    assert len(first_retry_delays) == CALLERS
    assert all(0.0 <= d <= 0.5 + SLACK for d in first_retry_delays)
    cv = statistics.pstdev(first_retry_delays) / statistics.mean(first_retry_delays)
    assert cv > 0.3  # full jitter over [0, b] has CV 1/sqrt(3) ~ 0.58


async def test_f5_the_retry_budget_caps_a_retry_storm(build: Build, emu: Emulator) -> None:
    """Every request fails for the first 3 s: the budget keeps retries to 20% (+10)."""
    budget = RetryBudget(ratio=0.2, window=60, min_retries=10)
    layer = build(max_attempts=5, initial_backoff=0.5, max_backoff=2.0, budget=budget)
    emu.add_fault(Fault.status(429), times=None)
    during_outage: list[RecordedRequest] = []

    def end_outage() -> None:
        # Emulator.reset also forgets the requests: keep those of the outage.
        during_outage.extend(emu.requests)
        emu.reset()

    start = time.monotonic()
    outage = asyncio.get_running_loop().call_later(3.0, end_outage)
    try:
        results = await storm(layer)
    finally:
        outage.cancel()
    requests = during_outage + emu.requests
    assert len([r for r in requests if r.time - start < 3.0]) <= 1.5 * CALLERS
    firsts = len(requests_by_caller(requests))
    retries = len(requests) - firsts
    assert firsts == CALLERS
    assert 10 <= retries <= 0.2 * firsts + 10
    # The storm is over long before the outage: every caller failed, and the attempts
    # they report add up to what the provider saw (one retry owner, nothing hidden).
    errors = [r for r in results if isinstance(r, ProviderRateLimitError)]
    assert len(errors) == CALLERS
    assert sum(e.attempts for e in errors) == len(requests)


# --------------------------------------------------------------------------- deadlines


async def test_deadline_stops_retrying_in_time(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=50, initial_backoff=0.4, max_backoff=0.4, deadline=1.0)
    emu.add_fault(Fault.status(503), times=None)
    start = time.monotonic()
    error = await failure(layer.complete(GPT))
    elapsed = time.monotonic() - start
    assert elapsed <= 1.0 + 0.1
    assert 2 <= emu.count() < 50
    assert error.attempts == emu.count()


async def test_call_context_deadline_is_honoured(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=50, initial_backoff=0.2, max_backoff=0.2, rng=CeilingJitter())
    emu.add_fault(Fault.status(503), times=None)
    start = time.monotonic()
    with call_scope(CallContext(deadline=start + 0.5)):
        await failure(layer.complete(GPT))
    assert time.monotonic() - start <= 0.5 + 0.1
    assert emu.count() == 3  # at 0, 0.2 and 0.4 s; the next would start past 0.5 s


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_stream_failure_before_the_first_event_is_retried_invisibly(
    build: Build, emu: Emulator, provider: ProviderKind
) -> None:
    sleep = RecordingSleep()
    layer = build(provider, sleep=sleep)
    emu.add_fault(overloaded(provider), times=2)
    context = CallContext()
    with call_scope(context):
        events = await collect(layer, options_for(provider))
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == ANSWER
    finishes = [e for e in events if isinstance(e, StreamFinishEvent)]
    assert len(finishes) == 1
    assert events[-1] is finishes[0]
    assert emu.count() == 3
    assert [a.outcome for a in context.attempts] == ["error", "error", "ok"]
    assert [a.waited for a in context.attempts] == [0.0, *sleep.delays]


async def test_stream_cut_after_the_first_events_is_not_retried(
    build: Build, emu: Emulator
) -> None:
    layer = build(max_attempts=4, sleep=RecordingSleep())
    emu.add_fault(Fault.cut_stream(after_events=3))
    received: list[StreamEvent] = []

    async def drain() -> None:
        async for event in layer.stream(GPT):
            received.append(event)

    context = CallContext()
    with call_scope(context), pytest.raises(StreamInterruptedError) as info:
        await drain()
    assert received  # the caller got part of the answer, so no silent restart
    assert info.value.attempts == 1
    assert emu.count() == 1
    assert [(a.number, a.outcome, a.reason) for a in context.attempts] == [
        (1, "error", "stream_interrupted")
    ]


async def test_stream_consumer_stopping_early_closes_the_attempt(
    build: Build, emu: Emulator
) -> None:
    layer = build()
    context = CallContext()
    with call_scope(context):
        stream = layer.stream(GPT)
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    assert first.type != "finish"
    assert [(a.number, a.outcome) for a in context.attempts] == [(1, "ok")]
    # The connection went back to the pool (or was closed): the next call works.
    assert (await layer.complete(GPT)).message.text == ANSWER


async def test_stream_errors_that_cannot_succeed_are_sent_once(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=4, sleep=RecordingSleep())
    emu.add_fault(Fault.context_length(), times=None)
    error = await failure(collect(layer, GPT))
    assert isinstance(error, ContextLengthExceededError)
    assert error.attempts == 1
    assert emu.count() == 1


async def test_stream_stopped_after_its_finish_event_is_recorded_once() -> None:
    inner = ScriptedProvider([], stream_events=1)
    context = CallContext()
    with call_scope(context):
        stream = scripted_layer(inner, RetryConfig()).stream(GPT)
        async for event in stream:
            if event.type == "finish":
                break
        await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    assert [(a.number, a.outcome) for a in context.attempts] == [(1, "ok")]
    assert inner.open_streams == 0


# --------------------------------------------------------------------------- attempt records


async def test_every_attempt_is_recorded_and_reported(build: Build, emu: Emulator) -> None:
    sleep = RecordingSleep()
    layer = build(max_attempts=5, sleep=sleep)
    emu.add_fault(Fault.status(503), times=2)
    heard: list[Attempt] = []
    heard_async: list[Attempt] = []

    async def async_listener(attempt: Attempt) -> None:
        heard_async.append(attempt)

    context = CallContext(listeners=[heard.append, async_listener])
    with call_scope(context):
        reply = await layer.complete(GPT)
    assert reply.message.text == ANSWER
    attempts = context.attempts
    assert heard == attempts
    assert heard_async == attempts
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.outcome for a in attempts] == ["error", "error", "ok"]
    assert [a.status_code for a in attempts] == [503, 503, None]
    assert [a.error_code for a in attempts] == ["PROVIDER_API_ERROR"] * 2 + [None]
    assert [a.reason for a in attempts] == ["server_error"] * 2 + [None]
    assert [a.waited for a in attempts] == [0.0, *sleep.delays]
    assert all(a.provider == "openai" and a.model == "gpt-4o" for a in attempts)
    assert all(a.latency > 0 for a in attempts)


async def test_embeddings_and_images_are_retried_too(build: Build, emu: Emulator) -> None:
    layer = build(sleep=RecordingSleep())
    emu.add_fault(Fault.status(503), times=1)
    vectors = await layer.embed(ModelEmbeddingOptions(model="text-embedding-3-small", input="a"))
    assert len(vectors.embeddings) == 1
    emu.add_fault(Fault.status(500), times=1)
    image = await layer.generate_image(ImageGenerationOptions(model="gpt-image-1", prompt="red"))
    assert len(image.images) == 1
    assert emu.count() == 4


# --------------------------------------------------------------------------- silent routes


@pytest.mark.parametrize(("alternatives", "expected"), [(True, 1), (False, 3)])
async def test_a_silent_route_is_not_waited_on_again_when_others_can_answer(
    build: Build, emu: Emulator, alternatives: bool, expected: int
) -> None:
    timeouts = HttpTimeouts(connect=1.0, first_token=0.3, idle=0.3, total=0.3)
    layer = build(max_attempts=3, timeouts=timeouts, sleep=RecordingSleep())
    emu.add_fault(Fault.hang(), times=None)
    with call_scope(CallContext(has_alternatives=alternatives)):
        error = await failure(layer.complete(GPT))
    assert isinstance(error, ProviderTimeoutError)
    assert emu.count() == expected
    assert error.attempts == expected


@pytest.mark.parametrize(("alternatives", "expected"), [(True, 1), (False, 3)])
async def test_a_broken_route_is_not_retried_when_others_can_answer(
    build: Build, emu: Emulator, alternatives: bool, expected: int
) -> None:
    layer = build(max_attempts=3, sleep=RecordingSleep())
    emu.add_fault(Fault.reset(), times=None)
    with call_scope(CallContext(has_alternatives=alternatives)):
        error = await failure(layer.complete(GPT))
    assert isinstance(error, ProviderConnectionError)
    assert emu.count() == expected


async def test_other_errors_are_retried_even_with_alternatives(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=3, sleep=RecordingSleep())
    emu.add_fault(Fault.status(503), times=None)
    with call_scope(CallContext(has_alternatives=True)):
        await failure(layer.complete(GPT))
    assert emu.count() == 3


# --------------------------------------------------------------------------- cancellation


async def wait_for_requests(emu: Emulator, n: int) -> None:
    """Poll until the emulator has seen ``n`` requests (it offers no notification)."""
    for _ in range(1000):
        if emu.count() >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the emulator saw {emu.count()} requests, not {n}")


async def test_cancelling_during_a_wait_stops_at_once(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=5, initial_backoff=10.0, rng=CeilingJitter())
    emu.add_fault(Fault.status(503), times=None)
    task = asyncio.create_task(layer.complete(GPT))
    await wait_for_requests(emu, 1)
    await asyncio.sleep(0.05)  # now in the 10 s wait
    start = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - start < 0.5
    assert emu.count() == 1


async def test_cancelling_during_an_attempt_stops_at_once(build: Build, emu: Emulator) -> None:
    layer = build(max_attempts=5, sleep=RecordingSleep())
    emu.add_fault(Fault.hang(), times=None)
    context = CallContext()
    with call_scope(context):
        task = asyncio.create_task(layer.complete(GPT))
    await wait_for_requests(emu, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emu.count() == 1
    assert context.attempts == []


# --------------------------------------------------------------------------- F23: every option


async def persistent_failures(layer: RetryLayer, emu: Emulator, calls: int = 1) -> int:
    """Run ``calls`` concurrent calls against a persistent 503; the requests made."""
    emu.add_fault(Fault.status(503), times=None)
    await asyncio.gather(*(layer.complete(GPT) for _ in range(calls)), return_exceptions=True)
    return emu.count()


@pytest.mark.parametrize(("max_attempts", "expected"), [(2, 2), (5, 5)])
async def test_option_max_attempts(
    build: Build, emu: Emulator, max_attempts: int, expected: int
) -> None:
    layer = build(max_attempts=max_attempts, sleep=RecordingSleep())
    assert await persistent_failures(layer, emu) == expected


@pytest.mark.parametrize("initial_backoff", [0.05, 0.25])
async def test_option_initial_backoff(build: Build, emu: Emulator, initial_backoff: float) -> None:
    layer = build(max_attempts=2, initial_backoff=initial_backoff, rng=CeilingJitter())
    await persistent_failures(layer, emu)
    [gap] = gaps(emu.requests)
    assert initial_backoff <= gap <= initial_backoff + SLACK


@pytest.mark.parametrize(("max_backoff", "waits"), [(0.05, 0.15), (0.2, 0.35)])
async def test_option_max_backoff(
    build: Build, emu: Emulator, max_backoff: float, waits: float
) -> None:
    """Ceilings 0.05, 0.1, 0.2 capped at ``max_backoff``: 0.15 s or 0.35 s of waits."""
    layer = build(
        max_attempts=4, initial_backoff=0.05, max_backoff=max_backoff, rng=CeilingJitter()
    )
    await persistent_failures(layer, emu)
    span = emu.requests[-1].time - emu.requests[0].time
    assert waits <= span <= waits + SLACK
    assert max(gaps(emu.requests)) < max_backoff + SLACK / 2


@pytest.mark.parametrize(("max_retry_after", "expected"), [(0.1, 1), (1.0, 2)])
async def test_option_max_retry_after(
    build: Build, emu: Emulator, max_retry_after: float, expected: int
) -> None:
    layer = build(max_attempts=2, max_retry_after=max_retry_after)
    emu.add_fault(Fault.status(429, retry_after_ms=200), times=None)
    await failure(layer.complete(GPT))
    assert emu.count() == expected


@pytest.mark.parametrize(("deadline", "most"), [(0.25, 3), (0.65, 7)])
async def test_option_deadline(build: Build, emu: Emulator, deadline: float, most: int) -> None:
    """Waits of 0.1 s: about ``deadline / 0.1`` retries fit, never more."""
    layer = build(
        max_attempts=20,
        initial_backoff=0.1,
        max_backoff=0.1,
        deadline=deadline,
        rng=CeilingJitter(),
    )
    count = await persistent_failures(layer, emu)
    assert most - 2 <= count <= most


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 10), (0.5, 15)])
async def test_option_budget_ratio(
    build: Build, emu: Emulator, ratio: float, expected: int
) -> None:
    config = RetryConfig(budget_ratio=ratio, budget_min_retries=0)
    layer = build(max_attempts=2, sleep=RecordingSleep(), budget=RetryBudget.from_config(config))
    assert await persistent_failures(layer, emu, calls=10) == expected


@pytest.mark.parametrize(("min_retries", "expected"), [(0, 10), (3, 13)])
async def test_option_budget_min_retries(
    build: Build, emu: Emulator, min_retries: int, expected: int
) -> None:
    config = RetryConfig(budget_ratio=0.0, budget_min_retries=min_retries)
    layer = build(max_attempts=2, sleep=RecordingSleep(), budget=RetryBudget.from_config(config))
    assert await persistent_failures(layer, emu, calls=10) == expected


@pytest.mark.parametrize(("window", "expected"), [(1.0, 6), (60.0, 4)])
async def test_option_budget_window(
    build: Build, emu: Emulator, window: float, expected: int
) -> None:
    """One retry per window; three calls 5 s apart: each gets one, or only the first."""
    clock = FakeClock()
    config = RetryConfig(budget_ratio=0.0, budget_min_retries=1, budget_window=window)
    budget = RetryBudget.from_config(config, clock=clock)
    layer = build(max_attempts=2, sleep=RecordingSleep(), budget=budget)
    emu.add_fault(Fault.status(503), times=None)
    for _ in range(3):
        await failure(layer.complete(GPT))
        clock.now += 5.0
    assert emu.count() == expected


async def test_policy_is_asked_per_model(build: Build, emu: Emulator) -> None:
    asked: list[str] = []

    def policy(model: str) -> RetryConfig:
        asked.append(model)
        return RetryConfig(max_attempts=2 if model == "gpt-4o" else 3)

    layer = build(policy=policy, sleep=RecordingSleep())
    emu.add_fault(Fault.status(503), times=None)
    await failure(layer.complete(GPT))
    assert emu.count() == 2
    await failure(layer.complete(ModelCompletionOptions(model="gpt-4o-mini", messages="Hi")))
    assert emu.count() == 2 + 3
    assert asked == ["gpt-4o", "gpt-4o-mini"]


# --------------------------------------------------------------------------- logic, no HTTP


class ScriptedProvider(ModelProvider):
    """Raises the scripted errors in turn, then answers; streams do the same."""

    name = "scripted"

    def __init__(self, errors: Sequence[ProviderError], stream_events: int = 2) -> None:
        self.errors: list[ProviderError] = list(errors)
        self.calls = 0
        self.open_streams = 0
        self._stream_events = stream_events

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return {}

    def _next(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        self._next()
        return response()

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        self.open_streams += 1
        try:
            self._next()
            for i in range(self._stream_events):
                yield TextDeltaEvent(text=f"t{i}")
            yield StreamFinishEvent(response=response())
        finally:
            self.open_streams -= 1


def response() -> ModelCompletionResponse:
    return ModelCompletionResponse(
        id="r1",
        model="m",
        provider="scripted",
        message=Message.assistant("ok"),
        finish_reason="stop",
    )


def scripted_layer(
    inner: ScriptedProvider,
    config: RetryConfig,
    *,
    budget: RetryBudget | None = None,
    sleep: RecordingSleep | None = None,
    rng: random.Random | None = None,
) -> RetryLayer:
    return RetryLayer(
        inner,
        policy=lambda _model: config,
        budget=budget or RetryBudget(ratio=1.0, window=60, min_retries=1000),
        sleep=sleep or RecordingSleep(),
        rng=rng,
    )


def overload() -> ProviderAPIError:
    return ProviderAPIError("overloaded", retryable=True, reason="overloaded", status_code=529)


async def test_our_own_rate_limiter_is_not_retried() -> None:
    local = ProviderRateLimitError("queue wait exceeded", reason=LOCAL_RATE_LIMIT, retry_after=1)
    inner = ScriptedProvider([local])
    layer = scripted_layer(inner, RetryConfig(max_attempts=5))
    assert await failure(layer.complete(GPT)) is local
    assert inner.calls == 1
    remote = ProviderRateLimitError("429 from upstream", retry_after=0.0)
    inner = ScriptedProvider([remote])
    assert (await scripted_layer(inner, RetryConfig()).complete(GPT)).message.text == "ok"
    assert inner.calls == 2


async def test_stream_attempts_are_always_closed() -> None:
    inner = ScriptedProvider([overload(), overload()], stream_events=5)
    layer = scripted_layer(inner, RetryConfig(max_attempts=5))
    stream = layer.stream(GPT)
    assert await anext(stream) == TextDeltaEvent(text="t0")
    assert inner.calls == 3
    assert inner.open_streams == 1
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator
    assert inner.open_streams == 0
    inner = ScriptedProvider([])
    events = await collect(scripted_layer(inner, RetryConfig()), GPT)
    assert events[-1].type == "finish"
    assert inner.open_streams == 0


async def test_the_error_raised_is_the_last_attempts_without_chaining() -> None:
    errors = [overload(), overload(), overload()]
    inner = ScriptedProvider(list(errors))
    error = await failure(scripted_layer(inner, RetryConfig(max_attempts=3)).complete(GPT))
    assert error is errors[-1]
    assert error.attempts == 3
    assert error.__context__ is None


async def test_a_refused_budget_ends_the_call(caplog: pytest.LogCaptureFixture) -> None:
    inner = ScriptedProvider([overload(), overload()])
    budget = RetryBudget(ratio=0.0, window=60, min_retries=0)
    with caplog.at_level("DEBUG", logger="aiport"):
        error = await failure(scripted_layer(inner, RetryConfig(), budget=budget).complete(GPT))
    assert inner.calls == 1
    assert error.reason == "overloaded"  # unchanged: the provider's reason
    assert "retry budget spent" in caplog.text


class OddStreams(ScriptedProvider):
    """Streams from ``factory`` (plain iterators, empty streams, streams with bugs)."""

    def __init__(self, factory: Callable[[], AsyncIterator[StreamEvent]]) -> None:
        super().__init__([])
        self.factory = factory

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        self.calls += 1
        raise RuntimeError("a bug, not a provider error")

    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        return self.factory()


class PlainIterator:
    """An async iterator without ``aclose`` (not a generator)."""

    def __init__(self, events: list[StreamEvent], error: Exception | None = None) -> None:
        self.events = list(events)
        self.error = error

    def __aiter__(self) -> PlainIterator:
        return self

    async def __anext__(self) -> StreamEvent:
        if self.events:
            return self.events.pop(0)
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration


async def test_bugs_are_recorded_and_never_retried() -> None:
    delta = TextDeltaEvent(text="t")
    cases: list[tuple[Callable[[], AsyncIterator[StreamEvent]], int]] = [
        (lambda: PlainIterator([], RuntimeError("bug")), 0),  # before the first event
        (lambda: PlainIterator([delta], RuntimeError("bug")), 1),  # after it
    ]
    for factory, delivered in cases:
        inner = OddStreams(factory)
        layer = scripted_layer(inner, RetryConfig(max_attempts=3))
        context = CallContext()
        received: list[StreamEvent] = []

        async def drain(layer: RetryLayer = layer, received: list[StreamEvent] = received) -> None:
            async for event in layer.stream(GPT):
                received.append(event)

        with call_scope(context), pytest.raises(RuntimeError):
            await drain()
        assert len(received) == delivered
        assert inner.calls == 1
        assert [(a.outcome, a.error_code) for a in context.attempts] == [("error", None)]
    inner = OddStreams(lambda: PlainIterator([]))
    context = CallContext()
    with call_scope(context), pytest.raises(RuntimeError):
        await scripted_layer(inner, RetryConfig(max_attempts=3)).complete(GPT)
    assert inner.calls == 1
    assert [a.outcome for a in context.attempts] == ["error"]


@pytest.mark.parametrize("events", [0, 2], ids=["empty", "no-finish"])
async def test_streams_that_end_without_a_finish_event_are_recorded(events: int) -> None:
    inner = OddStreams(lambda: PlainIterator([TextDeltaEvent(text="t")] * events))
    context = CallContext()
    with call_scope(context):
        received = await collect(scripted_layer(inner, RetryConfig()), GPT)
    assert len(received) == events
    assert [(a.number, a.outcome) for a in context.attempts] == [(1, "ok")]


def test_budget_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="ratio"):
        RetryBudget(ratio=-0.1, window=60, min_retries=0)
    with pytest.raises(ValueError, match="window"):
        RetryBudget(ratio=0.2, window=0, min_retries=0)
    with pytest.raises(ValueError, match="min_retries"):
        RetryBudget(ratio=0.2, window=60, min_retries=-1)
    assert "ratio=0.2" in repr(RetryBudget(ratio=0.2, window=60, min_retries=0))


# --------------------------------------------------------------------------- properties

retry_afters = st.one_of(st.none(), st.floats(min_value=0, max_value=20, allow_nan=False))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.floats(min_value=0.001, max_value=10),
    spread=st.floats(min_value=1, max_value=100),
    max_retry_after=st.floats(min_value=0, max_value=20),
    asked=st.lists(retry_afters, min_size=1, max_size=8),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_schedule_property(
    initial: float,
    spread: float,
    max_retry_after: float,
    asked: list[float | None],
    seed: int,
) -> None:
    """Each wait lies in ``[0, min(max_backoff, initial * 2**(n-1))]``, or equals the
    provider's Retry-After; a Retry-After above the cap ends the call unwaited."""
    config = RetryConfig(
        max_attempts=len(asked) + 1,
        initial_backoff=initial,
        max_backoff=initial * spread,
        max_retry_after=max_retry_after,
    )
    errors = [
        ProviderAPIError("busy", retryable=True, retry_after=value, reason="overloaded")
        for value in asked
    ]
    inner = ScriptedProvider(errors)
    sleep = RecordingSleep()
    layer = scripted_layer(inner, config, sleep=sleep, rng=random.Random(seed))

    async def run() -> None:
        with contextlib.suppress(ProviderError):
            await layer.complete(GPT)

    asyncio.run(run())
    for n, delay in enumerate(sleep.delays, start=1):
        wanted = asked[n - 1]
        if wanted is not None:
            assert delay == wanted
        else:
            assert 0.0 <= delay <= min(config.max_backoff, initial * 2 ** (n - 1))
    refused = next((i for i, a in enumerate(asked) if a is not None and a > max_retry_after), None)
    waits = refused if refused is not None else len(asked)
    assert len(sleep.delays) == waits
    assert inner.calls == waits + 1


@given(
    retry=st.integers(min_value=1, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_never_overflows(retry: int, seed: int) -> None:
    config = RetryConfig(initial_backoff=0.5, max_backoff=30)
    delay = retry_delay(retry, config, None, random.Random(seed))
    assert delay is not None
    assert 0.0 <= delay <= 30


Step = tuple[Literal["first", "retry", "tick"], float]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("first"), st.just(0.0)),
        st.tuples(st.just("retry"), st.just(0.0)),
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=30)),
    ),
    max_size=200,
)


@given(
    ratio=st.floats(min_value=0, max_value=1),
    min_retries=st.integers(min_value=0, max_value=5),
    ops=steps,
)
def test_budget_property(ratio: float, min_retries: int, ops: list[Step]) -> None:
    """Retries granted never exceed ``min_retries + ratio * first attempts`` counted over
    the window; once a whole window passes, the history is gone."""
    window = 10.0
    clock = FakeClock(0.0)
    budget = RetryBudget(ratio=ratio, window=window, min_retries=min_retries, clock=clock)
    events: list[tuple[float, str]] = []  # (time, "first" | "retry") granted
    for op, value in ops:
        if op == "tick":
            clock.now += value
            continue
        if op == "first":
            budget.record_first_attempt()
            events.append((clock.now, "first"))
            continue
        # Whatever is still counted is at most a window old; all of it younger is counted.
        recent = [kind for t, kind in events if t > clock.now - window * 0.9]
        counted = [kind for t, kind in events if t > clock.now - window]
        granted = budget.try_spend()
        if granted:
            events.append((clock.now, "retry"))
            assert recent.count("retry") < min_retries + ratio * counted.count("first")
        else:
            assert counted.count("retry") >= min_retries + ratio * recent.count("first")


def test_budget_floor_and_share_without_time() -> None:
    budget = RetryBudget(ratio=0.2, window=60, min_retries=2, clock=FakeClock())
    for _ in range(10):
        budget.record_first_attempt()
    granted = sum(budget.try_spend() for _ in range(10))
    assert granted == 2 + 2  # floor of 2, plus 20% of 10
