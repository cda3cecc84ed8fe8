"""The service's per-call shortcuts change nothing a caller can see.

A call nobody observes skips the hooks layer's events, a call plan is remembered, the
retry policy is asked once per model: hooks and log lines added later still see every
call, routers still rotate, and every response still carries its attempts.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aiport import Hooks, ProviderService, RequestEvent, ResponseEvent
from aiport.testing import Emulator

from .conftest import emulator_config


async def test_hooks_added_after_unobserved_calls_see_the_next_ones(emulator: Emulator) -> None:
    hooks = Hooks()
    async with ProviderService(emulator_config(emulator), env={}, hooks=hooks) as service:
        await service.complete(model="openai:gpt-4o", messages="nobody watches")
        await service.stream(model="openai:gpt-4o", messages="nobody watches").until_done()
        seen: list[Any] = []
        hooks.on_request(seen.append)
        hooks.on_response(seen.append)
        await service.complete(model="openai:gpt-4o", messages="watched")
        await service.stream(model="openai:gpt-4o", messages="watched").until_done()
    assert [type(event) for event in seen] == [RequestEvent, ResponseEvent] * 2
    assert [event.operation for event in seen] == ["complete", "complete", "stream", "stream"]
    # Call ids count every call, observed or not.
    assert [event.call_id for event in seen[::2]] == [3, 4]


async def test_logging_switched_on_later_logs_the_next_calls(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    async with ProviderService(emulator_config(emulator), env={}) as service:
        await service.complete(model="openai:gpt-4o", messages="quiet")
        assert not [r for r in caplog.records if r.name == "aiport"]
        caplog.set_level(logging.DEBUG, logger="aiport")
        await service.complete(model="openai:gpt-4o", messages="heard")
    lines = [r.getMessage() for r in caplog.records if r.name == "aiport"]
    assert any("start: complete openai:gpt-4o" in line for line in lines)
    assert any("done: complete openai:gpt-4o" in line for line in lines)


async def test_every_response_carries_its_own_attempts(emulator: Emulator) -> None:
    async with ProviderService(emulator_config(emulator), env={}) as service:
        first = await service.complete(model="openai:gpt-4o", messages="one")
        second = await service.complete(model="openai:gpt-4o", messages="two")
        streamed = await service.stream(model="openai:gpt-4o", messages="three").until_done()
    for response in (first, second, streamed):
        assert [(a.provider, a.model, a.outcome) for a in response.attempts] == [
            ("openai", "gpt-4o", "ok")
        ]
    assert first.attempts is not second.attempts


async def test_a_routers_plan_is_made_per_call(emulator: Emulator) -> None:
    config = emulator_config(
        emulator,
        routers={
            "pair": {
                "strategy": "round-robin",
                "deployments": ["openai:gpt-4o", "openai:gpt-4o-mini"],
            }
        },
    )
    async with ProviderService(config, env={}) as service:
        models = [(await service.complete(model="pair", messages="hi")).model for _ in range(4)]
    assert len(set(models)) == 2
    assert models[0] == models[2] and models[1] == models[3]


async def test_per_call_fallbacks_get_plans_of_their_own(emulator: Emulator) -> None:
    from aiport.testing import Fault

    async with ProviderService(emulator_config(emulator), env={}) as service:
        await service.complete(model="openai:gpt-4o", messages="plain")  # plan remembered
        emulator.add_fault(Fault.status(500), times=1)
        answer = await service.complete(
            model="openai:gpt-4o", messages="rescued", fallbacks=["anthropic:claude-sonnet-4-6"]
        )
    assert answer.provider == "anthropic"
    assert [a.outcome for a in answer.attempts] == ["error", "ok"]
