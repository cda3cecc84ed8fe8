"""End to end through ProviderService, over real HTTP against the emulator's Cohere API."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._errors import InvalidRequestError, ProviderRateLimitError
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionResponse,
    ReasoningDeltaEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.cohere import CohereProvider, RerankResult
from aiport.testing import Emulator, Fault

from .conftest import API_KEY

MODEL = "cohere:command-a-03-2025"
PNG = b"\x89PNG\r\n\x1a\n" + b"rest of the image"


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


def get_time(timezone: str) -> str:
    """Current time in a timezone."""
    return timezone


class Answer(BaseModel):
    city: str
    temperature: float


def same_answer(streamed: ModelCompletionResponse, completed: ModelCompletionResponse) -> None:
    """Equal apart from what differs per request (ids, latency, request id, raw, attempts)."""
    fields = {"id", "latency", "request_id", "raw", "attempts"}
    assert streamed.model_dump(exclude=fields) == completed.model_dump(exclude=fields)


async def collect(service: ProviderService, **kwargs: Any) -> list[Any]:
    return [event async for event in service.stream(**kwargs)]


def last_body(emu: Emulator) -> dict[str, Any]:
    body = emu.requests[-1].body
    assert isinstance(body, dict)
    return body


def cohere(service: ProviderService) -> CohereProvider:
    return service.get_provider("cohere").unwrap(CohereProvider)


# --------------------------------------------------------------------------- completion


async def test_complete_text_billed_usage_and_cost(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(model=MODEL, messages="Hello there")
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "COMPLETE"
    assert response.provider == "cohere"
    assert response.model == "command-a-03-2025"  # Cohere's answer names none: the one asked
    assert uuid.UUID(response.id)
    assert re.fullmatch(r"[0-9a-f]{32}", response.request_id or "")
    # Billed units (the caller's own tokens), not `tokens` (which add Cohere's template).
    assert response.usage == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert response.raw["usage"]["tokens"] == {"input_tokens": 500, "output_tokens": 7}
    assert response.cost == pytest.approx((5 * 2.50 + 4 * 10.00) / 1e6)
    request = emu.requests[-1]
    assert request.path == "/v2/chat"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hello there"}],
    }


async def test_options_use_cohere_names(service: ProviderService, emu: Emulator) -> None:
    cut = await service.complete(
        model=MODEL, messages="Hello there", max_tokens=2, temperature=0.3, top_p=0.9, seed=4
    )
    assert cut.text == "You said:"
    assert cut.finish_reason == "length"
    assert cut.raw_finish_reason == "MAX_TOKENS"
    body = last_body(emu)
    assert body["max_tokens"] == 2
    assert body["p"] == 0.9
    assert "top_p" not in body
    assert body["seed"] == 4
    assert body["temperature"] == 0.3
    stopped = await service.complete(model=MODEL, messages="Hello there", stop=["there"])
    assert stopped.text == "You said: Hello"
    assert stopped.finish_reason == "stop"
    assert stopped.raw_finish_reason == "STOP_SEQUENCE"
    assert last_body(emu)["stop_sequences"] == ["there"]


async def test_what_cohere_lacks_becomes_warnings(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=MODEL,
        messages=[Message(role="user", content="Hi", name="alice")],
        top_p=1.0,
        metadata={"run": "1"},
        stop=["#1", "#2", "#3", "#4", "#5", "#6"],
    )
    assert response.text == "You said: Hi"
    warnings = " | ".join(response.warnings)
    assert "name 'alice' was not sent" in warnings
    assert "between 0.01 and 0.99: 0.99 was sent" in warnings
    assert "metadata was not sent" in warnings
    assert "at most 5 stop sequences; 1 were not sent" in warnings
    body = last_body(emu)
    assert body["p"] == 0.99
    assert body["stop_sequences"] == ["#1", "#2", "#3", "#4", "#5"]
    assert "metadata" not in body


# --------------------------------------------------------------------------- streams


async def test_stream_equals_complete(service: ProviderService, emu: Emulator) -> None:
    events = await collect(service, model=MODEL, messages="Hello there")
    assert last_body(emu)["stream"] is True
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert deltas == ["You", " said:", " Hello", " there"]
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert isinstance(events[-1], StreamFinishEvent)
    streamed = events[-1].response
    assert usage == streamed.usage
    completed = await service.complete(model=MODEL, messages="Hello there")
    same_answer(streamed, completed)


async def test_stream_tool_calls_equal_complete(service: ProviderService) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "messages": "get_weather and get_time",
        "tools": [get_weather, get_time],
    }
    events = await collect(service, **kwargs)
    streamed = events[-1].response
    plan = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert plan == "I will use the get_weather tool and the get_time tool."
    assert streamed.text == plan
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert {d.index for d in deltas} == {0, 1}
    for index, call in enumerate(streamed.tool_calls):
        pieces = [d.arguments_delta for d in deltas if d.index == index]
        assert "".join(pieces) == call.arguments
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert finished == streamed.tool_calls
    completed = await service.complete(**kwargs)
    assert streamed.finish_reason == completed.finish_reason == "tool_calls"
    assert streamed.usage == completed.usage
    assert streamed.text == completed.text
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in completed.tool_calls
    ]


async def test_reasoning_streams_apart_from_the_text(service: ProviderService) -> None:
    kwargs: dict[str, Any] = {"model": "cohere:command-a-reasoning-08-2025", "messages": "2+2?"}
    events = await collect(service, **kwargs)
    thought = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    assert thought == "Thinking about: 2+2?"
    streamed = events[-1].response
    assert streamed.text == "You said: 2+2?"
    completed = await service.complete(**kwargs)
    same_answer(streamed, completed)
    assert completed.raw["message"]["content"][0] == {
        "type": "thinking",
        "thinking": "Thinking about: 2+2?",
    }
    # Thinking tokens are billed output: 3 thinking + 3 answer tokens.
    assert completed.usage.output_tokens == 6
    plain = await service.complete(
        model="cohere:command-a-reasoning-08-2025",
        messages="2+2?",
        provider_options={"thinking": {"type": "disabled"}},
    )
    assert plain.text == "You said: 2+2?"
    assert [item["type"] for item in plain.raw["message"]["content"]] == ["text"]
    assert plain.usage.output_tokens == 3


# --------------------------------------------------------------------------- tools


async def test_tool_round_trip_keeps_the_tool_plan(service: ProviderService, emu: Emulator) -> None:
    first = await service.complete(
        model=MODEL, messages="Weather in Paris?", tools=[get_weather], tool_choice="required"
    )
    assert last_body(emu)["tool_choice"] == "REQUIRED"
    assert first.finish_reason == "tool_calls"
    assert first.raw_finish_reason == "TOOL_CALL"
    assert first.text == "I will use the get_weather tool."
    [call] = first.tool_calls
    assert re.fullmatch(r"get_weather_[0-9a-z]{12}", call.id)
    assert set(call.parse_arguments()) == {"city", "unit"}
    history = [
        Message.user("Weather in Paris?"),
        first.message,
        Message.tool_result(call.id, "18C and sunny"),
    ]
    final = await service.complete(model=MODEL, messages=history, tools=[get_weather])
    assert final.text == "Tool results: 18C and sunny"
    assert final.finish_reason == "stop"
    sent = last_body(emu)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "tool_plan": "I will use the get_weather tool.",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.arguments},
            }
        ],
    }
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


async def test_tool_choice_forms(service: ProviderService, emu: Emulator) -> None:
    tools = [get_weather, get_time]
    forced = await service.complete(
        model=MODEL, messages="get_weather", tools=tools, tool_choice="get_time"
    )
    # Cohere cannot name a tool: only that tool is offered, and a call is required.
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    body = last_body(emu)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"]
    assert body["tool_choice"] == "REQUIRED"
    none = await service.complete(
        model=MODEL, messages="get_weather", tools=tools, tool_choice="none"
    )
    assert none.tool_calls == []
    assert last_body(emu)["tool_choice"] == "NONE"
    auto = await service.complete(model=MODEL, messages="get_time", tools=tools, tool_choice="auto")
    assert [c.name for c in auto.tool_calls] == ["get_time"]
    assert "tool_choice" not in last_body(emu)


async def test_strict_tools_and_parallel_calls(service: ProviderService, emu: Emulator) -> None:
    strict = {"name": "get_time", "parameters": {"type": "object"}, "strict": True}
    response = await service.complete(
        model=MODEL, messages="get_time", tools=[strict], parallel_tool_calls=False
    )
    assert last_body(emu)["strict_tools"] is True
    assert any("cannot disable parallel tool calls" in w for w in response.warnings)


# --------------------------------------------------------------------------- JSON output


async def test_json_object_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=MODEL, messages="Answer in JSON", response_format="json"
    )
    assert json.loads(response.text) == {"echo": "Answer in JSON"}
    assert last_body(emu)["response_format"] == {"type": "json_object"}


async def test_json_schema_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(model=MODEL, messages="Weather", response_format=Answer)
    assert response.parse(Answer) == Answer(city="example", temperature=1.5)
    fmt = last_body(emu)["response_format"]
    assert fmt["type"] == "json_object"
    assert fmt["json_schema"]["required"] == ["city", "temperature"]


# --------------------------------------------------------------------------- vision


async def test_image_input(service: ProviderService, emu: Emulator) -> None:
    message = Message.user(
        "What is this?", ImagePart(data=PNG, media_type="image/png", detail="low")
    )
    response = await service.complete(model="cohere:command-a-vision-07-2025", messages=[message])
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 85 + 3
    parts = last_body(emu)["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["detail"] == "low"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


async def test_a_text_model_refuses_images(provider: CohereProvider) -> None:
    from aiport._types import ModelCompletionOptions

    message = Message.user("What?", ImagePart(url="https://example.com/cat.png"))
    # An uncatalogued model (no preflight): the API itself refuses.
    with pytest.raises(InvalidRequestError) as info:
        await provider.complete(ModelCompletionOptions(model="command-x", messages=[message]))
    assert "does not support image inputs" in info.value.message


# --------------------------------------------------------------------------- embeddings


async def test_embeddings_with_an_input_type(service: ProviderService, emu: Emulator) -> None:
    documents = await service.embed(model="cohere:embed-v4.0", input=["sunny day", "rain"])
    assert len(documents.embeddings) == 2
    assert {len(v) for v in documents.embeddings} == {1536}
    for vector in documents.embeddings:
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert documents.usage.input_tokens == 3
    assert documents.cost == pytest.approx(3 * 0.12 / 1e6)
    assert "embeddings" not in documents.raw
    assert documents.raw["response_type"] == "embeddings_by_type"
    assert emu.requests[-1].path == "/v2/embed"
    assert last_body(emu) == {
        "model": "embed-v4.0",
        "texts": ["sunny day", "rain"],
        "input_type": "search_document",  # the documented default
        "embedding_types": ["float"],
    }
    queries = await service.embed(
        model="cohere:embed-v4.0",
        input=["sunny day"],
        provider_options={"input_type": "search_query"},
    )
    assert last_body(emu)["input_type"] == "search_query"
    assert queries.embeddings[0] != documents.embeddings[0]


async def test_embedding_dimensions(service: ProviderService, emu: Emulator) -> None:
    response = await service.embed(model="cohere:embed-v4.0", input="x", dimensions=256)
    assert [len(v) for v in response.embeddings] == [256]
    assert last_body(emu)["output_dimension"] == 256
    with pytest.raises(InvalidRequestError) as info:
        await service.embed(model="cohere:embed-english-v3.0", input="x", dimensions=256)
    assert "output_dimension" in info.value.message


async def test_v3_models_require_an_input_type(service: ProviderService) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await service.embed(
            model="cohere:embed-english-v3.0", input="x", provider_options={"input_type": None}
        )
    assert "input_type must be provided" in info.value.message


async def test_default_input_type_is_configurable(make_provider: Any, emu: Emulator) -> None:
    from aiport._types import ModelEmbeddingOptions

    provider = make_provider(default_input_type="clustering")
    await provider.embed(ModelEmbeddingOptions(model="embed-english-v3.0", input="x"))
    assert last_body(emu)["input_type"] == "clustering"
    assert last_body(emu)["texts"] == ["x"]


# --------------------------------------------------------------------------- rerank


DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "France is a country in Europe.",
    "Bananas are yellow.",
]


async def test_rerank_through_the_service(service: ProviderService, emu: Emulator) -> None:
    ranked = await cohere(service).rerank("capital of France", DOCUMENTS, top_n=3)
    assert [r.index for r in ranked.results] == [1, 0, 2]
    assert ranked.results[0] == RerankResult(
        index=1, relevance_score=ranked.results[0].relevance_score, document=DOCUMENTS[1]
    )
    scores = [r.relevance_score for r in ranked.results]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores)
    assert ranked.model == "rerank-v3.5"
    assert ranked.provider == "cohere"
    assert ranked.search_units == 1
    assert ranked.request_id
    assert emu.requests[-1].path == "/v2/rerank"
    assert last_body(emu) == {
        "model": "rerank-v3.5",
        "query": "capital of France",
        "documents": DOCUMENTS,
        "top_n": 3,
    }


async def test_rerank_every_document_without_top_n(provider: CohereProvider) -> None:
    ranked = await provider.rerank("bananas", DOCUMENTS, model="rerank-english-v3.0")
    assert sorted(r.index for r in ranked.results) == [0, 1, 2, 3]
    assert ranked.results[0].document == "Bananas are yellow."


async def test_rerank_refuses_bad_arguments_before_sending(
    provider: CohereProvider, emu: Emulator
) -> None:
    with pytest.raises(InvalidRequestError):
        await provider.rerank("q", [])
    with pytest.raises(InvalidRequestError):
        await provider.rerank("q", ["a"], top_n=0)
    assert emu.requests == []


async def test_rerank_errors_are_typed(provider: CohereProvider, emu: Emulator) -> None:
    emu.add_fault(Fault.status(429, retry_after="4"), path="/v2/rerank")
    with pytest.raises(ProviderRateLimitError) as info:
        await provider.rerank("q", ["a"])
    assert info.value.retry_after == 4.0
    assert info.value.model == "rerank-v3.5"
