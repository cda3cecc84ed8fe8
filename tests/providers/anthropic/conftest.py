"""Fixtures for the Anthropic adapter tests: an emulator per test and providers on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aiport._credentials import StaticCredential
from aiport._http import HttpClient
from aiport.providers.anthropic import AnthropicProvider
from aiport.testing import Emulator

#: The only key the emulator accepts; tests check it never leaks into an error.
CANARY_KEY = "sk-ant-test-canary-0123456789abcdef"

RECORDED = (
    Path(__file__).resolve().parents[4] / "shared/conformance-data/anthropic/recorded-streams"
)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={CANARY_KEY}) as emulator:
        yield emulator


@pytest.fixture
def make_provider(emu: Emulator, http: HttpClient) -> Callable[..., AnthropicProvider]:
    def make(**kwargs: Any) -> AnthropicProvider:
        kwargs.setdefault("credential", StaticCredential(CANARY_KEY))
        return AnthropicProvider(
            name="anthropic", base_url=emu.anthropic_base_url, http=http, **kwargs
        )

    return make


@pytest.fixture
def provider(make_provider: Callable[..., AnthropicProvider]) -> AnthropicProvider:
    return make_provider()
