"""End to end through ProviderService, over real HTTP against the emulator's Mistral API."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._errors import InvalidRequestError
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionResponse,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.mistral import MistralProvider
from aiport.testing import Emulator

from .conftest import API_KEY

MODEL = "mistral:mistral-small-latest"
CHAT_PATH = "/mistral/v1/chat/completions"
PNG = b"\x89PNG\r\n\x1a\n" + b"rest of the image"
MISTRAL_ID = re.compile(r"^[A-Za-z0-9]{9}$")


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


# --------------------------------------------------------------------------- completion


async def test_complete_text_usage_and_cost(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(model=MODEL, messages="Hello there")
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "stop"
    assert response.provider == "mistral"
    assert response.model == "mistral-small-latest"
    assert re.fullmatch(r"[0-9a-f]{32}", response.id)
    assert re.fullmatch(r"[0-9a-f]{32}", response.request_id or "")
    # 2 words + 3 per message in; 4 tokens out; priced as mistral-small-2506 (an alias).
    assert response.usage == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert response.cost == pytest.approx((5 * 0.10 + 4 * 0.30) / 1e6)
    assert response.warnings == []
    request = emu.requests[-1]
    assert request.path == CHAT_PATH
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "Hello there"}],
    }


async def test_options_use_mistral_names(service: ProviderService, emu: Emulator) -> None:
    cut = await service.complete(
        model=MODEL,
        messages="Hello there",
        max_tokens=2,
        temperature=0.3,
        top_p=0.9,
        seed=42,
        metadata={"run": "7"},
    )
    assert cut.text == "You said:"
    assert cut.finish_reason == "length"
    body = last_body(emu)
    assert body["max_tokens"] == 2
    assert body["random_seed"] == 42
    assert "seed" not in body
    assert "max_completion_tokens" not in body
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["metadata"] == {"run": "7"}
    stopped = await service.complete(model=MODEL, messages="Hello there", stop="there")
    assert stopped.text == "You said: Hello"
    assert stopped.finish_reason == "stop"
    assert last_body(emu)["stop"] == ["there"]


async def test_developer_messages_become_system_messages(
    service: ProviderService, emu: Emulator
) -> None:
    await service.complete(
        model=MODEL,
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
    )
    assert last_body(emu)["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_unsupported_settings_become_warnings(
    service: ProviderService, emu: Emulator
) -> None:
    response = await service.complete(
        model=MODEL,
        messages=[
            Message(role="user", content="Hi", name="alice"),
        ],
    )
    assert response.text == "You said: Hi"
    assert any("name 'alice' was not sent" in w for w in response.warnings)
    assert "name" not in last_body(emu)["messages"][0]


async def test_safe_prompt_setting(
    make_provider: Callable[..., MistralProvider], emu: Emulator
) -> None:
    from aiport._types import ModelCompletionOptions

    provider = make_provider(safe_prompt=True)
    await provider.complete(ModelCompletionOptions(model="mistral-small-latest", messages="Hi"))
    assert last_body(emu)["safe_prompt"] is True
    # A call's provider_options win over the provider's default.
    options = ModelCompletionOptions(
        model="mistral-small-latest", messages="Hi", provider_options={"safe_prompt": False}
    )
    await provider.complete(options)
    assert last_body(emu)["safe_prompt"] is False


# --------------------------------------------------------------------------- streams


async def test_stream_equals_complete(service: ProviderService, emu: Emulator) -> None:
    events = await collect(service, model=MODEL, messages="Hello there")
    body = last_body(emu)
    assert body["stream"] is True
    assert "stream_options" not in body  # Mistral refuses it (422)
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert deltas == ["You", " said:", " Hello", " there"]
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert isinstance(events[-1], StreamFinishEvent)
    streamed = events[-1].response
    assert "".join(deltas) == streamed.text
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
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert {d.index for d in deltas} == {0, 1}
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert finished == streamed.tool_calls
    assert [c.name for c in streamed.tool_calls] == ["get_weather", "get_time"]
    assert streamed.finish_reason == "tool_calls"
    completed = await service.complete(**kwargs)
    assert completed.finish_reason == "tool_calls"
    assert streamed.usage == completed.usage
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in completed.tool_calls
    ]


# --------------------------------------------------------------------------- tools


async def test_tool_round_trip(service: ProviderService, emu: Emulator) -> None:
    first = await service.complete(
        model=MODEL, messages="Weather in Paris?", tools=[get_weather], tool_choice="required"
    )
    assert last_body(emu)["tool_choice"] == "any"  # Mistral's name for "required"
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert MISTRAL_ID.match(call.id)
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
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "18C and sunny",
        "name": "get_weather",
    }


async def test_tool_call_ids_of_other_providers_are_mapped(
    service: ProviderService, emu: Emulator
) -> None:
    # A history produced by OpenAI: its ids would be refused by Mistral (400).
    openai_id = "call_Xy12AbCdEfGhIjKlMnOpQrSt"
    history = [
        Message.user("Weather in Paris?"),
        Message.assistant(
            tool_calls=[ToolCall(id=openai_id, name="get_weather", arguments='{"city":"Paris"}')]
        ),
        Message.tool_result(openai_id, "18C"),
    ]
    final = await service.complete(model=MODEL, messages=history, tools=[get_weather])
    assert final.text == "Tool results: 18C"
    sent = last_body(emu)["messages"]
    mapped = sent[1]["tool_calls"][0]["id"]
    assert MISTRAL_ID.match(mapped)
    assert sent[2]["tool_call_id"] == mapped


async def test_named_tool_choice_and_parallel_calls(
    service: ProviderService, emu: Emulator
) -> None:
    forced = await service.complete(
        model=MODEL, messages="get_weather", tools=[get_weather, get_time], tool_choice="get_time"
    )
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    assert last_body(emu)["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    single = await service.complete(
        model=MODEL,
        messages="get_weather and get_time",
        tools=[get_weather, get_time],
        parallel_tool_calls=False,
    )
    assert [c.name for c in single.tool_calls] == ["get_weather"]
    assert last_body(emu)["parallel_tool_calls"] is False


# --------------------------------------------------------------------------- JSON output


async def test_json_object_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=MODEL, messages="Answer in JSON", response_format="json"
    )
    assert json.loads(response.text) == {"echo": "Answer in JSON"}
    assert last_body(emu)["response_format"] == {"type": "json_object"}


async def test_json_schema_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model=MODEL, messages="Weather in Paris", response_format=Answer
    )
    answer = response.parse(Answer)
    assert answer == Answer(city="example", temperature=1.5)
    fmt = last_body(emu)["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["city", "temperature"]


# --------------------------------------------------------------------------- vision


async def test_image_input(service: ProviderService, emu: Emulator) -> None:
    message = Message.user("What is this?", ImagePart(data=PNG, media_type="image/png"))
    response = await service.complete(model=MODEL, messages=[message])
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 85 + 3
    parts = last_body(emu)["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


# --------------------------------------------------------------------------- prefill


async def test_prefill_returns_only_the_continuation(
    service: ProviderService, emu: Emulator
) -> None:
    history = [Message.user("Hello there"), Message.assistant("You said:")]
    response = await service.complete(model=MODEL, messages=history)
    # Mistral repeats the prefix; the adapter removes it, as Anthropic never sends it.
    assert response.raw["choices"][0]["message"]["content"] == "You said: Hello there"
    assert response.text == " Hello there"
    assert last_body(emu)["messages"][-1] == {
        "role": "assistant",
        "content": "You said:",
        "prefix": True,
    }
    events = await collect(service, model=MODEL, messages=history)
    deltas = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert deltas == " Hello there"
    same_answer(events[-1].response, response)


def test_the_adapter_declares_prefill_support() -> None:
    assert MistralProvider.supports_prefill


# --------------------------------------------------------------------------- embeddings


async def test_embeddings(service: ProviderService, emu: Emulator) -> None:
    response = await service.embed(model="mistral:mistral-embed", input=["sunny day", "rain"])
    assert response.provider == "mistral"
    assert response.model == "mistral-embed"
    assert len(response.embeddings) == 2
    assert {len(v) for v in response.embeddings} == {1024}
    for vector in response.embeddings:
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert response.embeddings[0] != response.embeddings[1]
    assert response.usage.input_tokens == 3
    assert response.cost == pytest.approx(3 * 0.10 / 1e6)
    assert emu.requests[-1].path == "/mistral/v1/embeddings"
    assert last_body(emu) == {"model": "mistral-embed", "input": ["sunny day", "rain"]}


async def test_embedding_dimensions(service: ProviderService, emu: Emulator) -> None:
    response = await service.embed(
        model="mistral:codestral-embed", input="def f(): pass", dimensions=256
    )
    assert [len(v) for v in response.embeddings] == [256]
    assert last_body(emu)["output_dimension"] == 256
    # mistral-embed has one size: Mistral refuses output_dimension for it.
    with pytest.raises(InvalidRequestError) as info:
        await service.embed(model="mistral:mistral-embed", input="x", dimensions=256)
    assert info.value.status_code == 400
    assert "output_dimension" in info.value.message


async def test_a_broken_stream_is_continued_with_a_prefix(
    service: ProviderService, emu: Emulator
) -> None:
    from aiport.testing import Fault

    emu.add_fault(Fault.cut_stream(after_events=3), path=CHAT_PATH)
    events = [
        event async for event in service.stream(model=MODEL, messages="Hello there", recovery=True)
    ]
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == "You said: Hello there"  # nothing delivered twice, nothing lost
    final = events[-1].response
    assert final.text == "You said: Hello there"
    assert any("recovered" in w for w in final.warnings)
    # The second request continued the delivered text instead of starting over.
    assert emu.requests[-1].body["messages"][-1] == {
        "role": "assistant",
        "content": "You said:",
        "prefix": True,
    }
