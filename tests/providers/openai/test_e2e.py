"""End to end over real HTTP against the emulator: the operations that succeed."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from aiport._errors import ProviderAuthError
from aiport._types import (
    ImageGenerationOptions,
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A long prompt, so the emulator reports cached tokens (multiples of 64).
LONG = " ".join(["word"] * 70)


def options(**kwargs: Any) -> ModelCompletionOptions:
    kwargs.setdefault("model", "gpt-4o")
    kwargs.setdefault("messages", "Hello there")
    return ModelCompletionOptions(**kwargs)


async def collect(provider: OpenAIProvider, opts: ModelCompletionOptions) -> list[Any]:
    return [event async for event in provider.stream(opts)]


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


def get_time(timezone: str) -> str:
    """Current time in a timezone."""
    return timezone


class Answer(BaseModel):
    city: str
    temperature: float


# --------------------------------------------------------------------------- complete


async def test_complete_text_with_usage(provider: OpenAIProvider, emu: Emulator) -> None:
    response = await provider.complete(options())
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.provider == "openai"
    assert response.model == "gpt-4o"
    assert response.id.startswith("chatcmpl-")
    assert response.request_id and response.request_id.startswith("req_")
    # Prompt: 2 words + 3 per message; answer: 4 tokens.
    assert response.usage == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert response.cost == pytest.approx((5 * 2.5 + 4 * 10) / 1e6)
    assert response.latency > 0
    assert response.warnings == []
    request = emu.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test-canary-0123456789abcdef"
    assert request.body == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hello there"}],
    }


async def test_every_usage_field(provider: OpenAIProvider) -> None:
    response = await provider.complete(
        options(messages=LONG, provider_options={"prompt_cache_key": "k"})
    )
    assert response.usage.input_tokens == 73
    assert response.usage.cached_input_tokens == 64
    assert response.usage.output_tokens == 72
    assert response.usage.total_tokens == 145
    assert response.usage.reasoning_tokens == 0
    assert response.raw["usage"]["prompt_tokens_details"]["cached_tokens"] == 64


async def test_finish_reasons_length_and_stop(provider: OpenAIProvider, emu: Emulator) -> None:
    cut = await provider.complete(options(max_tokens=2))
    assert cut.text == "You said:"
    assert cut.finish_reason == "length"
    assert emu.requests[-1].body["max_completion_tokens"] == 2
    stopped = await provider.complete(options(stop=["there"], seed=42))
    assert stopped.text == "You said: Hello"
    assert stopped.finish_reason == "stop"
    body = emu.requests[-1].body
    assert body["stop"] == ["there"]
    assert body["seed"] == 42


async def test_image_input(provider: OpenAIProvider, emu: Emulator) -> None:
    png = PNG_SIGNATURE + b"rest"
    message = Message.user(
        "What is this?", ImagePart(data=png, media_type="image/png", detail="low")
    )
    response = await provider.complete(options(messages=[message]))
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 85 + 3
    part = emu.requests[-1].body["messages"][0]["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["detail"] == "low"
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


async def test_tool_call_round_trip(provider: OpenAIProvider, emu: Emulator) -> None:
    first = await provider.complete(options(messages="Weather in Paris?", tools=[get_weather]))
    assert first.finish_reason == "tool_calls"
    assert first.text == ""
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert call.id.startswith("call_")
    assert set(call.parse_arguments()) == {"city", "unit"}
    history = [
        Message.user("Weather in Paris?"),
        first.message,
        Message.tool_result(call.id, "18C and sunny"),
    ]
    final = await provider.complete(options(messages=history, tools=[get_weather]))
    assert final.text == "Tool results: 18C and sunny"
    assert final.finish_reason == "stop"
    sent = emu.requests[-1].body["messages"]
    assert sent[1]["content"] is None
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


async def test_parallel_tool_calls(provider: OpenAIProvider, emu: Emulator) -> None:
    text = "Use get_weather and get_time please"
    both = await provider.complete(options(messages=text, tools=[get_weather, get_time]))
    assert [c.name for c in both.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in both.tool_calls}) == 2
    one = await provider.complete(
        options(messages=text, tools=[get_weather, get_time], parallel_tool_calls=False)
    )
    assert [c.name for c in one.tool_calls] == ["get_weather"]
    assert emu.requests[-1].body["parallel_tool_calls"] is False
    forced = await provider.complete(
        options(messages=text, tools=[get_weather, get_time], tool_choice="get_time")
    )
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    assert emu.requests[-1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_time"},
    }


async def test_json_object_and_json_schema(provider: OpenAIProvider, emu: Emulator) -> None:
    response = await provider.complete(options(response_format="json"))
    assert json.loads(response.text) == {"echo": "Hello there"}
    assert emu.requests[-1].body["response_format"] == {"type": "json_object"}
    structured = await provider.complete(options(response_format=Answer))
    parsed = structured.parse(Answer)
    assert isinstance(parsed, Answer)
    wire = emu.requests[-1].body["response_format"]
    assert wire["type"] == "json_schema"
    assert wire["json_schema"]["name"] == "Answer"
    assert wire["json_schema"]["strict"] is True


async def test_metadata_organization_and_project(
    make_provider: Callable[..., OpenAIProvider], emu: Emulator
) -> None:
    provider = make_provider(organization="org-1", project="proj-1")
    await provider.complete(options(metadata={"run": "42"}, temperature=0.1, top_p=0.9))
    request = emu.requests[-1]
    assert request.headers["openai-organization"] == "org-1"
    assert request.headers["openai-project"] == "proj-1"
    assert request.body["metadata"] == {"run": "42"}
    assert request.body["temperature"] == 0.1
    assert request.body["top_p"] == 0.9


# --------------------------------------------------------------------------- streams


def same_answer(streamed: ModelCompletionResponse, completed: ModelCompletionResponse) -> None:
    """Equal apart from what differs per request (ids, latency, request id, raw)."""
    fields = {"id", "latency", "request_id", "raw"}
    assert streamed.model_dump(exclude=fields) == completed.model_dump(exclude=fields)


async def test_stream_text_equals_complete(provider: OpenAIProvider, emu: Emulator) -> None:
    opts = options(messages=LONG, provider_options={"prompt_cache_key": "k"})
    events = await collect(provider, opts)
    assert emu.requests[-1].body["stream"] is True
    assert emu.requests[-1].body["stream_options"] == {"include_usage": True}
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert len(deltas) == 72
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert isinstance(events[-1], StreamFinishEvent)
    streamed = events[-1].response
    assert "".join(deltas) == streamed.text
    assert usage == streamed.usage
    assert streamed.request_id and streamed.request_id.startswith("req_")
    completed = await provider.complete(opts)
    same_answer(streamed, completed)
    assert streamed.usage.cached_input_tokens == 64


async def test_stream_tool_calls_equal_complete(provider: OpenAIProvider) -> None:
    opts = options(messages="get_weather and get_time", tools=[get_weather, get_time])
    events = await collect(provider, opts)
    streamed = events[-1].response
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert {d.index for d in deltas} == {0, 1}
    for index, call in enumerate(streamed.tool_calls):
        pieces = [d.arguments_delta for d in deltas if d.index == index]
        assert "".join(pieces) == call.arguments
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert finished == streamed.tool_calls
    completed = await provider.complete(opts)
    assert streamed.finish_reason == completed.finish_reason == "tool_calls"
    assert streamed.usage == completed.usage
    # Call ids are derived from each request's bytes; names and arguments match.
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in completed.tool_calls
    ]


async def test_stream_length_finish(provider: OpenAIProvider) -> None:
    events = await collect(provider, options(max_tokens=1))
    response = events[-1].response
    assert response.text == "You"
    assert response.finish_reason == "length"


# --------------------------------------------------------------------------- embeddings


async def test_embeddings_many_inputs_in_order(provider: OpenAIProvider, emu: Emulator) -> None:
    texts = [f"text number {i}" for i in range(40)]
    response = await provider.embed(
        ModelEmbeddingOptions(model="text-embedding-3-small", input=texts, dimensions=64)
    )
    assert emu.requests[-1].body["encoding_format"] == "base64"
    assert emu.requests[-1].body["dimensions"] == 64
    assert len(response.embeddings) == 40
    assert all(len(v) == 64 for v in response.embeddings)
    for vector in response.embeddings[:5]:
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0, rel=1e-5)
    assert response.usage.input_tokens == 40 * 3
    assert response.usage.total_tokens == 40 * 3
    assert response.cost == pytest.approx(120 * 0.02 / 1e6)
    assert response.request_id
    # Order: the vector of input 7 is the vector of that text embedded alone.
    alone = await provider.embed(
        ModelEmbeddingOptions(model="text-embedding-3-small", input=texts[7], dimensions=64)
    )
    assert alone.embeddings[0] == response.embeddings[7]


async def test_base64_decoding_matches_float_answers(provider: OpenAIProvider) -> None:
    texts = ["alpha", "beta"]
    b64 = await provider.embed(ModelEmbeddingOptions(model="text-embedding-3-large", input=texts))
    floats = await provider.embed(
        ModelEmbeddingOptions(
            model="text-embedding-3-large",
            input=texts,
            provider_options={"encoding_format": "float"},
        )
    )
    assert len(b64.embeddings[0]) == 3072
    for got, want in zip(b64.embeddings, floats.embeddings, strict=True):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-7)


# --------------------------------------------------------------------------- images


async def test_images_as_bytes(provider: OpenAIProvider, emu: Emulator) -> None:
    response = await provider.generate_image(
        ImageGenerationOptions(model="dall-e-2", prompt="a cat", n=2, size="256x256")
    )
    assert emu.requests[-1].body["response_format"] == "b64_json"
    assert len(response.images) == 2
    for image in response.images:
        assert image.data is not None and image.data.startswith(PNG_SIGNATURE)
        assert image.media_type == "image/png"
        assert image.revised_prompt == "a cat"


async def test_images_as_urls(provider: OpenAIProvider, emu: Emulator) -> None:
    response = await provider.generate_image(
        ImageGenerationOptions(model="dall-e-3", prompt="a dog", output="url")
    )
    [image] = response.images
    assert image.data is None
    assert image.url is not None and image.url.startswith(emu.url + "/files/")


async def test_gpt_image_answers_bytes_even_for_url(
    provider: OpenAIProvider, emu: Emulator
) -> None:
    response = await provider.generate_image(
        ImageGenerationOptions(model="gpt-image-1", prompt="a bird", output="url")
    )
    assert "response_format" not in emu.requests[-1].body
    [image] = response.images
    assert image.data is not None and image.data.startswith(PNG_SIGNATURE)
    assert response.usage.input_tokens == 2  # "a bird"
    assert response.usage.output_tokens == 272
    assert response.cost == pytest.approx((2 * 5 + 272 * 40) / 1e6)


# --------------------------------------------------------------------------- compatible


async def test_compatible_server_fields(
    make_provider: Callable[..., OpenAIProvider], emu: Emulator
) -> None:
    provider = make_provider(name="local", compatible=True)
    assert provider.models == {}
    response = await provider.complete(
        options(
            model="llama3",
            messages=[Message(role="developer", content="Be kind."), Message.user("Hi")],
            max_tokens=5,
        )
    )
    assert response.text == "You said: Hi"
    assert response.cost is None
    body = emu.requests[-1].body
    assert body["max_tokens"] == 5
    assert "max_completion_tokens" not in body
    assert body["messages"][0]["role"] == "system"
    embedded = await provider.embed(ModelEmbeddingOptions(model="nomic", input=["a", "b"]))
    assert emu.requests[-1].body["encoding_format"] == "float"
    assert len(embedded.embeddings) == 2


async def test_compatible_server_without_credential_sends_no_auth(
    make_provider: Callable[..., OpenAIProvider], emu: Emulator
) -> None:
    provider = make_provider(compatible=True, credential=None)
    await provider.check()
    # The emulator insists on a key: the 401 proves none was sent.
    with pytest.raises(ProviderAuthError):
        await provider.complete(options())
    assert "authorization" not in emu.requests[-1].headers


async def test_openai_without_credential_fails_before_any_request(
    make_provider: Callable[..., OpenAIProvider], emu: Emulator
) -> None:
    provider = make_provider(credential=None)
    with pytest.raises(ProviderAuthError) as info:
        await provider.complete(options())
    assert info.value.reason == "credentials_missing"
    with pytest.raises(ProviderAuthError):
        await provider.check()
    with pytest.raises(ProviderAuthError):
        await collect(provider, options())
    assert emu.requests == []


def test_defaults() -> None:
    from aiport._http import HttpClient

    provider = OpenAIProvider(http=HttpClient())
    assert provider.name == "openai"
    assert provider.base_url == "https://api.openai.com/v1"
    assert "gpt-4o" in provider.models
    assert provider.auth_headers("k") == {"Authorization": "Bearer k"}
