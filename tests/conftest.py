"""Shared fixtures: one emulator per test session, reset between tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._http import HttpClient
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

# The emulator fixtures load here (not through the entry point, disabled in pyproject) so
# that coverage, which starts after entry-point plugins load, measures them too.
pytest_plugins = ("pytester", "aiport.testing.pytest_plugin")

#: Keys the shared emulator accepts. Canary-like on purpose: tests grep outputs for them.
OPENAI_KEY = "sk-test-openai-canary-4f9a2b7c1d"
ANTHROPIC_KEY = "sk-ant-test-canary-8e3d6a0b5f"


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[Emulator]:
    with Emulator(api_keys={OPENAI_KEY, ANTHROPIC_KEY}).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_session: Emulator) -> Iterator[Emulator]:
    emulator_session.reset()
    yield emulator_session
    emulator_session.reset()


def emulator_config(emulator: Emulator, **extra: Any) -> dict[str, Any]:
    """A config with `openai` and `anthropic` pointed at the emulator."""
    config: dict[str, Any] = {
        # One attempt: these tests look at each failure itself (retries have their own).
        "retry": {"max_attempts": 1},
        "providers": {
            "openai": {
                "type": "openai",
                "base_url": emulator.openai_base_url,
                "api_key": OPENAI_KEY,
            },
            "anthropic": {
                "type": "anthropic",
                "base_url": emulator.anthropic_base_url,
                "api_key": ANTHROPIC_KEY,
            },
        },
    }
    for key, value in extra.items():
        config[key] = value
    return config


@pytest.fixture
async def service(emulator: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(emulator_config(emulator), env={}) as svc:
        yield svc


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """A pooled HTTP client for tests that build a provider by hand, closed afterwards."""
    client = HttpClient()
    yield client
    await client.aclose()


@pytest.fixture
def openai(emulator: Emulator, http: HttpClient) -> OpenAIProvider:
    """An OpenAI adapter on the shared emulator (no layers around it)."""
    return OpenAIProvider(
        name="openai",
        base_url=emulator.openai_base_url,
        credential=StaticCredential(OPENAI_KEY),
        http=http,
    )
