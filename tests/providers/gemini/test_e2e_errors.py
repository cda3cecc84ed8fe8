"""End to end against the emulator's faults: every Gemini failure is a typed, scrubbed
error (through ProviderService, and on the bare adapter for stream details)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    StreamInterruptedError,
)
from aiport._types import ImagePart, Message, ModelCompletionOptions, StreamFinishEvent
from aiport.providers.gemini import GeminiProvider
from aiport.testing import Emulator, Fault

from .conftest import GEMINI_KEY, gemini_config

MODEL = "gemini:gemini-2.5-flash"
OPTIONS = ModelCompletionOptions(model="gemini-2.5-flash", messages="Hello there")


async def complete_error(service: ProviderService, emu: Emulator, fault: Fault) -> ProviderError:
    emu.add_fault(fault, times=1)
    with pytest.raises(ProviderError) as info:
        await service.complete(model=MODEL, messages="Hello there")
    return info.value


async def drain(
    provider: GeminiProvider, into: list[Any], opts: ModelCompletionOptions = OPTIONS
) -> None:
    async for event in provider.stream(opts):
        into.append(event)


# --------------------------------------------------------------------------- credentials


async def test_wrong_key_is_an_auth_error_though_google_answers_400(emu: Emulator) -> None:
    config = gemini_config(emu, api_key="AIzaSy-wrong-key-0000000000")
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hi")
    error = info.value
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.status_code == 400
    assert error.error_type == "API_KEY_INVALID"
    assert not error.retryable
    assert error.provider == "gemini"
    assert error.message == "API key not valid. Please pass a valid API key."
    assert "AIzaSy-wrong-key" not in repr(error) + str(error)


async def test_missing_key_fails_before_any_request(emu: Emulator) -> None:
    config = {"providers": {"gemini": {"type": "gemini", "base_url": emu.gemini_base_url}}}
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError):
            await service.complete(model=MODEL, messages="Hi")
    assert emu.requests == []


async def test_no_credential_at_all_is_refused_by_the_api(provider: GeminiProvider) -> None:
    # Straight to the wire with an empty key header: Google's 403 for unregistered callers.
    with pytest.raises(ProviderAuthError) as info:
        await provider.send_request(
            "POST",
            "v1beta/models/gemini-2.5-flash:generateContent",
            b'{"contents": [{"parts": [{"text": "Hi"}]}]}',
            model="gemini-2.5-flash",
            timeout=None,
            headers={"x-goog-api-key": ""},
        )
    assert info.value.status_code == 403
    assert info.value.error_type == "PERMISSION_DENIED"
    assert "unregistered callers" in info.value.message


# --------------------------------------------------------------------------- HTTP statuses


STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (401, ProviderAuthError, False),
        (403, ProviderAuthError, False),
        (404, InvalidRequestError, False),
        (500, ProviderAPIError, True),
        (503, ProviderAPIError, True),
        (504, ProviderAPIError, True),
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
    assert error.error_type == STATUS_NAMES[status]
    assert error.provider == "gemini"
    assert error.model == "gemini-2.5-flash"
    assert error.message  # Google's own message
    assert isinstance(error.body, dict) and error.body["error"]["code"] == status


async def test_overloaded_503_has_its_reason(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(503))
    assert error.reason == "overloaded"
    assert error.message == "The model is overloaded. Please try again later."


async def test_404_names_the_model(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(404))
    assert "models/gemini-2.5-flash is not found" in error.message


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(429, retry_after="34.4"), 34.4),
        (Fault.status(429, retry_after="2"), 2.0),
        (Fault.status(429, retry_after_ms=1500), 1.5),
    ],
)
async def test_rate_limit_retry_after_from_retry_info(
    service: ProviderService, emu: Emulator, fault: Fault, expected: float
) -> None:
    error = await complete_error(service, emu, fault)
    assert isinstance(error, ProviderRateLimitError)
    assert error.status_code == 429
    assert error.retryable
    assert error.error_type == "RESOURCE_EXHAUSTED"
    assert error.retry_after == pytest.approx(expected)
    # Google says how long to wait in the body, not in a header.
    details = error.body["error"]["details"]
    assert {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": f"{expected:g}s",
    } in details


async def test_rate_limit_retry_after_http_date_header(
    service: ProviderService, emu: Emulator
) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = await complete_error(service, emu, Fault.status(429, retry_after=when))
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 31


async def test_rate_limit_without_a_delay(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(429))
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after is None


async def test_retry_layer_waits_for_retry_info_and_succeeds(emu: Emulator) -> None:
    config = gemini_config(emu)
    config["retry"] = {"max_attempts": 2, "max_retry_after": 1}
    emu.add_fault(Fault.status(429, retry_after_ms=50), times=1)
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model=MODEL, messages="Hello there")
    assert response.text == "You said: Hello there"
    assert [r.fault for r in emu.requests] == ["429", None]


async def test_context_length_fault(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.context_length())
    assert isinstance(error, ContextLengthExceededError)
    assert error.status_code == 400
    assert "exceeds the maximum number of tokens allowed" in error.message
    assert not error.retryable


async def test_prompt_longer_than_the_window(service: ProviderService) -> None:
    with pytest.raises(ContextLengthExceededError) as info:
        await service.complete(model="gemini:tiny-window", messages=" ".join(["word"] * 60))
    assert "The input token count (63) exceeds" in info.value.message


async def test_invalid_request_carries_googles_message(
    service: ProviderService, emu: Emulator
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await service.complete(
            model=MODEL, messages="Hi", provider_options={"generationConfig": {"bogus": 1}}
        )
    assert 'Unknown name "bogus"' in info.value.message
    assert info.value.error_type == "INVALID_ARGUMENT"


async def test_malformed_json_body(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.malformed_json())
    assert isinstance(error, MalformedResponseError)
    assert error.retryable


async def test_html_error_page_from_a_proxy(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.malformed_body(502))
    assert isinstance(error, ProviderAPIError)
    assert error.status_code == 502
    assert error.retryable
    assert "502 Bad Gateway" in error.message


async def test_connection_reset(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.reset())
    assert isinstance(error, ProviderConnectionError)


async def test_unfetchable_image_url_fails_before_sending(
    service: ProviderService, emu: Emulator
) -> None:
    message = Message.user("What is it?", ImagePart(url="https://example.com/cat.png"))
    with pytest.raises(InvalidRequestError, match="cannot fetch images"):
        await service.complete(model=MODEL, messages=[message])
    assert emu.requests == []


# --------------------------------------------------------------------------- safety


async def test_blocked_prompt_is_a_content_filter_error(service: ProviderService) -> None:
    with pytest.raises(ContentFilterError) as info:
        await service.complete(model=MODEL, messages="Tell me BLOCK_PROMPT")
    error = info.value
    assert error.reason == "content_filter"
    assert error.error_type == "SAFETY"
    assert not error.retryable
    assert error.body["promptFeedback"]["blockReason"] == "SAFETY"


async def test_blocked_prompt_in_a_stream(service: ProviderService) -> None:
    with pytest.raises(ContentFilterError):
        [_ async for _ in service.stream(model=MODEL, messages="Tell me BLOCK_PROMPT")]


async def test_blocked_output_is_a_content_filter_finish(service: ProviderService) -> None:
    response = await service.complete(model=MODEL, messages="Say BLOCK_OUTPUT")
    assert response.finish_reason == "content_filter"
    assert response.raw_finish_reason == "SAFETY"
    assert response.text == ""
    events = [e async for e in service.stream(model=MODEL, messages="Say BLOCK_OUTPUT")]
    assert isinstance(events[-1], StreamFinishEvent)
    assert events[-1].response.finish_reason == "content_filter"


async def test_imagen_safety_filter(service: ProviderService) -> None:
    with pytest.raises(ContentFilterError):
        await service.generate_image(model="gemini:imagen-4.0-generate-001", prompt="BLOCK_PROMPT")
    with pytest.raises(ContentFilterError, match="safety filter threshold"):
        await service.generate_image(
            model="gemini:imagen-4.0-generate-001",
            prompt="BLOCK_PROMPT",
            provider_options={"includeRaiReason": True},
        )


# --------------------------------------------------------------------------- streams


async def test_cut_stream_is_interrupted_with_partial_text(
    provider: GeminiProvider, emu: Emulator
) -> None:
    emu.add_fault(Fault.cut_stream(after_events=2))
    received: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await drain(provider, received)
    assert info.value.partial_text == "You said:"
    assert info.value.retryable
    assert not any(isinstance(e, StreamFinishEvent) for e in received)


async def test_mid_stream_error_event(provider: GeminiProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=2, error_type="UNAVAILABLE"))
    received: list[Any] = []
    with pytest.raises(ProviderAPIError) as info:
        await drain(provider, received)
    error = info.value
    assert error.retryable
    assert error.error_type == "UNAVAILABLE"
    assert error.status_code is None  # the HTTP answer itself was a 200
    assert error.message == "The model is overloaded. Please try again later."
    assert len(received) > 0


async def test_mid_stream_rate_limit(provider: GeminiProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=1, error_type="RESOURCE_EXHAUSTED"))
    with pytest.raises(ProviderRateLimitError):
        await drain(provider, [])


async def test_stream_error_fault_on_complete_is_a_status(
    provider: GeminiProvider, emu: Emulator
) -> None:
    emu.add_fault(Fault.stream_error(error_type="INTERNAL"))
    with pytest.raises(ProviderAPIError) as info:
        await provider.complete(OPTIONS)
    assert info.value.status_code == 500


async def test_malformed_stream_event_is_skipped_and_named(
    provider: GeminiProvider, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.add_fault(Fault.malformed_json())
    received: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="aiport"):
        await drain(provider, received)
    response = received[-1].response
    assert response.warnings == ["skipped a malformed stream event"]
    assert "skipped a malformed stream event" in caplog.text
    assert "Hello" not in caplog.text  # never the user's content in logs
    # One token's chunk was lost: the text has a hole but the stream completed.
    assert response.finish_reason == "stop"


async def test_the_key_never_appears_in_errors(
    make_provider: Callable[..., GeminiProvider], emu: Emulator
) -> None:
    provider = make_provider()
    emu.add_fault(Fault.status(500, message=f"boom {GEMINI_KEY}"))
    with pytest.raises(ProviderAPIError) as info:
        await provider.complete(OPTIONS)
    error = info.value
    assert GEMINI_KEY not in error.message
    assert GEMINI_KEY not in repr(error) + str(error)
    assert GEMINI_KEY not in str(error.body)
