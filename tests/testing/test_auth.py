"""Authentication, and that no error ever echoes more than a key's last four characters."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from aiport.testing import Emulator

from .conftest import OPENAI_KEY

GOOD = "sk-proj-Good9Key8Value7"
BAD = "sk-proj-Wr0ngK3yQ9zX4vB1"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def fragments(key: str, size: int = 5) -> set[str]:
    return {key[i : i + size] for i in range(len(key) - size + 1)}


async def test_openai_missing_and_wrong_keys(http: aiohttp.ClientSession) -> None:
    async with Emulator(api_keys=[GOOD]) as emu:
        url = emu.openai_base_url + "/chat/completions"
        async with http.post(url, json=CHAT) as r:
            assert r.status == 401
            error = (await r.json())["error"]
        assert error["message"].startswith("You didn't provide an API key.")
        assert (error["type"], error["param"], error["code"]) == (
            "invalid_request_error",
            None,
            None,
        )
        async with http.post(url, json=CHAT, headers={"Authorization": f"Bearer {BAD}"}) as r:
            assert r.status == 401
            error = (await r.json())["error"]
        assert error["code"] == "invalid_api_key"
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith(f"Incorrect API key provided: ****{BAD[-4:]}.")
        async with http.post(url, json=CHAT, headers={"Authorization": f"Bearer {GOOD}"}) as r:
            assert r.status == 200


async def test_any_key_accepted_by_default(http: aiohttp.ClientSession, emu: Emulator) -> None:
    url = emu.openai_base_url + "/chat/completions"
    async with http.post(url, json=CHAT, headers={"Authorization": "Bearer x"}) as r:
        assert r.status == 200
    async with http.post(url, json=CHAT, headers={"Authorization": "Bearer "}) as r:
        assert r.status == 401


async def test_sdk_authentication_error() -> None:
    async with (
        Emulator(api_keys=[GOOD]) as emu,
        AsyncOpenAI(base_url=emu.openai_base_url, api_key=BAD, max_retries=0) as client,
    ):
        with pytest.raises(openai.AuthenticationError) as info:
            await client.models.list()
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    "fault",
    [None, "401", "403", "429", "500", "context-length", "malformed", "malformed-body", "cut"],
)
async def test_keys_never_echoed(http: aiohttp.ClientSession, fault: str | None) -> None:
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    async with Emulator(api_keys=[GOOD]) as emu:
        for key in (GOOD, BAD):
            extra = {"x-emulator-fault": fault} if fault else {}
            requests += [
                (
                    emu.openai_base_url + "/chat/completions",
                    CHAT,
                    {"Authorization": f"Bearer {key}", **extra},
                ),
                (
                    emu.url + "/v1/messages",
                    {**CHAT, "max_tokens": 5},
                    {"x-api-key": key, "anthropic-version": "2023-06-01", **extra},
                ),
                (
                    emu.url + "/v1/messages",
                    {**CHAT, "max_tokens": 5},
                    {"Authorization": f"Bearer {key}", "anthropic-version": "2026-10-21", **extra},
                ),
            ]
        seen = []
        for url, body, headers in requests:
            async with http.post(url, json=body, headers=headers) as r:
                head = json.dumps(dict(r.headers))
                try:
                    seen.append(head + (await r.read()).decode())
                except aiohttp.ClientPayloadError:
                    seen.append(head)
    everything = "\n".join(seen)
    for key in (GOOD, BAD, OPENAI_KEY):
        leaked = [f for f in fragments(key) if f in everything]
        assert not leaked, (key, leaked)
