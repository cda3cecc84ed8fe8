"""Several API keys per provider, end to end against the emulator.

Round-robin spreads calls over the keys; failover sticks to the first usable key. A key
the provider refuses (401/403) is set aside, a key answered with 429 rests until its
Retry-After, and the call is sent again at once with another key; when no key is left the
caller gets the provider's error with the soonest retry-after. Every key has its own
rate-limit buckets (memory and Redis), and limits learned from headers are learned per key.
Keys show up in events, logs and errors only as fingerprints.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pytest

from aiport import (
    Hooks,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderService,
)
from aiport._credentials import KeyPool, SecretReference, key_fingerprint
from aiport._limits import limit_scope
from aiport.layers._hooks import ErrorEvent, HooksLayer, KeyEvent, ResponseEvent
from aiport.layers._rotation import ALL_KEYS_RESTING, KeyRotationLayer
from aiport.testing import Emulator, Fault
from tests.resilience.test_ratelimit import HeaderProxy

from .conftest import new_key

MODEL = "o:gpt-4o-mini"


def settings(
    base_url: str,
    keys: list[str],
    rotation: str | None = None,
    *,
    attempts: int = 1,
    rate_limit: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "openai", "base_url": base_url, "api_keys": keys}
    if rotation is not None:
        provider["key_rotation"] = rotation
    if rate_limit is not None:
        provider["rate_limit"] = rate_limit
    return {
        "retry": {"max_attempts": attempts, "initial_backoff": 0.01, "max_backoff": 0.02},
        "providers": {"o": provider},
        **extra,
    }


def keys_used(emu: Emulator) -> list[str]:
    """The key each recorded request carried, in arrival order."""
    return [r.headers["authorization"].removeprefix("Bearer ") for r in emu.requests]


def recorder(hooks: Hooks) -> list[Any]:
    events: list[Any] = []
    hooks.on_key(events.append)
    hooks.on_response(events.append)
    hooks.on_error(events.append)
    return events


async def ask(service: ProviderService) -> str:
    return (await service.complete(model=MODEL, messages="hi")).text


# --------------------------------------------------------------------------- round-robin


async def test_round_robin_spreads_calls_over_three_keys() -> None:
    keys = [new_key(tag) for tag in "abc"]
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(settings(emu.openai_base_url, keys), env={}, hooks=hooks) as service,
    ):
        for _ in range(6):
            assert await ask(service)
        async with service.stream(model=MODEL, messages="hi") as stream:
            async for _ in stream:
                pass
        await service.embed(model="o:text-embedding-3-small", input="x")
        await service.embed(model="o:text-embedding-3-small", input="y")
        used = keys_used(emu)
    assert Counter(used) == {keys[0]: 3, keys[1]: 3, keys[2]: 3}
    # In turn: every window of three consecutive calls uses each key once.
    assert all(set(used[i : i + 3]) == set(keys) for i in range(0, 9, 3))
    served = [e.key for e in events if isinstance(e, ResponseEvent)]
    assert Counter(served) == {key_fingerprint(k): 3 for k in keys}


async def test_round_robin_skips_a_refused_key_and_keeps_avoiding_it() -> None:
    bad, good1, good2 = new_key("bad"), new_key("g1"), new_key("g2")
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=[good1, good2]) as emu,
        ProviderService(
            settings(emu.openai_base_url, [bad, good1, good2]), env={}, hooks=hooks
        ) as service,
    ):
        for _ in range(6):
            assert await ask(service)  # every call succeeds, none waits for a retry
        used = keys_used(emu)
    assert used.count(bad) == 1  # refused once, then set aside
    assert used.count(good1) + used.count(good2) == 6
    set_aside = [e for e in events if isinstance(e, KeyEvent)]
    assert [(e.key, e.state, e.status_code) for e in set_aside] == [
        (key_fingerprint(bad), "set_aside", 401)
    ]
    assert set_aside[0].seconds == 300


# --------------------------------------------------------------------------- failover


async def test_failover_on_401_skips_the_bad_key_and_later_calls_avoid_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiport")
    bad, second, third = new_key("bad"), new_key("second"), new_key("third")
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=[second, third]) as emu,
        ProviderService(
            settings(emu.openai_base_url, [bad, second, third], "failover"),
            env={},
            hooks=hooks,
        ) as service,
    ):
        for _ in range(4):
            assert await ask(service)
        used = keys_used(emu)
    assert used == [bad, second, second, second, second]
    fingerprint = key_fingerprint(bad)
    assert [e.key for e in events if isinstance(e, KeyEvent)] == [fingerprint]
    responses = [e for e in events if isinstance(e, ResponseEvent)]
    assert {e.key for e in responses} == {key_fingerprint(second)}
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and fingerprint in warning[0].getMessage()
    assert "set aside for 300s" in warning[0].getMessage()
    assert f"key={key_fingerprint(second)}" in caplog.text  # the call log names the key
    for key in (bad, second, third):
        assert key not in caplog.text and key[-12:-4] not in caplog.text


async def test_failover_on_429_rests_the_key_until_its_retry_after() -> None:
    first, second = new_key("first"), new_key("second")
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=[first, second]) as emu,
        ProviderService(
            settings(emu.openai_base_url, [first, second], "failover"), env={}, hooks=hooks
        ) as service,
    ):
        emu.add_fault(Fault.status(429, retry_after_ms=600))
        started = time.monotonic()
        assert await ask(service)  # retried at once with the second key
        assert time.monotonic() - started < 0.5
        assert await ask(service)  # the first key still rests
        assert keys_used(emu) == [first, second, second]
        await asyncio.sleep(0.7)
        assert await ask(service)  # rested: failover goes back to the first key
        assert keys_used(emu)[-1] == first
    rests = [e for e in events if isinstance(e, KeyEvent)]
    assert [(e.key, e.state, e.status_code) for e in rests] == [
        (key_fingerprint(first), "resting", 429)
    ]
    assert rests[0].seconds == pytest.approx(0.6)


async def test_failover_spills_over_when_the_first_keys_limit_is_full() -> None:
    first, second = new_key("first"), new_key("second")
    limits = {"requests_per_minute": 2, "max_queue_wait": 5}
    async with (
        Emulator(api_keys=[first, second]) as emu,
        ProviderService(
            settings(emu.openai_base_url, [first, second], "failover", rate_limit=limits),
            env={},
        ) as service,
    ):
        started = time.monotonic()
        await asyncio.gather(*(ask(service) for _ in range(4)))
        assert time.monotonic() - started < 2  # nobody waited for the first key's minute
        assert Counter(keys_used(emu)) == {first: 2, second: 2}


async def test_a_stream_moves_to_the_next_key_before_its_first_event() -> None:
    bad, good = new_key("bad"), new_key("good")
    async with (
        Emulator(api_keys=[good]) as emu,
        ProviderService(settings(emu.openai_base_url, [bad, good], "failover"), env={}) as svc,
    ):
        async with svc.stream(model=MODEL, messages="hi") as stream:
            text = "".join([e.text async for e in stream if e.type == "text-delta"])
        assert text
        assert keys_used(emu) == [bad, good]


async def test_a_key_that_does_not_resolve_is_set_aside_and_named_by_its_place() -> None:
    good = new_key("good")
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=[good]) as emu,
        ProviderService(
            settings(emu.openai_base_url, ["env:AIPORT_TEST_NOT_SET", good], "failover"),
            env={},
            hooks=hooks,
        ) as service,
    ):
        assert await ask(service)
        assert keys_used(emu) == [good]
    [event] = [e for e in events if isinstance(e, KeyEvent)]
    assert (event.key, event.state, event.reason) == (
        "api_keys[0]",
        "set_aside",
        "credentials_unresolved",
    )


async def test_a_key_out_of_quota_is_set_aside_not_rested() -> None:
    first, second = new_key("first"), new_key("second")
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=[first, second]) as emu,
        ProviderService(
            settings(emu.openai_base_url, [first, second], "failover"), env={}, hooks=hooks
        ) as service,
    ):
        emu.add_fault(Fault.status(429, error_type="insufficient_quota"))
        assert await ask(service)
        assert await ask(service)
        assert keys_used(emu) == [first, second, second]
    [event] = [e for e in events if isinstance(e, KeyEvent)]
    assert (event.key, event.state, event.reason) == (
        key_fingerprint(first),
        "set_aside",
        "insufficient_quota",
    )


# --------------------------------------------------------------------------- exhausted


async def test_all_keys_rate_limited_gives_the_soonest_retry_after() -> None:
    keys = [new_key(tag) for tag in "abc"]
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(settings(emu.openai_base_url, keys, "failover"), env={}) as service,
    ):
        for wait_ms in (3000, 1000, 2000):
            emu.add_fault(Fault.status(429, retry_after_ms=wait_ms))
        with pytest.raises(ProviderRateLimitError) as caught:
            await ask(service)
        assert keys_used(emu) == keys  # each key once, at once
        error = caught.value
        assert error.status_code == 429 and error.retryable
        assert error.retry_after is not None and 0.8 < error.retry_after <= 1.0
        for key in keys:
            assert key_fingerprint(key) in error.message
            assert key not in str(error) and key not in repr(error)

        # Every key rests: the next call fails at once, without sending anything.
        with pytest.raises(ProviderRateLimitError) as resting:
            await ask(service)
        assert resting.value.reason == ALL_KEYS_RESTING
        assert resting.value.retry_after is not None and 0.5 < resting.value.retry_after <= 1.0
        assert len(emu.requests) == 3


async def test_a_refused_key_while_another_rests_gives_a_retryable_rate_limit() -> None:
    keys = [new_key(tag) for tag in "ab"]
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(settings(emu.openai_base_url, keys, "failover"), env={}) as service,
    ):
        emu.add_fault(Fault.status(429, retry_after_ms=1500))
        emu.add_fault(Fault.status(401))
        with pytest.raises(ProviderRateLimitError) as caught:
            await ask(service)
    error = caught.value
    # The first key will be back: the caller (or the retry policy) can wait for it.
    assert error.retryable and error.status_code == 429
    assert error.retry_after is not None and 1.2 < error.retry_after <= 1.5
    assert f"{key_fingerprint(keys[1])} (HTTP 401, refused)" in error.message
    assert f"{key_fingerprint(keys[0])} (HTTP 429, rate-limited)" in error.message


async def test_the_retry_policy_waits_for_the_soonest_key_after_all_are_exhausted() -> None:
    keys = [new_key(tag) for tag in "ab"]
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(settings(emu.openai_base_url, keys, attempts=2), env={}) as service,
    ):
        emu.add_fault(Fault.status(429, retry_after_ms=400), times=2)
        started = time.monotonic()
        assert await ask(service)
        elapsed = time.monotonic() - started
        assert 0.35 < elapsed < 2.0  # one wait for the soonest key, not a backoff per key
        assert len(emu.requests) == 3


async def test_all_keys_refused_gives_an_auth_error_and_a_repaired_key_comes_back() -> None:
    good = new_key("good")
    env = {"KEY_A": new_key("bad-a"), "KEY_B": new_key("bad-b")}
    async with (
        Emulator(api_keys=[good]) as emu,
        ProviderService(
            settings(emu.openai_base_url, ["env:KEY_A", "env:KEY_B"], "failover"), env=env
        ) as service,
    ):
        with pytest.raises(ProviderAuthError) as caught:
            await ask(service)
        assert caught.value.status_code == 401 and not caught.value.retryable
        assert key_fingerprint(env["KEY_A"]) in caught.value.message
        assert key_fingerprint(env["KEY_B"]) in caught.value.message
        assert len(emu.requests) == 2

        # Every key is set aside: a call still tries the one set aside longest (one request).
        with pytest.raises(ProviderAuthError):
            await ask(service)
        assert keys_used(emu)[2:] == [env["KEY_A"]]

        # A key is replaced at its source (the one not due for a last try): its reference is
        # resolved again, the new value differs from the one refused, so it is used at once.
        env["KEY_B"] = good
        assert await ask(service)
        assert await ask(service)  # and it is no longer set aside
        assert keys_used(emu)[3:] == [good, good]


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("rotation", ["round-robin", "failover"])
async def test_each_key_has_its_own_rate_limit(rotation: str) -> None:
    keys = [new_key(tag) for tag in "ab"]
    limits = {"requests_per_minute": 3, "max_queue_wait": 0}
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(
            settings(emu.openai_base_url, keys, rotation, rate_limit=limits), env={}
        ) as service,
    ):
        results = await asyncio.gather(*(ask(service) for _ in range(6)))
        assert all(results)  # 2 x 3 calls, none queued (max_queue_wait = 0)
        assert Counter(keys_used(emu)) == {keys[0]: 3, keys[1]: 3}
        with pytest.raises(ProviderRateLimitError) as caught:
            await ask(service)
        assert caught.value.reason == "local_rate_limit"
        assert 50 < (caught.value.retry_after or 0) <= 60
        assert len(emu.requests) == 6


async def test_a_limit_learned_by_one_key_makes_failover_spill_to_the_next() -> None:
    limited, free = new_key("limited"), new_key("free")
    async with Emulator(api_keys=[limited, free]) as emu:

        def report(n: int) -> dict[str, str]:
            # Only the first key's answers report a limit of 2 requests a minute.
            key = keys_used(emu)[n]
            return {"x-ratelimit-limit-requests": "2"} if key == limited else {}

        async with HeaderProxy(emu.url, report) as proxy:
            config = settings(
                proxy.url + "/v1",
                [limited, free],
                "failover",
                rate_limit={"requests_per_minute": 100, "max_queue_wait": 0},
            )
            async with ProviderService(config, env={}) as service:
                for _ in range(6):
                    assert await ask(service)
        used = keys_used(emu)
    # Failover prefers the first key until its learned limit of 2 is used up.
    assert used == [limited, limited, free, free, free, free]


async def test_learned_limits_stay_with_their_key() -> None:
    limited, free = new_key("limited"), new_key("free")
    async with Emulator(api_keys=[limited, free]) as emu:

        def report(n: int) -> dict[str, str]:
            key = keys_used(emu)[n]
            return {"x-ratelimit-limit-requests": "2"} if key == limited else {}

        async with HeaderProxy(emu.url, report) as proxy:
            config = settings(
                proxy.url + "/v1",
                [limited, free],
                rate_limit={"requests_per_minute": 100, "max_queue_wait": 0},
            )
            async with ProviderService(config, env={}) as service:
                for _ in range(4):
                    assert await ask(service)
                rate_layer = _layer(service, "RateLimitLayer")
                limited_bucket = rate_layer.buckets("gpt-4o-mini", limit_scope("o", limited))
                free_bucket = rate_layer.buckets("gpt-4o-mini", limit_scope("o", free))
    assert limited_bucket[1].requests_per_minute == 2
    assert free_bucket[1].requests_per_minute == 100


async def test_redis_limits_are_per_key_and_never_hold_a_key(redis_url: str) -> None:
    import redis.asyncio

    keys = [new_key(tag) for tag in "ab"]
    limits = {"requests_per_minute": 3, "max_queue_wait": 0, "backend": "redis"}
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(
            settings(emu.openai_base_url, keys, rate_limit=limits, redis_url=redis_url),
            env={},
        ) as service,
    ):
        assert all(await asyncio.gather(*(ask(service) for _ in range(6))))
        with pytest.raises(ProviderRateLimitError) as caught:
            await ask(service)
        assert caught.value.reason == "local_rate_limit"
        assert Counter(keys_used(emu)) == {keys[0]: 3, keys[1]: 3}
    # A second service (another process would do the same) shares the keys' counters.
    async with (
        Emulator(api_keys=keys) as emu2,
        ProviderService(
            settings(emu2.openai_base_url, keys, rate_limit=limits, redis_url=redis_url),
            env={},
        ) as other,
    ):
        with pytest.raises(ProviderRateLimitError):
            await ask(other)
        assert len(emu2.requests) == 0
    client = redis.asyncio.Redis.from_url(redis_url)
    scopes = {limit_scope("o", key) for key in keys}
    found: set[str] = set()
    for scope in scopes:
        async for name in client.scan_iter(match=f"aiport:rl:{{{scope}}}:*"):
            found.add(name.decode() if isinstance(name, bytes) else name)
    await client.aclose()
    assert {name.split("{", 1)[1].split("}", 1)[0] for name in found} == scopes
    for key in keys:
        assert not any(key[i : i + 8] in name for name in found for i in range(len(key) - 7))


# --------------------------------------------------------------------------- the pipeline


def _layer(service: ProviderService, kind: str) -> Any:
    layer: Any = service.get_provider("o")
    while layer is not None and type(layer).__name__ != kind:
        layer = getattr(layer, "inner", None)
    return layer


async def test_one_key_builds_no_rotation(emulator: Emulator) -> None:
    for credential in ({"api_key": "k" * 20}, {"api_keys": ["k" * 20]}):
        config = {"providers": {"o": {"type": "openai", "base_url": emulator.openai_base_url}}}
        config["providers"]["o"].update(credential)
        async with ProviderService(config, env={}) as service:
            assert _layer(service, "KeyRotationLayer") is None
            hooks_layer = service.get_provider("o")
            assert isinstance(hooks_layer, HooksLayer) and not hooks_layer._track_keys
            adapter = hooks_layer.unwrap()
            assert isinstance(adapter._credential, SecretReference)  # type: ignore[attr-defined]


async def test_several_keys_build_the_rotation_around_per_key_limits(
    emulator: Emulator,
) -> None:
    config = settings(emulator.openai_base_url, ["k" * 20, "j" * 20], "failover")
    async with ProviderService(config, env={}) as service:
        rotation = _layer(service, "KeyRotationLayer")
        assert isinstance(rotation, KeyRotationLayer)
        assert type(rotation.inner).__name__ == "RateLimitLayer"
        assert rotation.inner._per_key
        assert isinstance(rotation.pool, KeyPool) and rotation.pool.rotation == "failover"
        assert rotation.pool is service.get_provider("o").unwrap()._credential  # type: ignore[attr-defined]
        assert "k" * 8 not in repr(rotation.pool) and "j" * 8 not in repr(rotation.pool)


async def test_error_events_name_the_key_of_the_failed_attempt() -> None:
    keys = [new_key(tag) for tag in "ab"]
    hooks = Hooks()
    events = recorder(hooks)
    async with (
        Emulator(api_keys=keys) as emu,
        ProviderService(
            settings(emu.openai_base_url, keys, "failover"), env={}, hooks=hooks
        ) as svc,
    ):
        emu.add_fault(Fault.status(500))
        with pytest.raises(ProviderError) as caught:
            await ask(svc)
        assert caught.value.reason == "server_error"
        assert keys_used(emu) == [keys[0]]  # a 500 is not retried with another key
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.key == key_fingerprint(keys[0])
