"""Fixtures for the emulator's own tests: a fresh emulator, raw HTTP, and the SDKs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from aiport.testing import Emulator

OPENAI_KEY = "sk-test-Zq8XvL0pW3nB7tY2"
ANTHROPIC_KEY = "sk-ant-test-Hk4Rm9Qs2Vx6"
OA = {"Authorization": f"Bearer {OPENAI_KEY}"}
AN = {"x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """(event, data) pairs of an SSE body."""
    out: list[tuple[str | None, str]] = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        event: str | None = None
        data: list[str] = []
        for line in frame.split("\n"):
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        out.append((event, "\n".join(data)))
    return out


def sse_json(text: str) -> list[Any]:
    """The JSON payloads of an SSE body (skipping OpenAI's ``[DONE]``)."""
    return [json.loads(data) for _, data in parse_sse(text) if data != "[DONE]"]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def oai(emu: Emulator) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=emu.openai_base_url, api_key=OPENAI_KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def ant(emu: Emulator) -> AsyncIterator[AsyncAnthropic]:
    client = AsyncAnthropic(base_url=emu.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0)
    yield client
    await client.close()
