"""ProviderService end to end over HTTP against the emulator: calls, hooks, sync twins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from aiport import (
    ErrorEvent,
    Hooks,
    InvalidRequestError,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelProvider,
    ProviderAPIError,
    ProviderAuthError,
    ProviderLayer,
    ProviderRateLimitError,
    ProviderRegistry,
    ProviderService,
    ProviderType,
    RequestEvent,
    ResponseEvent,
    StreamEvent,
)
from aiport.testing import Emulator, Fault

from .conftest import ANTHROPIC_KEY, OPENAI_KEY, emulator_config


async def test_complete_with_keywords_options_object_and_dict(service: ProviderService) -> None:
    by_keywords = await service.complete(model="openai:gpt-4o-mini", messages="Hello there")
    assert by_keywords.text == "You said: Hello there"
    assert by_keywords.provider == "openai"

    options = ModelCompletionOptions(
        model="anthropic:claude-sonnet-4-6", messages=[Message.user("Hi Claude")]
    )
    by_object = await service.complete(options)
    assert by_object.text == "You said: Hi Claude"
    assert by_object.provider == "anthropic"

    by_dict = await service.complete(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "dict form"}]}
    )
    assert by_dict.text == "You said: dict form"


async def test_options_object_plus_keyword_overrides(
    service: ProviderService, emulator: Emulator
) -> None:
    options = ModelCompletionOptions(model="openai:gpt-4o", messages="base", temperature=0.5)
    await service.complete(options, temperature=0.9, seed=7)
    body = emulator.requests[-1].body
    assert body is not None
    assert body["temperature"] == 0.9
    assert body["seed"] == 7


async def test_model_defaults_from_config_apply_only_when_unset(emulator: Emulator) -> None:
    config = emulator_config(emulator)
    config["providers"]["openai"]["models"] = {
        "gpt-4o": {
            "aliases": ["house"],
            "temperature": 0.2,
            "max_tokens": 50,
            "provider_options": {"user": "team-a"},
        }
    }
    async with ProviderService(config, env={}) as service:
        await service.complete(model="house", messages="x")
        body = emulator.requests[-1].body
        assert body is not None
        assert body["model"] == "gpt-4o"
        assert body["temperature"] == 0.2
        assert body["user"] == "team-a"
        await service.complete(model="house", messages="x", temperature=1.0)
        body = emulator.requests[-1].body
        assert body is not None
        assert body["temperature"] == 1.0


async def test_default_model_is_used_when_the_call_names_none(emulator: Emulator) -> None:
    config = emulator_config(emulator, default_model="anthropic:claude-haiku-4-5")
    async with ProviderService(config, env={}) as service:
        response = await service.complete(messages="no model given")
        assert response.provider == "anthropic"


async def test_invalid_options_raise_a_typed_error(service: ProviderService) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await service.complete(model="openai:gpt-4o", messages=[], temperature=7)
    assert info.value.code == "PROVIDER_API_ERROR"
    assert info.value.reason == "invalid_options"
    assert "temperature" in str(info.value)
    with pytest.raises(InvalidRequestError, match="no model"):
        await service.complete(messages="who am I talking to?")


async def test_stream_object(service: ProviderService) -> None:
    stream = service.stream(model="openai:gpt-4o", messages="stream me please")
    events = [event async for event in stream]
    assert events[-1].type == "finish"
    assert stream.text == "You said: stream me please"
    assert stream.response.text == stream.text
    assert stream.response.usage.output_tokens > 0

    async with service.stream(model="anthropic:claude-sonnet-4-6", messages="early exit") as s2:
        async for event in s2:
            if event.type == "text-delta":
                break
    with pytest.raises(RuntimeError):
        _ = s2.response
    response = await service.stream(model="anthropic:claude-sonnet-4-6", messages="hi").until_done()
    assert response.text == "You said: hi"


async def test_embed_and_generate_image(service: ProviderService) -> None:
    embedded = await service.embed(model="openai:text-embedding-3-small", input=["a", "b"])
    assert len(embedded.embeddings) == 2
    image = await service.generate_image(model="openai:gpt-image-1", prompt="a red square")
    assert image.images[0].data is not None
    assert image.images[0].data.startswith(b"\x89PNG")


async def test_hooks_see_requests_responses_and_errors(emulator: Emulator) -> None:
    seen: list[Any] = []
    hooks = Hooks()

    @hooks.on_request
    def on_request(event: RequestEvent) -> None:
        seen.append(event)

    @hooks.on_response
    async def on_response(event: ResponseEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    @hooks.on_error
    def on_error(event: ErrorEvent) -> None:
        seen.append(event)

    @hooks.on_response
    def broken_hook(event: ResponseEvent) -> None:
        raise RuntimeError("a hook that fails must not break the call")

    async with ProviderService(emulator_config(emulator), env={}, hooks=hooks) as service:
        await service.complete(model="openai:gpt-4o", messages="hooked")
        emulator.add_fault(Fault.status(429, retry_after="3"), times=1)
        with pytest.raises(ProviderRateLimitError):
            await service.complete(model="anthropic:claude-sonnet-4-6", messages="limited")
        await service.stream(model="openai:gpt-4o", messages="streamed").until_done()

    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "RequestEvent",
        "ResponseEvent",
        "RequestEvent",
        "ErrorEvent",
        "RequestEvent",
        "ResponseEvent",
    ]
    request, response, _, error, _, streamed = seen
    assert (request.operation, request.provider, request.model) == ("complete", "openai", "gpt-4o")
    assert response.call_id == request.call_id
    assert response.latency > 0
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.finish_reason == "stop"
    assert isinstance(error.error, ProviderRateLimitError)
    assert error.error.retry_after == 3
    assert streamed.operation == "stream"
    assert streamed.time_to_first_event is not None
    assert 0 < streamed.time_to_first_event <= streamed.latency


async def test_logs_carry_metadata_but_no_prompt_and_no_key(
    service: ProviderService, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiport")
    await service.complete(model="openai:gpt-4o", messages="secret prompt text")
    emulator.add_fault(Fault.status(401), times=1)
    with pytest.raises(ProviderAuthError):
        await service.complete(model="openai:gpt-4o", messages="secret prompt text")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "openai:gpt-4o" in text
    assert "PROVIDER_AUTH_ERROR" in text
    assert "secret prompt text" not in text
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        assert all(key[i : i + 8] not in text for i in range(len(key) - 7))


async def test_log_requests_logs_at_info(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiport")
    async with ProviderService(emulator_config(emulator, log_requests=True), env={}) as service:
        await service.complete(model="openai:gpt-4o", messages="x")
    assert any(r.levelno == logging.INFO and "done" in r.getMessage() for r in caplog.records)


async def test_custom_layers_wrap_every_provider(emulator: Emulator) -> None:
    calls: list[str] = []

    class CountingLayer(ProviderLayer):
        async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
            calls.append(f"{self.name}:{options.model}")
            return await self.inner.complete(options)

    async with ProviderService(
        emulator_config(emulator), env={}, layers=[CountingLayer]
    ) as service:
        await service.complete(model="openai:gpt-4o", messages="a")
        await service.complete(model="anthropic:claude-sonnet-4-6", messages="b")
        provider = service.get_provider("openai")
        assert isinstance(provider, ProviderLayer)
        assert type(provider.unwrap()).__name__ == "OpenAIProvider"
    assert calls == ["openai:gpt-4o", "anthropic:claude-sonnet-4-6"]


class _BuggyProvider(ModelProvider):
    """A provider with a bug: it raises KeyError."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def models(self) -> Mapping[str, Any]:
        return {}

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        raise KeyError("choices")

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        raise KeyError("delta")
        yield  # pragma: no cover


async def test_a_bug_inside_a_provider_never_leaks_a_raw_exception() -> None:
    registry = ProviderRegistry.default()
    registry.register(
        ProviderType(
            name="buggy", factory=lambda ctx: _BuggyProvider(ctx.name), requires_api_key=False
        )
    )
    config = {"providers": {"bug": {"type": "buggy"}}}
    async with ProviderService(config, registry=registry, env={}) as service:
        with pytest.raises(ProviderAPIError) as info:
            await service.complete(model="bug:any", messages="x")
        assert info.value.reason == "internal_error"
        assert isinstance(info.value.__cause__, KeyError)
        with pytest.raises(ProviderAPIError):
            await service.stream(model="bug:any", messages="x").until_done()


def test_validate_provider_never_raises() -> None:
    config = {
        "providers": {
            "good": {"type": "openai", "api_key": "sk-literal-good-0000000"},
            "from_env": {"type": "anthropic", "api_key": "env:AIPORT_TEST_ABSENT_VARIABLE"},
            "env_ok": {"type": "anthropic", "api_key": "env:MY_KEY"},
            "local": {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"},
            "default_env": {"type": "openai"},
        }
    }
    with ProviderService(config, env={"MY_KEY": "sk-from-env-0000000"}) as service:
        assert service.validate_provider("good") is True
        assert service.validate_provider("env_ok") is True
        assert service.validate_provider("local") is True  # no key needed
        assert service.validate_provider("from_env") is False
        assert service.validate_provider("default_env") is False  # OPENAI_API_KEY unset
        assert service.validate_provider("nope") is False
        assert service.validate_provider("") is False


async def test_missing_credential_is_an_auth_error_at_call_time(emulator: Emulator) -> None:
    config = emulator_config(emulator)
    config["providers"]["openai"]["api_key"] = "env:AIPORT_TEST_MISSING_KEY"
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model="openai:gpt-4o", messages="x")
        assert "AIPORT_TEST_MISSING_KEY" in str(info.value)
    assert emulator.count() == 0  # refused before any network call


async def test_key_from_the_environment_reference(emulator: Emulator) -> None:
    config = emulator_config(emulator)
    config["providers"]["openai"]["api_key"] = "env:TEAM_OPENAI_KEY"
    async with ProviderService(config, env={"TEAM_OPENAI_KEY": OPENAI_KEY}) as service:
        response = await service.complete(model="openai:gpt-4o", messages="x")
        assert response.text == "You said: x"
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_sync_twins(emulator: Emulator) -> None:
    with ProviderService(emulator_config(emulator), env={}) as service:
        response = service.complete_sync(model="openai:gpt-4o", messages="sync hello")
        assert response.text == "You said: sync hello"
        events = list(service.stream_sync(model="anthropic:claude-sonnet-4-6", messages="s"))
        assert events[-1].type == "finish"
        assert "".join(e.text for e in events if e.type == "text-delta") == "You said: s"
        vectors = service.embed_sync(model="openai:text-embedding-3-small", input="one")
        assert len(vectors.embeddings) == 1
        image = service.generate_image_sync(model="openai:dall-e-3", prompt="p", output="bytes")
        assert image.images[0].data is not None
        emulator.add_fault(Fault.status(500), times=1)
        with pytest.raises(ProviderAPIError) as info:
            service.complete_sync(model="openai:gpt-4o", messages="x")
        assert info.value.status_code == 500
    with pytest.raises(RuntimeError, match="closed"):
        service.complete_sync(model="openai:gpt-4o", messages="x")


async def test_sync_twin_works_inside_a_running_loop(emulator: Emulator) -> None:
    """A notebook cell or framework callback calling sync code from inside a loop."""
    service = ProviderService(emulator_config(emulator), env={})
    try:
        response = service.complete_sync(model="openai:gpt-4o", messages="inside")
        assert response.text == "You said: inside"
        # The same service also serves async calls on this loop.
        assert (await service.complete(model="openai:gpt-4o", messages="a")).text
    finally:
        await service.aclose()


async def test_closed_service_refuses_calls(emulator: Emulator) -> None:
    service = ProviderService(emulator_config(emulator), env={})
    await service.complete(model="openai:gpt-4o", messages="x")
    await service.aclose()
    await service.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await service.complete(model="openai:gpt-4o", messages="x")


async def test_response_cache_per_call_and_per_config(emulator: Emulator) -> None:
    async with ProviderService(emulator_config(emulator), env={}) as service:
        first = await service.complete(model="openai:gpt-4o", messages="cache me", cache=True)
        seen = emulator.count()
        again = await service.complete(model="openai:gpt-4o", messages="cache me", cache=True)
        assert emulator.count() == seen  # served from the cache
        assert again.text == first.text
        await service.complete(model="openai:gpt-4o", messages="cache me")
        assert emulator.count() == seen + 1  # caching is off unless asked for
    config = emulator_config(emulator, cache={"enabled": True, "ttl": 60})
    async with ProviderService(config, env={}) as service:
        await service.complete(model="anthropic:claude-sonnet-4-6", messages="x")
        seen = emulator.count()
        await service.stream(model="anthropic:claude-sonnet-4-6", messages="x").until_done()
        assert emulator.count() == seen  # a cached answer replays as a stream
        await service.complete(model="anthropic:claude-sonnet-4-6", messages="x", cache=False)
        assert emulator.count() == seen + 1


async def test_rate_limits_from_config_are_enforced_without_retries(emulator: Emulator) -> None:
    config = emulator_config(
        emulator,
        retry={"max_attempts": 3},
        rate_limit={"requests_per_minute": 3, "max_queue_wait": 0},
    )
    config["providers"]["anthropic"]["models"] = {
        "claude-haiku-4-5": {"rate_limit": {"requests_per_minute": 1, "max_queue_wait": 0}}
    }
    async with ProviderService(config, env={}) as service:
        for _ in range(3):
            await service.complete(model="openai:gpt-4o", messages="x")
        with pytest.raises(ProviderRateLimitError) as info:
            await service.complete(model="openai:gpt-4o", messages="x")
        assert info.value.reason == "local_rate_limit"
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 60
        assert emulator.count("/v1/chat/completions") == 3  # the refusal was not retried
        # Each provider counts its own; a model table adds a bucket of its own.
        await service.complete(model="anthropic:claude-haiku-4-5", messages="x")
        with pytest.raises(ProviderRateLimitError):
            await service.complete(model="anthropic:claude-haiku-4-5", messages="x")
        await service.complete(model="anthropic:claude-sonnet-4-6", messages="x")
