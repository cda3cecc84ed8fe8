"""Fixtures of the Mistral adapter tests: a private emulator, the adapter on it, and a
service configured with a ``mistral`` provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._http import HttpClient, HttpTimeouts
from aiport.providers.mistral import MistralProvider
from aiport.testing import Emulator

#: The key the emulator accepts. Canary tests check no piece of it ever leaks.
API_KEY = "mistral-test-canary-7c1d0e9f2a4b"
MODEL = "mistral-small-latest"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={API_KEY}) as emulator:
        yield emulator


def service_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    """A config with one ``mistral`` provider on ``emu`` (one attempt: no retries)."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "mistral": {
                "type": "mistral",
                "base_url": emu.mistral_base_url,
                "api_key": API_KEY,
                **provider,
            }
        },
    }


@pytest.fixture
async def service(emu: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(service_config(emu), env={}) as svc:
        yield svc


@pytest.fixture
def make_provider(emu: Emulator, http: HttpClient) -> Callable[..., MistralProvider]:
    def make(**kwargs: Any) -> MistralProvider:
        kwargs.setdefault("base_url", emu.mistral_base_url)
        kwargs.setdefault("credential", StaticCredential(API_KEY))
        kwargs.setdefault("timeouts", HttpTimeouts(connect=5, first_token=10, idle=10, total=20))
        return MistralProvider(http=http, **kwargs)

    return make


@pytest.fixture
def provider(make_provider: Callable[..., MistralProvider]) -> MistralProvider:
    return make_provider()
