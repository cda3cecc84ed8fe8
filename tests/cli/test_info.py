"""``aiport providers``, ``models`` and ``config check``."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiport.testing import Emulator
from tests.cli.conftest import Cli, provider_toml


def test_providers_table(cli: Cli, cli_emulator: Emulator) -> None:
    result = cli("providers")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("openai", "anthropic", cli_emulator.openai_base_url, "env:AIPORT_TEST_KEY"):
        assert expected in out
    assert "OpenAI" in out  # the type's description when the config gives none
    assert "no" not in out.split()  # both valid: the key reference resolves


def test_providers_json_defaults_and_validity(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli(
        '[providers.openai]\ntype = "openai"\napi_key = "env:AIPORT_TEST_MISSING"\n'
        '[providers.claude]\ntype = "anthropic"\ndescription = "Claude, by Anthropic"\n'
        '[providers.off]\ntype = "openai"\nenabled = false\n'
        '[providers.local]\ntype = "openai-compatible"\n'
        'base_url = "http://user:hunter22@localhost:8000/v1"\n',
        ANTHROPIC_API_KEY="sk-ant-from-env-0123456789",
    )
    result = cli("--json", "providers")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)["providers"]}
    assert rows["openai"]["base_url"] == "https://api.openai.com/v1"  # the adapter's default
    assert rows["openai"]["key"] == "env:AIPORT_TEST_MISSING"
    assert rows["openai"]["valid"] is False
    assert rows["claude"]["base_url"] == "https://api.anthropic.com"
    assert rows["claude"]["description"] == "Claude, by Anthropic"
    assert rows["claude"]["key"] == "env:ANTHROPIC_API_KEY (default)"
    assert rows["claude"]["valid"] is True
    assert rows["off"]["enabled"] is False
    assert rows["off"]["valid"] is False
    assert rows["local"]["key"] == "(none)"
    assert rows["local"]["base_url"] == "http://****@localhost:8000/v1"
    assert "hunter22" not in result.output


def test_models_table_and_filters(cli: Cli) -> None:
    result = cli("models")
    assert result.exit_code == 0, result.output
    assert "openai:gpt-4o" in result.stdout
    assert "anthropic:claude-sonnet-4-6" in result.stdout

    only = cli("--json", "models", "--provider", "anthropic")
    models = json.loads(only.stdout)["models"]
    assert models
    assert all(m["id"].startswith("anthropic:") for m in models)
    assert all(m["provider"] == "anthropic" for m in models)

    embeddings = json.loads(cli("--json", "models", "--capability", "embeddings").stdout)
    ids = {m["id"] for m in embeddings["models"]}
    assert "openai:text-embedding-3-small" in ids
    assert all("embeddings" in m["capabilities"] for m in embeddings["models"])
    assert not any(i.startswith("anthropic:") for i in ids)

    both = json.loads(cli("--json", "models", "-C", "tools", "-C", "vision").stdout)["models"]
    assert both
    assert all({"tools", "vision"} <= set(m["capabilities"]) for m in both)


def test_models_columns(cli: Cli) -> None:
    result = cli("models", "--provider", "openai", "--capability", "chat")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    for column in ("model", "capabilities", "context", "max out", "$/M in", "$/M out"):
        assert column in header
    assert "text-embedding" not in result.stdout


def test_models_unknown_capability_is_a_usage_error(cli: Cli) -> None:
    result = cli("models", "--capability", "telepathy")
    assert result.exit_code == 2


def test_models_unknown_provider(cli: Cli) -> None:
    result = cli("models", "--provider", "opnai")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: PROVIDER_NOT_FOUND: ")
    assert "openai" in result.stderr  # the suggestion


def test_config_check_valid(cli: Cli) -> None:
    result = cli("config", "check")
    assert result.exit_code == 0, result.output
    assert "env:AIPORT_TEST_KEY" in result.stdout
    assert "sk-cli-test-any-key-1234" not in result.output
    assert "valid: 0 errors, 0 warnings" in result.stdout


def test_config_check_json(cli: Cli, cli_emulator: Emulator) -> None:
    result = cli("config", "check", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["valid"] is True
    assert document["problems"] == []
    openai = document["config"]["providers"]["openai"]
    assert openai["api_key"] == "env:AIPORT_TEST_KEY"
    assert openai["base_url"] == cli_emulator.openai_base_url
    assert document["config"]["retry"]["max_attempts"] == 1


def test_config_check_invalid_lists_every_problem(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli(
        '[providers.openai]\ntype = "openai"\nbogus = 1\n'
        "[providers.openai.retry]\nmax_attempts = 0\n"
        '[cache]\nbackend = "floppy"\n'
    )
    result = cli("config", "check")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: CONFIG_ERROR: invalid configuration (3 problems)"
    for path in ("providers.openai.bogus", "providers.openai.retry.max_attempts", "cache.backend"):
        assert any(line.startswith("  - ") and path in line for line in lines[1:])

    document = json.loads(cli("--json", "config", "check").stdout)
    assert document["valid"] is False
    assert {p["path"] for p in document["problems"]} == {
        "providers.openai.bogus",
        "providers.openai.retry.max_attempts",
        "cache.backend",
    }
    assert document["error"]["code"] == "CONFIG_ERROR"


def test_config_check_unknown_provider_type(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli('[providers.mine]\ntype = "opena"\napi_key = "env:AIPORT_TEST_KEY"\n')
    result = cli("config", "check", env={"AIPORT_TEST_KEY": "x" * 20})
    assert result.exit_code == 1
    assert "providers.mine.type" in result.stdout
    assert "did you mean 'openai'" in result.stdout
    assert "invalid: 1 error," in result.stdout


def test_config_check_warnings_fail_the_check_unless_allowed(
    make_cli: Callable[..., Cli],
) -> None:
    cli = make_cli(
        '[providers.openai]\ntype = "openai"\napi_key = "sk-literal-in-file-0123456789"\n'
        '[providers.anthropic]\ntype = "anthropic"\napi_key = "env:AIPORT_TEST_UNSET"\n'
    )
    result = cli("--json", "config", "check")
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert document["valid"] is True  # no error: the configuration loads
    assert document["passed"] is False  # but every warning fails the check
    text = cli("config", "check")
    assert text.exit_code == 1
    assert "valid, with warnings: 0 errors, 2 warnings" in text.stdout
    allowed = cli("config", "check", "--allow-warnings")
    assert allowed.exit_code == 0, allowed.output
    assert "valid: 0 errors, 2 warnings (warnings allowed)" in allowed.stdout
    allowed_json = json.loads(cli("--json", "config", "check", "--allow-warnings").stdout)
    assert allowed_json["passed"] is True
    assert allowed_json["problems"] == document["problems"]  # still every problem listed
    problems = {p["path"]: p for p in document["problems"]}
    literal = problems["providers.openai.api_key"]
    assert literal["severity"] == "warning"
    assert 'env:OPENAI_API_KEY"' in literal["message"]
    assert literal["source"] == str(cli.config)
    unresolved = problems["providers.anthropic.api_key"]
    assert unresolved["severity"] == "warning"
    assert "AIPORT_TEST_UNSET is not set" in unresolved["message"]
    assert unresolved["source"] == str(cli.config)
    assert document["config"]["providers"]["openai"]["api_key"] == "****6789"
    assert "literal-in-file" not in result.output


def test_literal_key_from_environment_variable_is_not_blamed_on_the_file(
    make_cli: Callable[..., Cli],
) -> None:
    cli = make_cli('[providers.openai]\ntype = "openai"\n')
    result = cli(
        "--json",
        "config",
        "check",
        env={"AIPORT_PROVIDERS__OPENAI__API_KEY": "sk-from-the-environment-000111"},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []


def test_config_check_with_a_profile_and_an_explicit_path(
    make_cli: Callable[..., Cli], cli_emulator: Emulator
) -> None:
    text = provider_toml(cli_emulator) + (
        '\n[environments.prod.providers.openai]\nbase_url = "https://prod.example.com/v1"\n'
    )
    cli = make_cli(text, AIPORT_TEST_KEY="k" * 16)
    result = cli("--json", "config", "check", str(cli.config), "--env", "prod")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["environment"] == "prod"
    assert document["config"]["providers"]["openai"]["base_url"] == "https://prod.example.com/v1"
    assert document["config"]["environments"] == ["prod"]

    unknown = cli("config", "check", "--env", "staging")
    assert unknown.exit_code == 1
    assert "unknown environment 'staging'" in unknown.stderr


def test_no_providers(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli("# nothing configured yet\n")
    check = cli("--json", "config", "check")
    assert check.exit_code == 1, check.output  # a warning fails the check
    problems = json.loads(check.stdout)["problems"]
    assert [(p["severity"], p["path"]) for p in problems] == [("warning", "providers")]

    listing = cli("providers")
    assert listing.exit_code == 0
    assert listing.stdout == ""
    assert "No providers configured" in listing.stderr
