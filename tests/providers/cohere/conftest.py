"""Fixtures of the Cohere adapter tests: a private emulator, the adapter on it, a service
configured with a ``cohere`` provider pointed at it, and the recorded Cohere responses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._http import HttpClient, HttpTimeouts
from aiport.providers.cohere import CohereProvider
from aiport.testing import Emulator

#: The key the emulator accepts. Canary tests check no piece of it ever leaks.
API_KEY = "cohere-test-canary-5e8a1f3b9d2c"

# shared/ lies beside the repository (in CI too); tests that need it skip without it.
RECORDED = (
    Path(__file__).resolve().parents[4] / "shared" / "conformance-data" / "cohere" / "recorded"
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={API_KEY}) as emulator:
        yield emulator


def service_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    """A config with one ``cohere`` provider on ``emu`` (one attempt: no retries)."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "cohere": {
                "type": "cohere",
                "base_url": emu.cohere_base_url,
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
def make_provider(emu: Emulator, http: HttpClient) -> Callable[..., CohereProvider]:
    def make(**kwargs: Any) -> CohereProvider:
        kwargs.setdefault("base_url", emu.cohere_base_url)
        kwargs.setdefault("credential", StaticCredential(API_KEY))
        kwargs.setdefault("timeouts", HttpTimeouts(connect=5, first_token=10, idle=10, total=20))
        return CohereProvider(http=http, **kwargs)

    return make


@pytest.fixture
def provider(make_provider: Callable[..., CohereProvider]) -> CohereProvider:
    return make_provider()


def recorded_json(name: str) -> dict[str, Any]:
    """A recorded Cohere answer (skips the test when shared/ is not there)."""
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"the recorded Cohere response {name} is not available")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def recorded_chunks(name: str) -> list[dict[str, Any]]:
    """The events of a recorded Cohere stream: one JSON payload per line."""
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"the recorded Cohere stream {name} is not available")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
