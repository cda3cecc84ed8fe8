"""Routing over deployments against the emulator: fallbacks, circuit breaking, balancing,
and streams that fail (failure modes F2, F6, F7, F8, F9, F24 of research/gateways.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiport import (
    AttemptEvent,
    ContextLengthExceededError,
    Hooks,
    ProviderAPIError,
    ProviderRateLimitError,
    ProviderService,
    StreamInterruptedError,
)
from aiport.testing import Emulator, Fault

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(context_windows={"gpt-4o-mini": 40}) as emulator:
        yield emulator


def config(emu: Emulator, **extra: Any) -> dict[str, Any]:
    """`primary` and `backup` (OpenAI API) and `claude` (Anthropic API) on one emulator.

    Faults are aimed at a deployment by model name: primary serves gpt-4o, backup serves
    gpt-4.1, claude serves claude-sonnet-4-6.
    """
    base: dict[str, Any] = {
        "providers": {
            "primary": {
                "type": "openai",
                "base_url": emu.openai_base_url,
                "api_key": "k1",
                "models": {"gpt-4o": {"fallbacks": ["backup:gpt-4.1"]}},
            },
            "backup": {"type": "openai", "base_url": emu.openai_base_url, "api_key": "k2"},
            "claude": {"type": "anthropic", "base_url": emu.anthropic_base_url, "api_key": "k3"},
        },
        "retry": {"max_attempts": 1},
    }
    base.update(extra)
    return base


def hits(emu: Emulator, model: str) -> int:
    return sum(1 for r in emu.requests if r.body and r.body.get("model") == model)


# ---------------------------------------------------------------------- fallbacks


async def test_fallback_serves_the_call_and_the_response_says_who(emu: Emulator) -> None:
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu), env={}) as service:
        response = await service.complete(model="primary:gpt-4o", messages="hello")
    assert response.text == "You said: hello"
    assert response.provider == "backup"
    assert response.model == "gpt-4.1"
    assert (hits(emu, "gpt-4o"), hits(emu, "gpt-4.1")) == (1, 1)


async def test_per_call_fallbacks_replace_or_disable_the_configured_ones(emu: Emulator) -> None:
    """F9 (second half): fallbacks=False means zero fallback attempts."""
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu), env={}) as service:
        with pytest.raises(ProviderAPIError) as info:
            await service.complete(model="primary:gpt-4o", messages="x", fallbacks=False)
        assert info.value.status_code == 503
        assert hits(emu, "gpt-4.1") == 0
        answer = await service.complete(
            model="primary:gpt-4o", messages="x", fallbacks=["claude:claude-sonnet-4-6"]
        )
        assert answer.provider == "claude"
        assert hits(emu, "gpt-4.1") == 0


async def test_errors_outside_fallback_on_are_raised_at_once(emu: Emulator) -> None:
    emu.add_fault(Fault.status(400), times=None, model="gpt-4o")
    async with ProviderService(config(emu), env={}) as service:
        with pytest.raises(ProviderAPIError) as info:
            await service.complete(model="primary:gpt-4o", messages="x")
    assert info.value.status_code == 400
    assert hits(emu, "gpt-4.1") == 0


async def test_fallback_on_option_is_honoured(emu: Emulator) -> None:
    """F23: `fallback.on` changes what the upstream sees."""
    emu.add_fault(Fault.status(429), times=None, model="gpt-4o")
    async with ProviderService(config(emu, fallback={"on": ["server_error"]}), env={}) as svc:
        with pytest.raises(ProviderRateLimitError):
            await svc.complete(model="primary:gpt-4o", messages="x")
    assert hits(emu, "gpt-4.1") == 0
    emu.reset()
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu, fallback={"enabled": False}), env={}) as svc:
        with pytest.raises(ProviderAPIError):
            await svc.complete(model="primary:gpt-4o", messages="x")
    assert hits(emu, "gpt-4.1") == 0


async def test_context_length_falls_back_only_to_a_larger_window(emu: Emulator) -> None:
    long_prompt = "word " * 60  # over the emulator's 40-token window for gpt-4o-mini
    cfg = config(emu)
    cfg["providers"]["primary"]["models"] = {
        "gpt-4o-mini": {
            "context_window": 40,
            "fallbacks": ["backup:gpt-4o-mini", "claude:claude-sonnet-4-6"],
        }
    }
    async with ProviderService(cfg, env={}) as service:
        response = await service.complete(model="primary:gpt-4o-mini", messages=long_prompt)
        assert response.provider == "claude"
        # The same model on another deployment has the same window: never resent there.
        assert hits(emu, "gpt-4o-mini") == 1
        with pytest.raises(ContextLengthExceededError):
            await service.complete(
                model="primary:gpt-4o-mini", messages=long_prompt, fallbacks=False
            )


async def test_silent_upstream_falls_back_within_its_timeout(emu: Emulator) -> None:
    """F6: a route that accepts and never answers costs one timeout, then the fallback."""
    emu.add_fault(Fault.hang(), times=None, model="gpt-4o")
    cfg = config(emu, retry={"max_attempts": 3, "initial_backoff": 0.1, "max_backoff": 0.2})
    cfg["providers"]["primary"]["timeouts"] = {"total": 1.0}
    async with ProviderService(cfg, env={}) as service:
        started = time.monotonic()
        response = await service.complete(model="primary:gpt-4o", messages="anyone?")
        elapsed = time.monotonic() - started
    assert response.provider == "backup"
    assert elapsed < 1.8
    assert hits(emu, "gpt-4o") == 1  # the silent route is not waited on twice


# ---------------------------------------------------------------------- circuit breaker


async def test_open_circuit_skips_the_deployment_then_probes_and_recovers(emu: Emulator) -> None:
    """F2: zero hits while cooled down, a failed probe extends it, recovery right after."""
    breaker = {"failure_threshold": 2, "cooldown": 1.0, "error_rate": None}
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu, circuit_breaker=breaker), env={}) as service:
        for _ in range(2):
            assert (
                await service.complete(model="primary:gpt-4o", messages="x")
            ).provider == "backup"
        assert hits(emu, "gpt-4o") == 2  # the circuit is open now

        async def worker() -> None:
            for _ in range(4):
                await service.complete(model="primary:gpt-4o", messages="x")
                await asyncio.sleep(0.15)

        await asyncio.gather(worker(), worker(), worker())
        assert hits(emu, "gpt-4o") == 2  # 12 calls during the cooldown: none reached it

        await asyncio.sleep(0.5)  # past the cooldown: one probe, which fails again
        await service.complete(model="primary:gpt-4o", messages="x")
        assert hits(emu, "gpt-4o") == 3
        await service.complete(model="primary:gpt-4o", messages="x")
        assert hits(emu, "gpt-4o") == 3  # the failed probe re-opened it for a new cooldown

        emu.reset()  # the primary recovers
        await asyncio.sleep(1.05)
        recovered = await service.complete(model="primary:gpt-4o", messages="x")
        assert recovered.provider == "primary"  # back on the primary within ~1 s


async def test_every_deployment_open_fails_fast_with_retry_after(emu: Emulator) -> None:
    breaker = {"failure_threshold": 1, "cooldown": 5.0}
    emu.add_fault(Fault.status(500), times=None)
    async with ProviderService(config(emu, circuit_breaker=breaker), env={}) as service:
        with pytest.raises(ProviderAPIError):
            await service.complete(model="primary:gpt-4o", messages="x")
        seen = emu.count()
        started = time.monotonic()
        with pytest.raises(ProviderAPIError) as info:
            await service.complete(model="primary:gpt-4o", messages="x")
        assert time.monotonic() - started < 0.1
        assert info.value.reason == "circuit_open"
        assert info.value.retry_after is not None and 4 < info.value.retry_after <= 5
        assert emu.count() == seen


async def test_breaker_disabled_keeps_calling(emu: Emulator) -> None:
    """F23: `circuit_breaker.enabled = false` is observed."""
    breaker = {"enabled": False, "failure_threshold": 1}
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu, circuit_breaker=breaker), env={}) as service:
        for _ in range(3):
            await service.complete(model="primary:gpt-4o", messages="x")
    assert hits(emu, "gpt-4o") == 3


async def test_error_rate_opens_the_circuit(emu: Emulator) -> None:
    breaker = {"failure_threshold": 100, "error_rate": 0.5, "min_calls": 4, "cooldown": 5}
    async with ProviderService(config(emu, circuit_breaker=breaker), env={}) as service:
        # Never two failures in a row, but half of the calls in the window fail.
        for fail in (False, True, False, True):
            if fail:
                emu.add_fault(Fault.status(502), times=1, model="gpt-4o")
            await service.complete(model="primary:gpt-4o", messages="x")
        before = hits(emu, "gpt-4o")
        assert (await service.complete(model="primary:gpt-4o", messages="x")).provider == "backup"
        assert hits(emu, "gpt-4o") == before


# ---------------------------------------------------------------------- load balancing


def balanced(emu: Emulator, strategy: str) -> dict[str, Any]:
    return config(
        emu,
        routers={
            "pool": {"deployments": ["primary:gpt-4o", "backup:gpt-4.1"], "strategy": strategy}
        },
    )


async def test_round_robin_alternates(emu: Emulator) -> None:
    async with ProviderService(balanced(emu, "round-robin"), env={}) as service:
        served = [(await service.complete(model="pool", messages="x")).provider for _ in range(6)]
    assert Counter(served) == {"primary": 3, "backup": 3}
    assert served[0] != served[1]


async def test_least_busy_spreads_concurrent_calls(emu: Emulator) -> None:
    emu.add_fault(Fault.slow_first_token(0.3), times=None, model="gpt-4o")
    async with ProviderService(balanced(emu, "least-busy"), env={}) as service:
        responses = await asyncio.gather(
            *(service.complete(model="pool", messages="x") for _ in range(10))
        )
    counts = Counter(r.provider for r in responses)
    assert counts["primary"] >= 3 and counts["backup"] >= 3


async def test_lowest_latency_prefers_the_fast_deployment(emu: Emulator) -> None:
    emu.add_fault(Fault.slow_first_token(0.15), times=None, model="gpt-4o")
    async with ProviderService(balanced(emu, "lowest-latency"), env={}) as service:
        served = [(await service.complete(model="pool", messages="x")).provider for _ in range(8)]
    assert Counter(served[2:])["backup"] >= 5  # once both are measured, the fast one wins


async def test_a_failing_deployment_of_a_pool_is_covered_by_the_other(emu: Emulator) -> None:
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(balanced(emu, "round-robin"), env={}) as service:
        served = [(await service.complete(model="pool", messages="x")).provider for _ in range(4)]
    assert served == ["backup"] * 4


async def test_a_rate_limited_deployment_is_passed_over_while_it_cools(emu: Emulator) -> None:
    emu.add_fault(Fault.status(429, retry_after="5"), times=1, model="gpt-4o")
    async with ProviderService(balanced(emu, "round-robin"), env={}) as service:
        served = [(await service.complete(model="pool", messages="x")).provider for _ in range(5)]
    assert hits(emu, "gpt-4o") == 1
    assert served == ["backup"] * 5


# ---------------------------------------------------------------------- attempts and hooks


async def test_attempt_hooks_and_attempt_records(emu: Emulator) -> None:
    seen: list[AttemptEvent] = []
    hooks = Hooks()
    hooks.on_attempt(seen.append)
    emu.add_fault(Fault.status(503), times=None, model="gpt-4o")
    async with ProviderService(config(emu), env={}, hooks=hooks) as service:
        response = await service.complete(model="primary:gpt-4o", messages="x")
    outcomes = [(a.provider, a.outcome) for a in response.attempts]
    assert outcomes == [("primary", "error"), ("backup", "ok")]
    assert response.attempts[0].status_code == 503
    assert [e.attempt for e in seen] == response.attempts
    assert {e.requested_model for e in seen} == {"primary:gpt-4o"}


# ---------------------------------------------------------------------- streams


async def collect(stream: Any) -> tuple[list[Any], str]:
    events = [event async for event in stream]
    return events, "".join(e.text for e in events if e.type == "text-delta")


async def test_stream_failing_before_its_first_event_falls_back_invisibly(emu: Emulator) -> None:
    """F9: a 429 at the first read goes to the fallback before any byte reaches the caller."""
    emu.add_fault(Fault.status(429), times=None, model="gpt-4o")
    async with ProviderService(config(emu), env={}) as service:
        events, text = await collect(service.stream(model="primary:gpt-4o", messages="hi there"))
    assert text == "You said: hi there"
    assert events[-1].response.provider == "backup"
    assert not any(e.type == "restart" for e in events)


async def test_cut_stream_raises_with_the_text_delivered(emu: Emulator) -> None:
    """F7: a stream cut mid-answer is never a success with partial text."""
    emu.add_fault(Fault.cut_stream(after_events=4), times=1, model="gpt-4o")
    async with ProviderService(config(emu), env={}) as service:
        received: list[str] = []

        async def read() -> None:
            async for event in service.stream(
                model="primary:gpt-4o", messages="one two three four five"
            ):
                if event.type == "text-delta":
                    received.append(event.text)

        with pytest.raises(StreamInterruptedError) as info:
            await read()
    assert received
    assert info.value.partial_text == "".join(received)
    assert hits(emu, "gpt-4.1") == 0  # no silent failover after delivery without recovery


async def test_stalled_stream_raises_within_the_idle_timeout(emu: Emulator) -> None:
    """F7: a stall after the first tokens ends in a typed error, not a hang."""
    emu.add_fault(Fault.stall(after_events=3, seconds=30), times=1, model="gpt-4o")
    cfg = config(emu)
    cfg["providers"]["primary"]["timeouts"] = {"idle": 0.5}
    async with ProviderService(cfg, env={}) as service:
        started = time.monotonic()
        with pytest.raises(StreamInterruptedError) as info:
            await service.stream(model="primary:gpt-4o", messages="a b c d e f").until_done()
    assert time.monotonic() - started < 2
    assert info.value.partial_text.startswith("You said")
    assert info.value.__cause__ is not None


async def test_recovery_continues_with_prefill_and_never_repeats_a_token(emu: Emulator) -> None:
    """F8: continuation on a prefill-capable model: no token delivered twice."""
    emu.add_fault(Fault.cut_stream(after_events=6), times=1, model="claude-sonnet-4-6")
    prompt = "alpha beta gamma delta epsilon zeta eta theta"
    async with ProviderService(config(emu), env={}) as service:
        events, text = await collect(
            service.stream(model="claude:claude-sonnet-4-6", messages=prompt, recovery=True)
        )
    assert text == f"You said: {prompt}"
    assert not any(e.type == "restart" for e in events)
    final = events[-1].response
    assert final.text == text
    assert any("recovered" in w for w in final.warnings)
    prefilled = emu.requests[-1].body
    assert prefilled is not None and prefilled["messages"][-1]["role"] == "assistant"


async def test_recovery_restarts_cleanly_where_prefill_is_not_possible(emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=4), times=1, model="gpt-4o")
    prompt = "one two three four five six"
    async with ProviderService(config(emu), env={}) as service:
        events, _ = await collect(
            service.stream(model="primary:gpt-4o", messages=prompt, recovery=True)
        )
    kinds = [e.type for e in events]
    restart = kinds.index("restart")
    after = "".join(e.text for e in events[restart:] if e.type == "text-delta")
    assert after == f"You said: {prompt}"
    assert events[-1].response.text == after


async def test_a_fallback_that_rejects_prefill_restarts_instead_of_failing() -> None:
    """F8: a prefill refusal must not turn a recoverable stream into an error."""
    async with Emulator(reject_prefill={"claude-opus-4-6"}) as emu:
        cfg = config(emu)
        cfg["providers"]["claude"]["models"] = {
            "claude-sonnet-4-6": {"fallbacks": ["claude:claude-opus-4-6"]}
        }
        emu.add_fault(Fault.cut_stream(after_events=5), times=None, model="claude-sonnet-4-6")
        async with ProviderService(cfg, env={}) as service:
            events, _ = await collect(
                service.stream(
                    model="claude:claude-sonnet-4-6", messages="red green blue", recovery=True
                )
            )
    final = events[-1].response
    assert final.model == "claude-opus-4-6"
    assert final.text == "You said: red green blue"
    assert "restart" in [e.type for e in events]
    refused = [r for r in emu.requests if r.body and r.body["model"] == "claude-opus-4-6"]
    assert refused[0].body["messages"][-1]["role"] == "assistant"  # the prefill was tried


async def test_stream_recovery_setting_is_the_default(emu: Emulator) -> None:
    """F23: the `stream_recovery` option is observed."""
    emu.add_fault(Fault.cut_stream(after_events=4), times=1, model="claude-sonnet-4-6")
    async with ProviderService(config(emu, stream_recovery=True), env={}) as service:
        response = await service.stream(
            model="claude:claude-sonnet-4-6", messages="p q r s t"
        ).until_done()
    assert response.text == "You said: p q r s t"


async def test_mid_stream_error_event_is_typed_fast_and_the_next_call_works(emu: Emulator) -> None:
    """F24: an error event inside a stream ends it at once; nothing spins afterwards."""
    # After 6 events text has reached the caller (the first 3 carry no text).
    emu.add_fault(
        Fault.stream_error(after_events=6, error_type="rate_limit_error"),
        times=1,
        model="claude-sonnet-4-6",
    )
    async with ProviderService(config(emu), env={}) as service:
        started = time.monotonic()
        cpu_before = time.process_time()
        with pytest.raises(StreamInterruptedError) as info:
            await service.stream(
                model="claude:claude-sonnet-4-6", messages="a b c d e"
            ).until_done()
        assert time.monotonic() - started < 1
        assert isinstance(info.value.__cause__, ProviderRateLimitError)
        await asyncio.sleep(0.3)
        assert time.process_time() - cpu_before < 0.5  # idle afterwards, no spin
        again = await service.stream(model="claude:claude-sonnet-4-6", messages="ok").until_done()
        assert again.text == "You said: ok"
