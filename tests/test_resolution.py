"""Model-id resolution: explicit, aliases, bare ids, ambiguity, unknown ids."""

from __future__ import annotations

from typing import Any

import pytest

from aiport import ProviderNotFoundError, ProviderService


def make_service(**providers: Any) -> ProviderService:
    base: dict[str, Any] = {
        "openai": {"type": "openai", "api_key": "sk-literal-openai-000000"},
        "anthropic": {"type": "anthropic", "api_key": "sk-literal-anthropic-000"},
    }
    base.update(providers)
    return ProviderService(
        {"providers": base, "aliases": {"fast": "openai:gpt-4o-mini", "best": "smart"}},
        env={},
    )


def test_explicit_provider_and_model() -> None:
    with make_service() as service:
        resolved = service.resolve_model("openai:gpt-4o")
        assert (resolved.provider, resolved.model) == ("openai", "gpt-4o")
        assert resolved.qualified_id == "openai:gpt-4o"


def test_explicit_id_passes_any_model_name_through() -> None:
    """Providers add models faster than any list: an explicit id is never refused."""
    with make_service() as service:
        resolved = service.resolve_model("anthropic:claude-from-the-future-9")
        assert (resolved.provider, resolved.model) == ("anthropic", "claude-from-the-future-9")


def test_model_names_with_colons_split_at_the_first_colon() -> None:
    with make_service(
        local={"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}
    ) as service:
        resolved = service.resolve_model("local:llama3:8b")
        assert (resolved.provider, resolved.model) == ("local", "llama3:8b")


def test_aliases_from_model_tables_and_top_level() -> None:
    with make_service(
        openai={
            "type": "openai",
            "api_key": "sk-literal-openai-000000",
            "models": {"gpt-4o": {"aliases": ["smart"], "temperature": 0.1}},
        }
    ) as service:
        smart = service.resolve_model("smart")
        assert (smart.provider, smart.model) == ("openai", "gpt-4o")
        assert smart.config is not None and smart.config.temperature == 0.1
        assert service.resolve_model("fast").model == "gpt-4o-mini"
        # An alias of an alias.
        assert service.resolve_model("best").qualified_id == "openai:gpt-4o"


def test_upstream_name_from_the_model_table() -> None:
    with make_service(
        openai={
            "type": "openai",
            "api_key": "sk-literal-openai-000000",
            "models": {"prod-chat": {"name": "gpt-4o-2024-08-06"}},
        }
    ) as service:
        resolved = service.resolve_model("openai:prod-chat")
        assert resolved.model == "gpt-4o-2024-08-06"
        assert service.resolve_model("prod-chat").model == "gpt-4o-2024-08-06"


def test_bare_id_known_to_exactly_one_provider() -> None:
    with make_service() as service:
        assert service.resolve_model("gpt-4o").provider == "openai"
        assert service.resolve_model("claude-sonnet-4-6").provider == "anthropic"
        assert service.get_provider_for_model("gpt-4o").name == "openai"


def test_bare_id_known_to_several_providers_is_ambiguous() -> None:
    mirror = {
        "type": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "models": {"gpt-4o": {}},
    }
    with make_service(mirror=mirror) as service:
        with pytest.raises(ProviderNotFoundError) as info:
            service.resolve_model("gpt-4o")
        assert set(info.value.candidates) == {"openai:gpt-4o", "mirror:gpt-4o"}
        assert info.value.code == "PROVIDER_NOT_FOUND"
        assert "openai:gpt-4o" in str(info.value)
        # Qualifying the id removes the ambiguity.
        assert service.resolve_model("mirror:gpt-4o").provider == "mirror"


def test_unknown_bare_id_suggests_close_names() -> None:
    with make_service() as service:
        with pytest.raises(ProviderNotFoundError) as info:
            service.resolve_model("gpt-4oo")
        assert "gpt-4o" in info.value.suggestions
        assert "did you mean" in str(info.value)


def test_unknown_provider_prefix_suggests_the_provider() -> None:
    with make_service() as service:
        with pytest.raises(ProviderNotFoundError) as info:
            service.resolve_model("opnai:gpt-4o")
        assert info.value.suggestions[0] == "openai:gpt-4o"


def test_get_provider_unknown_and_disabled() -> None:
    with make_service(
        spare={"type": "openai", "api_key": "sk-literal-x-00000000", "enabled": False}
    ) as service:
        with pytest.raises(ProviderNotFoundError) as info:
            service.get_provider("anthropc")
        assert info.value.suggestions == ("anthropic",)
        with pytest.raises(ProviderNotFoundError, match="disabled"):
            service.get_provider("spare")
        with pytest.raises(ProviderNotFoundError):
            service.resolve_model("spare:gpt-4o")
        assert "spare" not in service.provider_names


def test_empty_and_provider_only_ids_are_refused() -> None:
    with make_service() as service:
        with pytest.raises(ProviderNotFoundError):
            service.resolve_model("")
        with pytest.raises(ProviderNotFoundError, match="names no model"):
            service.resolve_model("openai:")


def test_providers_are_built_once_and_cached() -> None:
    with make_service() as service:
        assert service.get_provider("openai") is service.get_provider("openai")
        assert service.get_provider("openai") is not service.get_provider("anthropic")
