"""Ollama end to end: ProviderService -> the Ollama adapter -> real HTTP -> the emulator."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    StreamInterruptedError,
)
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ReasoningDeltaEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.ollama import OllamaProvider
from aiport.testing import Emulator, Fault
from tests.conftest import OPENAI_KEY

from .conftest import ollama_config

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
LONG = " ".join(f"word{i}" for i in range(30))


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


def get_time(timezone: str) -> str:
    """Current time in a timezone."""
    return timezone


class Answer(BaseModel):
    city: str
    temperature: float


async def collect(service: ProviderService, **kwargs: Any) -> list[Any]:
    return [event async for event in service.stream(**kwargs)]


def same_answer(streamed: ModelCompletionResponse, completed: ModelCompletionResponse) -> None:
    """Equal apart from what differs per request (latency, raw timings and timestamps)."""
    fields = {"latency", "raw", "attempts"}
    assert streamed.model_dump(exclude=fields) == completed.model_dump(exclude=fields)


# --------------------------------------------------------------------------- completion


async def test_complete_text(ollama_service: ProviderService, emulator: Emulator) -> None:
    response = await ollama_service.complete(model="ollama:llama3.2", messages="Hello there")
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "stop"
    assert response.provider == "ollama"
    assert response.model == "llama3.2"
    # 2 words + 3 per message; the answer is 4 tokens.
    assert response.usage == Usage(input_tokens=5, output_tokens=4, total_tokens=9)
    assert response.cost == 0.0  # a local model, priced 0 in the catalogue
    assert response.warnings == []
    request = emulator.requests[-1]
    assert request.path == "/api/chat"
    assert "authorization" not in request.headers
    assert request.body == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": False,
    }


async def test_sampling_settings_go_in_options(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    cut = await ollama_service.complete(
        model="ollama:llama3.2",
        messages=[Message.system("Be brief."), Message.user("Hello there")],
        max_tokens=2,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        provider_options={"options": {"num_ctx": 8192, "top_k": 20}, "keep_alive": "10m"},
    )
    assert cut.text == "You said:"
    assert cut.finish_reason == "length"
    body = emulator.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "num_predict": 2,
        "seed": 7,
        "num_ctx": 8192,
        "top_k": 20,
    }
    assert body["keep_alive"] == "10m"
    stopped = await ollama_service.complete(
        model="ollama:llama3.2", messages="Hello there", stop=["there"]
    )
    assert stopped.text == "You said: Hello"
    assert stopped.finish_reason == "stop"
    assert emulator.requests[-1].body["options"] == {"stop": ["there"]}


async def test_stream_equals_complete(ollama_service: ProviderService, emulator: Emulator) -> None:
    events = await collect(ollama_service, model="ollama:llama3.2", messages=LONG)
    request = emulator.requests[-1]
    assert request.body["stream"] is True
    assert request.headers["accept"] == "application/x-ndjson"
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert len(deltas) == 32  # "You said:" and the 30 words
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert isinstance(events[-1], StreamFinishEvent)
    streamed = events[-1].response
    assert "".join(deltas) == streamed.text
    assert usage == streamed.usage == Usage(input_tokens=33, output_tokens=32)
    completed = await ollama_service.complete(model="ollama:llama3.2", messages=LONG)
    same_answer(streamed, completed)


async def test_thinking_model_streams_reasoning(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    events = await collect(ollama_service, model="ollama:qwen3", messages="Hi you")
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent))
    assert reasoning == "Thinking about: Hi you"
    streamed = events[-1].response
    assert streamed.text == "You said: Hi you"
    assert streamed.raw["message"]["thinking"] == reasoning
    # eval_count covers the thinking (4 tokens) and the answer (4 tokens).
    assert streamed.usage.output_tokens == 8
    completed = await ollama_service.complete(model="ollama:qwen3", messages="Hi you")
    same_answer(streamed, completed)
    quiet = await ollama_service.complete(
        model="ollama:qwen3", messages="Hi you", provider_options={"think": False}
    )
    assert emulator.requests[-1].body["think"] is False
    assert "thinking" not in quiet.raw["message"]
    assert quiet.usage.output_tokens == 4


# --------------------------------------------------------------------------- tools


async def test_tool_round_trip(ollama_service: ProviderService, emulator: Emulator) -> None:
    tools = [get_weather, get_time]
    first = await ollama_service.complete(
        model="ollama:llama3.2", messages="get_weather and get_time", tools=tools
    )
    assert first.finish_reason == "tool_calls"
    assert first.raw_finish_reason == "stop"  # Ollama says stop even for tool calls
    weather, clock = first.tool_calls
    assert (weather.name, clock.name) == ("get_weather", "get_time")
    # Ollama sends arguments as an object; aiport gives them as JSON text.
    assert weather.parse_arguments() == {"city": "example", "unit": "example"}
    assert clock.arguments == '{"timezone":"example"}'
    assert weather.id.startswith("call_") and weather.id != clock.id
    sent_tool = emulator.requests[-1].body["tools"][0]
    assert sent_tool["type"] == "function"
    assert sent_tool["function"]["name"] == "get_weather"
    assert sent_tool["function"]["parameters"]["required"] == ["city"]

    history = [
        Message.user("get_weather and get_time"),
        first.message,
        Message.tool_result(weather.id, "sunny"),
        Message.tool_result(clock.id, "noon"),
    ]
    second = await ollama_service.complete(model="ollama:llama3.2", messages=history, tools=tools)
    assert second.text == "Tool results: sunny; noon"
    assert second.finish_reason == "stop"
    sent = emulator.requests[-1].body["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": weather.id,
                "function": {
                    "name": "get_weather",
                    "arguments": {"city": "example", "unit": "example"},
                },
            },
            {
                "id": clock.id,
                "function": {"name": "get_time", "arguments": {"timezone": "example"}},
            },
        ],
    }
    assert sent[2] == {
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": weather.id,
    }
    assert sent[3]["tool_name"] == "get_time"


async def test_stream_tool_calls_equal_complete(ollama_service: ProviderService) -> None:
    opts: dict[str, Any] = {
        "model": "ollama:llama3.2",
        "messages": "get_time please",
        "tools": [get_weather, get_time],
    }
    events = await collect(ollama_service, **opts)
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    streamed = events[-1].response
    assert finished == streamed.tool_calls
    assert [d.arguments_delta for d in deltas] == [c.arguments for c in streamed.tool_calls]
    assert [c.name for c in streamed.tool_calls] == ["get_time"]
    completed = await ollama_service.complete(**opts)
    assert streamed.finish_reason == completed.finish_reason == "tool_calls"
    assert streamed.usage == completed.usage
    # Call ids come from each request's bytes; names and arguments match.
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in completed.tool_calls
    ]


async def test_tool_choice_none_sends_no_tools(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    response = await ollama_service.complete(
        model="ollama:llama3.2", messages="get_time", tools=[get_time], tool_choice="none"
    )
    assert response.text == "You said: get_time"
    assert "tools" not in emulator.requests[-1].body
    assert response.warnings == []
    forced = await ollama_service.complete(
        model="ollama:llama3.2",
        messages="hi",
        tools=[get_weather, get_time],
        tool_choice="get_time",
    )
    assert [c.name for c in forced.tool_calls] == ["get_time"]
    assert [t["function"]["name"] for t in emulator.requests[-1].body["tools"]] == ["get_time"]
    assert any("cannot force a tool call" in w for w in forced.warnings)


# --------------------------------------------------------------------------- JSON, vision


async def test_json_output_with_schema(ollama_service: ProviderService, emulator: Emulator) -> None:
    response = await ollama_service.complete(
        model="ollama:llama3.2", messages="Weather in Paris?", response_format=Answer
    )
    schema = emulator.requests[-1].body["format"]
    assert schema["type"] == "object"
    assert schema["required"] == ["city", "temperature"]
    parsed = response.parse(Answer)
    assert parsed == Answer(city="example", temperature=1.5)
    plain = await ollama_service.complete(
        model="ollama:llama3.2", messages="Weather in Paris?", response_format="json"
    )
    assert emulator.requests[-1].body["format"] == "json"
    assert json.loads(plain.text) == {"echo": "Weather in Paris?"}


async def test_vision_sends_base64_images(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    message = Message.user("What is this?", ImagePart(data=PNG, media_type="image/png"))
    response = await ollama_service.complete(model="ollama:llava", messages=[message])
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 3 + 85
    sent = emulator.requests[-1].body["messages"][0]
    assert sent == {
        "role": "user",
        "content": "What is this?",
        "images": [base64.b64encode(PNG).decode()],
    }


async def test_image_urls_are_not_sent(ollama_service: ProviderService, emulator: Emulator) -> None:
    message = Message.user("What is this?", ImagePart(url="https://example.com/cat.png"))
    response = await ollama_service.complete(model="ollama:llava", messages=[message])
    assert response.text == "You said: What is this?"
    assert "images" not in emulator.requests[-1].body["messages"][0]
    assert any("image given by URL was not sent" in w for w in response.warnings)


# --------------------------------------------------------------------------- embeddings


async def test_embeddings_in_order(ollama_service: ProviderService, emulator: Emulator) -> None:
    texts = [f"text number {i}" for i in range(12)]
    response = await ollama_service.embed(model="ollama:nomic-embed-text", input=texts)
    assert emulator.requests[-1].path == "/api/embed"
    assert emulator.requests[-1].body == {"model": "nomic-embed-text", "input": texts}
    assert len(response.embeddings) == 12
    assert all(len(v) == 768 for v in response.embeddings)
    assert math.fsum(x * x for x in response.embeddings[0]) == pytest.approx(1.0)
    assert response.usage.input_tokens == 12 * 3
    assert response.cost == 0.0
    alone = await ollama_service.embed(model="ollama:nomic-embed-text", input=texts[7])
    assert alone.embeddings[0] == response.embeddings[7]
    short = await ollama_service.embed(
        model="ollama:nomic-embed-text", input="hello", dimensions=64
    )
    assert emulator.requests[-1].body["dimensions"] == 64
    assert len(short.embeddings[0]) == 64


# --------------------------------------------------------------------------- errors


async def test_model_not_found_says_pull(ollama_service: ProviderService) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await ollama_service.complete(model="ollama:nosuchmodel", messages="Hi")
    error = caught.value
    assert error.status_code == 404
    assert error.reason == "model_not_found"
    assert error.provider == "ollama"
    assert error.model == "nosuchmodel"
    assert "model 'nosuchmodel' not found" in error.message
    assert "ollama pull nosuchmodel" in error.message
    with pytest.raises(InvalidRequestError) as embed_error:
        await ollama_service.embed(model="ollama:nosuchmodel", input="Hi")
    assert embed_error.value.reason == "model_not_found"
    assert "ollama pull nosuchmodel" in embed_error.value.message


async def test_server_error_is_retryable(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    emulator.add_fault(Fault.status(500), path="/api/chat")
    with pytest.raises(ProviderAPIError) as caught:
        await ollama_service.complete(model="ollama:llama3.2", messages="Hi")
    assert caught.value.status_code == 500
    assert caught.value.retryable
    assert caught.value.message == "an error was encountered while running the model"


async def test_busy_server_honours_retry_after(
    emulator: Emulator,
) -> None:
    config = ollama_config(emulator)
    config["retry"] = {"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.05}
    emulator.add_fault(Fault.status(503, retry_after="0"), path="/api/chat")
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model="ollama:llama3.2", messages="Hi")
    assert response.text == "You said: Hi"
    assert [r.fault for r in emulator.requests] == ["503", None]


async def test_error_inside_a_stream(ollama_service: ProviderService, emulator: Emulator) -> None:
    emulator.add_fault(Fault.stream_error(after_events=2, message="out of memory"))
    delivered: list[str] = []

    async def consume() -> None:
        async for event in ollama_service.stream(model="ollama:llama3.2", messages="Hello there"):
            if isinstance(event, TextDeltaEvent):
                delivered.append(event.text)

    with pytest.raises(ProviderAPIError) as caught:
        await consume()
    assert delivered == ["You", " said:"]
    assert "out of memory" in caught.value.message
    assert caught.value.status_code is None  # it came inside a 200


async def test_cut_stream_is_interrupted(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    emulator.add_fault(Fault.cut_stream(after_events=2))
    with pytest.raises(StreamInterruptedError) as caught:
        async for _ in ollama_service.stream(model="ollama:llama3.2", messages="Hello there"):
            pass
    assert caught.value.partial_text == "You said:"


async def test_malformed_line_is_skipped(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    emulator.add_fault(Fault.malformed_json())
    events = await collect(ollama_service, model="ollama:llama3.2", messages="Hello there")
    response = events[-1].response
    # 5 lines (4 tokens, done); the third is broken: one token is lost, and said so.
    assert response.text == "You said: there"
    assert response.warnings == ["skipped a malformed stream line from ollama"]


async def test_context_is_truncated_silently_by_default(
    ollama_service: ProviderService, emulator: Emulator
) -> None:
    history = [
        Message.system("Be brief."),
        Message.user(LONG),
        Message.assistant("ok"),
        Message.user("Hello there"),
    ]
    small = {"options": {"num_ctx": 20}}
    response = await ollama_service.complete(
        model="ollama:llama3.2", messages=history, provider_options=small
    )
    # What Ollama does: the oldest non-system messages are dropped until the prompt fits
    # (system 6 + "ok" 4 + "Hello there" 5 tokens).
    assert response.text == "You said: Hello there"
    assert response.usage.input_tokens == 15
    with pytest.raises(ContextLengthExceededError) as caught:
        await ollama_service.complete(
            model="ollama:llama3.2",
            messages=history,
            provider_options={**small, "truncate": False},
        )
    assert caught.value.status_code == 400
    assert "exceeds the context length" in caught.value.message


async def test_context_length_fault(ollama_service: ProviderService, emulator: Emulator) -> None:
    emulator.add_fault(Fault.context_length())
    with pytest.raises(ContextLengthExceededError):
        await ollama_service.complete(model="ollama:llama3.2", messages="Hi")


async def test_capability_refused_by_the_server(
    make_ollama: Callable[..., OllamaProvider],
) -> None:
    # gemma3 has no tool support; a bare adapter (no catalogue preflight) asks anyway.
    provider = make_ollama()
    with pytest.raises(ProviderCapabilityError) as caught:
        await provider.complete(
            ModelCompletionOptions(model="gemma3", messages="hi", tools=[get_time])
        )
    assert caught.value.status_code == 400
    assert "does not support tools" in caught.value.message


async def test_hosted_ollama_gets_a_bearer_key(emulator: Emulator) -> None:
    config = ollama_config(emulator, api_key=OPENAI_KEY)
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model="ollama:llama3.2", messages="Hi")
    assert response.text == "You said: Hi"
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    wrong = "sk-wrong-key-for-ollama-0123456789"
    async with ProviderService(ollama_config(emulator, api_key=wrong), env={}) as service:
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model="ollama:llama3.2", messages="Hi")
    assert caught.value.status_code == 401
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)


async def test_list_local_models(make_ollama: Callable[..., OllamaProvider]) -> None:
    models = await make_ollama(name="local").list_local_models()
    ids = [m.id for m in models]
    assert "llama3.2:latest" in ids and "nomic-embed-text:latest" in ids
    llama = models[ids.index("llama3.2:latest")]
    assert llama.provider == "local"
    assert llama.description == "llama 3.2B Q4_K_M"
    assert llama.cost(Usage(input_tokens=10, output_tokens=10)) == 0.0


async def test_ollama_host_variable_is_the_default_base_url(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{emulator.port}")
    config = {"retry": {"max_attempts": 1}, "providers": {"local": {"type": "ollama"}}}
    # No env mapping: the process environment, as Ollama's own clients read it.
    async with ProviderService(config) as service:
        response = await service.complete(model="local:llama3.2", messages="Hi")
    assert response.text == "You said: Hi"
    assert response.provider == "local"


async def test_thinking_refused_by_a_model_without_it(
    make_ollama: Callable[..., OllamaProvider],
) -> None:
    provider = make_ollama()
    with pytest.raises(ProviderCapabilityError) as caught:
        await provider.complete(
            ModelCompletionOptions(
                model="llama3.2", messages="hi", provider_options={"think": True}
            )
        )
    assert caught.value.message == '"llama3.2" does not support thinking'


async def test_long_embedding_input_is_truncated_unless_refused(
    ollama_service: ProviderService,
) -> None:
    small = {"options": {"num_ctx": 4}}
    cut = await ollama_service.embed(
        model="ollama:nomic-embed-text", input="one two three four five six", provider_options=small
    )
    # Ollama embeds the first num_ctx tokens: the vector of "one two three four".
    assert cut.usage.input_tokens == 4
    first = await ollama_service.embed(
        model="ollama:nomic-embed-text", input="one two three four", provider_options=small
    )
    assert cut.embeddings == first.embeddings
    with pytest.raises(ContextLengthExceededError):
        await ollama_service.embed(
            model="ollama:nomic-embed-text",
            input="one two three four five six",
            provider_options={**small, "truncate": False},
        )
