"""Provider types and the factories that build them from configuration.

A provider *type* (``openai``, ``anthropic``, ``openai-compatible``...) is a row: how to
build the adapter from a ``ProviderContext``, which models it knows, and which
environment variable holds its key. Adapters are imported only when a provider of
their type is first built, so ``import aiport`` loads none of them.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiport._errors import ProviderNotFoundError
from aiport._suggest import close_matches

if TYPE_CHECKING:
    from aiport._config import AgentConfig, ProviderConfig
    from aiport._credentials import CredentialSource
    from aiport._http import HttpClient, HttpTimeouts
    from aiport._provider import ModelProvider
    from aiport._secrets import SecretResolver
    from aiport._types import ProviderModel

__all__ = [
    "ProviderContext",
    "ProviderFactory",
    "ProviderRegistry",
    "ProviderType",
    "builtin_types",
]


def _process_environment() -> Mapping[str, str]:
    return os.environ


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """Everything a factory needs to build one provider; the service owns all of it.

    A factory reads environment variables from ``env`` and resolves secret settings
    (``env:``/``file:``/``keyring:`` references, literals) with ``secret_resolver()``,
    never from ``os.environ`` directly: a ``ProviderService(env=...)`` mapping then
    applies to every provider. A context built without them (``env`` and ``secrets``
    are optional) reads the process environment.
    """

    name: str
    config: ProviderConfig
    agent_config: AgentConfig
    http: HttpClient
    credential: CredentialSource | None
    models: Mapping[str, ProviderModel]
    timeouts: HttpTimeouts
    model_timeouts: Mapping[str, HttpTimeouts]
    clock: Callable[[], float] = time.perf_counter
    #: The environment variables of the service (``ProviderService(env=...)``, by default
    #: ``os.environ``).
    env: Mapping[str, str] = field(default_factory=_process_environment)
    #: The service's resolver of secret references (``None``: see ``secret_resolver``).
    secrets: SecretResolver | None = None

    def secret_resolver(self) -> SecretResolver:
        """The resolver of secret references: the service's, else a new one reading
        ``env`` with relative ``file:`` paths starting at the configuration file's
        directory."""
        if self.secrets is not None:
            return self.secrets
        from pathlib import Path

        from aiport._secrets import SecretResolver

        base_dir = getattr(self.agent_config, "base_dir", None)
        return SecretResolver(
            env=self.env, base_dir=base_dir if isinstance(base_dir, Path) else None
        )


#: Builds a provider from its context.
ProviderFactory = Callable[[ProviderContext], "ModelProvider"]
#: Gives the models known for a provider type (the argument is the provider's name).
CatalogFunction = Callable[[str], "dict[str, ProviderModel]"]


def builtin_types() -> tuple[ProviderType, ...]:
    """aiport's built-in provider types (presets and plug-ins not included)."""
    return _BUILTIN_TYPES


def _load(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True, slots=True)
class ProviderType:
    """One kind of provider.

    ``factory`` and ``catalog`` may be given as ``"module:attribute"`` strings, imported
    on first use.
    """

    name: str
    factory: ProviderFactory | str
    catalog: CatalogFunction | str | None = None
    description: str = ""
    #: The variable that holds the key when the config names none (``OPENAI_API_KEY``).
    api_key_env: str | None = None
    #: The variable that may override the base URL (``OPENAI_BASE_URL``).
    base_url_env: str | None = None
    requires_api_key: bool = True
    requires_base_url: bool = False

    def build(self, context: ProviderContext) -> ModelProvider:
        """Build a provider of this type."""
        factory = self.factory
        if isinstance(factory, str):
            factory = _load(factory)  # type: ignore[assignment]
        assert callable(factory)
        return factory(context)

    def known_models(self, provider_name: str) -> dict[str, ProviderModel]:
        """The catalogue of this type for a provider named ``provider_name``.

        A type without a catalog function reads its data file,
        ``aiport/_catalogue/<type name>.toml`` (no file: no known models).
        """
        catalog = self.catalog
        if catalog is None:
            from aiport._catalogue import known_models

            return known_models(self.name, provider_name)
        if isinstance(catalog, str):
            catalog = _load(catalog)  # type: ignore[assignment]
        assert callable(catalog)
        return dict(catalog(provider_name))


@dataclass
class ProviderRegistry:
    """The provider types a service can build. Register your own with ``register``."""

    types: dict[str, ProviderType] = field(default_factory=dict)

    @classmethod
    def default(cls) -> ProviderRegistry:
        """A registry with aiport's built-in types, its OpenAI-compatible presets (``groq``,
        ``vllm``...) and the installed provider plug-ins (entry-point group
        ``aiport.providers``).

        Presets and plug-ins are looked up only when a type that is not built in is asked
        for, or when the types are listed (see ``aiport._plugins.ProviderTypeTable``).
        """
        from aiport._plugins import ProviderTypeTable

        return cls(ProviderTypeTable(_BUILTIN_TYPES))

    def register(self, provider_type: ProviderType, *, replace: bool = False) -> None:
        """Add a provider type (``replace=True`` to override a built-in one)."""
        if provider_type.name in self.types and not replace:
            raise ValueError(f"provider type {provider_type.name!r} is already registered")
        self.types[provider_type.name] = provider_type

    def get(self, type_name: str) -> ProviderType:
        """The type called ``type_name``, or ``ProviderNotFoundError`` with suggestions."""
        try:
            return self.types[type_name]
        except KeyError:
            suggestions = close_matches(type_name, self.types)
            hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
            raise ProviderNotFoundError(
                f"unknown provider type {type_name!r}{hint} "
                f"(known types: {', '.join(sorted(self.types))})",
                suggestions=suggestions,
            ) from None

    def names(self) -> Iterable[str]:
        """The registered type names."""
        return self.types.keys()


_BUILTIN_TYPES = (
    ProviderType(
        name="openai",
        factory="aiport.providers._factories:create_openai",
        description="OpenAI (Chat Completions, embeddings, images)",
        api_key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
    ),
    ProviderType(
        name="openai-compatible",
        factory="aiport.providers._factories:create_openai_compatible",
        description="Any server speaking the OpenAI Chat Completions API",
        requires_api_key=False,
        requires_base_url=True,
    ),
    ProviderType(
        name="anthropic",
        factory="aiport.providers._factories:create_anthropic",
        description="Anthropic (Messages API)",
        api_key_env="ANTHROPIC_API_KEY",
        base_url_env="ANTHROPIC_BASE_URL",
    ),
    ProviderType(
        name="azure",
        factory="aiport.providers._factories:create_azure",
        description="Azure OpenAI (deployments; api-key or Entra ID; content filters)",
        api_key_env="AZURE_OPENAI_API_KEY",
        base_url_env="AZURE_OPENAI_ENDPOINT",
        requires_base_url=True,
    ),
    ProviderType(
        name="gemini",
        factory="aiport.providers._factories:create_gemini",
        description="Google Gemini API (generateContent, embeddings, Imagen)",
        api_key_env="GEMINI_API_KEY",
        base_url_env="GOOGLE_GEMINI_BASE_URL",
    ),
    ProviderType(
        name="bedrock",
        factory="aiport.providers._factories:create_bedrock",
        description="AWS Bedrock (Converse, ConverseStream, Titan/Cohere embeddings; SigV4)",
        # AWS credentials come from the AWS chain (or explicit keys), signed by the adapter.
        requires_api_key=False,
    ),
    ProviderType(
        name="ollama",
        factory="aiport.providers._factories:create_ollama",
        description="Ollama's native API (/api/chat, /api/embed; NDJSON streams), local or hosted",
        # No key for a local server; a configured api_key is sent as a bearer token.
        base_url_env="OLLAMA_HOST",
        requires_api_key=False,
    ),
    ProviderType(
        name="mistral",
        factory="aiport.providers._factories:create_mistral",
        description="Mistral AI (chat, tools, vision, JSON output, prefill; embeddings)",
        api_key_env="MISTRAL_API_KEY",
    ),
    ProviderType(
        name="cohere",
        factory="aiport.providers._factories:create_cohere",
        description="Cohere v2 API (chat, tools, vision, JSON output; embed; rerank extra)",
        # The SDK reads CO_API_KEY; aiport names keys <PROVIDER>_API_KEY like the others.
        api_key_env="COHERE_API_KEY",
    ),
)
