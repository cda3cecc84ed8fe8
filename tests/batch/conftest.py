"""Fixtures of the Batch API tests: an emulator per test, services pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from aiport import ProviderService
from aiport.testing import Emulator

OPENAI_KEY = "sk-test-batch-openai-7Qe2Lr9x"
ANTHROPIC_KEY = "sk-ant-test-batch-3Wm8Kd5v"
#: One model per provider: every end-to-end test runs on both Batch APIs.
MODELS = ("openai:gpt-4o-mini", "anthropic:claude-sonnet-4-5")


def batch_config(emulator: Emulator) -> dict[str, Any]:
    """A config with `openai` and `anthropic` on the emulator, one attempt per call."""
    return {
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


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={OPENAI_KEY, ANTHROPIC_KEY}) as emulator:
        yield emulator


@pytest.fixture
async def service(emu: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(batch_config(emu), env={}) as svc:
        yield svc


@pytest.fixture(params=MODELS, ids=["openai", "anthropic"])
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class FakeSleep:
    """Records the waits asked for instead of sleeping."""

    def __init__(self, on_sleep: Callable[[float], None] | None = None) -> None:
        self.waits: list[float] = []
        self._on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self._on_sleep is not None:
            self._on_sleep(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()
