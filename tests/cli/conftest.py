"""Fixtures of the CLI tests: emulators, config files pointing at them, and a runner."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aiport.cli._app import app
from aiport.testing import Emulator

#: The key the strict emulator accepts.
GOOD_KEY = "sk-cli-test-good-key-0000"
#: Environment variables that must not leak into a test run from the developer's shell.
_CLEAN_ENV: dict[str, str | None] = {
    "OPENAI_API_KEY": None,
    "ANTHROPIC_API_KEY": None,
    "OPENAI_BASE_URL": None,
    "ANTHROPIC_BASE_URL": None,
    "AIPORT_CONFIG": None,
    "AIPORT_ENV": None,
    "COLUMNS": "200",
}


@pytest.fixture(scope="session")
def cli_emulator() -> Iterator[Emulator]:
    """An emulator accepting any key."""
    with Emulator().run_in_thread() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def strict_emulator() -> Iterator[Emulator]:
    """An emulator accepting only ``GOOD_KEY`` (anything else gets a real 401 body)."""
    with Emulator(api_keys=[GOOD_KEY]).run_in_thread() as emulator:
        yield emulator


def provider_toml(
    emulator: Emulator, *, api_key: str = "env:AIPORT_TEST_KEY", extra: str = ""
) -> str:
    """``[providers.openai]`` and ``[providers.anthropic]`` pointing at ``emulator``."""
    return (
        "[retry]\nmax_attempts = 1\n\n"
        "[providers.openai]\n"
        'type = "openai"\n'
        f'base_url = "{emulator.openai_base_url}"\n'
        f'api_key = "{api_key}"\n\n'
        "[providers.anthropic]\n"
        'type = "anthropic"\n'
        f'base_url = "{emulator.anthropic_base_url}"\n'
        f'api_key = "{api_key}"\n' + extra
    )


@dataclass
class Cli:
    """Runs ``aiport`` in-process with a config file and a clean environment."""

    config: Path
    env: dict[str, str | None]

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        env: Mapping[str, str | None] | None = None,
        config: Path | None = None,
    ) -> Result:
        runner = CliRunner()
        argv: Sequence[str] = ["--config", str(config or self.config), *args]
        return runner.invoke(app, argv, input=input, env={**self.env, **(env or {})})


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a config file into tmp_path and return its path."""

    def write(text: str, name: str = "aiport.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(cli_emulator: Emulator, write_config: Callable[[str, str], Path]) -> Cli:
    """``aiport`` against the permissive emulator; keys come from AIPORT_TEST_KEY."""
    path = write_config(provider_toml(cli_emulator), "aiport.toml")
    return Cli(config=path, env={**_CLEAN_ENV, "AIPORT_TEST_KEY": "sk-cli-test-any-key-1234"})


@pytest.fixture
def make_cli(write_config: Callable[[str, str], Path]) -> Callable[..., Cli]:
    """A ``Cli`` for any config text (and extra environment variables)."""

    count = itertools.count(1)

    def make(text: str, **env: str) -> Cli:
        path = write_config(text, f"custom-{next(count)}.toml")
        return Cli(config=path, env={**_CLEAN_ENV, **env})

    return make
