"""Calls with no configured limit: straight to the provider, yet every pause still holds.

With neither a provider nor a model limit, the rate-limit layer takes no lease and no
queue turn (docs/decisions.md 18), since nothing is counted and a limit learned from
headers only tightens a configured one. What the layer promises must not change for
them: a 429 or a "remaining: 0" answer pauses the bucket and later calls (and streams)
wait for it; several keys spill to a key that is not paused; a learned limit never
appears from nowhere. These tests run against the emulator over HTTP, through
``HeaderProxy`` where an answer must carry rate-limit headers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from aiport import ProviderService
from aiport._config import RateLimitConfig
from aiport._credentials import StaticCredential
from aiport._errors import ProviderRateLimitError
from aiport._http import HttpClient
from aiport._limits import Bucket, MemoryLimiter, limit_scope, may_pause, parse_rate_limit_headers
from aiport.layers._ratelimit import RateLimitLayer
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault
from tests.conftest import OPENAI_KEY
from tests.credentials.conftest import new_key
from tests.resilience.test_ratelimit import MODEL, HeaderProxy, ask, limited

# --------------------------------------------------------------------------- single key


def adapter_at(base_url: str, http: HttpClient) -> OpenAIProvider:
    return OpenAIProvider(
        name="openai", base_url=base_url, credential=StaticCredential(OPENAI_KEY), http=http
    )


async def test_a_reported_limit_never_limits_calls_that_have_none(
    emulator: Emulator, http: HttpClient
) -> None:
    reports = {"x-ratelimit-limit-requests": "1", "x-ratelimit-remaining-requests": "3"}
    async with HeaderProxy(emulator.url, lambda n: reports) as proxy:
        layer = limited(adapter_at(proxy.url + "/v1", http), max_queue_wait=0)
        for _ in range(5):
            assert (await layer.complete(ask())).text
        assert proxy.count == 5  # none refused locally, although "1 a minute" was reported
        assert layer.buckets(MODEL)[1].requests_per_minute is None
        await layer.aclose()


async def test_a_429_pauses_later_calls_and_streams_without_limits(
    emulator: Emulator, openai: OpenAIProvider
) -> None:
    emulator.add_fault(Fault.status(429, retry_after="1"))
    layer = limited(openai, max_queue_wait=10)
    with pytest.raises(ProviderRateLimitError):
        await layer.complete(ask())
    paused_at = time.monotonic()

    async def streamed() -> str:
        text = ""
        async for event in layer.stream(ask()):
            if event.type == "text-delta":
                text += event.text
        return text

    results = await asyncio.gather(*(layer.complete(ask()) for _ in range(5)), streamed())
    assert all(results)
    assert time.monotonic() - paused_at >= 0.9
    times = sorted(r.time for r in emulator.requests)
    assert len(times) == 7 and all(t - times[0] >= 0.95 for t in times[1:])


async def test_remaining_zero_pauses_a_stream_without_limits(
    emulator: Emulator, http: HttpClient
) -> None:
    def exhausted(n: int) -> dict[str, str]:
        if n:
            return {}
        return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.2s"}

    async with HeaderProxy(emulator.url, exhausted) as proxy:
        layer = limited(adapter_at(proxy.url + "/v1", http), max_queue_wait=5)
        await layer.complete(ask())
        async for _ in layer.stream(ask()):
            pass
    times = [r.time for r in emulator.requests]
    assert len(times) == 2 and times[1] - times[0] > 0.9


async def test_an_unlimited_stream_closed_before_it_starts_ends(openai: OpenAIProvider) -> None:
    layer = limited(openai)
    events = layer.stream(ask())
    await events.aclose()  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await anext(events)


def test_expired_pauses_are_forgotten_by_the_check() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    assert not limiter.paused_now("s", "m")
    limiter.pause(Bucket("s", "m"), 2)
    assert limiter.paused_now("s", "m") and not limiter.paused_now("s", "other")
    limiter.pause(Bucket("s", None), 1)  # the provider bucket stops every model
    assert limiter.paused_now("s", "other")
    now[0] = 2.0
    assert not limiter.paused_now("s", "m")
    assert limiter.paused_for(Bucket("s", "m")) == 0


async def test_a_shared_limiter_is_always_asked(http: HttpClient) -> None:
    """A limiter whose pauses may come from other processes is never skipped."""

    class Shared(MemoryLimiter):
        pauses_known_locally = False
        acquired = 0

        async def acquire(self, *args: Any, **kwargs: Any) -> Any:
            Shared.acquired += 1
            return await super().acquire(*args, **kwargs)

    async with Emulator() as emu:
        adapter = adapter_at(emu.openai_base_url, http)
        table = RateLimitConfig()
        layer = RateLimitLayer(
            adapter, limits=lambda m: table if m is None else None, limiter=Shared(), scope="s"
        )
        await layer.complete(ask())
        async for _ in layer.stream(ask()):
            pass
        await layer.aclose()
    assert Shared.acquired == 2


# --------------------------------------------------------------------------- several keys


def two_keys(base_url: str, keys: list[str]) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "o": {
                "type": "openai",
                "base_url": base_url,
                "api_keys": keys,
                "key_rotation": "failover",
                "rate_limit": {"max_queue_wait": 5},
            }
        },
    }


def keys_used(emu: Emulator) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emu.requests]


async def test_several_keys_without_limits_spill_past_a_paused_key() -> None:
    first, second = new_key("first"), new_key("second")
    async with Emulator(api_keys=[first, second]) as emu:

        def report(n: int) -> dict[str, str]:
            # The first key's answers say it has nothing left for 1.5 s.
            if keys_used(emu)[n] == first:
                return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s"}
            return {}

        async with HeaderProxy(emu.url, report) as proxy:
            config = two_keys(proxy.url + "/v1", [first, second])
            async with ProviderService(config, env={}) as svc:
                started = time.monotonic()
                for _ in range(4):
                    assert (await svc.complete(model="o:gpt-4o-mini", messages="hi")).text
                spilled = time.monotonic() - started
        assert keys_used(emu) == [first, second, second, second]
        assert spilled < 1.0  # nobody waited for the paused key


async def test_a_key_that_does_not_resolve_is_set_aside_once_when_the_next_is_paused() -> None:
    paused, free = new_key("paused"), new_key("free")
    async with Emulator(api_keys=[paused, free]) as emu:
        config = two_keys(emu.openai_base_url, ["env:AIPORT_TEST_NOT_SET", paused, free])
        events: list[Any] = []
        async with ProviderService(config, env={}) as service:
            service.hooks.on_key(events.append)
            provider = service.get_provider("o")
            layer: Any = provider
            while not isinstance(layer, RateLimitLayer):
                layer = layer.inner
            layer.limiter.pause(Bucket(limit_scope("o", paused), "gpt-4o-mini"), 5)
            assert (await service.complete(model="o:gpt-4o-mini", messages="hi")).text
        assert keys_used(emu) == [free]
    assert [(e.key, e.state, e.reason) for e in events] == [
        ("api_keys[0]", "set_aside", "credentials_unresolved")
    ]


# --------------------------------------------------------------------------- headers

_VALUES = st.one_of(
    st.sampled_from(["0", " 0", "00", "-0", "+0", "1", "250", "", "x", "0.0", "0s"]),
    st.integers(min_value=-3, max_value=3).map(str),
)
_RESETS = st.sampled_from(["1s", "6ms", "1m2s", "bad", "2030-01-01T00:00:00+00:00", "3"])
_NAMES = st.sampled_from(
    [
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-remaining-input-tokens",
        "x-ratelimit-remaining-output-tokens",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-output-tokens-remaining",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-output-tokens-reset",
        "x-ratelimit-reset-input-tokens",
        "x-ratelimit-reset-output-tokens",
        "x-ratelimit-limit-requests",
        "retry-after",
        "content-type",
    ]
)


@settings(max_examples=300)
@given(
    st.dictionaries(_NAMES, st.one_of(_VALUES, _RESETS), max_size=10),
    st.sampled_from([str.lower, str.upper, str.title]),
)
def test_may_pause_is_never_false_when_the_headers_pause(
    headers: dict[str, str], case: Any
) -> None:
    cased = {case(name): value for name, value in headers.items()}
    pauses = parse_rate_limit_headers(cased).pause is not None
    if pauses:
        assert may_pause(cased)
        assert may_pause(CIMultiDictProxy(CIMultiDict(cased)))
    assert may_pause(cased) == may_pause(CIMultiDictProxy(CIMultiDict(cased)))


async def test_a_retry_delay_given_only_in_the_error_body_pauses_for_that_long(
    emulator: Emulator,
) -> None:
    # Gemini says how long to wait in the 429 body (google.rpc.RetryInfo), with no
    # Retry-After header: the bucket must rest that long, not the headers' 1 s default.
    config = {
        "retry": {"max_attempts": 1},
        "providers": {
            "g": {"type": "gemini", "base_url": emulator.gemini_base_url, "api_key": OPENAI_KEY}
        },
    }
    emulator.add_fault(Fault.status(429, retry_after="2"))
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderRateLimitError) as caught:
            await service.complete(model="g:gemini-2.5-flash", messages="hi")
        assert caught.value.retry_after == 2.0
        failed_at = time.monotonic()
        await service.complete(model="g:gemini-2.5-flash", messages="hi")
    assert time.monotonic() - failed_at >= 1.9
    times = [r.time for r in emulator.requests]
    assert len(times) == 2 and times[1] - times[0] >= 1.9
