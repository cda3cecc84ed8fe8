"""``complete_many``: bounded concurrency, input order, per-item errors, progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiport import ProviderService
from aiport._bulk import complete_many
from aiport._errors import (
    ConfigError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderNotFoundError,
)
from aiport._types import ModelCompletionOptions, ModelCompletionResponse
from aiport.testing import Emulator, Fault

from .conftest import CHAT_PATH, InFlight

MODEL = "openai:gpt-4o-mini"


@pytest.fixture
def in_flight() -> list[InFlight]:
    return []


@pytest.fixture
async def service(emu: Emulator, in_flight: list[InFlight]) -> AsyncIterator[ProviderService]:
    config = {
        "retry": {"max_attempts": 1},
        "providers": {
            "openai": {"type": "openai", "base_url": emu.openai_base_url, "api_key": "k"}
        },
    }

    def counting(inner: Any) -> InFlight:
        in_flight.append(InFlight(inner))
        return in_flight[-1]

    async with ProviderService(config, env={}, layers=[counting]) as svc:
        yield svc


def ask(text: str, model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def test_results_come_back_in_input_order(service: ProviderService) -> None:
    requests: list[Any] = [ask(f"question {i}") for i in range(30)]
    requests[5] = ModelCompletionOptions(model=MODEL, messages="as an object")
    results = await complete_many(service, requests, concurrency=7)
    texts = [r.text for r in results if isinstance(r, ModelCompletionResponse)]
    expected = [f"You said: question {i}" for i in range(30)]
    expected[5] = "You said: as an object"
    assert texts == expected


async def test_no_more_than_concurrency_calls_are_in_flight(
    emu: Emulator, service: ProviderService, in_flight: list[InFlight]
) -> None:
    emu.add_fault(Fault.slow_first_token(0.03), times=None, path=CHAT_PATH)
    results = await complete_many(service, [ask(f"q{i}") for i in range(20)], concurrency=4)
    assert all(isinstance(r, ModelCompletionResponse) for r in results)
    assert in_flight[0].peak == 4
    # The emulator agrees: the fifth request arrived only once a slot was free again.
    times = sorted(r.time for r in emu.requests if r.path == CHAT_PATH)
    assert len(times) == 20
    assert times[4] - times[0] >= 0.025


async def test_each_failure_stays_with_its_item(emu: Emulator, service: ProviderService) -> None:
    emu.add_fault(Fault.status(500), times=1, model="gpt-4o")
    requests: list[Any] = [
        ask("fine"),
        ask("boom", model="openai:gpt-4o"),
        {"model": MODEL},  # no messages
        ask("unknown", model="openai-typo:gpt-4o"),
        42,
        ask("also fine"),
    ]
    results = await complete_many(service, requests, concurrency=3)
    assert isinstance(results[0], ModelCompletionResponse)
    assert isinstance(results[1], ProviderAPIError)
    assert results[1].status_code == 500
    assert isinstance(results[2], InvalidRequestError)
    assert "messages" in results[2].message
    assert isinstance(results[3], ProviderNotFoundError)
    assert isinstance(results[4], InvalidRequestError)
    assert isinstance(results[5], ModelCompletionResponse)
    assert results[5].text == "You said: also fine"


async def test_without_return_exceptions_the_first_failure_stops_the_rest(
    emu: Emulator, service: ProviderService
) -> None:
    emu.add_fault(Fault.slow_first_token(0.5), times=None, model="gpt-4o-mini")
    requests = [ask("bad", model="unknown-provider:model")] + [ask(f"q{i}") for i in range(10)]
    with pytest.raises(ProviderNotFoundError):
        await asyncio.wait_for(
            complete_many(service, requests, concurrency=3, return_exceptions=False), 2.0
        )
    # The calls in flight were cancelled, the others never started.
    assert emu.count(CHAT_PATH) <= 3


async def test_progress_counts_every_call_once(emu: Emulator, service: ProviderService) -> None:
    emu.add_fault(Fault.status(500), times=2, path=CHAT_PATH)
    seen: list[tuple[int, int]] = []
    results = await complete_many(
        service,
        [ask(f"q{i}") for i in range(9)],
        concurrency=2,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(i, 9) for i in range(10)]
    assert sum(isinstance(r, ProviderAPIError) for r in results) == 2


async def test_a_failing_progress_callback_does_not_break_the_job(
    service: ProviderService, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(done: int, total: int) -> None:
        raise RuntimeError("display gone")

    results = await complete_many(service, [ask("a"), ask("b")], progress=broken)
    assert all(isinstance(r, ModelCompletionResponse) for r in results)
    assert "progress callback" in caplog.text


async def test_keyword_options_reach_every_call(emu: Emulator, service: ProviderService) -> None:
    emu.add_fault(Fault.status(500), times=1, path=CHAT_PATH)
    results = await complete_many(service, [ask("a")], fallbacks=["openai:gpt-4o"], priority=-1)
    assert isinstance(results[0], ModelCompletionResponse)
    assert results[0].model.startswith("gpt-4o")
    assert [a.outcome for a in results[0].attempts] == ["error", "ok"]


async def test_nothing_to_do(service: ProviderService) -> None:
    seen: list[tuple[int, int]] = []
    assert await complete_many(service, iter([]), progress=lambda d, t: seen.append((d, t))) == []
    assert seen == [(0, 0)]
    with pytest.raises(ValueError, match="concurrency"):
        await complete_many(service, [], concurrency=0)


class _Odd:
    """A service whose calls fail in ways a ProviderService never does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def complete(self, options: Any = None, /, **kwargs: Any) -> ModelCompletionResponse:
        raise self.error


async def test_errors_that_are_not_provider_errors_become_typed_ones() -> None:
    bug = KeyError("oops")
    (result,) = await complete_many(_Odd(bug), [ask("a")])
    assert isinstance(result, ProviderAPIError)
    assert result.reason == "internal_error"
    assert result.__cause__ is bug

    (result,) = await complete_many(_Odd(ConfigError("bad value")), [ask("a")])
    assert isinstance(result, ProviderAPIError)
    assert result.reason == "config_error"

    with pytest.raises(KeyError):
        await complete_many(_Odd(bug), [ask("a")], return_exceptions=False)


async def test_cancelling_the_job_cancels_its_calls(
    emu: Emulator, service: ProviderService
) -> None:
    emu.add_fault(Fault.slow_first_token(5.0), times=None, path=CHAT_PATH)
    job = asyncio.ensure_future(
        complete_many(service, [ask(f"q{i}") for i in range(6)], concurrency=2)
    )
    # Wait until the first two calls are in flight (a loaded machine may need a while).
    for _ in range(200):
        if emu.count(CHAT_PATH) >= 2:
            break
        await asyncio.sleep(0.025)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    await asyncio.sleep(0.2)
    assert emu.count(CHAT_PATH) == 2  # the other four were never sent
