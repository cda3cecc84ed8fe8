"""Fixtures of the batching tests: a real OpenAI adapter over HTTP against an emulator.

The emulator's vectors are a pure function of model, text and dimensions, so a vector
received through a batch can be compared with the one a call of its own gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from aiport._credentials import StaticCredential
from aiport._http import HttpClient
from aiport._provider import ModelProvider, ProviderLayer
from aiport._types import ModelCompletionOptions, ModelCompletionResponse
from aiport.cli._app import app
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

EMBEDDING_MODEL = "text-embedding-3-small"
EMBEDDINGS_PATH = "/v1/embeddings"
CHAT_PATH = "/v1/chat/completions"
#: The CLI emulator's prompt limit: a longer prompt gets the real context-length 400.
CLI_CONTEXT_WINDOW = 200


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator of its own per test (any key accepted), on the test's loop."""
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
def openai(emu: Emulator, http: HttpClient) -> OpenAIProvider:
    return OpenAIProvider(
        name="openai", base_url=emu.openai_base_url, credential=StaticCredential("k"), http=http
    )


class InFlight(ProviderLayer):
    """Counts the completions running below it at once (what the provider would see)."""

    def __init__(self, inner: ModelProvider) -> None:
        super().__init__(inner)
        self.running = 0
        self.peak = 0

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await self.inner.complete(options)
        finally:
            self.running -= 1


async def settle() -> None:
    """Let every task that can run, run (a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------- CLI


@pytest.fixture(scope="session")
def cli_emulator() -> Iterator[Emulator]:
    """An emulator in a thread for the CLI, whose tiny context window makes a line fail."""
    with Emulator(context_window=CLI_CONTEXT_WINDOW).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def config_file(tmp_path: Path, cli_emulator: Emulator) -> Path:
    path = tmp_path / "aiport.toml"
    path.write_text(
        "[retry]\nmax_attempts = 1\n\n"
        "[providers.openai]\n"
        'type = "openai"\n'
        f'base_url = "{cli_emulator.openai_base_url}"\n'
        'api_key = "sk-batch-test-key-0000"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def run_cli(config_file: Path) -> Callable[..., Result]:
    """``aiport --config <file> ARGS...`` in-process, with a clean environment."""

    def run(*args: str) -> Result:
        env = {
            "OPENAI_API_KEY": None,
            "ANTHROPIC_API_KEY": None,
            "AIPORT_CONFIG": None,
            "AIPORT_ENV": None,
            "COLUMNS": "200",
        }
        return CliRunner().invoke(app, ["--config", str(config_file), *args], env=env)

    return run
