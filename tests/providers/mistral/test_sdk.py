"""The official ``mistralai`` SDK, pointed at the emulator, parses what it answers.

The SDK is a reference parser only (never imported by aiport itself): if its response
types accept the emulator's chat, stream, embeddings and error bodies, the emulator is
shaped like Mistral's API, and the adapter tests against it mean something.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from mistralai.client import Mistral
from mistralai.client.errors import HTTPValidationError, SDKError

from aiport.testing import Emulator

from .conftest import API_KEY

MODEL = "mistral-small-latest"
WEATHER = {
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


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[Mistral]:
    # The SDK appends /v1/... to its server URL.
    sdk = Mistral(api_key=API_KEY, server_url=emu.url + "/mistral")
    async with sdk:
        yield sdk


async def test_sdk_parses_a_completion(client: Mistral) -> None:
    response = await client.chat.complete_async(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}], random_seed=1
    )
    assert response.choices[0].message is not None
    assert response.choices[0].message.content == "You said: Hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.prompt_tokens == 5
    assert response.usage.completion_tokens == 4
    assert response.model == MODEL


async def test_sdk_parses_tool_calls(client: Mistral) -> None:
    response = await client.chat.complete_async(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="any",
    )
    message = response.choices[0].message
    assert message is not None
    assert response.choices[0].finish_reason == "tool_calls"
    [call] = message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"example"}'


async def test_sdk_parses_a_stream(client: Mistral) -> None:
    stream = await client.chat.stream_async(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    )
    texts: list[str] = []
    finish: list[Any] = []
    usage: list[Any] = []
    async for event in stream:
        choice = event.data.choices[0]
        if isinstance(choice.delta.content, str):
            texts.append(choice.delta.content)
        if choice.finish_reason is not None:
            finish.append(choice.finish_reason)
        if event.data.usage is not None:
            usage.append(event.data.usage)
    assert "".join(texts) == "You said: Hello there"
    assert finish == ["stop"]
    assert [u.total_tokens for u in usage] == [9]


async def test_sdk_parses_a_streamed_tool_call(client: Mistral) -> None:
    stream = await client.chat.stream_async(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
    )
    calls = []
    async for event in stream:
        calls.extend(event.data.choices[0].delta.tool_calls or [])
    assert [c.function.name for c in calls] == ["get_weather"]
    assert len(calls[0].id or "") == 9


async def test_sdk_parses_embeddings(client: Mistral) -> None:
    response = await client.embeddings.create_async(model="mistral-embed", inputs=["a", "b"])
    assert [d.index for d in response.data] == [0, 1]
    assert all(len(d.embedding or []) == 1024 for d in response.data)
    assert response.usage.prompt_tokens == 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # the SDK warns about the odd value
async def test_sdk_parses_a_validation_error(client: Mistral) -> None:
    with pytest.raises(HTTPValidationError) as info:
        await client.chat.complete_async(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            tool_choice="sometimes",
        )
    detail = info.value.data.detail
    assert detail is not None
    assert detail[0].loc == ["body", "tool_choice"]
    assert detail[0].type == "literal_error"


async def test_sdk_sees_the_api_error_body(client: Mistral) -> None:
    with pytest.raises(SDKError) as info:
        await client.chat.complete_async(
            model=MODEL, messages=[{"role": "assistant", "content": "dangling"}]
        )
    assert info.value.status_code == 400
    assert "Expected last role User or Tool" in info.value.body
