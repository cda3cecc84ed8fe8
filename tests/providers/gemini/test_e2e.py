"""End to end through ProviderService, over HTTP, against the emulator's Gemini API."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._http import HttpClient, HttpResponse, HttpStream
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ReasoningDeltaEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.gemini import GeminiProvider
from aiport.testing import Emulator

from .conftest import GEMINI_KEY, validate_with_sdk

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


def get_time(timezone: str) -> str:
    """Current time in a timezone."""
    return timezone


class Answer(BaseModel):
    city: str
    temperature: float


class Tree(BaseModel):
    """A recursive schema: Gemini's Schema dialect cannot inline it."""

    name: str
    children: list[Tree] = []


async def collect(service: ProviderService, **options: Any) -> list[Any]:
    return [event async for event in service.stream(**options)]


def comparable(response: ModelCompletionResponse) -> dict[str, Any]:
    """What a stream and a complete call of the same request must agree on."""
    return response.model_dump(exclude={"id", "latency", "raw", "attempts"})


# --------------------------------------------------------------------------- completion


async def test_complete_text_usage_cost_and_wire(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model="gemini:gemini-2.5-flash",
        messages=[Message.system("Be brief."), Message.user("Hello there")],
        temperature=0.5,
        top_p=0.9,
        max_tokens=100,
        stop=["zzz"],
        seed=7,
    )
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "STOP"
    assert response.provider == "gemini"
    assert response.model == "gemini-2.5-flash"
    assert response.id == response.raw["responseId"]
    # Prompt: "Be brief." (3 tokens, no overhead) + "Hello there" (2 + 3); answer: 4 tokens.
    assert response.usage == Usage(input_tokens=8, output_tokens=4, total_tokens=12)
    assert response.cost == pytest.approx((8 * 0.30 + 4 * 2.50) / 1e6)
    assert response.warnings == []
    request = emu.requests[-1]
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in request.headers
    assert request.body == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "maxOutputTokens": 100,
            "stopSequences": ["zzz"],
            "seed": 7,
        },
    }
    validate_with_sdk(request.body)


async def test_the_key_travels_only_in_a_header(service: ProviderService, emu: Emulator) -> None:
    await service.complete(model="gemini:gemini-2.5-flash", messages="Hi")
    [_ async for _ in service.stream(model="gemini:gemini-2.5-flash", messages="Hi")]
    await service.embed(model="gemini:gemini-embedding-001", input=["a", "b"])
    await service.generate_image(model="gemini:imagen-4.0-generate-001", prompt="a cat")
    assert len(emu.requests) == 4
    for request in emu.requests:
        assert GEMINI_KEY not in request.path
        assert GEMINI_KEY.encode() not in request.raw_body
        assert request.headers["x-goog-api-key"] == GEMINI_KEY
    # The stream's query string is only alt=sse.
    assert [r.path for r in emu.requests][1].endswith(":streamGenerateContent")


class RecordingHttp(HttpClient):
    """An HttpClient that keeps every URL it is asked for, query string included (the
    emulator records paths only)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        self.urls.append(url)
        return await super().request(method, url, **kwargs)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, **kwargs: Any) -> AsyncIterator[HttpStream]:
        self.urls.append(url)
        async with super().stream(method, url, **kwargs) as response:
            yield response


async def test_no_url_carries_the_key(emu: Emulator) -> None:
    http = RecordingHttp()
    provider = GeminiProvider(
        base_url=emu.gemini_base_url, credential=StaticCredential(GEMINI_KEY), http=http
    )
    try:
        await provider.complete(ModelCompletionOptions(model="gemini-2.5-flash", messages="Hi"))
        [
            _
            async for _ in provider.stream(
                ModelCompletionOptions(model="gemini-2.5-flash", messages="Hi")
            )
        ]
        await provider.embed(ModelEmbeddingOptions(model="text-embedding-004", input=["a", "b"]))
    finally:
        await http.aclose()
    base = emu.gemini_base_url + "/v1beta/models/"
    assert http.urls == [
        base + "gemini-2.5-flash:generateContent",
        base + "gemini-2.5-flash:streamGenerateContent?alt=sse",
        base + "text-embedding-004:batchEmbedContents",
    ]
    assert all(GEMINI_KEY not in url and "key=" not in url for url in http.urls)


async def test_length_and_stop_finish_reasons(service: ProviderService) -> None:
    cut = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Hello there", max_tokens=2
    )
    assert cut.text == "You said:"
    assert cut.finish_reason == "length"
    assert cut.raw_finish_reason == "MAX_TOKENS"
    stopped = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Hello there", stop=["there"]
    )
    assert stopped.text == "You said: Hello"
    assert stopped.finish_reason == "stop"


async def test_image_input_is_inline_data(service: ProviderService, emu: Emulator) -> None:
    message = Message.user("What is this?", ImagePart(data=PNG, media_type="image/png"))
    response = await service.complete(model="gemini:gemini-2.5-flash", messages=[message])
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 3 + 258
    part = emu.requests[-1].body["contents"][0]["parts"][1]
    assert part["inlineData"]["mimeType"] == "image/png"
    validate_with_sdk(emu.requests[-1].body)


async def test_files_api_image_urls_are_file_data(service: ProviderService, emu: Emulator) -> None:
    uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    message = Message.user("Describe", ImagePart(url=uri, media_type="image/jpeg"))
    response = await service.complete(model="gemini:gemini-2.5-flash", messages=[message])
    assert response.text == "You said: Describe [images: 1]"
    part = emu.requests[-1].body["contents"][0]["parts"][1]
    assert part == {"fileData": {"fileUri": uri, "mimeType": "image/jpeg"}}


async def test_thinking_usage_and_thoughts_stay_out_of_the_text(
    service: ProviderService,
) -> None:
    thinking = {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    response = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Hello there", provider_options=thinking
    )
    assert response.text == "You said: Hello there"
    parts = response.raw["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Thinking about: Hello there", "thought": True}
    # Thoughts are output tokens (Google bills them so) and reasoning tokens.
    assert response.usage.reasoning_tokens == 4
    assert response.usage.output_tokens == 4 + 4
    assert response.usage.total_tokens == 5 + 8
    assert response.cost == pytest.approx((5 * 0.30 + 8 * 2.50) / 1e6)

    events = await collect(
        service, model="gemini:gemini-2.5-flash", messages="Hello there", provider_options=thinking
    )
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert reasoning == "Thinking about: Hello there"
    assert text == "You said: Hello there"
    assert comparable(events[-1].response) == comparable(response)


async def test_cached_content_tokens(service: ProviderService) -> None:
    prompt = " ".join(["word"] * 70)
    response = await service.complete(
        model="gemini:gemini-2.5-flash",
        messages=prompt,
        provider_options={"cachedContent": "cachedContents/abc"},
    )
    assert response.usage.input_tokens == 73
    assert response.usage.cached_input_tokens == 64
    assert response.raw["usageMetadata"]["cachedContentTokenCount"] == 64


async def test_cached_content_tokens_are_priced_at_the_cache_rate(
    service: ProviderService,
) -> None:
    """Tokens read from a context cache cost Gemini 2.5 Flash's cache price ($0.03 per
    million, not the $0.30 input price), in a completion and in a stream's final answer."""
    prompt = " ".join(["word"] * 70)
    kwargs: dict[str, Any] = {
        "model": "gemini:gemini-2.5-flash",
        "messages": prompt,
        "provider_options": {"cachedContent": "cachedContents/abc"},
    }
    completed = await service.complete(**kwargs)
    events = await collect(service, **kwargs)
    assert isinstance(events[-1], StreamFinishEvent)
    for response in (completed, events[-1].response):
        usage = response.usage
        # "You said: " + 70 words; 73 prompt tokens of which 64 came from the cache.
        assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (73, 64, 72)
        assert response.cost is not None
        assert response.cost == pytest.approx((9 * 0.30 + 64 * 0.03 + 72 * 2.50) / 1e6)
        # Priced as plain input the prompt would cost more: the cache rate was applied.
        assert response.cost < (73 * 0.30 + 72 * 2.50) / 1e6
    final_usage = [e for e in events if isinstance(e, UsageEvent)][-1]
    assert final_usage.cost == pytest.approx(completed.cost)


async def test_generation_config_options_are_merged(
    service: ProviderService, emu: Emulator
) -> None:
    await service.complete(
        model="gemini:gemini-2.5-flash",
        messages="Hi",
        temperature=0.2,
        provider_options={"generationConfig": {"topK": 40}, "safetySettings": []},
    )
    body = emu.requests[-1].body
    assert body["generationConfig"] == {"temperature": 0.2, "topK": 40}
    assert body["safetySettings"] == []


# --------------------------------------------------------------------------- streaming


async def test_stream_events_and_final_response_equal_complete(
    service: ProviderService, emu: Emulator
) -> None:
    events = await collect(service, model="gemini:gemini-2.5-flash", messages="Hello there")
    assert emu.requests[-1].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert deltas == ["You", " said:", " Hello", " there"]
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert usages[-1] == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert isinstance(events[-1], StreamFinishEvent)
    streamed = events[-1].response
    complete = await service.complete(model="gemini:gemini-2.5-flash", messages="Hello there")
    assert comparable(streamed) == comparable(complete)
    assert streamed.raw["candidates"][0]["content"] == complete.raw["candidates"][0]["content"]
    assert streamed.cost == complete.cost is not None


async def test_stream_tool_calls(service: ProviderService) -> None:
    events = await collect(
        service,
        model="gemini:gemini-2.5-flash",
        messages="get_weather and get_time please",
        tools=[get_weather, get_time],
    )
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    finished = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [d.name for d in deltas] == ["get_weather", "get_time"]
    assert [e.index for e in finished] == [0, 1]
    response = events[-1].response
    assert response.finish_reason == "tool_calls"
    assert [e.tool_call for e in finished] == response.tool_calls
    assert json.loads(deltas[0].arguments_delta) == {"city": "example", "unit": "example"}


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview"])
async def test_tool_round_trip(service: ProviderService, emu: Emulator, model: str) -> None:
    first = await service.complete(
        model=f"gemini:{model}", messages="What is the weather in Paris?", tools=[get_weather]
    )
    assert first.finish_reason == "tool_calls"
    assert first.raw_finish_reason == "STOP"
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert call.parse_arguments() == {"city": "example", "unit": "example"}
    validate_with_sdk(emu.requests[-1].body)
    declaration = emu.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"
    assert declaration["parameters"]["type"] == "OBJECT"

    history = [
        Message.user("What is the weather in Paris?"),
        first.message,
        Message.tool_result(call.id, "18 degrees and sunny"),
    ]
    second = await service.complete(model=f"gemini:{model}", messages=history, tools=[get_weather])
    assert second.text == "Tool results: 18 degrees and sunny"
    assert second.finish_reason == "stop"
    body = emu.requests[-1].body
    validate_with_sdk(body)
    assert body["contents"][1]["role"] == "model"
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "get_weather",
                    "response": {"output": "18 degrees and sunny"},
                }
            }
        ],
    }
    if model.startswith("gemini-3"):
        # Gemini 3 refuses the round trip without the call's thought signature.
        assert "thoughtSignature" in body["contents"][1]["parts"][0]


async def test_gemini_3_history_from_another_model(service: ProviderService, emu: Emulator) -> None:
    """A tool call Gemini did not make has no thought signature, which Gemini 3 refuses:
    it is sent with Google's documented placeholder, and the caller is told."""
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    history = [
        Message.user("Weather?"),
        Message.assistant(tool_calls=[call]),
        Message.tool_result("call_1", "sunny"),
    ]
    response = await service.complete(
        model="gemini:gemini-3-pro-preview", messages=history, tools=[get_weather]
    )
    assert response.text == "Tool results: sunny"
    assert any("thought signature" in w for w in response.warnings)
    part = emu.requests[-1].body["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"
    # Older models need no signature: nothing is added.
    older = await service.complete(
        model="gemini:gemini-2.5-flash", messages=history, tools=[get_weather]
    )
    assert older.warnings == []
    assert "thoughtSignature" not in emu.requests[-1].body["contents"][1]["parts"][0]


async def test_parallel_calls_and_error_results(service: ProviderService, emu: Emulator) -> None:
    first = await service.complete(
        model="gemini:gemini-2.5-flash",
        messages="get_weather and get_time",
        tools=[get_weather, get_time],
    )
    assert [c.name for c in first.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in first.tool_calls}) == 2
    weather, clock = first.tool_calls
    history = [
        Message.user("get_weather and get_time"),
        first.message,
        Message.tool_result(weather.id, "sunny"),
        Message.tool_result(clock.id, "no such zone", is_error=True),
    ]
    second = await service.complete(
        model="gemini:gemini-2.5-flash", messages=history, tools=[get_weather, get_time]
    )
    assert second.text == "Tool results: sunny; no such zone"
    # Both results travel in one user turn, as Gemini requires.
    results = emu.requests[-1].body["contents"][2]["parts"]
    assert [p["functionResponse"]["response"] for p in results] == [
        {"output": "sunny"},
        {"error": "no such zone"},
    ]


async def test_tool_choice_modes(service: ProviderService, emu: Emulator) -> None:
    forced = await service.complete(
        model="gemini:gemini-2.5-flash",
        messages="get_weather",
        tools=[get_weather, get_time],
        tool_choice="get_time",
    )
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    assert emu.requests[-1].body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}
    }
    none = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Hi", tools=[get_weather], tool_choice="none"
    )
    assert none.text == "You said: Hi"
    assert emu.requests[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    required = await service.complete(
        model="gemini:gemini-2.5-flash",
        messages="Hi",
        tools=[get_weather],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert required.tool_calls
    assert emu.requests[-1].body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert any("parallel_tool_calls" in w for w in required.warnings)


async def test_tool_without_parameters(service: ProviderService, emu: Emulator) -> None:
    def ping() -> str:
        """Check the service."""
        return "pong"

    response = await service.complete(model="gemini:gemini-2.5-flash", messages="Hi", tools=[ping])
    assert response.tool_calls[0].parse_arguments() == {}
    declaration = emu.requests[-1].body["tools"][0]["functionDeclarations"][0]
    assert declaration == {"name": "ping", "description": "Check the service."}


# --------------------------------------------------------------------------- JSON output


async def test_json_mode(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Hello", response_format="json"
    )
    assert json.loads(response.text) == {"echo": "Hello"}
    assert emu.requests[-1].body["generationConfig"] == {"responseMimeType": "application/json"}


async def test_json_schema_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model="gemini:gemini-2.5-flash", messages="Weather?", response_format=Answer
    )
    assert response.parse(Answer) == Answer(city="example", temperature=1.5)
    config = emu.requests[-1].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"
    assert config["responseSchema"]["propertyOrdering"] == ["city", "temperature"]
    assert "additionalProperties" not in json.dumps(config["responseSchema"])
    assert response.warnings == []
    validate_with_sdk(emu.requests[-1].body)


async def test_recursive_schema_goes_as_json_schema(
    service: ProviderService, emu: Emulator
) -> None:
    response = await service.complete(
        model="gemini:gemini-2.5-flash", messages="A tree", response_format=Tree
    )
    tree = response.parse(Tree)
    assert tree.name == "example"
    config = emu.requests[-1].body["generationConfig"]
    assert "responseSchema" not in config
    assert "$defs" in config["responseJsonSchema"]


# --------------------------------------------------------------------------- embeddings


async def test_embed_one_text(service: ProviderService, emu: Emulator) -> None:
    response = await service.embed(model="gemini:gemini-embedding-001", input="hello")
    assert len(response.embeddings) == 1
    assert len(response.embeddings[0]) == 3072
    assert math.isclose(sum(v * v for v in response.embeddings[0]), 1.0, rel_tol=1e-9)
    request = emu.requests[-1]
    assert request.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert request.body == {"content": {"parts": [{"text": "hello"}]}}
    # The Gemini API reports no usage for embeddings: no made-up cost either.
    assert response.cost is None


async def test_embed_batch_keeps_order_and_dimensions(
    service: ProviderService, emu: Emulator
) -> None:
    texts = ["first", "second", "third"]
    response = await service.embed(
        model="gemini:gemini-embedding-001",
        input=texts,
        dimensions=8,
        provider_options={"taskType": "RETRIEVAL_DOCUMENT"},
    )
    assert [len(v) for v in response.embeddings] == [8, 8, 8]
    request = emu.requests[-1]
    assert request.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert request.body["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "second"}]},
        "outputDimensionality": 8,
        "taskType": "RETRIEVAL_DOCUMENT",
    }
    # Same text, same vector, whether embedded alone or in a batch.
    alone = await service.embed(model="gemini:gemini-embedding-001", input="second", dimensions=8)
    assert alone.embeddings[0] == response.embeddings[1]


async def test_embed_more_than_one_batch(service: ProviderService, emu: Emulator) -> None:
    texts = [f"text {i}" for i in range(150)]
    response = await service.embed(model="gemini:text-embedding-004", input=texts)
    assert len(response.embeddings) == 150
    sizes = [len(r.body["requests"]) for r in emu.requests]
    assert sizes == [100, 50]
    single = await service.embed(model="gemini:text-embedding-004", input="text 120")
    assert single.embeddings[0] == response.embeddings[120]


# --------------------------------------------------------------------------- images


async def test_imagen_predict(service: ProviderService, emu: Emulator) -> None:
    response = await service.generate_image(
        model="gemini:imagen-4.0-generate-001", prompt="a hamster in a hat", n=2, size="1024x768"
    )
    assert len(response.images) == 2
    assert all(image.data and image.data.startswith(b"\x89PNG") for image in response.images)
    assert response.images[0].data != response.images[1].data
    assert response.images[0].media_type == "image/png"
    request = emu.requests[-1]
    assert request.path == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert request.body == {
        "instances": [{"prompt": "a hamster in a hat"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "4:3"},
    }
    assert "bytesBase64Encoded" not in json.dumps(response.raw)


async def test_gemini_image_model(service: ProviderService, emu: Emulator) -> None:
    response = await service.generate_image(
        model="gemini:gemini-2.5-flash-image", prompt="a cat", size="1024x1024"
    )
    assert len(response.images) == 1
    assert response.images[0].data and response.images[0].data.startswith(b"\x89PNG")
    assert response.usage.output_tokens == 1290
    # Prompt: "a cat" (2 tokens) + 3 for the content.
    assert response.cost == pytest.approx((5 * 0.30 + 1290 * 30.0) / 1e6)
    body = emu.requests[-1].body
    assert body["generationConfig"] == {
        "responseModalities": ["TEXT", "IMAGE"],
        "imageConfig": {"aspectRatio": "1:1"},
    }
    assert "data" not in json.dumps(response.raw["candidates"][0]["content"]["parts"][0])


# --------------------------------------------------------------------------- auth


async def test_bearer_token_from_an_oauth_table(emu: Emulator) -> None:
    config = {
        "retry": {"max_attempts": 1},
        "providers": {
            "gemini": {
                "type": "gemini",
                "base_url": emu.gemini_base_url,
                "auth": {
                    "type": "oauth2",
                    "token_url": emu.url + "/oauth/token",
                    "client_id": "client",
                    "client_secret": "env:GEMINI_TEST_SECRET",
                },
            }
        },
    }
    async with ProviderService(config, env={"GEMINI_TEST_SECRET": "s3cret"}) as service:
        response = await service.complete(model="gemini:gemini-2.5-flash", messages="Hello")
    assert response.text == "You said: Hello"
    request = emu.requests[-1]
    assert request.headers["authorization"].startswith("Bearer emu-at-")
    assert "x-goog-api-key" not in request.headers


async def test_key_from_the_standard_variable(emu: Emulator) -> None:
    config = {"providers": {"gemini": {"type": "gemini", "base_url": emu.gemini_base_url}}}
    async with ProviderService(config, env={"GEMINI_API_KEY": GEMINI_KEY}) as service:
        response = await service.complete(model="gemini:gemini-2.5-flash", messages="Hi")
    assert response.text == "You said: Hi"
    assert emu.requests[-1].headers["x-goog-api-key"] == GEMINI_KEY
