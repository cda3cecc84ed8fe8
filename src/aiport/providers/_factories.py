"""Factories that build the built-in adapters from a ``ProviderContext``.

Kept apart from the adapters so that an adapter is a plain class that knows nothing of
configuration, and apart from the registry so that the registry imports no adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiport._provider import ModelProvider
    from aiport._registry import ProviderContext

__all__ = ["create_anthropic", "create_openai", "create_openai_compatible"]


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
