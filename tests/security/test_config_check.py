"""`aiport config check`: where each value came from, token settings masked and checked,
several API keys checked one by one and shown by fingerprint, and any problem (a warning
included) failing the check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from aiport._config import load_config
from aiport._credentials import key_fingerprint
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
        assert result.exit_code == 1, result.output  # the literal secret is a warning
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


SEVERAL_KEYS = """\
[providers.openai]
type = "openai"
api_keys = ["env:KEY_ONE", "{literal}", "env:KEY_MISSING", "file:./key-three"]
key_rotation = "failover"
"""


def test_several_keys_are_checked_one_by_one_and_shown_by_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(SEVERAL_KEYS.format(literal=CANARY), encoding="utf-8")
    key_one, key_three = "sk-one-" + "1" * 20 + "ab12", "sk-three-" + "3" * 20 + "cd34"
    (tmp_path / "key-three").write_text(key_three + "\n", encoding="utf-8")
    env = {"KEY_ONE": key_one}
    document = json.loads(run(path, "--json", "config", "check", env=env).stdout)
    assert document["valid"] is True and document["passed"] is False
    assert document["config"]["providers"]["openai"]["api_keys"] == [
        "env:KEY_ONE",
        "****" + CANARY[-4:],
        "env:KEY_MISSING",
        "file:./key-three",
    ]
    assert document["sources"]["providers.openai.api_keys"] == "file"
    assert document["sources"]["providers.openai.key_rotation"] == "file"
    keys = {k["path"]: k for k in document["keys"]}
    assert keys["providers.openai.api_keys[0]"]["fingerprint"] == key_fingerprint(key_one)
    assert keys["providers.openai.api_keys[1]"]["fingerprint"] == key_fingerprint(CANARY)
    assert keys["providers.openai.api_keys[2]"]["fingerprint"] is None
    assert keys["providers.openai.api_keys[3]"]["fingerprint"] == key_fingerprint(key_three)
    problems = {p["path"]: p for p in document["problems"]}
    assert set(problems) == {"providers.openai.api_keys[1]", "providers.openai.api_keys[2]"}
    assert "written literally" in problems["providers.openai.api_keys[1]"]["message"]
    assert "KEY_MISSING is not set" in problems["providers.openai.api_keys[2]"]["message"]
    assert all(p["source"] == str(path) for p in problems.values())

    text = run(path, "config", "check", env=env)
    assert text.exit_code == 1
    assert key_fingerprint(key_one) in text.stdout and key_fingerprint(CANARY) in text.stdout
    assert "(does not resolve here)" in text.stdout
    for secret in (CANARY, key_one, key_three):
        assert_no_leak([text.stdout, text.stderr, json.dumps(document)], "keys", secret)

    providers = run(path, "providers", env=env)
    assert "env:KEY_ONE, ****" + CANARY[-4:] in providers.stdout
    assert "(failover)" in providers.stdout
    assert_no_leak([providers.stdout, providers.stderr], "providers")


def test_plain_http_to_another_host_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(
        '[providers.lan]\ntype = "openai"\nbase_url = "http://10.1.2.3/v1"\n'
        'api_key = "env:LAN_KEY"\n'
        '[providers.local]\ntype = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n'
        'api_key = "env:LAN_KEY"\n',
        encoding="utf-8",
    )
    env = {"LAN_KEY": "sk-lan-" + "x" * 20}
    result = run(path, "--json", "config", "check", env=env)
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    [problem] = document["problems"]
    assert problem["path"] == "providers.lan.base_url"
    assert problem["severity"] == "warning" and "plain http to 10.1.2.3" in problem["message"]
    assert problem["source"] == str(path)
    text = run(path, "config", "check", env=env)
    assert text.exit_code == 1
    assert text.stdout.count("plain http") == 1  # the finding; the log line is not repeated
    assert "plain http" not in text.stderr
    allowed = run(path, "config", "check", "--allow-warnings", env=env)
    assert allowed.exit_code == 0, allowed.output
    assert "plain http to 10.1.2.3" in allowed.stdout
