"""One failure, one aiport error, whichever provider answered it.

Every built-in provider type (openai, anthropic, gemini, azure, mistral, cohere, hosted
ollama, bedrock signing with SigV4) and a preset (groq) meet the same failures from the
emulator: 401, 403, 404, 429 with a Retry-After, 500, a server that never answers (with a
short timeout configured), a connection reset, a proxy's HTML error page and a 200 whose
JSON is broken. Each must reach the user as the same aiport error class with the same
stable ``code``, the HTTP ``status_code`` (``None`` when no HTTP error status came back),
the ``provider`` and ``model`` of the call, ``retryable``, and, for the 429, the
``retry_after`` the provider asked for; a completion and a stream alike.

Retries are off (as in ``emulator_config``), so each error is the first answer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from aiport import ProviderService
from aiport._errors import (
    ErrorCode,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
)
from aiport._types import StreamFinishEvent
from aiport.testing import Emulator, Fault
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, emulator_config

#: The key of the providers ``emulator_config`` does not configure.
KEY = "sk-error-matrix-key-5d2a9c7e1b"
#: Bedrock signs with these access keys (the emulator verifies the signatures).
AWS_KEY_ID = "AKIDERRORMATRIX00001"
AWS_SECRET = "matrix/Secret+Key0123456789abcdefGHIJKLMN"


class Target(NamedTuple):
    """A provider of the matrix: its adapter type, a model, its settings."""

    kind: str
    model: str
    #: The emulator attribute holding this provider's base URL.
    url: str
    credential: dict[str, Any]


PROVIDERS: dict[str, Target] = {
    # openai and anthropic: as emulator_config configures them.
    "openai": Target("openai", "gpt-4o", "openai_base_url", {"api_key": OPENAI_KEY}),
    "anthropic": Target(
        "anthropic", "claude-sonnet-4-5", "anthropic_base_url", {"api_key": ANTHROPIC_KEY}
    ),
    "gemini": Target("gemini", "gemini-2.5-flash", "gemini_base_url", {"api_key": KEY}),
    "azure": Target("azure", "gpt-4o", "azure_endpoint", {"api_key": KEY}),
    "mistral": Target("mistral", "mistral-small-latest", "mistral_base_url", {"api_key": KEY}),
    "cohere": Target("cohere", "command-a-03-2025", "cohere_base_url", {"api_key": KEY}),
    # A local Ollama has no keys, so no 401: hosted Ollama (a bearer key) has.
    "ollama": Target("ollama", "llama3.2", "ollama_base_url", {"api_key": KEY}),
    "bedrock": Target(
        "bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "bedrock_endpoint",
        {"aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": AWS_SECRET},
    ),
    # A preset: a data row over the OpenAI-compatible adapter.
    "groq": Target("groq", "llama-3.3-70b-versatile", "openai_base_url", {"api_key": KEY}),
}


class Expected(NamedTuple):
    """What the user must get for one failure."""

    error: type[ProviderError]
    code: ErrorCode
    status_code: int | None
    retryable: bool
    reason: str | None = None  # checked when set
    retry_after: float | None = None


RETRY_AFTER = 2.0
FAULTS: dict[str, tuple[Fault, Expected]] = {
    "401": (
        Fault.status(401),
        Expected(ProviderAuthError, ErrorCode.PROVIDER_AUTH_ERROR, 401, False),
    ),
    "403": (
        Fault.status(403),
        Expected(ProviderAuthError, ErrorCode.PROVIDER_AUTH_ERROR, 403, False),
    ),
    "404": (
        Fault.status(404),
        Expected(InvalidRequestError, ErrorCode.PROVIDER_API_ERROR, 404, False),
    ),
    "429": (
        Fault.status(429, retry_after=f"{RETRY_AFTER:g}"),
        Expected(
            ProviderRateLimitError,
            ErrorCode.PROVIDER_RATE_LIMIT_ERROR,
            429,
            True,
            retry_after=RETRY_AFTER,
        ),
    ),
    "500": (
        Fault.status(500),
        Expected(ProviderAPIError, ErrorCode.PROVIDER_API_ERROR, 500, True, "server_error"),
    ),
    "timeout": (
        Fault.hang(5),
        Expected(ProviderTimeoutError, ErrorCode.PROVIDER_API_ERROR, None, True, "timeout"),
    ),
    "reset": (
        Fault.reset(),
        Expected(ProviderConnectionError, ErrorCode.PROVIDER_API_ERROR, None, True, "connection"),
    ),
    "html-page": (
        Fault.malformed_body(502),
        Expected(ProviderAPIError, ErrorCode.PROVIDER_API_ERROR, 502, True, "server_error"),
    ),
    # The HTTP answer itself was a 200: no error status to report.
    "malformed-json": (
        Fault.malformed_json(),
        Expected(
            MalformedResponseError, ErrorCode.PROVIDER_API_ERROR, None, True, "malformed_response"
        ),
    ),
}
#: How long the timeout case waits for an answer that never comes.
SHORT_TIMEOUT = 0.2


@pytest.fixture(scope="module")
def matrix_emulator() -> Iterator[Emulator]:
    """One emulator for the module, accepting every key of :data:`PROVIDERS`."""
    keys = {OPENAI_KEY, ANTHROPIC_KEY, KEY, f"{AWS_KEY_ID}:{AWS_SECRET}"}
    with Emulator(api_keys=keys).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emu(matrix_emulator: Emulator) -> Iterator[Emulator]:
    matrix_emulator.reset()
    yield matrix_emulator
    matrix_emulator.reset()


def settings(emu: Emulator, *, short_timeout: bool) -> dict[str, Any]:
    """``emulator_config`` (no retries) with every provider of the matrix added."""
    extra: dict[str, Any] = {}
    if short_timeout:
        # Only where the answer never comes: elsewhere a slow machine must not turn an
        # answer into a timeout.
        extra["timeouts"] = dict.fromkeys(("first_token", "idle", "total"), SHORT_TIMEOUT)
    config = emulator_config(emu, **extra)
    for name, target in PROVIDERS.items():
        config["providers"][name] = {
            "type": target.kind,
            "base_url": getattr(emu, target.url),
            **target.credential,
            **({"region": "us-east-1"} if target.kind == "bedrock" else {}),
        }
    return config


def check(error: ProviderError, expected: Expected, provider: str) -> None:
    assert type(error) is expected.error, repr(error)
    assert error.code is expected.code
    assert error.status_code == expected.status_code
    assert error.provider == provider
    assert error.model == PROVIDERS[provider].model
    assert error.retryable is expected.retryable
    assert error.attempts == 1
    assert error.message
    if expected.reason is not None:
        assert error.reason == expected.reason
    assert error.retry_after == expected.retry_after


async def drain(service: ProviderService, model: str) -> None:
    async with service.stream(model=model, messages="hi") as stream:
        async for _ in stream:
            pass


@pytest.mark.parametrize("failure", list(FAULTS))
@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_each_failure_is_the_same_error_everywhere(
    emu: Emulator, provider: str, failure: str
) -> None:
    fault, expected = FAULTS[failure]
    config = settings(emu, short_timeout=failure == "timeout")
    model = f"{provider}:{PROVIDERS[provider].model}"
    emu.add_fault(fault, times=None)
    # A service per call: a 429 pauses its provider in the service's rate limiter.
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderError) as caught:
            await service.complete(model=model, messages="hi")
    check(caught.value, expected, provider)
    async with ProviderService(config, env={}) as service:
        if failure == "malformed-json":
            # In a stream the broken JSON is one event: skipped, and said so in the response.
            async with service.stream(model=model, messages="hi") as stream:
                events = [event async for event in stream]
            assert isinstance(events[-1], StreamFinishEvent)
            (warning,) = events[-1].response.warnings
            assert "skipped" in warning
        else:
            with pytest.raises(ProviderError) as caught:
                await drain(service, model)
            check(caught.value, expected, provider)
    assert len(emu.requests) == 2  # one attempt each: retries are off
