"""Every Cohere failure reaches the caller as a typed, scrubbed aiport error."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._errors import (
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    StreamInterruptedError,
)
from aiport._types import (
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    StreamFinishEvent,
    TextDeltaEvent,
)
from aiport.providers.cohere import CohereProvider
from aiport.testing import Emulator, Fault

from .conftest import API_KEY, service_config

MODEL = "cohere:command-a-03-2025"
OPTIONS = ModelCompletionOptions(model="command-a-03-2025", messages="Hello there")


async def complete_error(service: ProviderService, emu: Emulator, fault: Fault) -> ProviderError:
    emu.add_fault(fault, path="/v2/chat")
    with pytest.raises(ProviderError) as info:
        await service.complete(model=MODEL, messages="Hello there")
    return info.value


async def drain(provider: CohereProvider, into: list[Any]) -> None:
    async for event in provider.stream(OPTIONS):
        into.append(event)


# --------------------------------------------------------------------------- HTTP statuses


async def test_wrong_key_is_an_auth_error(emu: Emulator) -> None:
    config = service_config(emu, api_key="cohere-wrong-key-000000")
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hi")
    error = info.value
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.status_code == 401
    assert error.message == "invalid api token"
    assert error.provider == "cohere"
    assert error.model == "command-a-03-2025"
    assert error.request_id
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (403, ProviderAuthError, False),
        (404, InvalidRequestError, False),
        (422, InvalidRequestError, False),
        (498, ProviderAuthError, False),
        (499, ProviderAPIError, True),
        (500, ProviderAPIError, True),
        (503, ProviderAPIError, True),
    ],
)
async def test_statuses(
    service: ProviderService,
    emu: Emulator,
    status: int,
    cls: type[ProviderError],
    retryable: bool,
) -> None:
    error = await complete_error(service, emu, Fault.status(status))
    assert type(error) is cls
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.request_id
    assert error.message
    assert isinstance(error.body, dict)
    assert uuid.UUID(error.body["id"])


async def test_model_not_found_names_the_model(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(404))
    assert "model 'command-a-03-2025' not found" in error.message


async def test_a_real_validation_error(service: ProviderService) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await service.complete(model=MODEL, messages="Hi", provider_options={"top_k": 5})
    assert info.value.status_code == 400
    assert "parameter top_k is not a valid field" in info.value.message


async def test_rate_limit_with_retry_after(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(429, retry_after="2"))
    assert isinstance(error, ProviderRateLimitError)
    assert error.status_code == 429
    assert error.retryable
    assert error.retry_after == 2.0
    assert "Trial key" in error.message


async def test_context_length(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.context_length())
    assert isinstance(error, ContextLengthExceededError)
    assert error.status_code == 400
    assert error.message.startswith("too many tokens")


async def test_a_prompt_over_the_window_is_a_context_length_error() -> None:
    windows = {"command-a-03-2025": 20}
    async with (
        Emulator(api_keys={API_KEY}, context_windows=windows) as emu,
        ProviderService(service_config(emu), env={}) as service,
    ):
        with pytest.raises(ContextLengthExceededError) as info:
            await service.complete(model=MODEL, messages="word " * 40)
    assert "received 43" in info.value.message


async def test_embed_errors_are_typed(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.status(500), path="/v2/embed")
    with pytest.raises(ProviderAPIError) as info:
        await service.embed(model="cohere:embed-v4.0", input="x")
    assert info.value.status_code == 500
    assert info.value.retryable


# --------------------------------------------------------------------------- streams


async def test_error_ending_a_stream(provider: CohereProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=4, message="internal error, try again"))
    received: list[Any] = []
    with pytest.raises(ProviderAPIError) as info:
        await drain(provider, received)
    error = info.value
    assert type(error) is ProviderAPIError
    assert error.message == "internal error, try again"
    assert error.status_code is None  # the HTTP answer itself was a 200
    assert error.retryable
    # message-start, content-start, then two tokens arrived before the error.
    assert [e.text for e in received if isinstance(e, TextDeltaEvent)] == ["You", " said:"]


async def test_stream_error_through_the_service(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=4), path="/v2/chat")
    with pytest.raises(StreamInterruptedError) as info:
        async for _ in service.stream(model=MODEL, messages="Hello there"):
            pass
    assert info.value.partial_text == "You said:"


async def test_cut_stream_is_interrupted(provider: CohereProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=4))
    with pytest.raises(StreamInterruptedError) as info:
        await drain(provider, [])
    assert info.value.partial_text == "You said:"
    assert info.value.provider == "cohere"


async def test_malformed_event_is_skipped_and_named(
    provider: CohereProvider, emu: Emulator
) -> None:
    emu.add_fault(Fault.malformed_json())
    events: list[Any] = []
    await drain(provider, events)
    final = events[-1]
    assert isinstance(final, StreamFinishEvent)
    assert any("malformed stream event" in w for w in final.response.warnings)


async def test_stream_refused_before_it_starts(provider: CohereProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.status(429, retry_after_ms=1500))
    with pytest.raises(ProviderRateLimitError) as info:
        await drain(provider, [])
    assert info.value.retry_after == 1.5


# --------------------------------------------------------------------------- secrets


async def test_the_key_travels_only_in_the_authorization_header(
    make_provider: Callable[..., CohereProvider], emu: Emulator
) -> None:
    provider = make_provider()
    await provider.complete(OPTIONS)
    await drain(provider, [])
    await provider.embed(ModelEmbeddingOptions(model="embed-v4.0", input="x"))
    await provider.rerank("q", ["a"])
    wrong = make_provider(credential=StaticCredential("cohere-leaky-key-0123456789"))
    with pytest.raises(ProviderAuthError) as info:
        await wrong.complete(OPTIONS)
    assert len(emu.requests) == 5
    for request in emu.requests:
        assert request.headers["authorization"].startswith("Bearer cohere-")
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert not any("cohere-" in v for v in others.values())
        assert "cohere-" not in request.path
        assert b"cohere-test-canary" not in request.raw_body
        assert b"cohere-leaky-key" not in request.raw_body
    assert "cohere-leaky-key" not in str(info.value)
    assert "cohere-leaky-key" not in repr(info.value)


async def test_a_provider_without_a_key_refuses_to_call(
    make_provider: Callable[..., CohereProvider], emu: Emulator
) -> None:
    provider = make_provider(credential=None)
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(OPTIONS)
    assert info.value.reason == "credentials_missing"
    with pytest.raises(ProviderAuthError):
        await provider.rerank("q", ["a"])
    assert emu.requests == []
