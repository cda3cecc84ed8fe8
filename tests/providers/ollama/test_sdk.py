"""The official ``ollama`` SDK, as a reference parser, accepts what the emulator sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiport.testing import Emulator, Fault

ollama = pytest.importorskip("ollama")


@pytest.fixture
async def client(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)  # the SDK would send it
    sdk = ollama.AsyncClient(host=emulator.ollama_base_url)
    yield sdk
    await sdk._client.aclose()


async def test_chat(client: Any) -> None:
    response = await client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert isinstance(response, ollama.ChatResponse)
    assert response.message.role == "assistant"
    assert response.message.content == "You said: Hello there"
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.prompt_eval_count == 5
    assert response.eval_count == 4
    assert response.total_duration and response.total_duration > 0


async def test_streaming_chat_with_thinking(client: Any) -> None:
    parts = [
        part
        async for part in await client.chat(
            model="qwen3", messages=[{"role": "user", "content": "Hi you"}], stream=True
        )
    ]
    assert all(isinstance(p, ollama.ChatResponse) for p in parts)
    assert "".join(p.message.thinking or "" for p in parts) == "Thinking about: Hi you"
    assert "".join(p.message.content or "" for p in parts) == "You said: Hi you"
    assert [p.done for p in parts].count(True) == 1
    assert parts[-1].done and parts[-1].eval_count == 8


async def test_tool_calls(client: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    response = await client.chat(
        model="llama3.2",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[tool],
    )
    [call] = response.message.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "example"}


async def test_structured_output(client: Any) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response = await client.chat(
        model="llama3.2", messages=[{"role": "user", "content": "count"}], format=schema
    )
    assert response.message.content == '{"n":1}'


async def test_embed_and_list(client: Any) -> None:
    response = await client.embed(model="mxbai-embed-large", input=["a b", "c"])
    assert isinstance(response, ollama.EmbedResponse)
    assert [len(v) for v in response.embeddings] == [1024, 1024]
    assert response.prompt_eval_count == 3
    listed = await client.list()
    assert "llama3.2:latest" in [m.model for m in listed.models]
    assert listed.models[0].details.family == "llama"


async def test_errors(client: Any, emulator: Emulator) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        await client.chat(model="nosuch", messages=[{"role": "user", "content": "x"}])
    assert missing.value.status_code == 404
    assert missing.value.error == "model 'nosuch' not found"
    emulator.add_fault(Fault.stream_error(after_events=1, message="runner crashed"))
    with pytest.raises(ollama.ResponseError) as mid_stream:
        async for _ in await client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "Hello there"}], stream=True
        ):
            pass
    assert mid_stream.value.error == "runner crashed"
