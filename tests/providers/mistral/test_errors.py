"""Every Mistral failure reaches the caller as a typed, scrubbed aiport error."""

from __future__ import annotations

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
from aiport.providers.mistral import MistralProvider
from aiport.testing import Emulator, Fault

from .conftest import API_KEY, service_config

MODEL = "mistral:mistral-small-latest"
OPTIONS = ModelCompletionOptions(model="mistral-small-latest", messages="Hello there")
CHAT_PATH = "/mistral/v1/chat/completions"


async def complete_error(service: ProviderService, emu: Emulator, fault: Fault) -> ProviderError:
    emu.add_fault(fault, path=CHAT_PATH)
    with pytest.raises(ProviderError) as info:
        await service.complete(model=MODEL, messages="Hello there")
    return info.value


async def drain(provider: MistralProvider, into: list[Any]) -> None:
    async for event in provider.stream(OPTIONS):
        into.append(event)


# --------------------------------------------------------------------------- HTTP statuses


async def test_wrong_key_is_an_auth_error(emu: Emulator) -> None:
    config = service_config(emu, api_key="mistral-wrong-key-000000")
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hi")
    error = info.value
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.status_code == 401
    assert error.message == "Unauthorized"
    assert error.provider == "mistral"
    assert error.model == "mistral-small-latest"
    assert error.request_id  # the gateway's request id
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (403, ProviderAuthError, False),
        (404, InvalidRequestError, False),
        (422, InvalidRequestError, False),
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


async def test_validation_error_names_the_field(service: ProviderService) -> None:
    # An OpenAI-only field: Mistral's strict validation refuses it with a 422.
    with pytest.raises(InvalidRequestError) as info:
        await service.complete(
            model=MODEL, messages="Hi", provider_options={"max_completion_tokens": 5}
        )
    error = info.value
    assert error.status_code == 422
    assert error.error_type == "extra_forbidden"
    assert "body.max_completion_tokens: Extra inputs are not permitted" in error.message


async def test_rate_limit_with_retry_after(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(429, retry_after="2"))
    assert isinstance(error, ProviderRateLimitError)
    assert error.status_code == 429
    assert error.retryable
    assert error.retry_after == 2.0
    assert error.error_type == "rate_limited"
    assert error.message == "Rate limit exceeded"


async def test_context_length(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.context_length())
    assert isinstance(error, ContextLengthExceededError)
    assert error.status_code == 400
    assert "maximum context length" in error.message


async def test_a_prompt_over_the_window_is_a_context_length_error() -> None:
    windows = {"mistral-small-latest": 20}
    async with (
        Emulator(api_keys={API_KEY}, context_windows=windows) as emu,
        ProviderService(service_config(emu), env={}) as service,
    ):
        with pytest.raises(ContextLengthExceededError) as info:
            await service.complete(model=MODEL, messages="word " * 40)
    assert "Prompt contains 43 tokens" in info.value.message


async def test_html_error_page_from_a_proxy(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.malformed_body(502))
    assert isinstance(error, ProviderAPIError)
    assert error.status_code == 502
    assert error.retryable
    assert "502 Bad Gateway" in error.message


# --------------------------------------------------------------------------- streams


async def test_error_event_inside_a_stream(provider: MistralProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=3, message="Model overloaded"))
    received: list[Any] = []
    with pytest.raises(ProviderAPIError) as info:
        await drain(provider, received)
    error = info.value
    assert type(error) is ProviderAPIError
    assert error.message == "Model overloaded"
    assert error.status_code is None  # the HTTP answer itself was a 200
    assert error.error_type == "internal_server_error"
    assert error.retryable
    assert [e.text for e in received if isinstance(e, TextDeltaEvent)] == ["You", " said:"]


async def test_rate_limit_event_inside_a_stream(provider: MistralProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=1, error_type="rate_limited"))
    with pytest.raises(ProviderRateLimitError):
        await drain(provider, [])


async def test_stream_error_through_the_service(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=3), path=CHAT_PATH)
    with pytest.raises(ProviderError) as info:
        async for _ in service.stream(model=MODEL, messages="Hello there"):
            pass
    # Text had reached the caller: the service reports an interrupted stream with it.
    assert isinstance(info.value, StreamInterruptedError)
    assert info.value.partial_text == "You said:"


async def test_cut_stream_is_interrupted(provider: MistralProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=3))
    with pytest.raises(StreamInterruptedError) as info:
        await drain(provider, [])
    assert info.value.partial_text == "You said:"
    assert info.value.provider == "mistral"


async def test_malformed_event_is_skipped_and_named(
    provider: MistralProvider, emu: Emulator
) -> None:
    emu.add_fault(Fault.malformed_json())
    events: list[Any] = []
    await drain(provider, events)
    final = events[-1]
    assert isinstance(final, StreamFinishEvent)
    assert any("malformed stream event" in w for w in final.response.warnings)


async def test_stream_status_error_before_the_first_event(
    provider: MistralProvider, emu: Emulator
) -> None:
    emu.add_fault(Fault.status(429, retry_after_ms=1500))
    with pytest.raises(ProviderRateLimitError) as info:
        await drain(provider, [])
    assert info.value.retry_after == 1.5


# --------------------------------------------------------------------------- secrets


async def test_the_key_travels_only_in_the_authorization_header(
    make_provider: Callable[..., MistralProvider], emu: Emulator
) -> None:
    provider = make_provider()
    await provider.complete(OPTIONS)
    await drain(provider, [])
    await provider.embed(ModelEmbeddingOptions(model="mistral-embed", input="x"))
    wrong = make_provider(credential=StaticCredential("mistral-leaky-key-0123456789"))
    with pytest.raises(ProviderAuthError) as info:
        await wrong.complete(OPTIONS)
    assert len(emu.requests) == 4
    for request in emu.requests:
        assert request.headers["authorization"].startswith("Bearer mistral-")
        others = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert not any("mistral-" in v for v in others.values())
        assert "mistral-" not in request.path
        assert b"mistral-test-canary" not in request.raw_body
        assert b"mistral-leaky-key" not in request.raw_body
    assert "mistral-leaky-key" not in str(info.value)
    assert "mistral-leaky-key" not in repr(info.value)


async def test_a_provider_without_a_key_refuses_to_call(
    make_provider: Callable[..., MistralProvider], emu: Emulator
) -> None:
    provider = make_provider(credential=None)
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(OPTIONS)
    assert info.value.reason == "credentials_missing"
    assert emu.requests == []
