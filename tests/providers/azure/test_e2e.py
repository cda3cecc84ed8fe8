"""Azure OpenAI end to end: ProviderService -> adapter -> real HTTP -> the emulator."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from aiport import ProviderService
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionResponse,
    StreamFinishEvent,
    TextDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.azure._convert import DEFAULT_API_VERSION
from aiport.testing import Emulator
from aiport.testing._azure import AzureRoutes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


class Answer(BaseModel):
    city: str
    temperature: float


async def stream_all(service: ProviderService, **kwargs: Any) -> list[Any]:
    return [event async for event in service.stream(**kwargs)]


def same_answer(streamed: ModelCompletionResponse, completed: ModelCompletionResponse) -> None:
    """Equal apart from what differs per request (ids, latency, request id, raw)."""
    fields = {"id", "latency", "request_id", "raw", "attempts"}
    assert streamed.model_dump(exclude=fields) == completed.model_dump(exclude=fields)


# --------------------------------------------------------------------------- completion


async def test_completion_goes_to_the_deployment_with_the_api_version(
    service: ProviderService, emu: Emulator
) -> None:
    response = await service.complete(model="azure:gpt-4o", messages="Hello there")
    assert response.text == "You said: Hello there"
    assert response.finish_reason == "stop"
    assert response.provider == "azure"
    assert response.model == "gpt-4o"
    assert response.usage.input_tokens == 5
    assert response.usage.output_tokens == 4
    # Priced from the Azure catalogue (gpt-4o: $2.50 in, $10 out per million).
    assert response.cost == pytest.approx((5 * 2.5 + 4 * 10) / 1e6)
    # Azure's request id headers are UUIDs.
    assert response.request_id is not None and len(response.request_id) == 36
    request = emu.requests[-1]
    assert request.path == "/openai/deployments/gpt-4o/chat/completions"
    assert request.body["model"] == "gpt-4o"
    assert "max_tokens" not in request.body
    # Azure's content-filter verdicts stay in raw.
    [prompt] = response.raw["prompt_filter_results"]
    assert prompt["content_filter_results"]["jailbreak"] == {"filtered": False, "detected": False}
    choice = response.raw["choices"][0]
    assert choice["content_filter_results"]["violence"] == {"filtered": False, "severity": "safe"}


async def test_api_version_is_in_the_query_default_and_configured(
    make_service: Callable[..., ProviderService], routes: AzureRoutes
) -> None:
    seen: list[str] = []
    for configured in (None, "2025-04-01-preview"):
        settings = {} if configured is None else {"api_version": configured}
        async with make_service(**settings) as service:
            await service.complete(model="azure:gpt-4o", messages="Hi")
        seen.append(routes.queries[-1]["api-version"])
    assert seen == [DEFAULT_API_VERSION, "2025-04-01-preview"]
    assert all(set(query) == {"api-version"} for query in routes.queries)


async def test_completion_parameters_reach_azure(service: ProviderService, emu: Emulator) -> None:
    await service.complete(
        model="azure:gpt-4o",
        messages=[Message.system("Be brief."), Message.user("Hi")],
        max_tokens=50,
        temperature=0.2,
        stop=["END"],
    )
    body = emu.requests[-1].body
    assert body["max_completion_tokens"] == 50
    assert body["temperature"] == 0.2
    assert body["stop"] == ["END"]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_developer_messages_follow_the_api_version(
    make_service: Callable[..., ProviderService], emu: Emulator
) -> None:
    messages = [Message(role="developer", content="Answer in French."), Message.user("Hi")]
    roles: list[str] = []
    for version in ("2024-10-21", "2025-04-01-preview"):
        async with make_service(api_version=version) as service:
            await service.complete(model="azure:gpt-4o", messages=messages)
        roles.append(emu.requests[-1].body["messages"][0]["role"])
    # Azure refuses the developer role before 2024-12-01-preview; system means the same.
    assert roles == ["system", "developer"]


# --------------------------------------------------------------------------- deployments


async def test_deployment_mapping_from_config(
    make_service: Callable[..., ProviderService], emu: Emulator, routes: AzureRoutes
) -> None:
    routes.deploy("prod-chat-eu", "gpt-4o-mini")
    models = {"gpt-4o-mini": {"deployment": "prod-chat-eu", "aliases": ["cheap"]}}
    async with make_service(models=models) as service:
        response = await service.complete(model="cheap", messages="Hello there")
        by_id = await service.complete(model="azure:gpt-4o-mini", messages="Hello there")
    assert [r.path for r in emu.requests] == [
        "/openai/deployments/prod-chat-eu/chat/completions"
    ] * 2
    assert emu.requests[-1].body["model"] == "prod-chat-eu"
    # The model id keeps picking the catalogue row: prices of gpt-4o-mini.
    assert response.model == by_id.model == "gpt-4o-mini"
    assert response.cost == pytest.approx((5 * 0.15 + 4 * 0.60) / 1e6)


async def test_unmapped_model_uses_its_own_name_as_deployment(
    service: ProviderService, emu: Emulator, routes: AzureRoutes
) -> None:
    routes.deploy("my-custom-model", "gpt-4o")
    response = await service.complete(model="azure:my-custom-model", messages="Hi")
    assert emu.requests[-1].path == "/openai/deployments/my-custom-model/chat/completions"
    assert response.text == "You said: Hi"
    assert response.model == "gpt-4o"  # what Azure reports: the model behind it


async def test_v1_surface(
    make_service: Callable[..., ProviderService], emu: Emulator, routes: AzureRoutes
) -> None:
    models = {"gpt-4o": {"deployment": "gpt-4o"}}
    for settings in (
        {"api_version": "v1", "models": models},
        {"base_url": emu.azure_endpoint + "/openai/v1/"},
    ):
        async with make_service(**settings) as service:
            response = await service.complete(model="azure:gpt-4o", messages="Hi")
            embedded = await service.embed(model="azure:text-embedding-3-small", input=["a"])
        assert response.text == "You said: Hi"
        assert len(embedded.embeddings[0]) == 1536
        chat, embed = emu.requests[-2:]
        assert chat.path == "/openai/v1/chat/completions"
        assert chat.body["model"] == "gpt-4o"
        assert embed.path == "/openai/v1/embeddings"
        assert routes.queries[-2:] == [{}, {}]  # no api-version on the v1 surface


async def test_endpoint_with_openai_suffix_is_the_same_endpoint(
    make_service: Callable[..., ProviderService], emu: Emulator
) -> None:
    async with make_service(base_url=emu.azure_endpoint + "/openai") as service:
        await service.complete(model="azure:gpt-4o", messages="Hi")
    assert emu.requests[-1].path == "/openai/deployments/gpt-4o/chat/completions"


# --------------------------------------------------------------------------- streams


async def test_stream_equals_complete_with_filter_results(
    service: ProviderService, emu: Emulator
) -> None:
    events = await stream_all(service, model="azure:gpt-4o", messages="Hello there friend")
    assert emu.requests[-1].body["stream"] is True
    assert emu.requests[-1].body["stream_options"] == {"include_usage": True}
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert "".join(deltas) == "You said: Hello there friend"
    [usage] = [e.usage for e in events if isinstance(e, UsageEvent)]
    finish = events[-1]
    assert isinstance(finish, StreamFinishEvent)
    streamed = finish.response
    # Azure's first chunk (prompt filter results only, empty id and model) is not the
    # answer's head.
    assert streamed.id.startswith("chatcmpl-")
    assert streamed.model == "gpt-4o"
    assert usage == streamed.usage
    completed = await service.complete(model="azure:gpt-4o", messages="Hello there friend")
    same_answer(streamed, completed)
    assert streamed.cost == completed.cost
    assert streamed.raw["prompt_filter_results"] == completed.raw["prompt_filter_results"]
    assert (
        streamed.raw["choices"][0]["content_filter_results"]
        == completed.raw["choices"][0]["content_filter_results"]
    )


# --------------------------------------------------------------------------- tools, JSON


async def test_tool_round_trip(service: ProviderService, emu: Emulator) -> None:
    first = await service.complete(
        model="azure:gpt-4o", messages="Weather in Paris?", tools=[get_weather]
    )
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert set(call.parse_arguments()) == {"city", "unit"}
    history = [
        Message.user("Weather in Paris?"),
        first.message,
        Message.tool_result(call.id, "18C and sunny"),
    ]
    final = await service.complete(model="azure:gpt-4o", messages=history, tools=[get_weather])
    assert final.text == "Tool results: 18C and sunny"
    assert final.finish_reason == "stop"
    sent = emu.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


async def test_streamed_tool_calls(service: ProviderService) -> None:
    events = await stream_all(
        service, model="azure:gpt-4o", messages="Weather in Paris?", tools=[get_weather]
    )
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    response = events[-1].response
    assert response.finish_reason == "tool_calls"
    assert finished == response.tool_calls
    assert finished[0].name == "get_weather"


async def test_json_output(service: ProviderService, emu: Emulator) -> None:
    response = await service.complete(
        model="azure:gpt-4o", messages="Hello there", response_format="json"
    )
    assert json.loads(response.text) == {"echo": "Hello there"}
    assert emu.requests[-1].body["response_format"] == {"type": "json_object"}
    structured = await service.complete(
        model="azure:gpt-4o", messages="Weather?", response_format=Answer
    )
    assert isinstance(structured.parse(Answer), Answer)
    wire = emu.requests[-1].body["response_format"]
    assert wire["type"] == "json_schema"
    assert wire["json_schema"]["name"] == "Answer"


# --------------------------------------------------------------------------- vision


async def test_image_input(service: ProviderService, emu: Emulator) -> None:
    png = PNG_SIGNATURE + b"\0" * 24
    message = Message.user(
        "What is this?", ImagePart(data=png, media_type="image/png", detail="low")
    )
    response = await service.complete(model="azure:gpt-4o", messages=[message])
    # The emulator notes the images it saw and counts 85 tokens for each.
    assert response.text == "You said: What is this? [images: 1]"
    assert response.usage.input_tokens == 4 + 85 + 3
    assert response.cost == pytest.approx((92 * 2.50 + response.usage.output_tokens * 10) / 1e6)
    request = emu.requests[-1]
    assert request.path == "/openai/deployments/gpt-4o/chat/completions"
    # OpenAI's content parts: the text, then the image as a data URL with its detail.
    text, image = request.body["messages"][0]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["type"] == "image_url"
    assert image["image_url"]["detail"] == "low"
    prefix = "data:image/png;base64,"
    assert image["image_url"]["url"] == prefix + base64.b64encode(png).decode("ascii")

    linked = Message.user(
        "And these?",
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(url="https://example.com/dog.png"),
    )
    streamed = await stream_all(service, model="azure:gpt-4o", messages=[linked])
    final = streamed[-1]
    assert isinstance(final, StreamFinishEvent)
    assert final.response.text == "You said: And these? [images: 2]"
    assert final.response.usage.input_tokens == 3 + 2 * 85 + 3
    parts = emu.requests[-1].body["messages"][0]["content"]
    assert [p["image_url"]["url"] for p in parts[1:]] == [
        "https://example.com/cat.png",
        "https://example.com/dog.png",
    ]


# --------------------------------------------------------------------------- embeddings, images


async def test_embeddings(service: ProviderService, emu: Emulator) -> None:
    response = await service.embed(
        model="azure:text-embedding-3-small", input=["first text", "second text"]
    )
    request = emu.requests[-1]
    assert request.path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert request.body["encoding_format"] == "base64"
    assert len(response.embeddings) == 2
    assert all(len(v) == 1536 for v in response.embeddings)
    assert response.embeddings[0] != response.embeddings[1]
    assert math.isclose(sum(x * x for x in response.embeddings[0]), 1.0, rel_tol=1e-4)
    assert response.usage.input_tokens == 4
    assert response.cost == pytest.approx(4 * 0.02 / 1e6)


async def test_embeddings_with_an_old_api_version_ask_for_floats(
    make_service: Callable[..., ProviderService], emu: Emulator
) -> None:
    async with make_service(api_version="2023-05-15") as service:
        old = await service.embed(model="azure:text-embedding-3-small", input=["same"])
    assert emu.requests[-1].body["encoding_format"] == "float"
    async with make_service() as service:
        new = await service.embed(model="azure:text-embedding-3-small", input=["same"])
    assert old.embeddings[0] == pytest.approx(new.embeddings[0], abs=1e-6)


async def test_images_bytes_and_urls(service: ProviderService, emu: Emulator) -> None:
    response = await service.generate_image(model="azure:dall-e-3", prompt="a red fox")
    assert emu.requests[-1].path == "/openai/deployments/dall-e-3/images/generations"
    assert emu.requests[-1].body["response_format"] == "b64_json"
    [image] = response.images
    assert image.data is not None and image.data.startswith(PNG_SIGNATURE)
    assert image.revised_prompt == "a red fox"
    [verdict] = response.raw["content_filter_results"]
    assert verdict["hate"] == {"filtered": False, "severity": "safe"}
    assert len(response.raw["prompt_filter_results"]) == 1
    linked = await service.generate_image(model="azure:dall-e-3", prompt="a fox", output="url")
    [image] = linked.images
    assert image.url is not None and image.url.startswith(emu.url)
