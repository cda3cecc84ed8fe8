"""Fixtures of the Azure OpenAI tests: an emulator with its Azure routes, and a service
with an ``azure`` provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport.testing import Emulator
from aiport.testing._azure import AzureRoutes, azure_routes

#: The key the emulator accepts. Canary-like: tests check no piece of it leaks anywhere.
AZURE_KEY = "azk-test-canary-5e8d1c9b07f3a2"
#: Entra ID tokens the emulator accepts (the fake Azure credential hands them out).
ENTRA_TOKENS = ("entra-token-one-2b7f9c", "entra-token-two-81d4ae")


def azure_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    """A config whose provider ``azure`` points at the emulator (one attempt per call)."""
    settings: dict[str, Any] = {
        "type": "azure",
        "base_url": emu.azure_endpoint,
        "api_key": AZURE_KEY,
    }
    settings.update(provider)
    return {"retry": {"max_attempts": 1}, "providers": {"azure": settings}}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={AZURE_KEY, *ENTRA_TOKENS}) as emulator:
        yield emulator


@pytest.fixture
def routes(emu: Emulator) -> AzureRoutes:
    """The emulator's Azure routes (its deployments table)."""
    return azure_routes(emu)


@pytest.fixture
async def service(emu: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(azure_config(emu), env={}) as svc:
        yield svc


@pytest.fixture
def make_service(emu: Emulator) -> Callable[..., ProviderService]:
    """Build a service with provider settings of the test's own (closed by the test)."""

    def make(**provider: Any) -> ProviderService:
        return ProviderService(azure_config(emu, **provider), env={})

    return make
