"""Configuration models and loader (aiport._config)."""

from __future__ import annotations

import copy
import json
import math
import pickle
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from aiport._config import (
    AgentConfig,
    CacheConfig,
    ProviderConfig,
    ProviderModelConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
    deep_merge,
    env_overlay,
    format_path,
    load_config,
)
from aiport._errors import ConfigError, ConfigProblem, ErrorCode, ProviderNotFoundError

CANARY = "sk-canary-1234567890abcdef"
NO_ENV: dict[str, str] = {}


def load(source: Any = None, **kwargs: Any) -> AgentConfig:
    """load_config that never reads the real environment or working directory."""
    kwargs.setdefault("env", NO_ENV)
    return load_config(source, **kwargs)


def problems_of(source: Any, **kwargs: Any) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load(source, **kwargs)
    assert caught.value.code is ErrorCode.CONFIG_ERROR
    return list(caught.value.problems)


def paths_of(source: Any, **kwargs: Any) -> set[str]:
    return {p.path for p in problems_of(source, **kwargs)}


def openai(**extra: Any) -> dict[str, Any]:
    return {"type": "openai", "api_key": "env:OPENAI_API_KEY", **extra}


# -- defaults and models ------------------------------------------------------------------


def test_defaults() -> None:
    config = load({})
    assert config.providers == {}
    assert config.timeouts == TimeoutConfig(connect=10, first_token=60, idle=60, total=600)
    assert config.retry.max_attempts == 3
    assert config.retry.initial_backoff == 0.5
    assert config.retry.max_backoff == 30
    assert config.retry.max_retry_after == 60
    assert config.retry.deadline is None
    assert config.retry.budget_ratio == 0.2
    assert config.rate_limit == RateLimitConfig()
    assert config.rate_limit.max_queue_wait == 30
    assert config.cache == CacheConfig(enabled=False, backend="memory", ttl=3600)
    assert config.cache.max_entries == 10_000
    assert config.log_requests is False
    assert config.environment is None
    assert config.source == "mapping"


def test_every_field_is_documented() -> None:
    for model in (
        TimeoutConfig,
        RetryConfig,
        RateLimitConfig,
        CacheConfig,
        ProviderModelConfig,
        ProviderConfig,
        AgentConfig,
    ):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_models_are_frozen() -> None:
    config = load({"providers": {"openai": openai()}})
    with pytest.raises(Exception, match="frozen"):
        config.log_requests = True  # type: ignore[misc]
    with pytest.raises(Exception, match="frozen"):
        config.providers["openai"].type = "x"  # type: ignore[misc]


def test_direct_construction_raises_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        TimeoutConfig(connect=-1, total=0)
    assert {p.path for p in caught.value.problems} == {"connect", "total"}
    with pytest.raises(ConfigError) as caught:
        AgentConfig.model_validate({"retry": {"max_attempts": 0}, "bogus": 1})
    assert {p.path for p in caught.value.problems} == {"retry.max_attempts", "bogus"}
    with pytest.raises(ConfigError):
        ProviderConfig.model_validate_json('{"type": "Bad"}')
    with pytest.raises(ConfigError):
        ProviderConfig(type="openai", base_url="nope")


def test_direct_construction_collects_nested_errors() -> None:
    # Nested tables must not stop at the first bad one.
    with pytest.raises(ConfigError) as caught:
        AgentConfig(
            providers={
                "a": {"type": "openai", "retry": {"max_attempts": 0}},
                "b": {"type": "openai", "timeouts": {"idle": 0}},
            },
            timeouts={"connect": 0},
        )
    assert {p.path for p in caught.value.problems} == {
        "providers.a.retry.max_attempts",
        "providers.b.timeouts.idle",
        "timeouts.connect",
    }


def test_base_url_normalised() -> None:
    config = load({"providers": {"x": openai(base_url="https://api.example.com/v1/")}})
    assert config.providers["x"].base_url == "https://api.example.com/v1"
    config = load({"providers": {"x": openai(base_url="http://localhost:8080")}})
    assert config.providers["x"].base_url == "http://localhost:8080"


def test_env_strings_coerced() -> None:
    config = load(
        {"retry": {"max_attempts": "5", "initial_backoff": "1.5"}, "log_requests": "true"}
    )
    assert config.retry.max_attempts == 5
    assert config.retry.initial_backoff == 1.5
    assert config.log_requests is True


def test_equality_ignores_origin(tmp_path: Path) -> None:
    (tmp_path / "aiport.toml").write_text("log_requests = true\n", encoding="utf-8")
    from_file = load(tmp_path / "aiport.toml")
    from_mapping = load({"log_requests": True})
    assert from_file == from_mapping
    assert from_file.source != from_mapping.source
    assert from_file != load({})


def test_config_pickles() -> None:
    config = load({"providers": {"openai": openai()}}, env={"X": "1"})
    assert pickle.loads(pickle.dumps(config)) == config


# -- effective settings -------------------------------------------------------------------


def test_effective_settings_layer_model_over_provider_over_top() -> None:
    config = load(
        {
            "timeouts": {"connect": 5, "total": 300},
            "retry": {"max_attempts": 4},
            "rate_limit": {"requests_per_minute": 100, "max_queue_wait": 5},
            "providers": {
                "openai": openai(
                    timeouts={"total": 120},
                    rate_limit={"requests_per_minute": 50},
                    models={
                        "gpt-4o": {
                            "aliases": ["smart"],
                            "timeouts": {"idle": 10},
                            "retry": {"max_attempts": 1},
                        }
                    },
                ),
            },
        }
    )
    top = config.effective_timeouts("openai")
    assert (top.connect, top.first_token, top.idle, top.total) == (5, 60, 60, 120)
    model = config.effective_timeouts("openai", "gpt-4o")
    assert (model.connect, model.idle, model.total) == (5, 10, 120)
    assert config.effective_timeouts("openai", "smart") == model
    assert config.effective_timeouts("openai", "openai:gpt-4o") == model
    assert config.effective_timeouts("openai", "unlisted") == top
    assert config.effective_retry("openai").max_attempts == 4
    assert config.effective_retry("openai", "gpt-4o").max_attempts == 1
    limits = config.effective_rate_limit("openai", "gpt-4o")
    assert (limits.requests_per_minute, limits.max_queue_wait) == (50, 5)


def test_effective_settings_unknown_provider() -> None:
    config = load({"providers": {"openai": openai()}})
    with pytest.raises(ProviderNotFoundError) as caught:
        config.effective_timeouts("opnai")
    assert caught.value.suggestions == ("openai",)


def test_inherited_settings_checked_after_merge() -> None:
    problems = problems_of(
        {
            "retry": {"max_backoff": 1},
            "providers": {
                "p": openai(retry={"initial_backoff": 5}, models={"m": {"retry": {}}}),
                "q": openai(models={"m": {"retry": {"initial_backoff": 2}}}),
            },
        }
    )
    # p's mistake is reported once (not again for its model); q's model on its own.
    assert [p.path for p in problems] == [
        "providers.p.retry.max_backoff",
        "providers.q.models.m.retry.max_backoff",
    ]


# -- files --------------------------------------------------------------------------------

TOML = """
environment = "dev"
default_model = "smart"

[providers.openai]
type = "openai"
api_key = "env:OPENAI_API_KEY"
base_url = "https://api.openai.com/v1/"
headers = { "X-Title" = "demo" }

[providers.openai.retry]
max_attempts = 5

[providers.openai.models."gpt-4o"]
aliases = ["smart"]
fallbacks = ["anthropic:claude-sonnet-4-6"]
temperature = 0.3

[providers.anthropic]
type = "anthropic"
api_key = "file:secrets/anthropic"

[cache]
enabled = true
backend = "sqlite"
path = "cache.sqlite"

[environments.dev]
log_requests = true

[environments.prod.providers.openai.retry]
max_attempts = 8
"""

YAML = """
environment: dev
default_model: smart
providers:
  openai:
    type: openai
    api_key: env:OPENAI_API_KEY
    base_url: https://api.openai.com/v1/
    headers: {X-Title: demo}
    retry: {max_attempts: 5}
    models:
      gpt-4o:
        aliases: [smart]
        fallbacks: ["anthropic:claude-sonnet-4-6"]
        temperature: 0.3
  anthropic:
    type: anthropic
    api_key: file:secrets/anthropic
cache: {enabled: true, backend: sqlite, path: cache.sqlite}
environments:
  dev: {log_requests: true}
  prod:
    providers: {openai: {retry: {max_attempts: 8}}}
"""


def _check_example(config: AgentConfig, path: Path) -> None:
    openai_config = config.providers["openai"]
    assert openai_config.type == "openai"
    assert openai_config.base_url == "https://api.openai.com/v1"
    assert openai_config.api_key is not None
    assert openai_config.api_key.get_secret_value() == "env:OPENAI_API_KEY"
    assert openai_config.headers == {"X-Title": "demo"}
    assert openai_config.models["gpt-4o"].aliases == ["smart"]
    assert openai_config.models["gpt-4o"].temperature == 0.3
    assert config.cache.backend == "sqlite"
    assert config.environment == "dev"
    assert config.log_requests is True  # the dev profile
    assert openai_config.retry is not None
    assert openai_config.retry.max_attempts == 5
    assert config.base_dir == path.parent
    assert config.source == f"{path} + environments.dev"


@pytest.mark.parametrize(("name", "text"), [("aiport.toml", TOML), ("aiport.yaml", YAML)])
def test_file_formats(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    _check_example(load(path), path)
    _check_example(load(str(path)), path)
    _check_example(AgentConfig.from_file(path, env=NO_ENV), path)


def test_toml_and_yaml_agree(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "a.yml").write_text(YAML, encoding="utf-8")
    assert load(tmp_path / "a.toml") == load(tmp_path / "a.yml")


def test_relative_path_resolves_against_cwd_argument(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "x.toml").write_text("log_requests = true\n", encoding="utf-8")
    config = load("conf/x.toml", cwd=tmp_path)
    assert config.log_requests is True
    assert config.base_dir == tmp_path / "conf"


def test_file_secret_reference_resolves_against_config_dir(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "anthropic").write_text(CANARY + "\n", encoding="utf-8")
    (tmp_path / "aiport.toml").write_text(TOML, encoding="utf-8")
    config = load(cwd=tmp_path)
    key = config.providers["anthropic"].api_key
    assert key is not None
    resolved = config.secret_resolver().resolve(key)
    assert resolved.get_secret_value() == CANARY


def test_env_secret_reference_resolves_against_given_env() -> None:
    config = load({}, env={"OPENAI_API_KEY": CANARY})
    key = config.providers["openai"].api_key
    assert key is not None
    assert config.secret_resolver().resolve(key).get_secret_value() == CANARY


def test_discovery_order(tmp_path: Path) -> None:
    assert load(cwd=tmp_path).source == "defaults"
    (tmp_path / "aiport.yml").write_text("log_requests: true\n", encoding="utf-8")
    assert load(cwd=tmp_path).source == str(tmp_path / "aiport.yml")
    (tmp_path / "aiport.yaml").write_text("log_requests: true\n", encoding="utf-8")
    assert load(cwd=tmp_path).source == str(tmp_path / "aiport.yaml")
    (tmp_path / "aiport.toml").write_text("log_requests = true\n", encoding="utf-8")
    assert load(cwd=tmp_path).source == str(tmp_path / "aiport.toml")


def test_aiport_config_variable_wins_over_discovery(tmp_path: Path) -> None:
    (tmp_path / "aiport.toml").write_text("log_requests = false\n", encoding="utf-8")
    (tmp_path / "other.yaml").write_text("log_requests: true\n", encoding="utf-8")
    env = {"AIPORT_CONFIG": str(tmp_path / "other.yaml")}
    assert load(cwd=tmp_path, env=env).log_requests is True
    assert AgentConfig.from_env(env).log_requests is True
    assert AgentConfig.from_env({}).source == "mapping"


def test_empty_files_are_empty_configs(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("", encoding="utf-8")
    (tmp_path / "a.yaml").write_text("# nothing\n", encoding="utf-8")
    assert load(tmp_path / "a.toml") == AgentConfig()
    assert load(tmp_path / "a.yaml") == AgentConfig()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    (problem,) = problems_of(path)
    assert problem.source == str(path)
    assert "not found" in problem.message


def test_missing_file_named_by_variable(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    (problem,) = problems_of(None, env={"AIPORT_CONFIG": path}, cwd=tmp_path)
    assert problem.source == path


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "aiport.json"
    path.write_text("{}", encoding="utf-8")
    (problem,) = problems_of(path)
    assert ".json" in problem.message
    assert problem.source == str(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "x.toml").mkdir()
    (problem,) = problems_of(tmp_path / "x.toml")
    assert "directory" in problem.message


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text('log_requests = true\n[providers.openai\napi_key = "x"\n', encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.source == str(path)
    assert "TOML syntax error" in problem.message
    assert "line 2" in problem.message
    assert "column" in problem.message


def test_yaml_syntax_error_has_line_and_column_and_no_content(tmp_path: Path) -> None:
    path = tmp_path / "aiport.yaml"
    path.write_text(f"providers:\n  openai:\n    api_key: [{CANARY}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load(path)
    (problem,) = caught.value.problems
    assert problem.source == str(path)
    assert "YAML syntax error" in problem.message
    assert "line 4" in problem.message
    assert "column 1" in problem.message
    for text in (str(caught.value), repr(caught.value)):
        assert CANARY not in text


def test_yaml_unsafe_tag_rejected(tmp_path: Path) -> None:
    path = tmp_path / "aiport.yaml"
    path.write_text("x: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    (problem,) = problems_of(path)
    assert "YAML" in problem.message


@pytest.mark.parametrize(
    ("name", "text"), [("a.yaml", "- 1\n- 2\n"), ("b.yaml", "just a string\n")]
)
def test_non_mapping_top_level(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    (problem,) = problems_of(path)
    assert "top level" in problem.message
    assert problem.source == str(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.toml"
    path.write_bytes(b"x = '\xff'\n")
    (problem,) = problems_of(path)
    assert "UTF-8" in problem.message


def test_file_problems_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(
        "[providers.openai]\ntype = 'openai'\n[providers.openai.retry]\nmax_attempts = 0\n",
        encoding="utf-8",
    )
    (problem,) = problems_of(path)
    assert problem == ConfigProblem(
        path="providers.openai.retry.max_attempts",
        message="Input should be greater than or equal to 1",
        source=str(path),
    )


def test_bad_source_type() -> None:
    with pytest.raises(ConfigError):
        load(42)


# -- profiles -----------------------------------------------------------------------------

PROFILED = {
    "log_requests": False,
    "retry": {"max_attempts": 2, "initial_backoff": 0.1},
    "environments": {
        "dev": {"log_requests": True},
        "prod": {"retry": {"max_attempts": 6}, "cache": {"enabled": True}},
    },
}


def test_profile_from_argument() -> None:
    config = load(PROFILED, environment="prod")
    assert config.environment == "prod"
    assert config.retry.max_attempts == 6
    assert config.retry.initial_backoff == 0.1  # untouched keys kept
    assert config.cache.enabled is True
    assert config.log_requests is False
    assert config.source == "mapping + environments.prod"


def test_profile_from_aiport_env_and_setting() -> None:
    assert load(PROFILED, env={"AIPORT_ENV": "dev"}).log_requests is True
    assert load({**PROFILED, "environment": "dev"}).log_requests is True
    assert load({**PROFILED, "environment": "dev"}, environment="prod").retry.max_attempts == 6
    assert load({**PROFILED, "environment": "dev"}, env={"AIPORT_ENV": "prod"}).environment == (
        "prod"
    )
    assert load(PROFILED, env={"AIPORT_ENVIRONMENT": "dev"}).log_requests is True


def test_profile_not_applied_when_none_active() -> None:
    config = load(PROFILED)
    assert config.environment is None
    assert config.retry.max_attempts == 2
    assert set(config.environments) == {"dev", "prod"}


def test_profile_name_without_profiles_is_kept() -> None:
    assert load({}, environment="staging").environment == "staging"


def test_unknown_profile_lists_known_ones() -> None:
    (problem,) = problems_of(PROFILED, environment="prd")
    assert problem.path == "environment"
    assert "'dev', 'prod'" in problem.message
    assert "did you mean 'prod'" in problem.message
    assert problem.source == "argument"
    (problem,) = problems_of(PROFILED, env={"AIPORT_ENV": "qa"})
    assert problem.source == "environment"


def test_profile_problem_names_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text("[environments.prod.retry]\nmax_attempts = 0\n", encoding="utf-8")
    (problem,) = problems_of(path, environment="prod")
    assert problem.path == "retry.max_attempts"
    assert problem.source == f"{path} [environments.prod]"


def test_profile_cannot_nest_or_switch() -> None:
    problems = problems_of(
        {"environments": {"prod": {"environments": {}, "environment": "dev"}}},
        environment="prod",
    )
    assert {p.path for p in problems} == {
        "environments.prod.environments",
        "environments.prod.environment",
    }


def test_profile_overlay_validated() -> None:
    problems = problems_of({"environments": {"prod": {"retry": {"nope": 1}}}}, environment="prod")
    assert [p.path for p in problems] == ["retry.nope"]


# -- environment variables ----------------------------------------------------------------


def test_env_overlay_paths_and_values() -> None:
    overlay = env_overlay(
        {
            "AIPORT_RETRY__MAX_ATTEMPTS": "5",
            "AIPORT_PROVIDERS__OPENAI__TYPE": "openai",
            "AIPORT_PROVIDERS__OPENAI__MODELS__GPT-4O__ALIASES": '["smart", "fast"]',
            "AIPORT_PROVIDERS__OPENAI__HEADERS": '{"X-Title": "demo"}',
            "AIPORT_LOG_REQUESTS": "true",
            "AIPORT_CONFIG": "ignored.toml",
            "AIPORT_ENV": "prod",
            "AIPORT_TEST_ANYTHING": "ignored",
            "OPENAI_API_KEY": "ignored",
            "aiport_lower": "ignored",
        }
    )
    assert overlay == {
        "retry": {"max_attempts": "5"},
        "providers": {
            "openai": {
                "type": "openai",
                "models": {"gpt-4o": {"aliases": ["smart", "fast"]}},
                "headers": {"X-Title": "demo"},
            }
        },
        "log_requests": "true",
    }


def test_env_layer_applies_over_file_and_under_overrides() -> None:
    env = {
        "AIPORT_RETRY__MAX_ATTEMPTS": "5",
        "AIPORT_RETRY__DEADLINE": "20",
        "AIPORT_PROVIDERS__OPENAI__MODELS__GPT-4O__FALLBACKS": '["openai:gpt-4o-mini"]',
    }
    config = load(
        {"retry": {"max_attempts": 2, "initial_backoff": 1}, "providers": {"openai": openai()}},
        env=env,
        overrides={"retry": {"deadline": 9}},
    )
    assert config.retry.max_attempts == 5
    assert config.retry.initial_backoff == 1
    assert config.retry.deadline == 9
    assert config.providers["openai"].models["gpt-4o"].fallbacks == ["openai:gpt-4o-mini"]
    assert config.source == "mapping + environment variables + overrides"


def test_env_json_replaces_lists_and_merges_tables() -> None:
    config = load(
        {
            "providers": {
                "openai": openai(headers={"A": "1"}, models={"m": {"aliases": ["x", "y"]}})
            }
        },
        env={
            "AIPORT_PROVIDERS__OPENAI__HEADERS": '{"B": "2"}',
            "AIPORT_PROVIDERS__OPENAI__MODELS__M__ALIASES": '["z"]',
        },
    )
    assert config.providers["openai"].headers == {"A": "1", "B": "2"}
    assert config.providers["openai"].models["m"].aliases == ["z"]


def test_env_invalid_json_names_the_variable() -> None:
    (problem,) = problems_of({}, env={"AIPORT_PROVIDERS__X__MODELS": "[1, 2"})
    assert problem.path == "providers.x.models"
    assert "AIPORT_PROVIDERS__X__MODELS" in problem.message
    assert problem.source == "environment"


def test_env_empty_level() -> None:
    problems = problems_of({}, env={"AIPORT_RETRY____MAX": "1", "AIPORT_CACHE__": "1"})
    assert {p.path for p in problems} == {"AIPORT_RETRY____MAX", "AIPORT_CACHE__"}


def test_env_problems_name_the_variable() -> None:
    (problem,) = problems_of({}, env={"AIPORT_RETRY__MAX_ATTEMPTS": "zero"})
    assert problem.path == "retry.max_attempts"
    assert problem.source == "environment"
    assert "AIPORT_RETRY__MAX_ATTEMPTS" in problem.message
    (problem,) = problems_of({}, env={"AIPORT_RETYR__MAX_ATTEMPTS": "1"})
    assert problem.path == "retyr"
    assert "did you mean 'retry'" in problem.message


def test_overrides_win_and_accept_models() -> None:
    config = load(
        {"timeouts": {"connect": 1}},
        overrides={"timeouts": TimeoutConfig(total=5), "providers": {"x": openai()}},
    )
    assert config.timeouts.connect == 1  # a model override only sets what it set
    assert config.timeouts.total == 5
    assert "x" in config.providers
    (problem,) = problems_of({}, overrides={"cache": {"ttl": 0}})
    assert problem.path == "cache.ttl"
    assert problem.source == "overrides"


def test_agent_config_source_returned_unchanged() -> None:
    config = load({"log_requests": True})
    assert load(config) is config
    assert load(config, env={"AIPORT_LOG_REQUESTS": "false"}, environment="x") is config
    changed = load(config, overrides={"retry": {"max_attempts": 9}})
    assert changed.retry.max_attempts == 9
    assert changed.log_requests is True
    assert changed.source == "mapping + overrides"
    with pytest.raises(ConfigError):
        load(config, overrides={"retry": {"max_attempts": 0}})


# -- default providers --------------------------------------------------------------------


def test_default_providers_from_standard_variables() -> None:
    config = load(
        None,
        env={
            "OPENAI_API_KEY": CANARY,
            "ANTHROPIC_API_KEY": "sk-ant",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:9999/",
        },
        cwd=Path("/nonexistent-dir-for-aiport-tests"),
    )
    assert set(config.providers) == {"openai", "anthropic"}
    openai_config = config.providers["openai"]
    assert openai_config.type == "openai"
    assert openai_config.api_key == SecretStr("env:OPENAI_API_KEY")
    assert openai_config.base_url is None
    anthropic = config.providers["anthropic"]
    assert anthropic.type == "anthropic"
    assert anthropic.base_url == "http://127.0.0.1:9999"
    assert "standard key variables" in config.source


def test_default_provider_only_for_set_variables() -> None:
    assert set(load({}, env={"ANTHROPIC_API_KEY": "x"}).providers) == {"anthropic"}
    assert load({}, env={"OPENAI_API_KEY": ""}).providers == {}
    assert load({}, env={"OPENAI_BASE_URL": "http://x"}).providers == {}


def test_default_providers_for_every_type_with_a_standard_key_variable() -> None:
    config = load(
        {},
        env={"GEMINI_API_KEY": "g", "MISTRAL_API_KEY": "m", "GROQ_API_KEY": "q"},
        cwd=Path("/nonexistent-dir-for-aiport-tests"),
    )
    assert set(config.providers) == {"gemini", "mistral", "groq"}
    assert config.providers["groq"].type == "groq"
    assert config.providers["gemini"].api_key == SecretStr("env:GEMINI_API_KEY")


def test_default_azure_provider_needs_its_endpoint_too() -> None:
    assert load({}, env={"AZURE_OPENAI_API_KEY": "a"}).providers == {}
    config = load(
        {},
        env={"AZURE_OPENAI_API_KEY": "a", "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"},
    )
    assert config.providers["azure"].base_url == "https://x.openai.azure.com"


def test_no_default_providers_when_some_are_configured() -> None:
    config = load(
        {"providers": {"local": {"type": "openai-compatible"}}}, env={"OPENAI_API_KEY": "x"}
    )
    assert set(config.providers) == {"local"}
    config = load({}, env={"OPENAI_API_KEY": "x", "AIPORT_PROVIDERS__LOCAL__TYPE": "ollama"})
    assert set(config.providers) == {"local"}


def test_default_provider_bad_base_url_reported_from_environment() -> None:
    (problem,) = problems_of({}, env={"OPENAI_API_KEY": "x", "OPENAI_BASE_URL": "localhost"})
    assert problem.path == "providers.openai.base_url"
    assert problem.source == "environment"


# -- bad configurations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"bogus": 1}, "bogus"),
        ({"timeouts": {"conect": 1}}, "timeouts.conect"),
        ({"retry": {"attempts": 1}}, "retry.attempts"),
        ({"rate_limit": {"rpm": 1}}, "rate_limit.rpm"),
        ({"cache": {"size": 1}}, "cache.size"),
        ({"providers": {"p": openai(apikey="x")}}, "providers.p.apikey"),
        ({"providers": {"p": openai(timeouts={"x": 1})}}, "providers.p.timeouts.x"),
        ({"providers": {"p": openai(models={"m": {"alias": []}})}}, "providers.p.models.m.alias"),
        (
            {"providers": {"p": openai(models={"m": {"retry": {"tries": 1}}})}},
            "providers.p.models.m.retry.tries",
        ),
    ],
)
def test_unknown_option_at_each_level(config: dict[str, Any], path: str) -> None:
    (problem,) = problems_of(config)
    assert problem.path == path
    assert problem.message.startswith("unknown option")
    assert problem.source == "mapping"


def test_unknown_option_suggests_close_name() -> None:
    (problem,) = problems_of({"providers": {"p": openai(max_conections=3)}})
    assert problem.message == "unknown option; did you mean 'max_connections'?"


def test_wrong_types_all_reported() -> None:
    problems = problems_of(
        {
            "log_requests": "maybe",
            "providers": {"p": {"type": "openai", "headers": ["a"], "models": []}},
            "aliases": [],
            "cache": {"backend": "disk"},
            "retry": "fast",
        }
    )
    assert {p.path for p in problems} == {
        "log_requests",
        "providers.p.headers",
        "providers.p.models",
        "aliases",
        "cache.backend",
        "retry",
    }
    (backend,) = (p for p in problems if p.path == "cache.backend")
    assert "'memory', 'sqlite' or 'redis'" in backend.message


def test_missing_type_reported() -> None:
    (problem,) = problems_of({"providers": {"p": {"base_url": "https://x"}}})
    assert problem.path == "providers.p.type"
    assert problem.message == "required setting is missing"


@pytest.mark.parametrize(
    "url",
    [
        "api.openai.com",
        "ftp://api.openai.com",
        "https://",
        "http:///path",
        "https://exa mple.com",
        "https://host:99999",
        "",
    ],
)
def test_bad_base_url(url: str) -> None:
    (problem,) = problems_of({"providers": {"p": openai(base_url=url)}})
    assert problem.path == "providers.p.base_url"
    assert "http" in problem.message


@pytest.mark.parametrize("name", ["bad name", "open:ai", "", "ü", "a/b"])
def test_bad_provider_name(name: str) -> None:
    problems = problems_of({"providers": {name: openai()}})
    assert format_path(("providers", name)) in {p.path for p in problems}


@pytest.mark.parametrize("name", ["openai", "my-provider_2", "azure.eu", "A1"])
def test_good_provider_names(name: str) -> None:
    assert name in load({"providers": {name: openai()}}).providers


@pytest.mark.parametrize("adapter", ["OpenAI", "", "open ai", "openai!"])
def test_bad_adapter_type(adapter: str) -> None:
    (problem,) = problems_of({"providers": {"p": {"type": adapter}}})
    assert problem.path == "providers.p.type"


def test_bad_headers() -> None:
    problems = problems_of(
        {"providers": {"p": openai(headers={"Bad Name": "x", "X-Ok": "a\r\nInjected: 1"})}}
    )
    assert {p.path for p in problems} == {
        'providers.p.headers."Bad Name"',
        "providers.p.headers.X-Ok",
    }


def test_duplicate_aliases_reported_everywhere() -> None:
    problems = problems_of(
        {
            "providers": {
                "openai": openai(models={"gpt-4o": {"aliases": ["smart", "fast"]}}),
                "anthropic": {
                    "type": "anthropic",
                    "models": {"claude": {"aliases": ["smart", "openai"]}},
                },
            },
            "aliases": {"fast": "openai:gpt-4o", "anthropic": "anthropic:claude"},
        }
    )
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {
        "providers.anthropic.models.claude.aliases[0]",
        "providers.anthropic.models.claude.aliases[1]",
        "aliases.fast",
        "aliases.anthropic",
    }
    assert (
        "already defined at providers.openai.models.gpt-4o.aliases[0]"
        in by_path["providers.anthropic.models.claude.aliases[0]"]
    )
    assert "name of a provider" in by_path["aliases.anthropic"]


def test_alias_with_colon_rejected() -> None:
    (problem,) = problems_of({"aliases": {"a:b": "x"}})
    assert problem.path == 'aliases."a:b"'


def test_model_ids_checked() -> None:
    problems = problems_of(
        {
            "providers": {
                "openai": openai(models={"m": {"fallbacks": ["anthropc:claude", "ok", " "]}})
            },
            "aliases": {"smart": "nope:x", "fine": "openai:gpt-4o", "bare": "gpt-4o"},
            "default_model": "openai:",
        }
    )
    by_path = {p.path: p.message for p in problems}
    assert set(by_path) == {
        "providers.openai.models.m.fallbacks[0]",
        "providers.openai.models.m.fallbacks[2]",
        "aliases.smart",
        "default_model",
    }
    assert "'anthropc'" in by_path["providers.openai.models.m.fallbacks[0]"]
    assert "not configured" in by_path["aliases.smart"]
    assert "no model" in by_path["default_model"]


def test_model_ids_with_colons_in_model_name() -> None:
    config = load(
        {
            "providers": {"ollama": {"type": "ollama"}},
            "default_model": "ollama:llama3:8b",
        }
    )
    assert config.default_model == "ollama:llama3:8b"


def test_cross_field_problems_reported_with_field_problems() -> None:
    problems = problems_of(
        {
            "providers": {"openai": openai(max_connections=0)},
            "default_model": "nope:model",
        }
    )
    assert {p.path for p in problems} == {"providers.openai.max_connections", "default_model"}


def test_numeric_bounds_of_model_defaults() -> None:
    problems = problems_of(
        {
            "providers": {
                "p": openai(
                    models={
                        "m": {
                            "temperature": 2.5,
                            "top_p": -0.1,
                            "max_output_tokens": 100,
                            "max_tokens": 200,
                            "context_window": 0,
                            "input_price_per_million": -1,
                            "capabilities": ["chat", "telepathy"],
                        }
                    }
                )
            }
        }
    )
    base = "providers.p.models.m."
    assert {p.path for p in problems} == {
        base + "temperature",
        base + "top_p",
        base + "max_tokens",
        base + "context_window",
        base + "input_price_per_million",
        base + "capabilities[1]",
    }


def test_nan_and_infinity_rejected() -> None:
    problems = problems_of({"timeouts": {"total": math.inf, "idle": math.nan}})
    assert {p.path for p in problems} == {"timeouts.total", "timeouts.idle"}


def test_retry_backoff_order() -> None:
    (problem,) = problems_of({"retry": {"initial_backoff": 5, "max_backoff": 1}})
    assert problem.path == "retry.max_backoff"


def test_redis_settings() -> None:
    (problem,) = problems_of({"cache": {"backend": "redis"}})
    assert problem.path == "cache.backend"
    assert load({"cache": {"backend": "redis"}, "redis_url": "redis://localhost:6379/0"})
    assert load({"redis_url": "env:REDIS_URL"}).redis_url == SecretStr("env:REDIS_URL")
    assert load({"redis_url": "vault:redis"})  # a custom scheme registered at run time
    (problem,) = problems_of({"redis_url": "http://localhost"})
    assert problem.path == "redis_url"


@pytest.mark.parametrize(
    "key", ["", "env:", "file:  ", "keyring:aiport", " sk-padded", "sk-newline\n"]
)
def test_bad_api_keys(key: str) -> None:
    (problem,) = problems_of({"providers": {"p": openai(api_key=key)}})
    assert problem.path == "providers.p.api_key"


def test_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(
        """
default_model = "ghost:model"
[timeouts]
connect = 0
[providers."bad name"]
type = "OpenAI"
[providers.openai]
type = "openai"
base_url = "not a url"
unknown = 1
[providers.openai.models.m]
aliases = ["openai"]
""",
        encoding="utf-8",
    )
    problems = problems_of(path, env={"AIPORT_RETRY__MAX_ATTEMPTS": "0"})
    assert {(p.path, p.source) for p in problems} == {
        ("default_model", str(path)),
        ("timeouts.connect", str(path)),
        ('providers."bad name"', str(path)),
        ('providers."bad name".type', str(path)),
        ("providers.openai.base_url", str(path)),
        ("providers.openai.unknown", str(path)),
        ("providers.openai.models.m.aliases[0]", str(path)),
        ("retry.max_attempts", "environment"),
    }


# -- secrets never shown ------------------------------------------------------------------


def _shown(value: object) -> list[str]:
    texts = [str(value), repr(value)]
    if isinstance(value, BaseException):
        texts.append("".join(traceback.format_exception(value)))
    return texts


def test_secret_canary_absent_from_config() -> None:
    config = load(
        {
            "redis_url": f"redis://:{CANARY}@localhost:6379/0",
            "providers": {
                "openai": openai(
                    api_key=CANARY,
                    headers={"Authorization": f"Bearer {CANARY}", "X-Api-Key": CANARY},
                    base_url=f"https://user:{CANARY}@proxy.example.com/v1",
                )
            },
        }
    )
    for text in [*_shown(config), *_shown(config.providers["openai"])]:
        assert CANARY not in text
    assert config.providers["openai"].api_key == SecretStr(CANARY)
    # Headers and URLs are plain settings: dumps keep them (providers need them), but the
    # secret fields stay masked even there.
    secrets_only = load(
        {"redis_url": f"redis://:{CANARY}@h", "providers": {"p": openai(api_key=CANARY)}}
    )
    assert CANARY not in secrets_only.model_dump_json()
    assert CANARY not in str(secrets_only.model_dump())


@pytest.mark.parametrize(
    "config",
    [
        {"providers": {"p": openai(api_key=CANARY, bogus=1, max_connections=-1)}},
        {"providers": {"p": openai(api_key=[CANARY])}},
        {"providers": {"p": openai(api_key=f" {CANARY}")}},
        {"providers": {"p": openai(api_key={"nested": CANARY})}},
        {"redis_url": CANARY},
        {"redis_url": f"http://:{CANARY}@host"},
        {"providers": {"p": openai(headers={"Authorization": f"{CANARY}\n"})}},
        {"providers": {"p": openai(base_url=f"ftp://:{CANARY}@host")}},
    ],
)
def test_secret_canary_absent_from_config_errors(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        load(config)
    for text in _shown(caught.value):
        assert CANARY not in text
    # The pydantic error (whose text quotes inputs) is not kept as context either.
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


def test_secret_canary_absent_from_direct_construction_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        ProviderConfig(type="openai", api_key=[CANARY])
    for text in _shown(caught.value):
        assert CANARY not in text
    assert caught.value.__context__ is None


def test_secret_canary_absent_from_env_errors() -> None:
    env = {"AIPORT_PROVIDERS__P__API_KEY": "{" + CANARY, "OPENAI_API_KEY": CANARY}
    with pytest.raises(ConfigError) as caught:
        load({}, env=env)
    for text in _shown(caught.value):
        assert CANARY not in text


# -- properties ---------------------------------------------------------------------------

_keys = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_trees = st.recursive(
    st.dictionaries(_keys, _scalars, max_size=4),
    lambda children: st.dictionaries(_keys, st.one_of(_scalars, children), max_size=4),
    max_leaves=20,
)


def _plain_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@given(_trees)
def test_merge_with_empty_is_identity(tree: dict[str, Any]) -> None:
    assert deep_merge(tree, {}) == tree
    assert deep_merge({}, tree) == tree


@given(_trees)
def test_merge_is_idempotent(tree: dict[str, Any]) -> None:
    assert deep_merge(tree, tree) == tree


@given(_trees, _trees)
def test_merge_later_wins_and_keeps_untouched(base: dict[str, Any], over: dict[str, Any]) -> None:
    before = (copy.deepcopy(base), copy.deepcopy(over))
    merged = deep_merge(base, over)
    assert (base, over) == before  # inputs untouched
    assert set(merged) == set(base) | set(over)
    for key, value in merged.items():
        if key not in over:
            assert value == base[key]
        elif isinstance(over[key], Mapping):
            below = base.get(key)
            assert value == deep_merge(below if isinstance(below, Mapping) else {}, over[key])
        else:
            assert value == over[key]


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


@given(_trees, _trees)
def test_merge_leaves_of_overlay_all_present(base: dict[str, Any], over: dict[str, Any]) -> None:
    merged_leaves = _leaves(deep_merge(base, over))
    for path, value in _leaves(over).items():
        if value == {}:
            continue  # an empty table adds nothing below it
        assert merged_leaves[path] == value


# Trees whose keys decide the kind of their value (tables under a-d, scalars under w-z), so
# no layer replaces a table by a scalar: then merging is associative.
_table_keys = st.text(alphabet="abcd", min_size=1, max_size=2)
_scalar_keys = st.text(alphabet="wxyz", min_size=1, max_size=2)
_shaped = st.recursive(
    st.dictionaries(_scalar_keys, _scalars, max_size=3),
    lambda children: st.builds(
        lambda a, b: {**a, **b},
        st.dictionaries(_scalar_keys, _scalars, max_size=3),
        st.dictionaries(_table_keys, children, max_size=3),
    ),
    max_leaves=15,
)


@given(_shaped, _shaped, _shaped)
def test_merge_is_associative_for_consistent_shapes(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    assert _plain_equal(deep_merge(deep_merge(a, b), c), deep_merge(a, deep_merge(b, c)))


_segment = st.from_regex(r"[a-z0-9]+(_[a-z0-9]+)*", fullmatch=True).filter(lambda s: len(s) <= 12)
_env_paths = st.lists(_segment, min_size=1, max_size=4).filter(
    lambda parts: parts[0] not in ("config", "env") and not parts[0].startswith("test")
)
_env_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
).filter(lambda v: v.lstrip()[:1] not in ("[", "{"))


@given(_env_paths, _env_values)
def test_env_names_map_to_paths_and_strings_round_trip(parts: list[str], value: str) -> None:
    name = "AIPORT_" + "__".join(p.upper() for p in parts)
    overlay = env_overlay({name: value})
    node: Any = overlay
    for part in parts:
        assert isinstance(node, dict)
        assert list(node) == [part]
        node = node[part]
    assert node == value


_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    _env_paths,
    st.one_of(
        st.lists(_json_values, max_size=3),
        st.dictionaries(st.text(max_size=3), _json_values, max_size=3),
    ),
)
def test_env_json_values_round_trip(parts: list[str], value: Any) -> None:
    name = "AIPORT_" + "__".join(p.upper() for p in parts)
    node: Any = env_overlay({name: json.dumps(value)})
    for part in parts:
        node = node[part]
    assert node == value


@given(st.integers(min_value=1, max_value=10**6), st.floats(0.001, 1e6))
def test_env_numbers_reach_the_config(attempts: int, connect: float) -> None:
    config = load(
        {},
        env={
            "AIPORT_RETRY__MAX_ATTEMPTS": str(attempts),
            "AIPORT_TIMEOUTS__CONNECT": repr(connect),
        },
    )
    assert config.retry.max_attempts == attempts
    assert config.timeouts.connect == connect


# (path, kind): "pos" > 0, "nonneg" >= 0, "ratio" in [0, 1], "temp" in [0, 2]; "int" means
# an integer setting.
NUMERIC: list[tuple[tuple[str, ...], str, bool]] = [
    (("timeouts", "connect"), "pos", False),
    (("timeouts", "first_token"), "pos", False),
    (("timeouts", "idle"), "pos", False),
    (("timeouts", "total"), "pos", False),
    (("retry", "max_attempts"), "pos", True),
    (("retry", "initial_backoff"), "pos", False),
    (("retry", "max_retry_after"), "nonneg", False),
    (("retry", "deadline"), "pos", False),
    (("retry", "budget_ratio"), "ratio", False),
    (("rate_limit", "requests_per_minute"), "pos", True),
    (("rate_limit", "tokens_per_minute"), "pos", True),
    (("rate_limit", "max_concurrency"), "pos", True),
    (("rate_limit", "max_queue_wait"), "nonneg", False),
    (("cache", "ttl"), "pos", False),
    (("cache", "max_entries"), "pos", True),
    (("providers", "p", "max_connections"), "pos", True),
    (("providers", "p", "timeouts", "idle"), "pos", False),
    (("providers", "p", "rate_limit", "max_concurrency"), "pos", True),
    (("providers", "p", "models", "m", "temperature"), "temp", False),
    (("providers", "p", "models", "m", "top_p"), "ratio", False),
    (("providers", "p", "models", "m", "max_tokens"), "pos", True),
    (("providers", "p", "models", "m", "context_window"), "pos", True),
    (("providers", "p", "models", "m", "output_price_per_million"), "nonneg", False),
    (("providers", "p", "models", "m", "retry", "max_attempts"), "pos", True),
]


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    data: Any = value
    for part in reversed(path):
        data = {part: data}
    base: dict[str, Any] = {"providers": {"p": {"type": "openai"}}}
    return deep_merge(base, data)


def _valid(kind: str, integer: bool) -> st.SearchStrategy[float | int]:
    if integer:
        return st.integers(min_value=1, max_value=10**9)
    upper = {"ratio": 1.0, "temp": 2.0}.get(kind, 1e6)
    lower = 0.0 if kind != "pos" else 1e-6
    return st.floats(min_value=lower, max_value=upper)


def _invalid(kind: str, integer: bool) -> st.SearchStrategy[float | int]:
    if kind in ("ratio", "temp"):
        upper = 1.0 if kind == "ratio" else 2.0
        return st.one_of(
            st.floats(max_value=-1e-9, allow_infinity=False),
            st.floats(min_value=upper + 1e-6, allow_infinity=False),
        )
    if integer:
        return st.integers(max_value=0)
    if kind == "pos":
        return st.floats(max_value=0.0, allow_infinity=False)
    return st.floats(max_value=-1e-9, allow_infinity=False)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMERIC).flatmap(lambda s: st.tuples(st.just(s), _valid(s[1], s[2]))))
def test_valid_numbers_validate(case: tuple[tuple[tuple[str, ...], str, bool], float]) -> None:
    (path, _, _), value = case
    data = _nest(path, value)
    if path[-1] == "initial_backoff":
        data["retry"]["max_backoff"] = value  # keep max_backoff >= initial_backoff
    config = load(data)
    node: Any = config
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    assert node == value


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMERIC).flatmap(lambda s: st.tuples(st.just(s), _invalid(s[1], s[2]))))
def test_invalid_numbers_name_their_path(
    case: tuple[tuple[tuple[str, ...], str, bool], float],
) -> None:
    (path, _, _), value = case
    problems = problems_of(_nest(path, value))
    assert format_path(path) in {p.path for p in problems}
    for problem in problems:
        assert problem.source == "mapping"


@given(
    st.lists(
        st.sampled_from([row for row in NUMERIC if row[0][0] != "providers"]),
        min_size=1,
        max_size=5,
        unique_by=lambda row: row[0],
    )
)
def test_all_invalid_numbers_reported_together(
    rows: list[tuple[tuple[str, ...], str, bool]],
) -> None:
    data: dict[str, Any] = {}
    for path, _, _ in rows:
        data = deep_merge(data, _nest(path, -1))
    assert {format_path(path) for path, _, _ in rows} <= paths_of(data)


def test_format_path() -> None:
    assert format_path(("providers", "openai", "retry", "max_attempts")) == (
        "providers.openai.retry.max_attempts"
    )
    assert format_path(("providers", "o", "models", "gpt-4.1", "fallbacks", 0)) == (
        'providers.o.models."gpt-4.1".fallbacks[0]'
    )
    assert format_path(()) == ""
