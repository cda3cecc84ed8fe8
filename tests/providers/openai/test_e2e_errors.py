"""End to end against the emulator's faults: every failure is a typed, scrubbed error."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from aiport._credentials import StaticCredential
from aiport._errors import (
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._http import HttpTimeouts
from aiport._types import ModelCompletionOptions, ModelEmbeddingOptions, StreamFinishEvent
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator, Fault

from .conftest import API_KEY

OPTIONS = ModelCompletionOptions(model="gpt-4o", messages="Hello there")
FULL = "You said: Hello there"


async def collect(provider: OpenAIProvider, opts: ModelCompletionOptions = OPTIONS) -> list[Any]:
    return [event async for event in provider.stream(opts)]


async def drain(provider: OpenAIProvider, into: list[Any]) -> None:
    """Stream ``OPTIONS``, keeping every event received before an error."""
    async for event in provider.stream(OPTIONS):
        into.append(event)


async def complete_error(provider: OpenAIProvider, fault: Fault, emu: Emulator) -> ProviderError:
    emu.add_fault(fault, times=1)
    with pytest.raises(ProviderError) as info:
        await provider.complete(OPTIONS)
    return info.value


# --------------------------------------------------------------------------- HTTP statuses


async def test_wrong_key_is_an_auth_error(
    make_provider: Callable[..., OpenAIProvider],
) -> None:
    provider = make_provider(credential=StaticCredential("sk-wrong-key-abcdefghijkl"))
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(OPTIONS)
    error = info.value
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.status_code == 401
    assert error.error_type == "invalid_api_key"
    assert error.request_id and error.request_id.startswith("req_")
    assert not error.retryable
    assert error.provider == "openai"
    assert error.model == "gpt-4o"


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, InvalidRequestError, False),
        (403, ProviderAuthError, False),
        (404, InvalidRequestError, False),
        (500, ProviderAPIError, True),
        (503, ProviderAPIError, True),
    ],
)
async def test_statuses(
    provider: OpenAIProvider, emu: Emulator, status: int, cls: type[ProviderError], retryable: bool
) -> None:
    error = await complete_error(provider, Fault.status(status), emu)
    assert type(error) is cls
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.request_id
    assert error.message  # the provider's own message


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(429, retry_after="2"), 2.0),
        (Fault.status(429, retry_after_ms=1500), 1.5),
    ],
)
async def test_rate_limit_with_retry_after(
    provider: OpenAIProvider, emu: Emulator, fault: Fault, expected: float
) -> None:
    error = await complete_error(provider, fault, emu)
    assert isinstance(error, ProviderRateLimitError)
    assert error.status_code == 429
    assert error.retryable
    assert error.retry_after == expected
    assert error.error_type == "rate_limit_exceeded"


async def test_rate_limit_with_an_http_date(provider: OpenAIProvider, emu: Emulator) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = await complete_error(provider, Fault.status(429, retry_after=when), emu)
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 31


async def test_insufficient_quota_is_not_retryable(provider: OpenAIProvider, emu: Emulator) -> None:
    error = await complete_error(provider, Fault.status(429, error_type="insufficient_quota"), emu)
    assert isinstance(error, ProviderRateLimitError)
    assert not error.retryable
    assert error.reason == "insufficient_quota"


async def test_context_length(provider: OpenAIProvider, emu: Emulator) -> None:
    error = await complete_error(provider, Fault.context_length(), emu)
    assert isinstance(error, ContextLengthExceededError)
    assert error.status_code == 400
    assert error.error_type == "context_length_exceeded"
    assert not error.retryable


async def test_malformed_json_body(provider: OpenAIProvider, emu: Emulator) -> None:
    error = await complete_error(provider, Fault.malformed_json(), emu)
    assert isinstance(error, MalformedResponseError)
    assert error.retryable
    assert error.request_id


async def test_html_502_from_a_proxy(provider: OpenAIProvider, emu: Emulator) -> None:
    error = await complete_error(provider, Fault.malformed_body(502), emu)
    assert type(error) is ProviderAPIError
    assert error.status_code == 502
    assert error.retryable
    assert error.message.startswith("HTTP 502 from openai: <html>")
    assert "502 Bad Gateway" in error.message


async def test_connection_reset(provider: OpenAIProvider, emu: Emulator) -> None:
    error = await complete_error(provider, Fault.reset(), emu)
    assert isinstance(error, ProviderConnectionError)
    assert error.retryable


async def test_hang_with_a_short_timeout(provider: OpenAIProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.hang(), times=1)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        await provider.complete(OPTIONS.model_copy(update={"timeout": 0.3}))
    assert time.monotonic() - started < 5
    assert info.value.retryable
    assert info.value.model == "gpt-4o"


async def test_embedding_errors_are_typed_too(provider: OpenAIProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.status(500), times=1)
    with pytest.raises(ProviderAPIError) as info:
        await provider.embed(ModelEmbeddingOptions(model="text-embedding-3-small", input="x"))
    assert info.value.status_code == 500


# --------------------------------------------------------------------------- streams


async def test_status_error_before_a_stream(provider: OpenAIProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.status(429, retry_after="3"), times=1)
    with pytest.raises(ProviderRateLimitError) as info:
        await collect(provider)
    assert info.value.retry_after == 3


async def test_cut_stream_keeps_the_partial_text(provider: OpenAIProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=3), times=1)
    received: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await drain(provider, received)
    error = info.value
    # Role delta, "You", " said:" arrived before the cut.
    assert error.partial_text == "You said:"
    assert "".join(e.text for e in received) == error.partial_text
    assert error.retryable
    assert error.request_id
    assert error.model == "gpt-4o"
    assert FULL.startswith(error.partial_text)


async def test_stall_past_the_idle_timeout(
    make_provider: Callable[..., OpenAIProvider], emu: Emulator
) -> None:
    provider = make_provider(timeouts=HttpTimeouts(connect=5, first_token=5, idle=0.3, total=20))
    emu.add_fault(Fault.stall(after_events=2, seconds=10), times=1)
    with pytest.raises(ProviderTimeoutError) as info:
        await collect(provider)
    assert info.value.retryable


async def test_malformed_event_is_skipped_logged_and_reported(
    provider: OpenAIProvider, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiport")
    emu.add_fault(Fault.malformed_json(), times=1)
    events = await collect(provider)
    assert isinstance(events[-1], StreamFinishEvent)
    response = events[-1].response
    assert response.warnings == ["skipped a malformed stream event from openai"]
    assert response.finish_reason == "stop"
    records = [r for r in caplog.records if r.name == "aiport"]
    assert [r.getMessage() for r in records] == ["skipped a malformed stream event from openai"]
    assert records[0].levelno == logging.WARNING


@pytest.mark.parametrize(
    ("error_type", "cls", "retryable"),
    [
        (None, ProviderAPIError, True),
        ("rate_limit_exceeded", ProviderRateLimitError, True),
        ("invalid_request_error", InvalidRequestError, False),
    ],
)
async def test_error_event_mid_stream(
    provider: OpenAIProvider,
    emu: Emulator,
    error_type: str | None,
    cls: type[ProviderError],
    retryable: bool,
) -> None:
    emu.add_fault(Fault.stream_error(after_events=2, error_type=error_type), times=1)
    received: list[Any] = []
    with pytest.raises(ProviderError) as info:
        await drain(provider, received)
    error = info.value
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code is None
    assert error.request_id
    assert received  # the error came after some events


# --------------------------------------------------------------------------- canary


def pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def texts_of(error: BaseException) -> list[str]:
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out += [str(current), repr(current), str(current.args)]
        if isinstance(current, ProviderError):
            out += [current.message, repr(current.body), repr(current.context())]
        current = current.__cause__ or current.__context__
    return out


async def test_the_key_never_appears_in_any_error(
    make_provider: Callable[..., OpenAIProvider], provider: OpenAIProvider, emu: Emulator
) -> None:
    errors: list[BaseException] = []

    async def capture(call: Any) -> None:
        try:
            await call
        except ProviderError as exc:
            errors.append(exc)

    # A wrong key that shares a long stretch with the real one, echoed (masked) by 401s.
    near = make_provider(credential=StaticCredential(API_KEY[:-2] + "zz"))
    await capture(near.complete(OPTIONS))
    # Bodies that quote the key, whole or in part, in every path.
    quoted = f"key {API_KEY} and a piece {API_KEY[5:14]} leaked"
    for fault in (
        Fault.status(400, message=quoted),
        Fault.status(401, message=quoted),
        Fault.status(429, retry_after="1", message=quoted),
        Fault.status(500, message=quoted),
        Fault.context_length(),
        Fault.malformed_json(),
        Fault.malformed_body(502),
        Fault.reset(),
    ):
        emu.add_fault(fault, times=1)
        await capture(provider.complete(OPTIONS))
    for fault in (
        Fault.status(403, message=quoted),
        Fault.cut_stream(after_events=2),
        Fault.stream_error(after_events=1, message=quoted),
        Fault.stream_error(after_events=1, error_type="rate_limit_exceeded", message=quoted),
    ):
        emu.add_fault(fault, times=1)
        await capture(collect(provider))
    emu.add_fault(Fault.hang(), times=1)
    await capture(provider.complete(OPTIONS.model_copy(update={"timeout": 0.2})))
    assert len(errors) == 14
    for error in errors:
        for text in texts_of(error):
            for piece in pieces(API_KEY):
                assert piece not in text, (type(error).__name__, text)
