"""Factories that build the built-in adapters from a ``ProviderContext``.

Kept apart from the adapters so that an adapter is a plain class that knows nothing of
configuration, and apart from the registry so that the registry imports no adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiport._provider import ModelProvider
    from aiport._registry import ProviderContext

__all__ = [
    "create_anthropic",
    "create_azure",
    "create_bedrock",
    "create_cohere",
    "create_gemini",
    "create_mistral",
    "create_ollama",
    "create_openai",
    "create_openai_compatible",
    "create_preset",
]


def _common(context: ProviderContext) -> dict[str, object]:
    config = context.config
    common: dict[str, object] = {
        "name": context.name,
        "description": config.description,
        "credential": context.credential,
        "http": context.http,
        "models": context.models,
        "headers": dict(config.headers),
        "timeouts": context.timeouts,
        "model_timeouts": context.model_timeouts,
        "clock": context.clock,
    }
    if config.base_url:
        common["base_url"] = config.base_url
    return common


def create_openai(context: ProviderContext) -> ModelProvider:
    """An OpenAI provider."""
    from aiport.providers.openai import OpenAIProvider

    return OpenAIProvider(
        **_common(context),  # type: ignore[arg-type]
        organization=context.config.organization,
        project=context.config.project,
    )


def create_openai_compatible(context: ProviderContext) -> ModelProvider:
    """A provider for a server speaking the OpenAI API (vLLM, Ollama, llama.cpp...)."""
    from aiport.providers.openai import OpenAIProvider

    return OpenAIProvider(**_common(context), compatible=True)  # type: ignore[arg-type]


def create_anthropic(context: ProviderContext) -> ModelProvider:
    """An Anthropic provider."""
    from aiport.providers.anthropic import AnthropicProvider

    extra: dict[str, object] = {}
    if context.config.api_version:
        extra["api_version"] = context.config.api_version
    return AnthropicProvider(**_common(context), **extra)  # type: ignore[arg-type]


def create_azure(context: ProviderContext) -> ModelProvider:
    """An Azure OpenAI provider: ``api_version`` from the config, a model's ``deployment``
    from its table, a bearer token when an ``auth`` table (Entra ID) gives the credential."""
    from aiport._credentials import is_refreshable
    from aiport.providers.azure import AzureOpenAIProvider

    config = context.config
    deployments: dict[str, str] = {}
    for model_id, model in config.models.items():
        if model.deployment:
            deployments[model_id] = model.deployment
            if model.name:
                # The service hands the adapter the model's upstream name.
                deployments[model.name] = model.deployment
    return AzureOpenAIProvider(
        **_common(context),  # type: ignore[arg-type]
        api_version=config.api_version,
        deployments=deployments,
        # Entra ID tokens (an auth table, or the service's token_providers) go as Bearer.
        bearer=config.auth is not None or is_refreshable(context.credential),
    )


def create_gemini(context: ProviderContext) -> ModelProvider:
    """A Google Gemini API provider (``api_version``, default ``v1beta``)."""
    from aiport.providers.gemini import GeminiProvider

    extra: dict[str, object] = {}
    if context.config.api_version:
        extra["api_version"] = context.config.api_version
    return GeminiProvider(**_common(context), **extra)  # type: ignore[arg-type]


def create_bedrock(context: ProviderContext) -> ModelProvider:
    """An AWS Bedrock provider (needs the ``aiport[bedrock]`` extra)."""
    from aiport.providers.bedrock._factory import build_bedrock

    return build_bedrock(context)


def create_ollama(context: ProviderContext) -> ModelProvider:
    """An Ollama provider (native API). Without a ``base_url`` in the config it uses
    ``OLLAMA_HOST`` of the service's environment (``ProviderService(env=...)``, else the
    process's) as Ollama's own clients read it, else ``http://localhost:11434``."""
    from aiport.providers.ollama import OllamaProvider
    from aiport.providers.ollama._provider import base_url_from_host

    common = _common(context)
    if "base_url" not in common:
        common["base_url"] = base_url_from_host(context.env.get("OLLAMA_HOST"))
    return OllamaProvider(**common)  # type: ignore[arg-type]


def create_preset(context: ProviderContext, preset: str | None = None) -> ModelProvider:
    """A provider for an OpenAI-compatible preset (``groq``, ``vllm``...): the OpenAI
    adapter with the preset's base URL, headers and quirks. ``preset`` defaults to the
    configured provider type."""
    from aiport.providers._presets import preset_named
    from aiport.providers.openai import OpenAIProvider

    row = preset_named(preset or context.config.type)
    common = _common(context)
    common.setdefault("base_url", row.base_url)
    # The preset's headers are defaults; the provider's configured headers win.
    common["headers"] = {**row.headers, **context.config.headers}
    common["description"] = context.config.description or row.description
    return OpenAIProvider(**common, compatible=True, quirks=row.quirks)  # type: ignore[arg-type]


def create_mistral(context: ProviderContext) -> ModelProvider:
    """A Mistral AI provider."""
    from aiport.providers.mistral import MistralProvider

    return MistralProvider(**_common(context))  # type: ignore[arg-type]


def create_cohere(context: ProviderContext) -> ModelProvider:
    """A Cohere provider (v2 API)."""
    from aiport.providers.cohere import CohereProvider

    return CohereProvider(**_common(context))  # type: ignore[arg-type]
