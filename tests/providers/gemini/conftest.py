"""Fixtures of the Gemini adapter tests: an emulator per test, a provider and a service
on it, the recorded Gemini API answers, and validation of request bodies with the
official ``google-genai`` types (a dev-only dependency, used as a reference only)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aiport import ProviderService
from aiport._credentials import StaticCredential
from aiport._http import HttpClient, HttpTimeouts
from aiport.providers.gemini import GeminiProvider
from aiport.testing import Emulator

#: The only key the emulator accepts; tests check it never leaks into a URL or error.
GEMINI_KEY = "AIzaSy-test-canary-5c1e9b7d3a"

# shared/ lies beside the repository; tests that need it skip without it.
RECORDED = Path(__file__).resolve().parents[4] / "shared/conformance-data/gemini/recorded"


def recorded(name: str) -> Any:
    """A recorded answer (``.json``), or the chunks of a recorded stream (``.chunks.txt``)."""
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"recorded Gemini data not available ({path})")
    if name.endswith(".chunks.txt"):
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def validate_with_sdk(body: dict[str, Any]) -> None:
    """Raise unless every field of a ``generateContent`` body is one the official SDK's
    types know (they forbid unknown fields), with values of the right types."""
    types = pytest.importorskip("google.genai.types")
    known = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    assert set(body) <= known | {"safetySettings", "cachedContent"}, set(body) - known
    for content in body["contents"]:
        types.Content.model_validate(content)
    if "systemInstruction" in body:
        types.Content.model_validate(body["systemInstruction"])
    for tool in body.get("tools", []):
        types.Tool.model_validate(tool)
    if "toolConfig" in body:
        types.ToolConfig.model_validate(body["toolConfig"])
    if "generationConfig" in body:
        types.GenerationConfig.model_validate(body["generationConfig"])


def gemini_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    """A service config with one provider ``gemini`` pointed at ``emu``."""
    settings: dict[str, Any] = {
        "type": "gemini",
        "base_url": emu.gemini_base_url,
        "api_key": GEMINI_KEY,
        **provider,
    }
    return {"retry": {"max_attempts": 1}, "providers": {"gemini": settings}}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={GEMINI_KEY}, context_windows={"tiny-window": 50}) as emulator:
        yield emulator


@pytest.fixture
async def service(emu: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(gemini_config(emu), env={}) as svc:
        yield svc


@pytest.fixture
def make_provider(emu: Emulator, http: HttpClient) -> Callable[..., GeminiProvider]:
    def make(**kwargs: Any) -> GeminiProvider:
        kwargs.setdefault("credential", StaticCredential(GEMINI_KEY))
        kwargs.setdefault("timeouts", HttpTimeouts(connect=5, first_token=10, idle=10, total=20))
        return GeminiProvider(base_url=emu.gemini_base_url, http=http, **kwargs)

    return make


@pytest.fixture
def provider(make_provider: Callable[..., GeminiProvider]) -> GeminiProvider:
    return make_provider()
