"""Fixtures of the catalogue tests: a config file pointing openai and anthropic at the emulator."""

from __future__ import annotations

from pathlib import Path

from aiport.testing import Emulator
from tests.cli.conftest import cli_emulator, make_cli, write_config
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY

# The CLI tests' fixtures, for the `aiport models` and `aiport providers` tests here.
__all__ = ["cli_emulator", "config_file", "make_cli", "write_config"]


def config_file(tmp_path: Path, emulator: Emulator, extra: str = "") -> Path:
    """``aiport.toml`` with both providers on ``emulator``, one attempt, plus ``extra``."""
    path = tmp_path / "aiport.toml"
    path.write_text(
        "[retry]\nmax_attempts = 1\n\n"
        "[providers.openai]\n"
        'type = "openai"\n'
        f'base_url = "{emulator.openai_base_url}"\n'
        f'api_key = "{OPENAI_KEY}"\n\n'
        "[providers.anthropic]\n"
        'type = "anthropic"\n'
        f'base_url = "{emulator.anthropic_base_url}"\n'
        f'api_key = "{ANTHROPIC_KEY}"\n\n' + extra,
        encoding="utf-8",
    )
    return path
