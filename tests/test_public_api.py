"""The public API: what `aiport` exports, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import aiport

# The names SPEC.md section 1 promises, plus the errors of section 4.
SPEC_NAMES = {
    "ProviderService",
    "ModelProvider",
    "AgentConfig",
    "ProviderConfig",
    "ProviderModelConfig",
    "ProviderModel",
    "ModelCompletionOptions",
    "ModelCompletionResponse",
    "ModelEmbeddingOptions",
    "ModelEmbeddingResponse",
    "ImageGenerationOptions",
    "ImageGenerationResponse",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderAuthError",
    "ProviderRateLimitError",
    "ProviderAPIError",
    "ProviderCapabilityError",
    "ConfigError",
}


def test_all_is_sorted_and_complete() -> None:
    assert aiport.__all__ == sorted(aiport.__all__)
    assert set(aiport.__all__) >= SPEC_NAMES
    public_modules = {n for n in dir(aiport) if not n.startswith("_")}
    assert public_modules <= set(aiport.__all__) | {"annotations", "importlib"}


def test_every_exported_name_resolves_to_an_object_from_a_private_module() -> None:
    for name in aiport.__all__:
        value = getattr(aiport, name)
        assert value is not None, name
        module = getattr(value, "__module__", "aiport")
        # Public names live in private modules (httpx style) and are re-exported.
        assert module.startswith("aiport") or name in {
            "FinishReason",
            "StreamEvent",
            "LayerFactory",
            "BatchStatus",
        }, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = aiport.NoSuchThing  # type: ignore[attr-defined]


def test_error_codes_are_the_documented_strings() -> None:
    assert aiport.ProviderNotFoundError.code == "PROVIDER_NOT_FOUND"
    assert aiport.ProviderAuthError.code == "PROVIDER_AUTH_ERROR"
    assert aiport.ProviderRateLimitError.code == "PROVIDER_RATE_LIMIT_ERROR"
    assert aiport.ProviderAPIError.code == "PROVIDER_API_ERROR"
    assert aiport.ProviderCapabilityError.code == "PROVIDER_API_ERROR"
    assert issubclass(aiport.ProviderCapabilityError, aiport.ProviderAPIError)
    assert aiport.ConfigError.code == "CONFIG_ERROR"


def test_import_is_light() -> None:
    """`import aiport` loads no HTTP client, no pydantic and no adapter."""
    code = (
        "import sys, aiport; "
        "heavy = [m for m in ('aiohttp', 'pydantic', 'yaml', 'typer', 'rich', "
        "'aiport.providers.openai', 'aiport.providers.anthropic', 'aiport._service') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
