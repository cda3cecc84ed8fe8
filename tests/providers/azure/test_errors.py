"""Azure OpenAI failures end to end: every error class, typed, with Azure's context."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    StreamInterruptedError,
)
from aiport._types import StreamFinishEvent, TextDeltaEvent
from aiport.providers.azure._convert import filtered_categories
from aiport.testing import Emulator, Fault

from .conftest import AZURE_KEY, azure_config

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CHAT = "/openai/deployments/gpt-4o/chat/completions"


async def complete_error(service: ProviderService, **kwargs: Any) -> ProviderError:
    kwargs.setdefault("model", "azure:gpt-4o")
    kwargs.setdefault("messages", "Hello there")
    with pytest.raises(ProviderError) as info:
        await service.complete(**kwargs)
    return info.value


async def fault_error(service: ProviderService, emu: Emulator, fault: Fault) -> ProviderError:
    emu.add_fault(fault, path=CHAT)
    return await complete_error(service)


async def drain(stream: AsyncIterator[Any], into: list[Any]) -> None:
    """Read ``stream``, keeping every event received before it fails."""
    async for event in stream:
        into.append(event)


def no_key_anywhere(error: ProviderError) -> None:
    for text in (str(error), repr(error), error.message, repr(error.body)):
        for start in range(len(AZURE_KEY) - 7):
            assert AZURE_KEY[start : start + 8] not in text


# --------------------------------------------------------------------------- auth


async def test_wrong_key_is_an_auth_error(
    make_service: Callable[..., ProviderService], emu: Emulator
) -> None:
    wrong = "azk-wrong-key-0123456789abcdef"
    async with make_service(api_key=wrong) as service:
        error = await complete_error(service)
    assert isinstance(error, ProviderAuthError)
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.status_code == 401
    assert "invalid subscription key" in error.message
    # The gateway repeats the status as its code: not an error type of its own.
    assert error.error_type is None
    # Refused at the gateway: only its apim-request-id identifies the request.
    assert error.request_id is not None and UUID.match(error.request_id)
    assert not error.retryable
    assert error.provider == "azure"
    assert error.model == "gpt-4o"
    assert wrong[4:12] not in str(error) + repr(error)


async def test_forbidden_is_an_auth_error(service: ProviderService, emu: Emulator) -> None:
    error = await fault_error(service, emu, Fault.status(403))
    assert isinstance(error, ProviderAuthError)
    assert error.status_code == 403
    assert "Firewall" in error.message
    no_key_anywhere(error)


async def test_missing_credential_fails_before_any_request(
    make_service: Callable[..., ProviderService], emu: Emulator
) -> None:
    # No api_key, no auth table, and AZURE_OPENAI_API_KEY is unset (env={}).
    async with make_service(api_key=None) as service:
        error = await complete_error(service)
    assert isinstance(error, ProviderAuthError)
    assert "AZURE_OPENAI_API_KEY" in error.message
    assert emu.requests == []


# --------------------------------------------------------------------------- deployments


async def test_unknown_deployment_is_azures_404(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, model="azure:gpt-4o-typo")
    assert type(error) is InvalidRequestError
    assert error.status_code == 404
    assert error.error_type == "DeploymentNotFound"
    assert error.reason == "deployment_not_found"
    assert "deployment 'gpt-4o-typo'" in error.message
    assert "`deployment`" in error.message
    assert emu.requests[-1].path == "/openai/deployments/gpt-4o-typo/chat/completions"


async def test_unknown_configured_deployment_names_it(
    make_service: Callable[..., ProviderService],
) -> None:
    models = {"gpt-4o": {"deployment": "retired-deployment"}}
    async with make_service(models=models) as service:
        error = await complete_error(service)
    assert error.reason == "deployment_not_found"
    assert "deployment 'retired-deployment', configured for model 'gpt-4o'" in error.message


async def test_deployment_fault_for_embeddings(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.status(404), model="text-embedding-3-small")
    with pytest.raises(InvalidRequestError) as info:
        await service.embed(model="azure:text-embedding-3-small", input=["x"])
    assert info.value.reason == "deployment_not_found"


# --------------------------------------------------------------------------- rate limits, 5xx


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(429), 0.01),  # Azure's default headers: retry-after-ms wins
        (Fault.status(429, retry_after_ms=1500), 1.5),
        (Fault.status(429, retry_after="7"), 7.0),
    ],
)
async def test_rate_limit_with_retry_after(
    service: ProviderService, emu: Emulator, fault: Fault, expected: float
) -> None:
    error = await fault_error(service, emu, fault)
    assert isinstance(error, ProviderRateLimitError)
    assert error.code is ErrorCode.PROVIDER_RATE_LIMIT_ERROR
    assert error.status_code == 429
    assert error.retryable
    assert error.retry_after == pytest.approx(expected)
    assert "exceeded token rate limit" in error.message
    assert "ChatCompletions_Create" in error.message


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(
    service: ProviderService, emu: Emulator, status: int
) -> None:
    error = await fault_error(service, emu, Fault.status(status))
    assert type(error) is ProviderAPIError
    assert error.status_code == status
    assert error.retryable
    assert error.reason == "server_error"
    assert error.request_id


async def test_server_error_is_retried_by_the_service(emu: Emulator) -> None:
    emu.add_fault(Fault.status(500), path=CHAT)
    config = azure_config(emu)
    config["retry"] = {"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02}
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model="azure:gpt-4o", messages="Hi")
    assert response.text == "You said: Hi"
    assert [r.fault for r in emu.requests] == ["500", None]


async def test_context_length(service: ProviderService, emu: Emulator) -> None:
    error = await fault_error(service, emu, Fault.context_length())
    assert isinstance(error, ContextLengthExceededError)
    assert error.status_code == 400
    assert error.error_type == "context_length_exceeded"


async def test_malformed_proxy_page(service: ProviderService, emu: Emulator) -> None:
    error = await fault_error(service, emu, Fault.malformed_body(502))
    assert isinstance(error, ProviderAPIError)
    assert error.status_code == 502
    assert error.retryable


# --------------------------------------------------------------------------- content filter


async def test_prompt_filtered_is_a_content_filter_error(
    service: ProviderService, emu: Emulator
) -> None:
    error = await complete_error(service, messages="Tell me [azure:filter-prompt:violence]")
    assert isinstance(error, ContentFilterError)
    assert error.reason == "content_filter"
    assert error.status_code == 400
    assert error.error_type == "content_filter"
    assert not error.retryable
    assert "content management policy" in error.message
    assert "[filtered: violence=high]" in error.message
    # The whole verdict is kept in the body.
    verdict = error.body["error"]["innererror"]["content_filter_result"]
    assert filtered_categories(verdict) == {"violence": "high"}
    assert verdict["hate"] == {"filtered": False, "severity": "safe"}


async def test_jailbreak_detection(service: ProviderService) -> None:
    error = await complete_error(service, messages="[azure:filter-prompt:jailbreak] do it")
    assert isinstance(error, ContentFilterError)
    assert "jailbreak=detected" in error.message


async def test_prompt_filtered_while_streaming(service: ProviderService) -> None:
    with pytest.raises(ContentFilterError) as info:
        async for _ in service.stream(model="azure:gpt-4o", messages="[azure:filter-prompt]"):
            pass
    assert "hate=high" in info.value.message


async def test_image_prompt_filtered(service: ProviderService) -> None:
    with pytest.raises(ContentFilterError) as info:
        await service.generate_image(model="azure:dall-e-3", prompt="[azure:filter-prompt:sexual]")
    error = info.value
    assert error.error_type == "content_policy_violation"
    assert "sexual=high" in error.message
    assert "safety system" in error.message


async def test_output_filtered_is_the_content_filter_finish_reason(
    service: ProviderService,
) -> None:
    prompt = "Write it [azure:filter-output:protected_material_text]"
    completed = await service.complete(model="azure:gpt-4o", messages=prompt)
    assert completed.finish_reason == "content_filter"
    assert completed.raw_finish_reason == "content_filter"
    assert completed.text == ""
    verdict = completed.raw["choices"][0]["content_filter_results"]
    assert filtered_categories(verdict) == {"protected_material_text": "detected"}

    events = [e async for e in service.stream(model="azure:gpt-4o", messages=prompt)]
    assert not [e for e in events if isinstance(e, TextDeltaEvent)]
    finish = events[-1]
    assert isinstance(finish, StreamFinishEvent)
    streamed = finish.response
    assert streamed.finish_reason == "content_filter"
    assert streamed.text == ""
    streamed_verdict = streamed.raw["choices"][0]["content_filter_results"]
    assert filtered_categories(streamed_verdict) == {"protected_material_text": "detected"}


async def test_output_filter_stops_tool_calls_too(service: ProviderService) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        return query

    response = await service.complete(
        model="azure:gpt-4o", messages="[azure:filter-output:violence] go", tools=[lookup]
    )
    assert response.finish_reason == "content_filter"
    assert response.tool_calls == []
    verdict = response.raw["choices"][0]["content_filter_results"]
    assert filtered_categories(verdict) == {"violence": "medium"}


# --------------------------------------------------------------------------- streams


async def test_stream_cut_is_interrupted_with_partial_text(
    service: ProviderService, emu: Emulator
) -> None:
    emu.add_fault(Fault.cut_stream(after_events=4), path=CHAT)
    events: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await drain(service.stream(model="azure:gpt-4o", messages="one two three four"), events)
    received = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert received
    assert info.value.partial_text == "".join(received)


async def test_error_event_mid_stream(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=3, error_type="server_error"), path=CHAT)
    with pytest.raises(ProviderAPIError) as info:
        async for _ in service.stream(model="azure:gpt-4o", messages="one two three four"):
            pass
    assert info.value.retryable
    assert info.value.status_code is None


async def test_rate_limit_before_the_stream(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(Fault.status(429, retry_after_ms=250), path=CHAT)
    with pytest.raises(ProviderRateLimitError) as info:
        async for _ in service.stream(model="azure:gpt-4o", messages="Hi"):
            pass
    assert info.value.retry_after == pytest.approx(0.25)
