"""``api_keys`` and ``key_rotation`` in the configuration."""

from __future__ import annotations

from typing import Any

import pytest

from aiport import ConfigError
from aiport._config import load_config
from aiport._credentials import KeyPool, SecretReference, build_credential

SECRET = "sk-config-test-0123456789abcdef"


def provider(**fields: Any) -> dict[str, Any]:
    return {"providers": {"o": {"type": "openai", **fields}}}


def problems(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_config(data, env={})
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    return {p.path: p.message for p in caught.value.problems}


def test_api_keys_are_secrets_resolved_lazily() -> None:
    config = load_config(provider(api_keys=["env:KEY_A", SECRET], key_rotation="failover"), env={})
    settings = config.providers["o"]
    assert settings.key_rotation == "failover"
    assert [k.get_secret_value() for k in settings.api_keys or []] == ["env:KEY_A", SECRET]
    assert SECRET not in repr(settings) and SECRET not in settings.model_dump_json()
    credential = build_credential("o", settings, config.secret_resolver())
    assert isinstance(credential, KeyPool) and credential.rotation == "failover"
    assert [k.fingerprint for k in credential.keys] == [None, None]  # nothing resolved yet


def test_round_robin_is_the_default_and_one_key_needs_no_pool() -> None:
    config = load_config(provider(api_keys=["env:KEY_A", "env:KEY_B"]), env={})
    assert config.providers["o"].key_rotation == "round-robin"
    single = load_config(provider(api_keys=["env:KEY_A"]), env={}).providers["o"]
    assert isinstance(build_credential("o", single, config.secret_resolver()), SecretReference)


def test_api_keys_from_an_environment_variable() -> None:
    config = load_config(
        provider(), env={"AIPORT_PROVIDERS__O__API_KEYS": '["env:KEY_A", "env:KEY_B"]'}
    )
    keys = config.providers["o"].api_keys or []
    assert [k.get_secret_value() for k in keys] == ["env:KEY_A", "env:KEY_B"]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"api_key": "env:A", "api_keys": ["env:B"]}, "providers.o", "not both"),
        (
            {
                "api_keys": ["env:B"],
                "auth": {"type": "google"},
            },
            "providers.o",
            "api_keys or an auth table",
        ),
        ({"api_keys": []}, "providers.o", "at least one key"),
        ({"api_keys": [SECRET, "env:B", SECRET]}, "providers.o", "api_keys[0] and api_keys[2]"),
        ({"api_keys": ["env:A", ""]}, "providers.o.api_keys[1]", "must not be empty"),
        ({"api_keys": ["keyring:nothing"]}, "providers.o.api_keys[0]", "SERVICE/NAME"),
        ({"api_keys": [f" {SECRET}"]}, "providers.o.api_keys[0]", "whitespace"),
        ({"key_rotation": "failover"}, "providers.o", "key_rotation applies to api_keys"),
        (
            {"api_keys": ["env:A", "env:B"], "key_rotation": "random"},
            "providers.o.key_rotation",
            "'round-robin' or 'failover'",
        ),
    ],
)
def test_invalid_key_settings_are_reported_clearly(
    fields: dict[str, Any], path: str, message: str
) -> None:
    found = problems(provider(**fields))
    assert path in found, found
    assert message in found[path]
