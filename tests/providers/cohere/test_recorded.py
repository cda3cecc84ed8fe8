"""Real Cohere answers (recorded for the Vercel AI SDK's tests, in shared/) are parsed right,
and the emulator's answers have their shape."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._catalogue import known_models
from aiport._types import (
    ReasoningDeltaEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.cohere._convert import (
    CohereStreamAssembler,
    parse_chat_response,
    parse_embed_response,
)
from aiport.testing import Emulator

from .conftest import API_KEY, recorded_chunks, recorded_json

MODELS = known_models("cohere")
MODEL = "command-a-03-2025"


def parse(data: dict[str, Any]) -> Any:
    return parse_chat_response(
        data,
        provider="cohere",
        latency=0.0,
        request_id=None,
        warnings=[],
        models=MODELS,
        requested_model=MODEL,
    )


def replay(chunks: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    assembler = CohereStreamAssembler()
    events: list[Any] = []
    for payload in chunks:
        events.extend(assembler.feed(payload))
    assert assembler.finished
    assert assembler.error is None
    response = assembler.finish(
        provider="cohere",
        latency=0.0,
        request_id=None,
        warnings=[],
        models=MODELS,
        requested_model=MODEL,
    )
    return events, response


# --------------------------------------------------------------------------- parsing


def test_recorded_text_answer() -> None:
    response = parse(recorded_json("cohere-text.json"))
    assert response.text == "The capital of France is Paris."
    assert response.finish_reason == "stop"
    assert response.id == "e7592632-1e3d-424f-b129-bd5f9f980f7b"
    # Billed units, not the template-inflated token counts (507 in, 10 out).
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)
    assert response.raw["usage"]["cached_tokens"] == 448
    assert response.cost == pytest.approx((12 * 2.50 + 7 * 10.00) / 1e6)


def test_recorded_tool_call_answer() -> None:
    response = parse(recorded_json("cohere-tool-call.json"))
    assert response.finish_reason == "tool_calls"
    assert response.text.startswith("I will use the weather tool")  # the tool plan
    assert [(c.id, c.name, c.parse_arguments()) for c in response.tool_calls] == [
        ("weather_dqgshstja6p9", "weather", {"location": "San Francisco"}),
        ("cityAttractions_dcxfx4myvx68", "cityAttractions", {"city": "San Francisco"}),
    ]
    assert (response.usage.input_tokens, response.usage.output_tokens) == (119, 52)


def test_recorded_text_stream() -> None:
    events, response = replay(recorded_chunks("cohere-text.chunks.txt"))
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert "".join(deltas) == "The capital of France is Paris."
    assert len(deltas) == 7
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert usage == response.usage
    assert response.text == parse(recorded_json("cohere-text.json")).text
    assert response.id == "321d178c-2c12-44d3-ae42-2f5510f6b1cc"
    # The stream's response is what parsing its assembled answer gives.
    assert response == parse(response.raw)


def test_recorded_tool_call_stream() -> None:
    events, response = replay(recorded_chunks("cohere-tool-call.chunks.txt"))
    plan = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert plan == (
        "I will use the weather tool to find the weather in San Francisco and the city"
        "Attractions tool to find attractions in San Francisco."
    )
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [
        (0, "weather_e8p4pn45zt0t", "weather"),
        (1, "cityAttractions_pyxssbwnq9fq", "cityAttractions"),
    ]
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [c.parse_arguments() for c in finished] == [
        {"location": "San Francisco"},
        {"city": "San Francisco"},
    ]
    assert response.tool_calls == finished
    assert response.text == plan
    assert response.finish_reason == "tool_calls"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (119, 44)


def test_recorded_reasoning_stream() -> None:
    events, response = replay(recorded_chunks("cohere-reasoning.chunks.txt"))
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    assert thought.startswith("The user is asking for the sum of 2 and 2.")
    assert response.text == "The answer to 2 + 2 is 4."
    assert thought not in response.text
    content = response.raw["message"]["content"]
    assert [item["type"] for item in content] == ["thinking", "text"]
    assert content[0]["thinking"] == thought


def test_recorded_embedding() -> None:
    data = recorded_json("cohere-embedding.json")
    response = parse_embed_response(
        data, provider="cohere", model="embed-v4.0", latency=0.0, request_id=None, models=MODELS
    )
    assert response.embeddings == data["embeddings"]["float"]
    assert response.usage.input_tokens == 10
    assert "embeddings" not in response.raw
    assert response.raw["texts"] == ["sunny day at the beach", "rainy day in the city"]


# --------------------------------------------------------------------------- emulator shape


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value kinds, not the values themselves."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def stream_shape(events: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """The event types in order (repeats collapsed), and the shape of each type's first."""
    order: list[str] = []
    first: dict[str, Any] = {}
    for event in events:
        kind = event["type"]
        if not order or order[-1] != kind:
            order.append(kind)
        first.setdefault(kind, shape(event))
    return order, first


async def emulator_answer(path: str, body: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The emulator's answer to ``body``: the JSON, or the stream's event payloads."""
    from aiport._http import HttpClient, HttpTimeouts
    from aiport._sse import SSEDecoder

    async with Emulator(api_keys={API_KEY}) as emu:
        client = HttpClient()
        try:
            response = await client.request(
                "POST",
                emu.url + path,
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
                body=json.dumps(body).encode(),
                timeouts=HttpTimeouts(),
            )
        finally:
            await client.aclose()
    assert response.status == 200, response.body
    if not body.get("stream"):
        return json.loads(response.body), []
    decoder = SSEDecoder()
    sse = decoder.feed(response.body) + decoder.flush()
    for event in sse:  # each event is named after its type, as Cohere's are
        assert event.event == json.loads(event.data)["type"]
    return None, [json.loads(event.data) for event in sse]


TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


async def test_emulator_text_answer_has_the_recorded_shape() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Capital of France?"}]}
    data, _ = await emulator_answer("/v2/chat", body)
    assert shape(data) == shape(recorded_json("cohere-text.json"))


async def test_emulator_tool_call_answer_has_the_recorded_shape() -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS}
    data, _ = await emulator_answer("/v2/chat", body)
    assert shape(data) == shape(recorded_json("cohere-tool-call.json"))


async def test_emulator_text_stream_has_the_recorded_shape() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Capital of France?"}],
        "stream": True,
    }
    _, events = await emulator_answer("/v2/chat", body)
    assert stream_shape(events) == stream_shape(recorded_chunks("cohere-text.chunks.txt"))


async def test_emulator_tool_call_stream_has_the_recorded_shape() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "weather and city?"}],  # both tools
        "tools": [*TOOLS, {**TOOLS[0], "function": {**TOOLS[0]["function"], "name": "city"}}],
        "stream": True,
    }
    _, events = await emulator_answer("/v2/chat", body)
    assert stream_shape(events) == stream_shape(recorded_chunks("cohere-tool-call.chunks.txt"))


async def test_emulator_reasoning_stream_has_the_recorded_shape() -> None:
    body = {
        "model": "command-a-reasoning-08-2025",
        "messages": [{"role": "user", "content": "2+2?"}],
        "stream": True,
    }
    _, events = await emulator_answer("/v2/chat", body)
    assert stream_shape(events) == stream_shape(recorded_chunks("cohere-reasoning.chunks.txt"))


async def test_emulator_embedding_has_the_recorded_shape() -> None:
    body = {
        "model": "embed-v4.0",
        "texts": ["sunny day at the beach", "rainy day in the city"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    data, _ = await emulator_answer("/v2/embed", body)
    assert shape(data) == shape(recorded_json("cohere-embedding.json"))
