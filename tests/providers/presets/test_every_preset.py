"""Every shipped OpenAI-compatible preset, end to end against the emulator's OpenAI routes.

Each preset is pointed at ``emulator.openai_base_url`` (with a key: the emulator wants one
even for local servers) and exercised the way a user would: completion, stream (its final
response equals the completion), a tool round trip, JSON output, embeddings and images
(or the capability error before any request when the preset has none), and the 401 and
429 errors. What a preset's quirks change is asserted too, so a new row in
``presets.toml`` is covered the moment it is added.

DeepSeek reports prompt-cache hits in its own usage fields, which the emulator does not
produce: the last tests serve DeepSeek's documented body from a loopback server.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel

from aiport import ProviderService
from aiport._errors import (
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderRateLimitError,
)
from aiport._types import (
    ImageGenerationResponse,
    ImagePart,
    Message,
    ModelCompletionResponse,
    ProviderModel,
    StreamFinishEvent,
    TextDeltaEvent,
)
from aiport.providers._presets import Preset, load_presets
from aiport.testing import Emulator, Fault
from tests.conftest import OPENAI_KEY

PRESETS = sorted(load_presets())
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_shipped_presets_are_all_here() -> None:
    """The parametrisation reads the shipped file: losing rows would shrink it silently."""
    assert {"groq", "together", "fireworks", "deepseek", "xai", "openrouter", "perplexity"} <= set(
        PRESETS
    )
    assert {"cerebras", "vllm", "llama-cpp", "lm-studio", "ollama-openai"} <= set(PRESETS)


class Answer(BaseModel):
    city: str


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return city


def preset(name: str) -> Preset:
    return load_presets()[name]


def known_models(name: str) -> dict[str, ProviderModel]:
    """The catalogue of preset ``name`` (empty when it has no data file)."""
    return preset(name).provider_type().known_models(name)


def chat_model(name: str) -> str:
    """A catalogue model that chats, streams, calls tools and outputs JSON; any name for a
    preset without a catalogue (unknown models are passed through)."""
    for model in known_models(name).values():
        caps = model.capabilities
        if caps.chat and caps.streaming and caps.tools and caps.json_output:
            return model.id
    return "some-chat-model"


def embedding_model(name: str) -> str:
    for model in known_models(name).values():
        if model.capabilities.embeddings:
            return model.id
    return "text-embedding-3-small"


def image_model(name: str) -> str:
    for model in known_models(name).values():
        if model.capabilities.images:
            return model.id
    return "some-image-model"


def config(emulator: Emulator, name: str, **settings: Any) -> dict[str, Any]:
    """Provider ``name`` of type ``name`` on the emulator; one attempt per call."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            name: {
                "type": name,
                "base_url": emulator.openai_base_url,
                "api_key": OPENAI_KEY,
                **settings,
            }
        },
    }


@pytest.fixture(params=PRESETS)
def name(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def service(emulator: Emulator, name: str) -> AsyncIterator[ProviderService]:
    async with ProviderService(config(emulator, name), env={}) as svc:
        yield svc


def same_answer(streamed: ModelCompletionResponse, completed: ModelCompletionResponse) -> None:
    """Equal apart from what differs per request (ids, latencies, request id, raw)."""
    fields = {"id", "latency", "request_id", "raw", "attempts"}
    assert streamed.model_dump(exclude=fields) == completed.model_dump(exclude=fields)
    timeless = {"latency", "waited"}
    assert [a.model_dump(exclude=timeless) for a in streamed.attempts] == [
        a.model_dump(exclude=timeless) for a in completed.attempts
    ]


async def test_completion_and_stream(
    service: ProviderService, emulator: Emulator, name: str
) -> None:
    model = f"{name}:{chat_model(name)}"
    completed = await service.complete(model=model, messages="Hello there", max_tokens=50)
    assert completed.text == "You said: Hello there"
    assert completed.provider == name
    assert completed.finish_reason == "stop"
    assert completed.warnings == []
    assert completed.usage.input_tokens == 5  # "Hello there" = 2 tokens + 3 per message
    assert completed.usage.output_tokens == 4
    request = emulator.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # The output limit goes under the field the server reads.
    field = preset(name).quirks.max_tokens_field
    other = "max_tokens" if field == "max_completion_tokens" else "max_completion_tokens"
    assert request.body[field] == 50
    assert other not in request.body

    events = [
        event async for event in service.stream(model=model, messages="Hello there", max_tokens=50)
    ]
    final = events[-1]
    assert isinstance(final, StreamFinishEvent)
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == final.response.text
    same_answer(final.response, completed)
    body = emulator.requests[-1].body
    assert body["stream"] is True
    if preset(name).quirks.stream_usage:
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in body


async def test_tool_round_trip(service: ProviderService, emulator: Emulator, name: str) -> None:
    model = f"{name}:{chat_model(name)}"
    question = "Weather in Paris?"
    first = await service.complete(model=model, messages=question, tools=[get_weather])
    if "tools" in preset(name).quirks.unsupported:
        # Not sent (the server would refuse it), said so, and the model answers in text.
        assert "tools" not in emulator.requests[-1].body
        assert first.text == f"You said: {question}"
        assert f"{name} does not support 'tools'; it was not sent" in first.warnings
        return
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert set(call.parse_arguments()) == {"city"}
    history = [Message.user(question), first.message, Message.tool_result(call.id, "18C, sunny")]
    final = await service.complete(model=model, messages=history, tools=[get_weather])
    assert final.text == "Tool results: 18C, sunny"
    assert final.finish_reason == "stop"
    assert first.warnings == final.warnings == []
    sent = emulator.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C, sunny"}


async def test_json_output(service: ProviderService, emulator: Emulator, name: str) -> None:
    model = f"{name}:{chat_model(name)}"
    accepted = preset(name).quirks.response_format

    structured = await service.complete(model=model, messages="Paris?", response_format=Answer)
    wire = emulator.requests[-1].body.get("response_format")
    if "json_schema" in accepted:
        assert wire is not None and wire["type"] == "json_schema"
        assert structured.parse(Answer) == Answer(city="example")
        assert structured.warnings == []
    elif "json_object" in accepted:
        assert wire == {"type": "json_object"}
        assert json.loads(structured.text) == {"echo": "Paris?"}
        assert structured.warnings == [
            f"{name} does not support JSON schema output; JSON output (json_object) was "
            "asked for instead, without the schema"
        ]
    else:
        assert wire is None
        assert structured.warnings

    plain = await service.complete(model=model, messages="Paris?", response_format="json")
    wire = emulator.requests[-1].body.get("response_format")
    if "json_object" in accepted:
        assert wire == {"type": "json_object"}
        assert json.loads(plain.text) == {"echo": "Paris?"}
        assert plain.warnings == []
    else:
        assert wire is None
        assert plain.text == "You said: Paris?"
        assert plain.warnings == [
            f"{name} does not support response_format 'json_object'; it was not sent"
        ]


def vision_model(name: str) -> str:
    """A catalogue model that chats and takes images; else a name the catalogue does not
    know (passed through unchecked)."""
    for model in known_models(name).values():
        if model.capabilities.chat and model.capabilities.vision:
            return model.id
    return "some-vision-model"


async def test_image_input(service: ProviderService, emulator: Emulator, name: str) -> None:
    quirks = preset(name).quirks
    png = PNG_SIGNATURE + b"\0" * 24
    inline = f"data:image/png;base64,{base64.b64encode(png).decode('ascii')}"
    message = Message.user(
        "What is this?",
        ImagePart(data=png, media_type="image/png"),
        ImagePart(url="https://example.com/cat.png"),
    )
    response = await service.complete(model=f"{name}:{vision_model(name)}", messages=[message])
    content = emulator.requests[-1].body["messages"][0]["content"]
    if not quirks.image_input:
        # Not sent (the server would refuse it), said so, and the text still goes.
        assert content == "What is this?"
        assert response.text == "You said: What is this?"
        assert response.warnings == [f"{name} does not take image input: 2 image(s) were not sent"]
        return
    # The images travel as OpenAI content parts after the text; the emulator counts them
    # in its answer and charges 85 prompt tokens for each.
    sent = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    if quirks.image_urls:
        assert sent == [inline, "https://example.com/cat.png"]
        assert response.warnings == []
    else:
        assert sent == [inline]  # a server that takes only inline images gets only those
        assert response.warnings == [
            f"{name} takes only inline images (base64), not image URLs: 1 image(s) were not sent"
        ]
    assert response.text == f"You said: What is this? [images: {len(sent)}]"
    assert response.usage.input_tokens == 4 + 85 * len(sent) + 3


def _text_only_models() -> list[tuple[str, str]]:
    """One chat model without image input from each preset catalogue that has one."""
    found: dict[str, str] = {}
    for name in PRESETS:
        for model in known_models(name).values():
            if model.capabilities.chat and not model.capabilities.vision:
                found.setdefault(name, model.id)
    return sorted(found.items())


TEXT_ONLY = _text_only_models()


def test_some_preset_catalogues_have_text_only_models() -> None:
    assert {"deepseek", "cerebras"} <= {name for name, _ in TEXT_ONLY}


@pytest.mark.parametrize(("name", "model"), TEXT_ONLY)
async def test_a_known_model_without_vision_is_refused_before_sending(
    emulator: Emulator, name: str, model: str
) -> None:
    message = Message.user("What is this?", ImagePart(data=PNG_SIGNATURE, media_type="image/png"))
    async with ProviderService(config(emulator, name), env={}) as service:
        with pytest.raises(ProviderCapabilityError, match="does not take images"):
            await service.complete(model=f"{name}:{model}", messages=[message])
    assert emulator.count() == 0


async def test_embeddings(service: ProviderService, emulator: Emulator, name: str) -> None:
    model = f"{name}:{embedding_model(name)}"
    if not preset(name).quirks.embeddings:
        with pytest.raises(ProviderCapabilityError, match="does not offer embeddings"):
            await service.embed(model=model, input="hi")
        assert emulator.count() == 0
        return
    response = await service.embed(model=model, input=["a cat", "a dog"], dimensions=16)
    assert len(response.embeddings) == 2
    assert response.embeddings[0] != response.embeddings[1]
    for vector in response.embeddings:
        assert len(vector) == 16
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-6)
    assert emulator.requests[-1].path == "/v1/embeddings"


async def test_images(service: ProviderService, emulator: Emulator, name: str) -> None:
    model = f"{name}:{image_model(name)}"
    if not preset(name).quirks.images:
        with pytest.raises(ProviderCapabilityError):
            await service.generate_image(model=model, prompt="a cat")
        assert emulator.count() == 0
        return
    response = await service.generate_image(model=model, prompt="a cat", n=2)
    assert isinstance(response, ImageGenerationResponse)
    assert len(response.images) == 2
    for image in response.images:
        assert image.data is not None and image.data.startswith(PNG_SIGNATURE)
    assert emulator.requests[0].path == "/v1/images/generations"


async def test_auth_and_rate_limit_errors(emulator: Emulator, name: str) -> None:
    wrong = config(emulator, name, api_key="sk-wrong-key-for-the-emulator-0000")
    model = f"{name}:{chat_model(name)}"
    async with ProviderService(wrong, env={}) as service:
        with pytest.raises(ProviderAuthError) as auth:
            await service.complete(model=model, messages="Hi")
    assert auth.value.status_code == 401
    assert auth.value.provider == name

    emulator.fail_next(1, Fault.status(429, retry_after="7"))
    async with ProviderService(config(emulator, name), env={}) as service:
        with pytest.raises(ProviderRateLimitError) as limited:
            await service.complete(model=model, messages="Hi")
    assert limited.value.status_code == 429
    assert limited.value.retry_after == 7.0
    assert limited.value.provider == name
    assert emulator.count() == 2  # one attempt each: nothing retried behind the test's back


# --------------------------------------------------------------------------- DeepSeek usage

#: DeepSeek's usage (api-docs.deepseek.com, "Create Chat Completion"): cache hits and misses
#: at the top level; prompt_tokens is their sum.
DEEPSEEK_USAGE = {
    "prompt_tokens": 1500,
    "completion_tokens": 20,
    "total_tokens": 1520,
    "prompt_cache_hit_tokens": 1280,
    "prompt_cache_miss_tokens": 220,
}


def _deepseek_answer(stream: bool) -> list[dict[str, Any]]:
    base = {"id": "930c60df-bf64-41c9-a88e-3ec75f81e00e", "created": 1705651092}
    base |= {"model": "deepseek-chat", "system_fingerprint": "fp_deepseek"}
    if not stream:
        message = {"role": "assistant", "content": "Hello!"}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return [{**base, "object": "chat.completion", "choices": [choice], "usage": DEEPSEEK_USAGE}]
    chunk = {**base, "object": "chat.completion.chunk"}
    return [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**chunk, "choices": [{"index": 0, "delta": {"content": "Hello!"}}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**chunk, "choices": [], "usage": DEEPSEEK_USAGE},
    ]


@pytest.fixture
async def deepseek_server() -> AsyncIterator[str]:
    """A loopback server answering ``/v1/chat/completions`` as DeepSeek does; its base URL."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(_deepseek_answer(stream=False)[0])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in _deepseek_answer(stream=True):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_deepseek_cache_hits_are_cached_input_tokens_and_priced_as_such(
    deepseek_server: str,
) -> None:
    settings = {"type": "deepseek", "base_url": deepseek_server, "api_key": "sk-deepseek-test"}
    config = {"retry": {"max_attempts": 1}, "providers": {"deepseek": settings}}
    async with ProviderService(config, env={}) as service:
        completed = await service.complete(model="deepseek:deepseek-chat", messages="Hi")
        events = [e async for e in service.stream(model="deepseek:deepseek-chat", messages="Hi")]
    final = events[-1]
    assert isinstance(final, StreamFinishEvent)
    model = known_models("deepseek")["deepseek-chat"]
    assert model.cached_input_price_per_million == 0.028
    for response in (completed, final.response):
        assert response.text == "Hello!"
        assert response.usage.input_tokens == 1500
        assert response.usage.cached_input_tokens == 1280
        assert response.usage.output_tokens == 20
        # Misses at the input price, hits at DeepSeek's cache-hit price.
        assert response.cost == pytest.approx((220 * 0.28 + 1280 * 0.028 + 20 * 0.42) / 1e6)
