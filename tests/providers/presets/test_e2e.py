"""Presets end to end against the emulator's OpenAI routes: their quirks are visible on the
wire (a refused setting is absent from the recorded body) and in ``response.warnings``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._errors import ProviderAuthError, ProviderCapabilityError
from aiport._types import ImagePart, Message, StreamFinishEvent, TextDeltaEvent
from aiport.testing import Emulator
from tests.conftest import OPENAI_KEY

PNG = b"\x89PNG\r\n\x1a\n"


class Answer(BaseModel):
    city: str


def get_weather(city: str) -> str:
    """Current weather in a city."""
    return city


def preset_config(emulator: Emulator, **providers: dict[str, Any]) -> dict[str, Any]:
    """Presets pointed at the emulator (which wants a key even for local servers)."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            name: {"base_url": emulator.openai_base_url, "api_key": OPENAI_KEY, **settings}
            for name, settings in providers.items()
        },
    }


async def test_cerebras_refused_settings_are_warnings_not_sent(emulator: Emulator) -> None:
    config = preset_config(emulator, cerebras={"type": "cerebras"})
    async with ProviderService(config, env={}) as service:
        response = await service.complete(
            model="cerebras:gpt-oss-120b",
            messages="weather in Paris?",
            tools=[get_weather],
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=50,
            provider_options={"presence_penalty": 0.5},
        )
    assert [c.name for c in response.tool_calls] == ["get_weather"]
    body = emulator.requests[-1].body
    for refused in ("tool_choice", "parallel_tool_calls", "presence_penalty", "max_tokens"):
        assert refused not in body
    assert body["max_completion_tokens"] == 50
    assert response.warnings == [
        "cerebras does not support 'parallel_tool_calls'; it was not sent",
        "cerebras does not support 'presence_penalty'; it was not sent",
        "cerebras does not support tool_choice 'required'; it was not sent (the model "
        "decides whether to call a tool)",
    ]


async def test_deepseek_json_schema_falls_back_to_json_object(emulator: Emulator) -> None:
    config = preset_config(emulator, deepseek={"type": "deepseek"})
    async with ProviderService(config, env={}) as service:
        response = await service.complete(
            model="deepseek:deepseek-chat", messages="Paris?", response_format=Answer
        )
    assert emulator.requests[-1].body["response_format"] == {"type": "json_object"}
    assert json.loads(response.text) == {"echo": "Paris?"}
    assert response.warnings == [
        "deepseek does not support JSON schema output; JSON output (json_object) was asked "
        "for instead, without the schema",
    ]
    # Priced from deepseek.toml at the published rates.
    usage = response.usage
    assert response.cost == pytest.approx(
        (usage.input_tokens * 0.28 + usage.output_tokens * 0.42) / 1e6
    )


async def test_deepseek_takes_no_images(emulator: Emulator) -> None:
    config = preset_config(emulator, deepseek={"type": "deepseek"})
    message = Message.user("Paris?", ImagePart(data=PNG, media_type="image/png"))
    async with ProviderService(config, env={}) as service:
        # A model the catalogue does not know (a known one is refused before sending).
        response = await service.complete(model="deepseek:deepseek-next", messages=[message])
    assert emulator.requests[-1].body["messages"] == [{"role": "user", "content": "Paris?"}]
    assert response.text == "You said: Paris?"
    assert response.warnings == ["deepseek does not take image input: 1 image(s) were not sent"]


async def test_groq_stream_with_quirks(emulator: Emulator) -> None:
    config = preset_config(emulator, groq={"type": "groq"})
    async with ProviderService(config, env={}) as service:
        events = [
            event
            async for event in service.stream(
                model="groq:llama-3.3-70b-versatile",
                messages=[Message(role="user", content="Hello there", name="ann")],
                max_tokens=100,
                provider_options={"n": 2},
            )
        ]
    body = emulator.requests[-1].body
    assert "n" not in body and "name" not in body["messages"][0]
    assert body["max_completion_tokens"] == 100
    assert body["stream_options"] == {"include_usage": True}
    final = events[-1]
    assert isinstance(final, StreamFinishEvent)
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == final.response.text == "You said: Hello there"
    assert final.response.warnings == [
        "groq does not support 'n'; it was not sent",
        "groq does not support message names; 1 were not sent",
    ]
    assert final.response.cost == pytest.approx((5 * 0.59 + 4 * 0.79) / 1e6)


async def test_openrouter_app_headers_from_config(emulator: Emulator) -> None:
    headers = {"HTTP-Referer": "https://example.app", "X-Title": "Example App"}
    config = preset_config(emulator, openrouter={"type": "openrouter", "headers": headers})
    async with ProviderService(config, env={}) as service:
        await service.complete(model="openrouter:openai/gpt-4o", messages="Hi")
    recorded = emulator.requests[-1].headers
    assert recorded["http-referer"] == "https://example.app"
    assert recorded["x-title"] == "Example App"
    assert recorded["authorization"] == f"Bearer {OPENAI_KEY}"


async def test_missing_endpoints_fail_before_any_request(emulator: Emulator) -> None:
    config = preset_config(emulator, groq={"type": "groq"}, together={"type": "together"})
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderCapabilityError) as caught:
            await service.embed(model="groq:some-embedder", input="hi")
        assert "does not offer embeddings" in caught.value.message
        with pytest.raises(ProviderCapabilityError):
            await service.generate_image(model="groq:some-image-model", prompt="a cat")
        assert emulator.count() == 0
        vectors = await service.embed(
            model="together:text-embedding-3-small", input=["a", "b"], dimensions=8
        )
    assert [len(v) for v in vectors.embeddings] == [8, 8]
    assert emulator.requests[-1].body["encoding_format"] == "float"


async def test_local_servers_with_and_without_a_key(emulator: Emulator) -> None:
    # A local server started with --api-key gets it as a bearer token.
    config = preset_config(emulator, vllm={"type": "vllm"})
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model="vllm:my-model", messages="Hi")
    assert response.text == "You said: Hi"
    assert emulator.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # Without one, no auth header at all (the emulator's OpenAI routes then refuse).
    config = {"retry": {"max_attempts": 1}, "providers": {"lms": {"type": "lm-studio"}}}
    config["providers"]["lms"]["base_url"] = emulator.openai_base_url
    async with ProviderService(config, env={}) as service:
        with pytest.raises(ProviderAuthError):  # the emulator's OpenAI routes want a key
            await service.complete(model="lms:local-model", messages="Hi")
    assert "authorization" not in emulator.requests[-1].headers


async def test_ollama_openai_preset(emulator: Emulator) -> None:
    config = preset_config(emulator, local={"type": "ollama-openai"})
    message = Message.user("Hi", ImagePart(url="https://example.com/cat.png"))
    async with ProviderService(config, env={}) as service:
        response = await service.complete(
            model="local:llama3.2", messages=[message], tools=[get_weather], tool_choice="auto"
        )
    body = emulator.requests[-1].body
    assert "tool_choice" not in body
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert response.warnings == [
        "local does not support tool_choice 'auto'; it was not sent (the model "
        "decides whether to call a tool)",
        "local takes only inline images (base64), not image URLs: 1 image(s) were not sent",
    ]
