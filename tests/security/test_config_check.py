"""`aiport config check`: where each value came from, token settings masked and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from aiport._config import load_config
from aiport.cli._app import app
from aiport.cli._check import value_sources

from .conftest import CANARY, assert_no_leak

TOML = """\
environment = "prod"

[retry]
max_attempts = 4

[providers.openai]
type = "openai"
api_key = "env:MY_OPENAI_KEY"
base_url = "https://api.openai.com/v1"

[providers.corp]
type = "openai"
base_url = "https://llm.corp.example/v1"
[providers.corp.auth]
type = "oauth2"
token_url = "https://login.corp.example/oauth2/token"
client_id = "aiport"
client_secret = "{secret}"

[environments.prod.providers.openai]
base_url = "https://prod.example.com/v1"
"""


def run(path: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    full_env = {"COLUMNS": "200", "MY_OPENAI_KEY": "sk-x" * 5, **(env or {})}
    return CliRunner().invoke(app, ["--config", str(path), *args], env=full_env)


def write(tmp_path: Path, secret: str = "env:CORP_SECRET") -> Path:  # noqa: S107
    path = tmp_path / "aiport.toml"
    path.write_text(TOML.format(secret=secret), encoding="utf-8")
    return path


def test_sources_in_json(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = run(
        path,
        "--json",
        "config",
        "check",
        env={"AIPORT_PROVIDERS__OPENAI__TIMEOUTS__TOTAL": "30", "CORP_SECRET": "s3cret-value"},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    sources: dict[str, Any] = document["sources"]
    assert sources["retry.max_attempts"] == "file"
    assert sources["retry.initial_backoff"] == "default"
    assert sources["providers.openai.type"] == "file"
    assert sources["providers.openai.base_url"] == "profile prod"
    assert sources["providers.openai.timeouts.total"] == (
        "env AIPORT_PROVIDERS__OPENAI__TIMEOUTS__TOTAL"
    )
    assert sources["providers.corp.auth.client_secret"] == "file"
    assert sources["environment"] == "file"
    assert document["config"]["providers"]["corp"]["auth"]["client_secret"] == "env:CORP_SECRET"
    assert document["problems"] == []


def test_sources_annotate_the_text_output(tmp_path: Path) -> None:
    path = write(tmp_path)
    result = run(path, "config", "check", "--env", "prod", env={"CORP_SECRET": "s3cret-value"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    base_url = next(line for line in lines if "prod.example.com" in line)
    assert base_url.rstrip().endswith("# profile prod")
    attempts = next(line for line in lines if "max_attempts" in line)
    assert attempts.rstrip().endswith("# file")
    backoff = next(line for line in lines if "initial_backoff" in line)
    assert backoff.rstrip().endswith("# default")
    env_line = next(line for line in lines if line.strip().startswith("environment:"))
    assert env_line.rstrip().endswith("# argument") or env_line.rstrip().endswith("# file")


def test_standard_key_variables_are_a_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n")
    config = load_config(empty, env={"OPENAI_API_KEY": CANARY})
    sources = value_sources(config, env={"OPENAI_API_KEY": CANARY})
    assert sources["providers.openai.api_key"] == "env OPENAI_API_KEY"
    assert sources["providers.openai.type"] == "env OPENAI_API_KEY"
    assert sources["timeouts.total"] == "default"
    no_file = load_config({"providers": {"x": {"type": "openai"}}}, env={})
    assert value_sources(no_file, env={})["providers.x.type"] == "default"


def test_literal_client_secret_is_warned_about_and_masked(tmp_path: Path) -> None:
    path = write(tmp_path, secret=CANARY)
    for args in (("config", "check"), ("--json", "config", "check")):
        result = run(path, *args)
        assert result.exit_code == 0, result.output
        assert_no_leak([result.stdout, result.stderr], f"config check {args}")
    document = json.loads(run(path, "--json", "config", "check").stdout)
    problems = {p["path"]: p for p in document["problems"]}
    assert "written literally" in problems["providers.corp.auth.client_secret"]["message"]
    assert document["config"]["providers"]["corp"]["auth"]["client_secret"] == (
        "****" + CANARY[-4:]
    )


def test_an_unresolvable_client_secret_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path)
    document = json.loads(run(path, "--json", "config", "check").stdout)
    problems = {p["path"]: p for p in document["problems"]}
    assert "CORP_SECRET is not set" in problems["providers.corp.auth"]["message"]
    assert problems["providers.corp.auth"]["severity"] == "warning"
    assert document["valid"] is True


def test_literal_api_key_warning_suggests_the_keystore(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(f'[providers.openai]\ntype = "openai"\napi_key = "{CANARY}"\n')
    result = run(path, "--json", "config", "check")
    problems = {p["path"]: p for p in json.loads(result.stdout)["problems"]}
    assert "aiport keys set openai" in problems["providers.openai.api_key"]["message"]
    assert_no_leak([result.stdout, result.stderr], "literal key")
