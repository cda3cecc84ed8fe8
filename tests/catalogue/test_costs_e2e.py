"""Every provider type: responses carry ``usage`` and the ``cost`` its prices give.

Parametrised over every type aiport ships (built-in types and OpenAI-compatible presets):
completion, stream (final response and usage events), embeddings and images where the
type offers them, each over HTTP against the emulator. A model the catalogue has no price
for gets prices from the config, so every call here has a cost to check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aiport import (
    ModelProvider,
    ProviderContext,
    ProviderModel,
    ProviderRegistry,
    ProviderService,
    ProviderType,
    UsageEvent,
)
from aiport._catalogue import known_models
from aiport.cli._catalogue import builtin_registry
from aiport.testing import Emulator

KEY = "sk-costs-e2e-key-0123456789"
AWS_KEY_ID = "AKIDCOSTSE2ETEST0001"
AWS_SECRET = "costs/e2e+Secret0123456789abcdefGHIJKLMN"


@dataclass(frozen=True)
class Recipe:
    """How to reach one provider type on the emulator, and which models to call."""

    base_url: str  # an Emulator attribute
    chat: str
    embedding: str | None = None
    image: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "openai": Recipe("openai_base_url", "gpt-4o-mini", "text-embedding-3-small", "gpt-image-1"),
    "anthropic": Recipe("anthropic_base_url", "claude-haiku-4-5"),
    "azure": Recipe("azure_endpoint", "gpt-4o-mini", "text-embedding-3-small", "gpt-image-1"),
    "gemini": Recipe(
        "gemini_base_url", "gemini-2.5-flash", "gemini-embedding-001", "imagen-4.0-generate-001"
    ),
    "mistral": Recipe("mistral_base_url", "mistral-small-2506", "mistral-embed"),
    "cohere": Recipe("cohere_base_url", "command-r-08-2024", "embed-english-v3.0"),
    "ollama": Recipe("ollama_base_url", "llama3.2", "nomic-embed-text"),
    "bedrock": Recipe(
        "bedrock_endpoint",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "amazon.titan-embed-text-v2:0",
        settings={"region": "us-east-1"},
    ),
    "openai-compatible": Recipe("openai_base_url", "local-model"),
}


#: Types whose embedding answers carry no token counts (Gemini's embedContent).
EMBEDDING_USAGE_UNREPORTED = frozenset({"gemini"})


def _recipe(type_name: str) -> Recipe:
    recipe = RECIPES.get(type_name)
    if recipe is not None:
        return recipe
    from aiport.providers._presets import load_presets

    if type_name not in load_presets():
        pytest.fail(f"provider type {type_name!r} has no emulator recipe here: add one")
    # An OpenAI-compatible preset: the OpenAI routes, and a chat model of its catalogue.
    chat = next((m.id for m in known_models(type_name).values() if m.capabilities.chat), None)
    return Recipe("openai_base_url", chat or "preset-model")


def _config(type_name: str, recipe: Recipe, emulator: Emulator) -> dict[str, Any]:
    catalogue = known_models(type_name)
    models: dict[str, Any] = {}
    for model in (recipe.chat, recipe.embedding, recipe.image):
        if model is None:
            continue
        row = catalogue.get(model)
        if row is None or row.input_price_per_million is None:
            # No list price known: the config gives one (and says what the model is).
            models[model] = {"input_price_per_million": 1.5, "output_price_per_million": 6.0}
    provider: dict[str, Any] = {
        "type": type_name,
        "base_url": getattr(emulator, recipe.base_url),
        "models": models,
        **recipe.settings,
    }
    if type_name != "bedrock":
        provider["api_key"] = KEY
    return {"retry": {"max_attempts": 1}, "providers": {"p": provider}}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Static test credentials, and no AWS config file or metadata service to find."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws-config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
async def costs_emulator() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={KEY, f"{AWS_KEY_ID}:{AWS_SECRET}"}) as emulator:
        yield emulator


def _expected(row: ProviderModel, usage: Any) -> float | None:
    if not (usage.input_tokens or usage.output_tokens):
        return None
    return row.cost(usage)


TYPES = sorted(builtin_registry().names())


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.usefixtures("aws")
async def test_every_response_has_usage_and_its_cost(
    type_name: str, costs_emulator: Emulator
) -> None:
    recipe = _recipe(type_name)
    async with ProviderService(_config(type_name, recipe, costs_emulator), env={}) as service:
        known = service.known_models("p")

        reply = await service.complete(model=f"p:{recipe.chat}", messages="Hello there, model")
        chat = known[recipe.chat]
        assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
        assert reply.cost is not None
        assert reply.cost == pytest.approx(chat.cost(reply.usage))

        events = [
            e async for e in service.stream(model=f"p:{recipe.chat}", messages="Stream it back")
        ]
        final = events[-1]
        assert final.type == "finish"
        assert final.response.usage.output_tokens > 0
        assert final.response.cost == pytest.approx(chat.cost(final.response.usage))
        for event in events:
            if isinstance(event, UsageEvent):
                assert event.cost == pytest.approx(_expected(chat, event.usage))

        if recipe.embedding is not None:
            vectors = await service.embed(model=f"p:{recipe.embedding}", input=["one", "two"])
            if type_name in EMBEDDING_USAGE_UNREPORTED:
                assert vectors.cost is None  # no usage: no cost, never a made-up zero
            else:
                assert vectors.usage.input_tokens > 0
                assert vectors.cost is not None
                assert vectors.cost == pytest.approx(known[recipe.embedding].cost(vectors.usage))

        if recipe.image is not None:
            image = await service.generate_image(model=f"p:{recipe.image}", prompt="a red square")
            assert image.images
            assert image.cost == pytest.approx(_expected(known[recipe.image], image.usage))


def _adapter_without_prices(context: ProviderContext) -> ModelProvider:
    """A new adapter that computes no cost itself: the OpenAI one, blind to the catalogue."""
    from aiport._credentials import StaticCredential
    from aiport.providers.openai import OpenAIProvider

    assert context.config.base_url is not None
    return OpenAIProvider(
        name=context.name,
        base_url=context.config.base_url,
        credential=StaticCredential(KEY),
        http=context.http,
        models={},
    )


async def test_an_adapter_that_computes_no_cost_gets_it_from_the_catalogue(
    costs_emulator: Emulator,
) -> None:
    registry = ProviderRegistry.default()
    # Registered under an existing catalogue's name: its models come from openai.toml.
    registry.register(ProviderType(name="openai", factory=_adapter_without_prices), replace=True)
    config = {
        "retry": {"max_attempts": 1},
        "providers": {"p": {"type": "openai", "base_url": costs_emulator.openai_base_url}},
    }
    async with ProviderService(config, env={}, registry=registry) as service:
        row = service.known_models("p")["gpt-4o-mini"]
        reply = await service.complete(model="p:gpt-4o-mini", messages="Hello")
        assert reply.cost == pytest.approx(row.cost(reply.usage))
        events = [e async for e in service.stream(model="p:gpt-4o-mini", messages="Hello")]
        usage_events = [e for e in events if isinstance(e, UsageEvent)]
        assert usage_events
        assert usage_events[-1].cost == pytest.approx(row.cost(usage_events[-1].usage))
        final = events[-1]
        assert final.type == "finish"
        assert final.response.cost == pytest.approx(row.cost(final.response.usage))
        embedding_row = service.known_models("p")["text-embedding-3-small"]
        vectors = await service.embed(model="p:text-embedding-3-small", input="text")
        assert vectors.cost == pytest.approx(embedding_row.cost(vectors.usage))
        # A model without prices: no cost, never a made-up zero.
        image = await service.generate_image(model="p:dall-e-3", prompt="a cat")
        assert image.cost is None
