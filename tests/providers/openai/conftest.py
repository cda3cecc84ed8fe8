"""Fixtures of the OpenAI adapter tests: the OpenAPI validator, recorded streams, and an
emulator with a provider pointed at it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from aiport._credentials import StaticCredential
from aiport._http import HttpClient, HttpTimeouts
from aiport._sse import SSEDecoder
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

# shared/ lies beside the repository (in CI too); tests that need it skip without it.
CONFORMANCE = Path(__file__).resolve().parents[4] / "shared" / "conformance-data" / "openai"
OPENAPI = CONFORMANCE / "openapi.json"
STREAMS = CONFORMANCE / "recorded-streams"

#: The key the emulator accepts. Canary tests check no piece of it ever leaks.
API_KEY = "sk-test-canary-0123456789abcdef"


@pytest.fixture(scope="session")
def openapi() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip("the OpenAI OpenAPI document is not available")
    document: dict[str, Any] = json.loads(OPENAPI.read_text())
    return document


@pytest.fixture(scope="session")
def schema_validator(openapi: dict[str, Any]) -> Callable[[str], Draft202012Validator]:
    """A JSON Schema 2020-12 validator for any ``components.schemas`` entry.

    The components ride along in the root schema so the document's
    ``#/components/schemas/...`` references resolve as they are.
    """
    cache: dict[str, Draft202012Validator] = {}

    def validator(name: str) -> Draft202012Validator:
        if name not in cache:
            schema = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": f"#/components/schemas/{name}",
                "components": openapi["components"],
            }
            cache[name] = Draft202012Validator(schema)
        return cache[name]

    return validator


def read_stream(name: str) -> list[dict[str, Any] | str]:
    """The events of a recorded stream: parsed JSON chunks, or the raw ``[DONE]``."""
    decoder = SSEDecoder()
    events = decoder.feed((STREAMS / name).read_bytes()) + decoder.flush()
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys={API_KEY}) as emulator:
        yield emulator


@pytest.fixture
def make_provider(emu: Emulator, http: HttpClient) -> Callable[..., OpenAIProvider]:
    def make(**kwargs: Any) -> OpenAIProvider:
        kwargs.setdefault("name", "openai")
        kwargs.setdefault("base_url", emu.openai_base_url)
        kwargs.setdefault("credential", StaticCredential(API_KEY))
        return OpenAIProvider(http=http, **kwargs)

    return make


@pytest.fixture
def provider(make_provider: Callable[..., OpenAIProvider]) -> OpenAIProvider:
    return make_provider(timeouts=HttpTimeouts(connect=5, first_token=10, idle=10, total=20))
