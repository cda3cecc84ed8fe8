"""Fixtures of the Ollama adapter tests: a service and a bare adapter on the shared emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport._http import HttpClient, HttpTimeouts
from aiport.providers.ollama import OllamaProvider
from aiport.testing import Emulator


def ollama_config(emulator: Emulator, **provider: Any) -> dict[str, Any]:
    """A config with one provider ``ollama`` on the emulator, and no retries."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "ollama": {"type": "ollama", "base_url": emulator.ollama_base_url, **provider}
        },
    }


@pytest.fixture
async def ollama_service(emulator: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(ollama_config(emulator), env={}) as service:
        yield service


@pytest.fixture
def make_ollama(emulator: Emulator, http: HttpClient) -> Callable[..., OllamaProvider]:
    """Builds a bare adapter (no layers, no preflight) on the emulator."""

    def make(**kwargs: Any) -> OllamaProvider:
        kwargs.setdefault("base_url", emulator.ollama_base_url)
        kwargs.setdefault("timeouts", HttpTimeouts(connect=5, first_token=10, idle=10, total=20))
        return OllamaProvider(http=http, **kwargs)

    return make
