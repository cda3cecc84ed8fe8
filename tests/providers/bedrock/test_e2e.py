"""End to end through ProviderService over HTTP to the emulator, signed with SigV4."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._types import (
    ImagePart,
    Message,
    ReasoningDeltaEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.testing import Emulator

from .conftest import CLAUDE, COHERE, NOVA, TITAN

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def collect(service: ProviderService, **kwargs: Any) -> list[Any]:
    return [event async for event in service.stream(**kwargs)]


def finish(events: list[Any]) -> Any:
    assert isinstance(events[-1], StreamFinishEvent)
    return events[-1].response


async def test_completion(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=f"bedrock:{CLAUDE}",
        messages=[Message.system("Be brief."), Message.user("Hello there")],
        max_tokens=50,
        temperature=0.3,
    )
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "end_turn"
    assert response.provider == "bedrock" and response.model == CLAUDE
    # Prompt: "Be brief." (3) + message overhead 3 + "Hello there" (2).
    assert (response.usage.input_tokens, response.usage.output_tokens) == (8, 4)
    assert response.cost == pytest.approx((8 * 0.25 + 4 * 1.25) / 1_000_000)
    (request,) = emu.requests
    assert request.path == f"/model/{CLAUDE}/converse"
    assert request.body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.3}
    assert request.body["system"] == [{"text": "Be brief."}]
    assert response.request_id and response.request_id == response.id


async def test_stream_ends_with_what_complete_returns(service: ProviderService) -> None:
    events = await collect(service, model=f"bedrock:{NOVA}", messages="Hello there")
    texts = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert texts == ["You", " said:", " Hello", " there"]
    assert any(isinstance(e, UsageEvent) and e.usage.output_tokens == 4 for e in events)
    streamed = finish(events)
    completed = await service.complete(model=f"bedrock:{NOVA}", messages="Hello there")
    assert streamed.text == completed.text == "".join(texts)
    assert streamed.usage == completed.usage
    assert streamed.finish_reason == completed.finish_reason == "stop"
    assert streamed.cost == completed.cost is not None


async def test_stop_sequences_and_max_tokens(service: ProviderService) -> None:
    cut = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="one two three four", max_tokens=2
    )
    assert (cut.text, cut.finish_reason, cut.raw_finish_reason) == (
        "You said:",
        "length",
        "max_tokens",
    )
    stopped = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="one two three four", stop=["three"]
    )
    assert stopped.text == "You said: one two"
    assert stopped.raw_finish_reason == "stop_sequence"


async def test_tool_round_trip(service: ProviderService, emu: Emulator) -> None:
    first = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="What is the weather in Paris?", tools=[WEATHER]
    )
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert call.name == "get_weather" and call.id.startswith("tooluse_")
    assert call.parse_arguments() == {"city": "example"}
    second = await service.complete(
        model=f"bedrock:{CLAUDE}",
        messages=[
            Message.user("What is the weather in Paris?"),
            first.message,
            Message.tool_result(call.id, "18C and sunny"),
        ],
        tools=[WEATHER],
    )
    assert second.text == "Tool results: 18C and sunny"
    assert second.finish_reason == "stop"
    sent = emu.requests[-1].body["messages"]
    assert sent[1]["content"] == [
        {"toolUse": {"toolUseId": call.id, "name": "get_weather", "input": {"city": "example"}}}
    ]
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == call.id


async def test_streamed_tool_calls(service: ProviderService) -> None:
    events = await collect(service, model=f"bedrock:{CLAUDE}", messages="weather?", tools=[WEATHER])
    starts = [e for e in events if isinstance(e, ToolCallDeltaEvent) and e.name]
    assert [(e.index, e.name) for e in starts] == [(0, "get_weather")]
    pieces = "".join(e.arguments_delta for e in events if isinstance(e, ToolCallDeltaEvent))
    (done,) = [e for e in events if isinstance(e, ToolCallEvent)]
    assert json.loads(pieces) == json.loads(done.tool_call.arguments) == {"city": "example"}
    response = finish(events)
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == [done.tool_call]
    completed = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="weather?", tools=[WEATHER]
    )
    assert [(c.name, c.arguments) for c in completed.tool_calls] == [
        (c.name, c.arguments) for c in response.tool_calls
    ]


class City(BaseModel):
    name: str
    population: int


async def test_json_schema_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="Describe Oslo", response_format=City
    )
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert response.parse(City) == City(name="example", population=1)
    config = emu.requests[-1].body["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "City"}}
    events = await collect(
        service, model=f"bedrock:{CLAUDE}", messages="Describe Oslo", response_format=City
    )
    streamed = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert City.model_validate_json(streamed) == response.parse(City)
    assert finish(events).text == response.text


async def test_plain_json_output(service: ProviderService) -> None:
    response = await service.complete(
        model=f"bedrock:{NOVA}", messages="Give me JSON", response_format="json"
    )
    assert isinstance(json.loads(response.text), dict)
    assert response.finish_reason == "stop"


async def test_json_output_beside_tools_after_a_tool_round_trip(service: ProviderService) -> None:
    first = await service.complete(
        model=f"bedrock:{CLAUDE}",
        messages="weather in Paris",
        tools=[WEATHER],
        response_format=City,
    )
    (call,) = first.tool_calls  # the model calls the real tool first
    final = await service.complete(
        model=f"bedrock:{CLAUDE}",
        messages=[
            Message.user("weather in Paris"),
            first.message,
            Message.tool_result(call.id, "sun"),
        ],
        tools=[WEATHER],
        response_format=City,
    )
    assert final.tool_calls == [] and final.finish_reason == "stop"
    assert final.parse(City) == City(name="example", population=1)


async def test_vision(service: ProviderService, emu: Emulator) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(32))
    response = await service.complete(
        model=f"bedrock:{NOVA}",
        messages=[
            Message.user("What is in this picture?", ImagePart(data=image, media_type="image/png"))
        ],
    )
    assert response.text == "You said: What is in this picture? [images: 1]"
    block = emu.requests[-1].body["messages"][0]["content"][1]
    assert block["image"]["format"] == "png"
    assert base64.b64decode(block["image"]["source"]["bytes"]) == image


async def test_reasoning_streams_as_reasoning_deltas(service: ProviderService) -> None:
    options = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    events = await collect(
        service, model=f"bedrock:{CLAUDE}", messages="Hello", provider_options=options
    )
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    assert reasoning == "Thinking about: Hello"
    response = finish(events)
    assert response.text == "You said: Hello"
    block = response.raw["output"]["message"]["content"][0]["reasoningContent"]
    assert block["reasoningText"]["text"] == reasoning and block["reasoningText"]["signature"]
    completed = await service.complete(
        model=f"bedrock:{CLAUDE}", messages="Hello", provider_options=options
    )
    assert completed.raw["output"] == response.raw["output"]


def _unit(vector: list[float]) -> bool:
    return math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)


async def test_titan_embeddings(service: ProviderService, emu: Emulator) -> None:
    texts = ["first text", "second, longer text", "third"]
    response = await service.embed(model=f"bedrock:{TITAN}", input=texts, dimensions=256)
    assert [len(v) for v in response.embeddings] == [256, 256, 256]
    assert all(_unit(v) for v in response.embeddings)
    assert len({tuple(v) for v in response.embeddings}) == 3
    assert response.usage.input_tokens == 2 + 4 + 1
    assert response.cost == pytest.approx(7 * 0.02 / 1_000_000)
    bodies = sorted(r.body["inputText"] for r in emu.requests)
    assert bodies == sorted(texts)  # one text per InvokeModel call
    assert all(r.path == f"/model/{TITAN}/invoke" for r in emu.requests)
    again = await service.embed(
        model=f"bedrock:{TITAN}", input=["second, longer text"], dimensions=256
    )
    assert again.embeddings[0] == response.embeddings[1]  # input order kept


async def test_cohere_embeddings_in_batches_of_96(service: ProviderService, emu: Emulator) -> None:
    texts = [f"text number {i}" for i in range(100)]
    response = await service.embed(
        model=f"bedrock:{COHERE}", input=texts, provider_options={"input_type": "search_query"}
    )
    assert len(response.embeddings) == 100
    assert {len(v) for v in response.embeddings} == {1024}
    assert response.usage.input_tokens == 300
    sizes = [len(r.body["texts"]) for r in emu.requests]
    assert sizes == [96, 4]
    assert {r.body["input_type"] for r in emu.requests} == {"search_query"}
    single = await service.embed(
        model=f"bedrock:{COHERE}", input=texts[97], provider_options={"input_type": "search_query"}
    )
    assert single.embeddings[0] == response.embeddings[97]


async def test_cohere_embeddings_by_type(service: ProviderService) -> None:
    response = await service.embed(
        model=f"bedrock:{COHERE}",
        input=["a", "b"],
        provider_options={"embedding_types": ["float", "int8"]},
    )
    assert len(response.embeddings) == 2 and all(_unit(v) for v in response.embeddings)


async def test_image_generation(service: ProviderService, emu: Emulator) -> None:
    response = await service.generate_image(
        model="bedrock:amazon.nova-canvas-v1:0",
        prompt="a lighthouse at dawn",
        n=2,
        size="512x768",
        quality="hd",
        provider_options={"seed": 7, "negativeText": "people"},
    )
    assert len(response.images) == 2
    assert all(
        i.data is not None and i.data.startswith(b"\x89PNG") and i.media_type == "image/png"
        for i in response.images
    )
    assert response.images[0].data != response.images[1].data
    assert response.request_id
    body = emu.requests[-1].body
    assert body == {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a lighthouse at dawn", "negativeText": "people"},
        "imageGenerationConfig": {
            "numberOfImages": 2,
            "width": 512,
            "height": 768,
            "quality": "premium",
            "seed": 7,
        },
    }
