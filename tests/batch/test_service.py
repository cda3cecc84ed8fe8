"""The service-level helpers: polling backoff, timeouts, poll errors, request checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from aiport import ProviderService
from aiport._batch import cancel_batch, get_batch, run_batch, submit_batch, wait_batch
from aiport._errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderConnectionError,
    ProviderNotFoundError,
    ProviderTimeoutError,
)
from aiport._http import HttpClient
from aiport._provider import ModelProvider, ProviderLayer
from aiport._types import (
    ModelCompletionOptions,
    ModelCompletionResponse,
    ProviderModel,
    StreamEvent,
)
from aiport.providers.anthropic import AnthropicProvider
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, FakeSleep, batch_config


@pytest.fixture
async def slow_service() -> AsyncIterator[tuple[Emulator, ProviderService]]:
    """A service on an emulator whose batches take 6 polls to finish."""
    async with (
        Emulator(api_keys={OPENAI_KEY, ANTHROPIC_KEY}, batch_delay=6) as emu,
        ProviderService(batch_config(emu), env={}) as service,
    ):
        yield emu, service


async def test_polls_back_off_exponentially_with_jitter(
    slow_service: tuple[Emulator, ProviderService], model: str, fake_sleep: FakeSleep
) -> None:
    _, service = slow_service
    job = await submit_batch(service, model, [{"messages": "hi"}])
    done = await wait_batch(
        service, model, job.id, poll_interval=1.0, max_interval=4.0, sleep=fake_sleep
    )
    assert done.status == "completed"
    # Six polls answered "in progress", so six waits: 1, 2, 4, then capped at 4.
    bases = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert len(fake_sleep.waits) == len(bases)
    for wait, base in zip(fake_sleep.waits, bases, strict=True):
        assert base / 2 <= wait <= base
    assert len(set(fake_sleep.waits)) > 1  # jittered, not a fixed schedule


async def test_wait_times_out_and_the_batch_can_be_resumed(
    slow_service: tuple[Emulator, ProviderService], model: str
) -> None:
    _, service = slow_service
    now = [0.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    sleep = FakeSleep(advance)
    job = await submit_batch(service, model, [{"messages": "hi"}])
    with pytest.raises(ProviderTimeoutError) as info:
        await wait_batch(
            service,
            model,
            job.id,
            poll_interval=2.0,
            timeout=5.0,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert info.value.reason == "batch_timeout"
    assert job.id in str(info.value)
    assert sum(sleep.waits) <= 5.0
    # The batch ran on: waiting again with its id finishes it.
    results = await run_batch(service, model, batch_id=job.id, sleep=FakeSleep())
    assert results[0].unwrap().text == "You said: hi"


async def test_retryable_poll_errors_are_waited_out(
    service: ProviderService, emu: Emulator, model: str, fake_sleep: FakeSleep
) -> None:
    job = await submit_batch(service, model, [{"messages": "hi"}])
    prefix = "/v1/batches/" if model.startswith("openai") else "/v1/messages/batches/"
    emu.add_fault(Fault.status(503), times=2, path=prefix + job.id)
    done = await wait_batch(service, model, job.id, sleep=fake_sleep)
    assert done.status == "completed"
    assert len(fake_sleep.waits) == 3  # two failed polls and one "in progress"


async def test_persistent_poll_errors_are_raised(
    service: ProviderService, emu: Emulator, model: str, fake_sleep: FakeSleep
) -> None:
    job = await submit_batch(service, model, [{"messages": "hi"}])
    emu.add_fault(Fault.status(500), times=None)
    with pytest.raises(ProviderAPIError) as info:
        await wait_batch(service, model, job.id, sleep=fake_sleep)
    assert info.value.status_code == 500
    assert len(fake_sleep.waits) == 4  # five failed polls in a row: the fifth is raised


async def test_wait_arguments_are_checked(service: ProviderService) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        await wait_batch(service, "openai", "batch_x", poll_interval=0)
    with pytest.raises(ValueError, match="poll_interval"):
        await wait_batch(service, "openai", "batch_x", poll_interval=5, max_interval=1)


@pytest.mark.parametrize(
    ("requests", "ids", "message"),
    [
        ([], None, "at least one request"),
        ([{"messages": "a"}], ["x", "y"], "2 custom ids for 1 requests"),
        ([{"messages": "a"}, {"messages": "b"}], ["x", "x"], "unique"),
        ([{"messages": "a", "model": "anthropic:claude-sonnet-4-5"}], None, "one model"),
        ([{"messages": []}], None, "batch request 0: messages"),
    ],
)
async def test_requests_are_checked_before_anything_is_sent(
    service: ProviderService,
    emu: Emulator,
    requests: list[Mapping[str, Any]],
    ids: list[str] | None,
    message: str,
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await submit_batch(service, "openai:gpt-4o-mini", requests, custom_ids=ids)
    assert emu.requests == []


async def test_options_objects_and_model_defaults(emu: Emulator) -> None:
    config = batch_config(emu)
    config["providers"]["openai"]["models"] = {
        "gpt-4o-mini": {"aliases": ["quick"], "temperature": 0.25}
    }
    async with ProviderService(config, env={}) as service:
        requests: list[ModelCompletionOptions | dict[str, Any]] = [
            ModelCompletionOptions(model="openai:gpt-4o-mini", messages="first"),
            {"messages": "second", "model": "quick"},
            {"messages": "third"},
        ]
        results = await run_batch(service, "quick", requests, sleep=FakeSleep())
    assert [r.unwrap().text for r in results] == [
        f"You said: {w}" for w in ("first", "second", "third")
    ]
    upload = next(r for r in emu.requests if r.path == "/v1/files")
    assert upload.raw_body.count(b'"temperature":0.25') == 3  # the model's default, each line
    assert OPENAI_KEY.encode() not in upload.raw_body  # credentials travel in headers only


class _NoBatches(ModelProvider):
    name = "plain"

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return {}

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        raise NotImplementedError

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError
        yield


async def test_providers_without_a_batch_api_say_so() -> None:
    options = ModelCompletionOptions(model="m", messages="hi")
    for provider in (_NoBatches(), ProviderLayer(_NoBatches())):
        with pytest.raises(ProviderCapabilityError) as info:
            await provider.submit_batch([options], ["a"])
        assert info.value.model == "m" and info.value.provider == "plain"
        for call in (provider.get_batch, provider.batch_results, provider.cancel_batch):
            with pytest.raises(ProviderCapabilityError):
                await call("b")


async def test_unknown_provider_or_model(service: ProviderService) -> None:
    with pytest.raises(ProviderNotFoundError, match="nope"):
        await get_batch(service, "nope:model", "batch_x")


async def test_transport_failures_are_typed(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.reset(), path="/v1/files")
    with pytest.raises(ProviderConnectionError):
        await submit_batch(service, "openai:gpt-4o-mini", [{"messages": "x"}])
    emu.add_fault(Fault.malformed_json(), path="/v1/files")
    with pytest.raises(MalformedResponseError):
        await submit_batch(service, "openai:gpt-4o-mini", [{"messages": "x"}])
    assert emu.count("/v1/batches") == 0  # nothing was created


async def test_missing_keys_are_reported_before_any_request(emu: Emulator, model: str) -> None:
    config = batch_config(emu)
    provider = model.partition(":")[0]
    del config["providers"][provider]["api_key"]
    async with ProviderService(config, env={}) as service:
        for call in (get_batch, cancel_batch):
            with pytest.raises(ProviderAuthError):
                await call(service, provider, "batch_x")
        with pytest.raises(ProviderAuthError):
            await submit_batch(service, model, [{"messages": "x"}])
    assert emu.requests == []


async def test_adapters_without_a_credential(emu: Emulator) -> None:
    http = HttpClient()
    adapters = [
        OpenAIProvider(base_url=emu.openai_base_url, http=http),
        AnthropicProvider(base_url=emu.anthropic_base_url, credential=None, http=http),
    ]
    try:
        for adapter in adapters:
            for call in (adapter.get_batch, adapter.cancel_batch):
                with pytest.raises(ProviderAuthError) as info:
                    await call("batch_x")
                assert info.value.reason == "credentials_missing"
    finally:
        await http.aclose()
    assert emu.requests == []
