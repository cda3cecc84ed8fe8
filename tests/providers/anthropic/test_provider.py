"""The Anthropic adapter end to end, over real HTTP against the emulator."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from aiport._credentials import StaticCredential
from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._http import HttpClient
from aiport._types import (
    ImageGenerationOptions,
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ReasoningDeltaEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    Tool,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.anthropic import AnthropicProvider
from aiport.testing import Emulator, Fault

from .conftest import CANARY_KEY

MODEL = "claude-sonnet-4-6"
WEATHER = Tool(
    name="get_weather",
    description="Current weather",
    parameters={
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
)
TIME = Tool(
    name="get_time", parameters={"type": "object", "properties": {"zone": {"type": "string"}}}
)
MakeProvider = Callable[..., AnthropicProvider]


def opts(messages: Any = "Hi", **kwargs: Any) -> ModelCompletionOptions:
    return ModelCompletionOptions(model=kwargs.pop("model", MODEL), messages=messages, **kwargs)


async def collect(provider: AnthropicProvider, options: ModelCompletionOptions) -> list[Any]:
    return [event async for event in provider.stream(options)]


async def consume(
    provider: AnthropicProvider, options: ModelCompletionOptions, into: list[Any]
) -> None:
    """Stream ``options`` into ``into`` (which keeps what arrived before an error)."""
    async for event in provider.stream(options):
        into.append(event)


def comparable(response: ModelCompletionResponse) -> dict[str, Any]:
    """A response without what differs between two calls (ids, timing, raw)."""
    data = response.model_dump(exclude={"id", "latency", "request_id", "raw"})
    content = data["message"]["content"]
    if isinstance(content, list):
        for part in content:
            if part["type"] == "tool_call":
                part["id"] = "<id>"
    return data


# --------------------------------------------------------------------------- completions


async def test_complete_text(provider: AnthropicProvider, emu: Emulator) -> None:
    response = await provider.complete(opts("Hello there"))
    assert response.text == "You said: Hello there"
    assert response.message.content == "You said: Hello there"
    assert response.finish_reason == "stop" and response.raw_finish_reason == "end_turn"
    # 3 per message + 2 words; the answer is 4 tokens.
    assert response.usage == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert response.cost == pytest.approx((5 * 3 + 4 * 15) / 1e6)
    assert response.id.startswith("msg_01") and response.model == MODEL
    assert response.provider == "anthropic"
    assert response.request_id is not None and response.request_id.startswith("req_01")
    assert response.latency > 0
    assert response.warnings == []

    request = emu.requests[-1]
    assert request.path == "/v1/messages"
    assert request.body == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hello there"}],
    }


async def test_prompt_cache_usage(provider: AnthropicProvider) -> None:
    options = opts(
        [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}],
        provider_options={"cache_control": {"type": "ephemeral"}},
    )
    response = await provider.complete(options)
    # System text (4 tokens, no per-message overhead) + 3 + 1: all read from the cache.
    assert response.usage == Usage(
        input_tokens=8,
        output_tokens=3,
        total_tokens=11,
        cached_input_tokens=8,
        cache_creation_input_tokens=0,
    )
    assert response.raw["usage"]["input_tokens"] == 0
    assert response.cost == pytest.approx((8 * 0.3 + 3 * 15) / 1e6)


async def test_finish_length_and_stop_sequence(provider: AnthropicProvider) -> None:
    response = await provider.complete(opts("one two three", max_tokens=2))
    assert (response.text, response.finish_reason, response.raw_finish_reason) == (
        "You said:",
        "length",
        "max_tokens",
    )
    response = await provider.complete(opts("one two three", stop=["two"]))
    assert (response.text, response.finish_reason, response.raw_finish_reason) == (
        "You said: one",
        "stop",
        "stop_sequence",
    )
    assert response.raw["stop_sequence"] == "two"


async def test_new_api_version_on_the_wire(provider: AnthropicProvider, emu: Emulator) -> None:
    response = await provider.complete(opts(temperature=0.3, top_p=0.5))
    assert response.text == "You said: Hi"
    assert response.warnings == [
        "temperature is not supported by Anthropic API version 2026-10-21 and was not sent",
        "top_p is not supported by Anthropic API version 2026-10-21 and was not sent",
    ]
    request = emu.requests[-1]
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert "x-api-key" not in request.headers
    assert "temperature" not in request.body and "top_p" not in request.body


async def test_legacy_api_version_on_the_wire(make_provider: MakeProvider, emu: Emulator) -> None:
    provider = make_provider(api_version="2023-06-01")
    response = await provider.complete(opts(temperature=0.3, top_p=0.5))
    assert response.warnings == []
    request = emu.requests[-1]
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["x-api-key"] == CANARY_KEY
    assert "authorization" not in request.headers
    assert (request.body["temperature"], request.body["top_p"]) == (0.3, 0.5)


async def test_image_input(provider: AnthropicProvider, emu: Emulator) -> None:
    message = Message.user(
        "What is it?",
        ImagePart(data=b"\x89PNG\r\n\x1a\n", media_type="image/png"),
        ImagePart(url="https://example.com/cat.png"),
    )
    response = await provider.complete(opts([message]))
    assert response.text == "You said: What is it? [images: 2]"
    sources = [b["source"]["type"] for b in emu.requests[-1].body["messages"][0]["content"][1:]]
    assert sources == ["base64", "url"]


async def test_tool_round_trip(provider: AnthropicProvider) -> None:
    question = Message.user("What's the weather in Paris?")
    first = await provider.complete(opts([question], tools=[WEATHER]))
    assert first.finish_reason == "tool_calls"
    assert first.text == "I'll call get_weather."
    [call] = first.tool_calls
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    assert call.parse_arguments() == {"location": "example"}

    second = await provider.complete(
        opts([question, first.message, Message.tool_result(call.id, "18C, sunny")], tools=[WEATHER])
    )
    assert second.finish_reason == "stop"
    assert second.text == "Tool results: 18C, sunny"


async def test_parallel_and_disabled_parallel_tool_use(
    provider: AnthropicProvider, emu: Emulator
) -> None:
    def both(**kwargs: Any) -> ModelCompletionOptions:
        return opts("use get_weather and get_time", tools=[WEATHER, TIME], **kwargs)

    response = await provider.complete(both())
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_time"]
    assert [c.id for c in response.tool_calls] == [c.id for c in response.message.tool_calls]

    response = await provider.complete(both(parallel_tool_calls=False))
    assert [c.name for c in response.tool_calls] == ["get_weather"]
    assert emu.requests[-1].body["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }

    response = await provider.complete(both(tool_choice="get_time"))
    assert [c.name for c in response.tool_calls] == ["get_time"]
    response = await provider.complete(both(tool_choice="none"))
    assert response.tool_calls == [] and response.text.startswith("You said:")


async def test_json_schema_output(provider: AnthropicProvider, emu: Emulator) -> None:
    class City(BaseModel):
        name: str
        population: int

    response = await provider.complete(opts("Largest city?", response_format=City))
    assert response.parse(City) == City(name="example", population=1)
    assert emu.requests[-1].body["output_config"]["format"]["type"] == "json_schema"


async def test_json_mode_instruction(provider: AnthropicProvider, emu: Emulator) -> None:
    response = await provider.complete(opts(response_format="json"))
    assert len(response.warnings) == 1
    assert "JSON object" in emu.requests[-1].body["system"]


async def test_thinking_via_provider_options(provider: AnthropicProvider) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    response = await provider.complete(opts(provider_options={"thinking": thinking}))
    assert response.text == "You said: Hi"
    block = response.raw["content"][0]
    assert block["type"] == "thinking" and block["thinking"] == "Thinking about: Hi"
    assert block["signature"]

    events = await collect(provider, opts(provider_options={"thinking": thinking}))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    assert reasoning == "Thinking about: Hi"
    final = events[-1].response
    assert final.raw["content"][0]["signature"] == block["signature"]
    assert comparable(final) == comparable(response)


# --------------------------------------------------------------------------- streams


async def test_stream_text_equals_complete(provider: AnthropicProvider) -> None:
    options = opts("Hello there", max_tokens=50)
    events = await collect(provider, options)
    assert [e.text for e in events if isinstance(e, TextDeltaEvent)] == [
        "You",
        " said:",
        " Hello",
        " there",
    ]
    usage_events = [e for e in events if isinstance(e, UsageEvent)]
    assert usage_events == [UsageEvent(usage=Usage(input_tokens=5, output_tokens=4))]
    assert isinstance(events[-1], StreamFinishEvent)
    assert sum(isinstance(e, StreamFinishEvent) for e in events) == 1
    final = events[-1].response
    complete = await provider.complete(options)
    assert comparable(final) == comparable(complete)
    assert final.request_id is not None and final.latency > 0
    # Same message on the wire, so the raw JSON matches too (but for the id).
    assert {**final.raw, "id": ""} == {**complete.raw, "id": ""}


async def test_stream_tool_calls(provider: AnthropicProvider, emu: Emulator) -> None:
    options = opts("use get_weather and get_time", tools=[WEATHER, TIME])
    events = await collect(provider, options)
    assert emu.requests[-1].body["stream"] is True
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    for index in (0, 1):
        mine = [d for d in deltas if d.index == index]
        assert mine[0].id is not None and mine[0].name is not None
        assert "".join(d.arguments_delta for d in mine)
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.index, c.tool_call.name) for c in calls] == [(0, "get_weather"), (1, "get_time")]
    final = events[-1].response
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls == [c.tool_call for c in calls]
    assert comparable(final) == comparable(await provider.complete(options))


# --------------------------------------------------------------------------- capabilities & auth


async def test_embed_and_images_are_not_offered(provider: AnthropicProvider) -> None:
    with pytest.raises(ProviderCapabilityError) as info:
        await provider.embed(ModelEmbeddingOptions(model=MODEL, input="x"))
    assert info.value.provider == "anthropic"
    with pytest.raises(ProviderCapabilityError):
        await provider.generate_image(ImageGenerationOptions(model=MODEL, prompt="x"))


async def test_missing_credential(make_provider: MakeProvider, emu: Emulator) -> None:
    provider = make_provider(credential=None)
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(opts())
    assert info.value.reason == "credentials_missing"
    with pytest.raises(ProviderAuthError):
        await collect(provider, opts())
    with pytest.raises(ProviderAuthError):
        await provider.check()
    assert emu.requests == []
    await make_provider().check()


async def test_wrong_key_is_401(make_provider: MakeProvider) -> None:
    provider = make_provider(credential=StaticCredential("sk-ant-wrong-key-0000000000"))
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(opts())
    assert info.value.status_code == 401
    assert info.value.error_type == "authentication_error"
    assert info.value.request_id is not None


async def test_invalid_tool_arguments_in_history(
    provider: AnthropicProvider, emu: Emulator
) -> None:
    bad = Message.assistant("", [ToolCall(id="t", name="f", arguments="nope")])
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        await provider.complete(opts([Message.user("x"), bad]))
    assert emu.requests == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fault", "cls", "status", "error_type", "retryable", "reason"),
    [
        (Fault.status(401), ProviderAuthError, 401, "authentication_error", False, None),
        (Fault.status(403), ProviderAuthError, 403, "permission_error", False, None),
        (Fault.status(404), InvalidRequestError, 404, "not_found_error", False, "invalid_request"),
        (
            Fault.status(400),
            InvalidRequestError,
            400,
            "invalid_request_error",
            False,
            "invalid_request",
        ),
        (
            Fault.status(413),
            InvalidRequestError,
            413,
            "request_too_large",
            False,
            "invalid_request",
        ),
        (Fault.status(500), ProviderAPIError, 500, "api_error", True, "server_error"),
        (Fault.status(529), ProviderAPIError, 529, "overloaded_error", True, "overloaded"),
        (
            Fault.context_length(),
            ContextLengthExceededError,
            400,
            "invalid_request_error",
            False,
            "context_length_exceeded",
        ),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_error_statuses(
    *,
    provider: AnthropicProvider,
    emu: Emulator,
    fault: Fault,
    cls: type[ProviderError],
    status: int,
    error_type: str,
    retryable: bool,
    reason: str | None,
    streaming: bool,
) -> None:
    emu.fail_next(1, fault)
    call = collect(provider, opts()) if streaming else provider.complete(opts())
    with pytest.raises(ProviderError) as info:
        await call
    error = info.value
    assert type(error) is cls
    assert (error.status_code, error.error_type, error.retryable, error.reason) == (
        status,
        error_type,
        retryable,
        reason,
    )
    assert error.provider == "anthropic" and error.model == MODEL
    assert error.request_id is not None and error.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.status(429, retry_after="2"), 2.0),
        (Fault.status(429, retry_after_ms=1500), 1.5),
        (Fault.status(429, retry_after="7", retry_after_ms=250), 0.25),
    ],
)
async def test_rate_limit_retry_after(
    provider: AnthropicProvider, emu: Emulator, fault: Fault, expected: float
) -> None:
    emu.fail_next(1, fault)
    with pytest.raises(ProviderRateLimitError) as info:
        await provider.complete(opts())
    assert info.value.retry_after == expected
    assert info.value.retryable and info.value.status_code == 429
    assert info.value.error_type == "rate_limit_error"


async def test_rate_limit_retry_after_http_date(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(
        1, Fault.status(429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    )
    with pytest.raises(ProviderRateLimitError) as info:
        await provider.complete(opts())
    assert info.value.retry_after is not None and 25 <= info.value.retry_after <= 31


async def test_malformed_json_body(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(1, Fault.malformed_json())
    with pytest.raises(MalformedResponseError) as info:
        await provider.complete(opts())
    assert info.value.retryable and info.value.request_id is not None


async def test_html_error_page(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(1, Fault.malformed_body(502))
    with pytest.raises(ProviderAPIError) as info:
        await provider.complete(opts())
    assert type(info.value) is ProviderAPIError
    assert info.value.status_code == 502 and info.value.retryable
    assert "502 Bad Gateway" in info.value.message


async def test_connection_reset(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(1, Fault.reset())
    with pytest.raises(ProviderConnectionError) as info:
        await provider.complete(opts())
    assert info.value.retryable


async def test_hang_times_out(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(2, Fault.hang())
    started = time.perf_counter()
    with pytest.raises(ProviderTimeoutError):
        await provider.complete(opts(timeout=0.3))
    with pytest.raises(ProviderTimeoutError):
        await collect(provider, opts(timeout=0.3))
    assert time.perf_counter() - started < 5


async def test_cut_stream_is_interrupted_with_partial_text(
    provider: AnthropicProvider, emu: Emulator
) -> None:
    # message_start, content_block_start, ping, "You", " said:", then the cut.
    emu.fail_next(1, Fault.cut_stream(after_events=5))
    received: list[Any] = []
    with pytest.raises(StreamInterruptedError) as info:
        await consume(provider, opts("Hello there"), received)
    assert info.value.partial_text == "You said:"
    assert "".join(e.text for e in received if isinstance(e, TextDeltaEvent)) == "You said:"
    assert info.value.retryable and info.value.request_id is not None


async def test_cut_after_the_stop_reason_loses_nothing(
    provider: AnthropicProvider, emu: Emulator
) -> None:
    # Nine events for "Hi"; the connection drops after message_delta, before message_stop.
    emu.fail_next(1, Fault.cut_stream(after_events=8))
    events = await collect(provider, opts())
    final = events[-1].response
    assert (final.text, final.finish_reason, final.warnings) == ("You said: Hi", "stop", [])
    assert final.usage == Usage(input_tokens=4, output_tokens=3)


async def test_stall_times_out(provider: AnthropicProvider, emu: Emulator) -> None:
    emu.fail_next(1, Fault.stall(after_events=4, seconds=30))
    with pytest.raises(ProviderTimeoutError):
        await collect(provider, opts(timeout=0.5))


async def test_malformed_stream_event_is_skipped(
    provider: AnthropicProvider, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Nine events; the fifth (the " said:" delta) arrives broken.
    emu.fail_next(1, Fault.malformed_json())
    events = await collect(provider, opts())
    final = events[-1].response
    assert final.text == "You Hi"
    assert final.finish_reason == "stop"
    assert len(final.warnings) == 1 and "malformed" in final.warnings[0]
    assert any(r.name == "aiport" and r.levelname == "WARNING" for r in caplog.records)
    assert "said" not in caplog.text


@pytest.mark.parametrize(
    ("error_type", "cls", "reason"),
    [
        ("overloaded_error", ProviderAPIError, "overloaded"),
        ("api_error", ProviderAPIError, "server_error"),
        ("rate_limit_error", ProviderRateLimitError, None),
    ],
)
async def test_mid_stream_error_event(
    provider: AnthropicProvider,
    emu: Emulator,
    error_type: str,
    cls: type[ProviderError],
    reason: str | None,
) -> None:
    emu.fail_next(1, Fault.stream_error(after_events=4, error_type=error_type))
    received: list[Any] = []
    with pytest.raises(ProviderError) as info:
        await consume(provider, opts("Hello there"), received)
    assert type(info.value) is cls
    assert info.value.error_type == error_type and info.value.reason == reason
    assert info.value.retryable
    assert [e.text for e in received if isinstance(e, TextDeltaEvent)] == ["You"]


# --------------------------------------------------------------------------- secrets


async def test_the_key_never_appears_in_errors(
    make_provider: MakeProvider, emu: Emulator, http: HttpClient
) -> None:
    """Every error, even one whose provider message echoes the key, is scrubbed."""
    provider = make_provider()
    fragment = CANARY_KEY[6:20]
    errors: list[ProviderError] = []

    async def capture(call: Any) -> None:
        try:
            await call
        except ProviderError as exc:
            errors.append(exc)
        else:  # pragma: no cover
            pytest.fail("expected an error")

    faults = [
        Fault.status(400, message=f"bad key {CANARY_KEY}"),
        Fault.status(401, message=f"invalid x-api-key: {fragment}"),
        Fault.status(429, message=f"key {CANARY_KEY} is limited", retry_after="1"),
        Fault.status(529),
        Fault.malformed_body(503),
        Fault.malformed_json(),
        Fault.reset(),
    ]
    for fault in faults:
        emu.fail_next(1, fault)
        await capture(provider.complete(opts()))
    emu.fail_next(1, Fault.stream_error(after_events=3, message=f"oops {CANARY_KEY}"))
    await capture(collect(provider, opts()))
    emu.fail_next(1, Fault.cut_stream(after_events=3))
    await capture(collect(provider, opts()))
    emu.fail_next(1, Fault.hang())
    await capture(provider.complete(opts(timeout=0.2)))
    wrong = make_provider(credential=StaticCredential("sk-ant-other-canary-9876543210fedcba"))
    await capture(wrong.complete(opts()))

    assert len(errors) == 11
    secrets = [CANARY_KEY, "sk-ant-other-canary-9876543210fedcba"]
    for error in errors:
        for text in (str(error), repr(error), error.message, repr(error.body)):
            for secret in secrets:
                for i in range(len(secret) - 7):
                    assert secret[i : i + 8] not in text, (type(error).__name__, text)
