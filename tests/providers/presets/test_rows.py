"""Every preset row: it builds a provider with the right base URL, key variable and quirks."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiport import ProviderRegistry, ProviderService
from aiport._errors import ConfigError, ProviderAuthError, ProviderNotFoundError
from aiport._provider import ProviderLayer
from aiport.providers._presets import PRESETS_FILE, load_presets, preset_named
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

#: What each preset must point at: (default base URL, key variable or None).
EXPECTED = {
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "together": ("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "fireworks": ("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "perplexity": ("https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
    "cerebras": ("https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
    "vllm": ("http://localhost:8000/v1", None),
    "llama-cpp": ("http://localhost:8080/v1", None),
    "lm-studio": ("http://localhost:1234/v1", None),
    "ollama-openai": ("http://localhost:11434/v1", None),
}


def adapter(service: ProviderService, name: str) -> OpenAIProvider:
    provider = service.get_provider(name)
    assert isinstance(provider, ProviderLayer)
    inner = provider.unwrap()
    assert isinstance(inner, OpenAIProvider)
    return inner


def test_the_shipped_presets() -> None:
    assert sorted(load_presets()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_every_preset_builds_its_provider(name: str) -> None:
    base_url, key_env = EXPECTED[name]
    env = {key_env: "sk-preset-test-0123456789"} if key_env else {}
    config = {"providers": {"mine": {"type": name}}}
    async with ProviderService(config, env=env) as service:
        provider_type = service.registry.get(name)
        assert provider_type.api_key_env == key_env
        assert provider_type.requires_api_key is (key_env is not None)
        assert "OpenAI-compatible preset" in provider_type.description
        built = adapter(service, "mine")
        assert built.base_url == base_url
        assert built.compatible
        assert built.quirks == preset_named(name).quirks
        assert service.validate_provider("mine")


async def test_a_hosted_preset_without_its_key_names_the_variable(emulator: Emulator) -> None:
    config = {
        "retry": {"max_attempts": 1},
        "providers": {"groq": {"type": "groq", "base_url": emulator.openai_base_url}},
    }
    async with ProviderService(config, env={}) as service:
        assert not service.validate_provider("groq")
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model="groq:llama-3.3-70b-versatile", messages="Hi")
    assert "GROQ_API_KEY" in caught.value.message
    assert emulator.count() == 0


async def test_a_configured_base_url_wins() -> None:
    config = {"providers": {"box": {"type": "vllm", "base_url": "http://gpu-box:9000/v1"}}}
    async with ProviderService(config, env={}) as service:
        assert adapter(service, "box").base_url == "http://gpu-box:9000/v1"


async def test_preset_catalogues() -> None:
    config = {"providers": {"g": {"type": "groq"}, "d": {"type": "deepseek"}}}
    async with ProviderService(config, env={}) as service:
        groq = service.known_models("g")["llama-3.3-70b-versatile"]
        assert (groq.input_price_per_million, groq.output_price_per_million) == (0.59, 0.79)
        assert groq.provider == "g"
        deepseek = service.known_models("d")["deepseek-chat"]
        assert deepseek.cached_input_price_per_million == 0.028
        assert deepseek.capabilities.tools


def test_presets_load_lazily_and_list_with_the_types() -> None:
    registry = ProviderRegistry.default()
    assert not dict.__contains__(registry.types, "groq")  # not read yet
    assert "groq" in registry.types
    assert registry.get("lm-studio").name == "lm-studio"
    names = set(registry.names())
    assert set(EXPECTED) <= names
    assert {"openai", "anthropic", "ollama", "openai-compatible"} <= names
    with pytest.raises(ProviderNotFoundError) as caught:
        registry.get("groc")
    assert caught.value.suggestions[0] == "groq"


def test_an_unknown_preset_name() -> None:
    with pytest.raises(ProviderNotFoundError) as caught:
        preset_named("grok")
    assert "groq" in caught.value.suggestions


def test_a_bad_row_fails_loudly(tmp_path: Path) -> None:
    bad = tmp_path / "presets.toml"
    bad.write_text(
        PRESETS_FILE.read_text()
        + """
[Bad_Name]
description = "x"
base_url = "ftp://nowhere"
tool_choice = ["sometimes"]
stream_usage = "yes"
colour = "blue"
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_presets(bad)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {
        "Bad_Name",
        "Bad_Name.colour",
        "Bad_Name.base_url",
        "Bad_Name.stream_usage",
        "Bad_Name.tool_choice",
    }
    assert all(p.source == str(bad) for p in caught.value.problems)
    assert "sometimes" in problems["Bad_Name.tool_choice"]
