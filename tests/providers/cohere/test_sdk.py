"""The official ``cohere`` SDK (``AsyncClientV2``), pointed at the emulator, parses what it
answers.

The SDK is a reference parser only (never imported by aiport itself): if its v2 response
types accept the emulator's chat, stream, embed, rerank and error answers, the emulator is
shaped like Cohere's API, and the adapter tests against it mean something.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import cohere
import httpx
import pytest
from cohere.errors import BadRequestError, TooManyRequestsError, UnauthorizedError

from aiport.testing import Emulator, Fault

from .conftest import API_KEY

# The SDK itself uses a pydantic API deprecated in pydantic 2.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "command-a-03-2025"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[cohere.AsyncClientV2]:
    async with httpx.AsyncClient() as http:
        yield cohere.AsyncClientV2(api_key=API_KEY, base_url=emu.cohere_base_url, httpx_client=http)


async def test_sdk_parses_a_chat_answer(client: cohere.AsyncClientV2) -> None:
    response = await client.chat(model=MODEL, messages=[{"role": "user", "content": "Hello there"}])
    assert response.finish_reason == "COMPLETE"
    assert response.message.content is not None
    assert response.message.content[0].text == "You said: Hello there"
    assert response.usage is not None
    assert response.usage.billed_units is not None
    assert response.usage.billed_units.input_tokens == 5
    assert response.usage.billed_units.output_tokens == 4


async def test_sdk_parses_tool_calls(client: cohere.AsyncClientV2) -> None:
    response = await client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="REQUIRED",
    )
    assert response.finish_reason == "TOOL_CALL"
    assert response.message.tool_plan == "I will use the get_weather tool."
    [call] = response.message.tool_calls or []
    assert call.function is not None
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"example"}'


async def test_sdk_parses_a_stream(client: cohere.AsyncClientV2) -> None:
    kinds: list[str] = []
    texts: list[str] = []
    finish = None
    async for event in client.chat_stream(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    ):
        kinds.append(event.type)
        if event.type == "content-delta":
            texts.append(event.delta.message.content.text)
        if event.type == "message-end":
            finish = event.delta.finish_reason
    assert kinds[0] == "message-start"
    assert kinds[-1] == "message-end"
    assert "".join(texts) == "You said: Hello there"
    assert finish == "COMPLETE"


async def test_sdk_parses_a_streamed_tool_call(client: cohere.AsyncClientV2) -> None:
    arguments: list[str] = []
    names: list[str] = []
    async for event in client.chat_stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER],
    ):
        if event.type == "tool-call-start":
            names.append(event.delta.message.tool_calls.function.name)
        if event.type == "tool-call-delta":
            arguments.append(event.delta.message.tool_calls.function.arguments)
    assert names == ["get_weather"]
    assert "".join(arguments) == '{"city":"example"}'


async def test_sdk_parses_embeddings(client: cohere.AsyncClientV2) -> None:
    response = await client.embed(
        model="embed-v4.0",
        texts=["a", "b"],
        input_type="search_document",
        embedding_types=["float"],
        output_dimension=256,
    )
    vectors = response.embeddings.float_
    assert vectors is not None
    assert [len(v) for v in vectors] == [256, 256]
    assert response.meta is not None
    assert response.meta.billed_units is not None
    assert response.meta.billed_units.input_tokens == 2


async def test_sdk_parses_rerank_results(client: cohere.AsyncClientV2) -> None:
    response = await client.rerank(
        model="rerank-v3.5",
        query="capital of France",
        documents=["Berlin", "Paris, capital of France"],
    )
    assert [r.index for r in response.results] == [1, 0]
    assert response.meta is not None
    assert response.meta.billed_units is not None
    assert response.meta.billed_units.search_units == 1


async def test_sdk_sees_cohere_error_bodies(client: cohere.AsyncClientV2, emu: Emulator) -> None:
    with pytest.raises(BadRequestError) as bad:
        await client.embed(
            model="embed-english-v3.0",
            texts=["a"],
            input_type="search_query",
            embedding_types=["float"],
            output_dimension=256,
        )
    assert "output_dimension is not supported" in bad.value.body["message"]
    emu.add_fault(Fault.status(429, retry_after="1"))
    with pytest.raises(TooManyRequestsError) as limited:
        await client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            request_options={"max_retries": 0},  # the SDK retries 429s by itself
        )
    assert "Trial key" in limited.value.body["message"]
    async with httpx.AsyncClient() as http:
        wrong = cohere.AsyncClientV2(
            api_key="not-the-key", base_url=emu.cohere_base_url, httpx_client=http
        )
        with pytest.raises(UnauthorizedError) as unauthorized:
            await wrong.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert unauthorized.value.body["message"] == "invalid api token"
