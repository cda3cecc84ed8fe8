"""Errors: one line with the code on stderr, exit code 1, a JSON document with --json.

And the canary: no output of any command ever contains a piece of the API key.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from typer.testing import Result

from aiport.testing import Emulator
from tests.cli.conftest import GOOD_KEY, Cli, provider_toml

CANARY = "sk-canary-0123456789abcdefXYZ"


def _one_error_line(result: Result, code: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: ")
    return lines[0]


def test_unknown_model(cli: Cli) -> None:
    result = cli("chat", "gpt-4o-minii", "Hi")
    line = _one_error_line(result, "PROVIDER_NOT_FOUND")
    assert "gpt-4o-mini" in line  # suggests the close match
    assert result.stdout == ""


def test_unknown_provider_prefix(cli: Cli) -> None:
    line = _one_error_line(cli("chat", "opnai:gpt-4o", "Hi"), "PROVIDER_NOT_FOUND")
    assert "openai:gpt-4o" in line


def test_auth_error_from_the_provider(
    make_cli: Callable[..., Cli], strict_emulator: Emulator
) -> None:
    cli = make_cli(provider_toml(strict_emulator), AIPORT_TEST_KEY="sk-wrong-key-00000000")
    line = _one_error_line(cli("chat", "openai:gpt-4o-mini", "Hi"), "PROVIDER_AUTH_ERROR")
    assert "status=401" in line
    assert "provider=openai" in line

    good = make_cli(provider_toml(strict_emulator), AIPORT_TEST_KEY=GOOD_KEY)
    assert good("chat", "openai:gpt-4o-mini", "Hi").exit_code == 0


def test_json_error_document(make_cli: Callable[..., Cli], strict_emulator: Emulator) -> None:
    cli = make_cli(provider_toml(strict_emulator), AIPORT_TEST_KEY="sk-wrong-key-00000000")
    result = cli("--json", "chat", "anthropic:claude-sonnet-4-6", "Hi")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "PROVIDER_AUTH_ERROR"
    assert error["provider"] == "anthropic"
    assert error["status_code"] == 401
    assert error["message"]
    assert "retryable" in error
    assert result.stderr.startswith("error: PROVIDER_AUTH_ERROR: ")


def test_json_error_document_with_suggestions(cli: Cli) -> None:
    result = cli("embed", "--json", "text-embeding-3-small", "x")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "PROVIDER_NOT_FOUND"
    assert "text-embedding-3-small" in error["suggestions"]


def test_rate_limit_error(cli: Cli, cli_emulator: Emulator) -> None:
    from aiport.testing import Fault

    cli_emulator.add_fault(Fault.status(429, retry_after="7"), times=1)
    result = cli("--json", "chat", "openai:gpt-4o-mini", "Hi")
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "PROVIDER_RATE_LIMIT_ERROR"
    assert error["retry_after"] == 7
    _one_error_line(result, "PROVIDER_RATE_LIMIT_ERROR")


def test_missing_credential(make_cli: Callable[..., Cli], cli_emulator: Emulator) -> None:
    cli = make_cli(provider_toml(cli_emulator, api_key="env:AIPORT_TEST_NOT_SET"))
    line = _one_error_line(cli("chat", "openai:gpt-4o-mini", "Hi"), "PROVIDER_AUTH_ERROR")
    assert "AIPORT_TEST_NOT_SET" in line


def test_invalid_config_file(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli('[providers.openai]\ntype = "openai"\ntimeout = 3\nbase_url = "ftp://x"\n')
    result = cli("chat", "openai:gpt-4o", "Hi")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "error: CONFIG_ERROR: invalid configuration (2 problems)"
    assert any("providers.openai.timeout" in line for line in lines[1:])
    assert any("providers.openai.base_url" in line for line in lines[1:])
    assert all(line.startswith("  - ") for line in lines[1:])


def test_missing_config_file(cli: Cli, tmp_path: object) -> None:
    result = cli("providers", config=cli.config.with_name("nowhere.toml"))
    assert result.exit_code == 1
    assert "not found" in result.stderr


# ---------------------------------------------------------------------- canary


def _pieces(secret: str, size: int = 8) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def _assert_no_canary(result: Result) -> None:
    text = result.stdout + result.stderr
    leaked = [piece for piece in _pieces(CANARY) if piece in text]
    assert not leaked, f"credential pieces {leaked} in output:\n{text}"


@pytest.mark.parametrize("literal", [True, False], ids=["literal-in-file", "env-reference"])
def test_canary_never_printed(
    make_cli: Callable[..., Cli],
    cli_emulator: Emulator,
    strict_emulator: Emulator,
    literal: bool,
) -> None:
    key = CANARY if literal else "env:AIPORT_TEST_CANARY"
    env = {"AIPORT_TEST_CANARY": CANARY}
    accepted = make_cli(provider_toml(cli_emulator, api_key=key), **env)
    refused = make_cli(provider_toml(strict_emulator, api_key=key), **env)
    runs = [
        accepted("chat", "openai:gpt-4o-mini", f"repeat {CANARY[:5]} please"),
        accepted("-v", "chat", "--stream", "anthropic:claude-sonnet-4-6", "Hi"),
        accepted("--json", "chat", "openai:gpt-4o-mini", "Hi"),
        accepted("providers"),
        accepted("--json", "providers"),
        accepted("config", "check"),
        accepted("--json", "config", "check"),
        refused("chat", "openai:gpt-4o-mini", "Hi"),
        refused("chat", "anthropic:claude-sonnet-4-6", "Hi"),
        refused("-v", "--json", "chat", "openai:gpt-4o-mini", "Hi"),
        refused("--json", "chat", "--stream", "anthropic:claude-sonnet-4-6", "Hi"),
        refused("--json", "embed", "openai:text-embedding-3-small", "Hi"),
        refused("chat", "nope-model", "Hi"),
    ]
    for result in runs[:5]:
        assert result.exit_code == 0, result.output
    for result in runs[5:7]:  # a literal key in the file is a warning: the check fails
        assert result.exit_code == (1 if literal else 0), result.output
    for result in runs[7:]:
        assert result.exit_code == 1, result.output
    for result in runs:
        _assert_no_canary(result)
