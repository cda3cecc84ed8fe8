"""The official ``openai`` SDK's Azure clients accept the emulator's Azure answers.

The SDK is a reference parser here (never used by aiport itself): with strict response
validation on, it checks every body against its own types, so the emulator cannot drift
from what Azure OpenAI clients expect.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiport.testing import Emulator, Fault

from .conftest import AZURE_KEY, ENTRA_TOKENS

openai = pytest.importorskip("openai")

API_VERSION = "2024-10-21"
CHAT = "/openai/deployments/gpt-4o/chat/completions"


def azure_client(emu: Emulator, *, strict: bool = True) -> Any:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=emu.azure_endpoint,
        api_key=AZURE_KEY,
        api_version=API_VERSION,
        max_retries=0,
        _strict_response_validation=strict,
    )


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[Any]:
    async with azure_client(emu) as sdk:
        yield sdk


@pytest.fixture
async def lenient_client(emu: Emulator) -> AsyncIterator[Any]:
    """The SDK as users run it (no strict validation): for the answers real Azure sends
    that the SDK's types do not describe (see each test)."""
    async with azure_client(emu, strict=False) as sdk:
        yield sdk


async def test_chat_completion(client: Any, emu: Emulator) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert emu.requests[-1].path == CHAT
    assert emu.requests[-1].headers["api-key"] == AZURE_KEY
    choice = completion.choices[0]
    assert choice.message.content == "You said: Hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 5
    # Azure's extra fields survive as the SDK's extras.
    assert completion.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    assert choice.model_extra["content_filter_results"]["hate"]["severity"] == "safe"


async def test_stream(lenient_client: Any) -> None:
    # Azure's first chunk has "object": "" (and an empty id and model), which the SDK's
    # strict types refuse but its default parsing accepts, as with the real service.
    stream = await lenient_client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    # Azure's first chunk: no choices, only the prompt's filter results.
    assert chunks[0].choices == []
    assert chunks[0].model_extra["prompt_filter_results"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: Hello there"
    reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert reasons[-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 4


async def test_tool_calls(client: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    completion = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[tool],
    )
    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


async def test_output_filtered(client: Any) -> None:
    completion = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[azure:filter-output] go"}]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is None
    assert choice.model_extra["content_filter_results"]["violence"] == {
        "filtered": True,
        "severity": "medium",
    }


async def test_embeddings(client: Any, lenient_client: Any, emu: Emulator) -> None:
    # Base64 vectors are strings, which the SDK's strict types (lists) refuse.
    response = await lenient_client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="base64"
    )
    assert emu.requests[-1].path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert [item.index for item in response.data] == [0, 1]
    assert len(base64.b64decode(response.data[0].embedding)) == 1536 * 4
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float"
    )
    assert len(floats.data[0].embedding) == 1536


async def test_images(client: Any) -> None:
    response = await client.images.generate(
        model="dall-e-3", prompt="a red fox", response_format="b64_json"
    )
    [image] = response.data
    assert base64.b64decode(image.b64_json).startswith(b"\x89PNG")
    assert image.model_extra["content_filter_results"]["sexual"]["filtered"] is False


async def test_errors(client: Any, emu: Emulator) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(
            model="no-such-deployment", messages=[{"role": "user", "content": "Hi"}]
        )
    assert missing.value.code == "DeploymentNotFound"

    with pytest.raises(openai.BadRequestError) as filtered:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "[azure:filter-prompt]"}]
        )
    assert filtered.value.code == "content_filter"
    verdict = filtered.value.body["innererror"]["content_filter_result"]
    assert verdict["hate"] == {"filtered": True, "severity": "high"}

    emu.add_fault(Fault.status(429, retry_after_ms=20), path=CHAT)
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
        )
    assert limited.value.response.headers["retry-after-ms"] == "20"
    assert limited.value.code == "429"


async def test_wrong_key(emu: Emulator) -> None:
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=emu.azure_endpoint,
        api_key="azk-not-the-key-0000000000",
        api_version=API_VERSION,
        max_retries=0,
    )
    async with sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
            )
    assert "invalid subscription key" in info.value.message


async def test_entra_id_token_provider(emu: Emulator) -> None:
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=emu.azure_endpoint,
        azure_ad_token_provider=lambda: ENTRA_TOKENS[1],
        api_version=API_VERSION,
        max_retries=0,
        _strict_response_validation=True,
    )
    async with sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
        )
    assert completion.choices[0].message.content == "You said: Hi"
    assert emu.requests[-1].headers["authorization"] == f"Bearer {ENTRA_TOKENS[1]}"


async def test_v1_surface_with_the_plain_client(emu: Emulator) -> None:
    sdk = openai.AsyncOpenAI(
        base_url=emu.azure_endpoint + "/openai/v1/",
        api_key=AZURE_KEY,
        max_retries=0,
        _strict_response_validation=True,
    )
    async with sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}]
        )
    assert completion.choices[0].message.content == "You said: Hi"
    assert emu.requests[-1].path == "/openai/v1/chat/completions"
