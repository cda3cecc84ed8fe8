"""Every Bedrock failure reaches the caller as a typed aiport error (end to end)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aiport import ProviderService
from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._types import StreamFinishEvent, TextDeltaEvent
from aiport.testing import Emulator, Fault

from .conftest import CLAUDE, SECRET_KEY, bedrock_config

MODEL = f"bedrock:{CLAUDE}"


async def complete_error(service: ProviderService, emu: Emulator, fault: Fault) -> ProviderError:
    emu.add_fault(fault)
    with pytest.raises(ProviderError) as info:
        await service.complete(model=MODEL, messages="Hello there")
    return info.value


@pytest.mark.parametrize(
    ("fault", "cls", "error_type", "retryable"),
    [
        (Fault.status(429), ProviderRateLimitError, "ThrottlingException", True),
        (Fault.status(403), ProviderAuthError, "AccessDeniedException", False),
        (Fault.status(400), InvalidRequestError, "ValidationException", False),
        (Fault.status(404), InvalidRequestError, "ResourceNotFoundException", False),
        (Fault.status(500), ProviderAPIError, "InternalServerException", True),
        (Fault.status(503), ProviderAPIError, "ServiceUnavailableException", True),
        (Fault.status(408), ProviderTimeoutError, "ModelTimeoutException", True),
        (Fault.status(424), ProviderAPIError, "ModelErrorException", False),
        (
            Fault.status(429, error_type="ModelNotReadyException"),
            ProviderAPIError,
            "ModelNotReadyException",
            True,
        ),
        (
            Fault.status(400, error_type="ServiceQuotaExceededException"),
            ProviderRateLimitError,
            "ServiceQuotaExceededException",
            False,
        ),
        (
            Fault.status(403, error_type="ExpiredTokenException"),
            ProviderAuthError,
            "ExpiredTokenException",
            False,
        ),
        (
            Fault.status(403, error_type="UnrecognizedClientException"),
            ProviderAuthError,
            "UnrecognizedClientException",
            False,
        ),
    ],
)
async def test_error_statuses(  # noqa: PLR0917  (parametrized)
    service: ProviderService,
    emu: Emulator,
    fault: Fault,
    cls: type[ProviderError],
    error_type: str,
    retryable: bool,
) -> None:
    error = await complete_error(service, emu, fault)
    assert type(error) is cls
    assert error.error_type == error_type
    assert error.retryable is retryable
    assert error.status_code == fault.code
    assert error.provider == "bedrock" and error.model == CLAUDE
    assert error.request_id  # from x-amzn-RequestId


async def test_model_not_ready_is_overloaded_not_a_rate_limit(
    service: ProviderService, emu: Emulator
) -> None:
    error = await complete_error(
        service, emu, Fault.status(429, error_type="ModelNotReadyException")
    )
    assert error.reason == "overloaded"


async def test_throttling_keeps_retry_after(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.status(429, retry_after="3"))
    assert isinstance(error, ProviderRateLimitError) and error.retry_after == 3.0


async def test_input_too_long_is_a_context_length_error(
    service: ProviderService, emu: Emulator
) -> None:
    error = await complete_error(service, emu, Fault.context_length())
    assert isinstance(error, ContextLengthExceededError)
    assert error.error_type == "ValidationException"
    assert "Input is too long" in error.message


async def test_a_prompt_over_the_window_is_refused_by_the_emulated_model() -> None:
    async with (
        Emulator(api_keys=None, context_window=10) as small,
        ProviderService(bedrock_config(small), env={}) as service,
    ):
        with pytest.raises(ContextLengthExceededError):
            await service.complete(model=MODEL, messages="word " * 20)


async def test_a_validation_error_from_the_service(service: ProviderService) -> None:
    # Two consecutive user turns are merged by the adapter, but an assistant turn first
    # is Bedrock's to refuse.
    with pytest.raises(InvalidRequestError, match="must start with a user message"):
        await service.complete(model=MODEL, messages=[{"role": "assistant", "content": "Hi"}])


async def test_an_html_page_from_a_proxy(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.malformed_body(502))
    assert isinstance(error, ProviderAPIError) and error.status_code == 502 and error.retryable


async def test_a_broken_json_body(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.malformed_json())
    assert isinstance(error, MalformedResponseError)


async def test_a_connection_reset(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(service, emu, Fault.reset())
    assert error.reason == "connection"


# --------------------------------------------------------------------------- streams


async def stream_until_error(
    service: ProviderService, emu: Emulator, fault: Fault, **kwargs: Any
) -> tuple[list[Any], ProviderError]:
    emu.add_fault(fault)
    events: list[Any] = []

    async def drain() -> None:
        async for event in service.stream(model=MODEL, messages="one two three four", **kwargs):
            events.append(event)

    with pytest.raises(ProviderError) as info:
        await drain()
    return events, info.value


@pytest.mark.parametrize(
    ("kind", "cls", "retryable"),
    [
        ("throttlingException", ProviderRateLimitError, True),
        ("modelStreamErrorException", ProviderAPIError, True),
        ("internalServerException", ProviderAPIError, True),
        ("serviceUnavailableException", ProviderAPIError, True),
        ("validationException", InvalidRequestError, False),
    ],
)
async def test_exceptions_inside_a_stream(
    service: ProviderService,
    emu: Emulator,
    kind: str,
    cls: type[ProviderError],
    retryable: bool,
) -> None:
    # Before any text: the typed error itself.
    events, error = await stream_until_error(service, emu, Fault.stream_error(1, error_type=kind))
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.error_type == kind[0].upper() + kind[1:]
    assert error.status_code is None  # the HTTP answer itself was a 200
    assert error.request_id
    assert events == []
    # After text: the service reports an interrupted stream, caused by the typed error.
    events, error = await stream_until_error(service, emu, Fault.stream_error(2, error_type=kind))
    assert isinstance(error, StreamInterruptedError) and error.partial_text == "You"
    assert type(error.__cause__) is cls
    assert [e.text for e in events if isinstance(e, TextDeltaEvent)] == ["You"]


async def test_a_stream_error_on_a_plain_call_is_the_matching_status(
    service: ProviderService, emu: Emulator
) -> None:
    error = await complete_error(service, emu, Fault.stream_error(error_type="throttlingException"))
    assert isinstance(error, ProviderRateLimitError) and error.status_code == 429


async def test_a_cut_stream_is_interrupted_with_the_text_so_far(
    service: ProviderService, emu: Emulator
) -> None:
    events, error = await stream_until_error(service, emu, Fault.cut_stream(after_events=3))
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "You said:"
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "You said:"


async def test_a_stall_is_a_timeout(emu: Emulator) -> None:
    config = bedrock_config(emu, timeouts={"idle": 0.3, "first_token": 5})
    async with ProviderService(config, env={}) as service:
        _, error = await stream_until_error(service, emu, Fault.stall(after_events=1, seconds=5))
    assert isinstance(error, ProviderTimeoutError)


async def test_a_damaged_message_is_skipped_with_a_warning(
    service: ProviderService, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.add_fault(Fault.malformed_json())
    caplog.set_level(logging.WARNING, logger="aiport")
    events = [e async for e in service.stream(model=MODEL, messages="one two three four")]
    response = events[-1].response
    assert isinstance(events[-1], StreamFinishEvent)
    # The middle message (the delta " three") failed its CRC and was dropped.
    assert response.text == "You said: one two four"
    assert any("checksum" in w for w in response.warnings)
    assert any("checksum" in r.getMessage() for r in caplog.records)
    assert "one" not in " ".join(r.getMessage() for r in caplog.records)


async def test_malformed_event_json_is_skipped(service: ProviderService) -> None:
    from aiport.providers.bedrock._eventstream import EventMessage
    from aiport.providers.bedrock._stream import ConverseStreamAssembler

    assembler = ConverseStreamAssembler(provider="bedrock", model=CLAUDE)
    headers = {":message-type": "event", ":event-type": "contentBlockDelta"}
    assert assembler.feed_message(EventMessage(headers, b'{"contentBlockIndex": 0, "del')) == ()
    assert assembler.feed_message(EventMessage(headers, b'{"contentBlockIndex": "x"}')) == ()
    assert len(assembler.warnings) == 2
    with pytest.raises(StreamInterruptedError):
        assembler.finish()
    del service


async def test_no_metadata_after_message_stop_is_complete_with_a_warning() -> None:
    from aiport.providers.bedrock._stream import ConverseStreamAssembler

    assembler = ConverseStreamAssembler(provider="bedrock", model=CLAUDE)
    assembler.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    assembler.feed("messageStop", {"stopReason": "end_turn"})
    response = assembler.finish()
    assert response.text == "Hi" and response.usage.total_tokens == 0
    assert any("metadata" in w for w in response.warnings)


# --------------------------------------------------------------------------- capabilities


async def test_embedding_with_a_chat_model_is_a_capability_error(service: ProviderService) -> None:
    with pytest.raises(ProviderCapabilityError):
        await service.embed(model=MODEL, input="x")


async def test_image_generation_with_a_chat_model_is_a_capability_error(
    service: ProviderService,
) -> None:
    with pytest.raises(ProviderCapabilityError):
        await service.generate_image(model=MODEL, prompt="a cat")


async def test_a_prompt_blocked_by_content_filters(service: ProviderService, emu: Emulator) -> None:
    emu.add_fault(
        Fault.status(
            400,
            message="This request has been blocked by our content filters. Our filters "
            "automatically flagged this prompt because it may conflict our AUP.",
        )
    )
    with pytest.raises(ContentFilterError) as info:
        await service.generate_image(model="bedrock:amazon.nova-canvas-v1:0", prompt="x")
    assert info.value.error_type == "ValidationException"


async def test_an_image_quality_bedrock_lacks(service: ProviderService, emu: Emulator) -> None:
    with pytest.raises(InvalidRequestError, match="quality"):
        await service.generate_image(
            model="bedrock:amazon.nova-canvas-v1:0", prompt="x", quality="ultra"
        )
    assert emu.requests == []


async def test_an_http_image_url_fails_before_sending(
    service: ProviderService, emu: Emulator
) -> None:
    from aiport._types import ImagePart, Message

    with pytest.raises(InvalidRequestError, match="s3://"):
        await service.complete(
            model=MODEL,
            messages=[Message.user("x", ImagePart(url="https://example.com/cat.png"))],
        )
    assert emu.requests == []


async def test_no_error_shows_the_secret(service: ProviderService, emu: Emulator) -> None:
    error = await complete_error(
        service, emu, Fault.status(400, message=f"bad key {SECRET_KEY} echoed")
    )
    assert SECRET_KEY not in str(error) and SECRET_KEY not in repr(error)
    assert SECRET_KEY[:12] not in error.message


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"\x00\x00\x01\x00\x00\x00\x00\x10\xde\xad\xbe\xef", "prelude checksum"),
        (b"\x00\x00\x00", "in the middle of a message"),
    ],
)
async def test_a_stream_whose_framing_breaks_is_interrupted(tail: bytes, reason: str) -> None:
    """Bytes that no longer frame messages (a bad prelude, a message cut short) end the
    stream as interrupted, with the text delivered so far."""
    from aiohttp import web

    from aiport.testing._bedrock import AwsEvent

    head = b"".join(
        AwsEvent(kind, payload).render()
        for kind, payload in (
            ("messageStart", {"role": "assistant"}),
            ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        )
    )

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        await response.write(head + tail)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/model/{model}/converse-stream", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        config = {
            "retry": {"max_attempts": 1},
            "providers": {
                "raw": {
                    "type": "bedrock",
                    "base_url": f"http://127.0.0.1:{port}",
                    "api_key": "bedrock-api-key-0123456789",
                }
            },
        }
        async with ProviderService(config, env={}) as service:
            with pytest.raises(StreamInterruptedError) as info:
                [e async for e in service.stream(model=f"raw:{CLAUDE}", messages="Hi")]
    finally:
        await runner.cleanup()
    assert info.value.partial_text == "Hello"
    cause = info.value.__cause__ if info.value.__cause__ is not None else info.value
    assert reason in str(cause)
