"""Single-flight token refresh, end to end: 100 concurrent calls through ``ProviderService``
that all need a new token cause exactly one request to the emulator's token endpoint.

Both ways a token goes stale are covered: it expired (the credential knows, from
``expires_in``, before sending anything) and it was revoked early (every call learns it
from a 401, and each is retried once with the one fresh token). The same holds for a
user's own token provider given to the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from aiport import AccessToken, ProviderService
from aiport.testing import Emulator

UNUSED_KEY = "sk-single-flight-never-sent-5e0b"
CLIENT_ID = "burst-client"
CLIENT_SECRET = "burst-secret-Jq8Wn5Tz2Lk7"
TOKEN_PATH = "/oauth/token"
MODEL = "corp:gpt-4o-mini"
CALLS = 100


@pytest.fixture(scope="module")
def burst_emulator() -> Iterator[Emulator]:
    with Emulator(api_keys={UNUSED_KEY}).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emu(burst_emulator: Emulator) -> Iterator[Emulator]:
    burst_emulator.reset()
    burst_emulator.oauth.reset()
    burst_emulator.oauth.clients = {CLIENT_ID: CLIENT_SECRET}
    burst_emulator.oauth.token_ttl = 3600.0
    yield burst_emulator
    burst_emulator.reset()
    burst_emulator.oauth.reset()


def oauth2_config(emu: Emulator, **auth: Any) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},  # a second token could otherwise hide behind a retry
        "providers": {
            "corp": {
                "type": "openai",
                "base_url": emu.openai_base_url,
                "max_connections": CALLS,
                "auth": {
                    "type": "oauth2",
                    "token_url": emu.url + TOKEN_PATH,
                    "client_id": CLIENT_ID,
                    "client_secret": "env:BURST_SECRET",
                    **auth,
                },
            }
        },
    }


ENV = {"BURST_SECRET": CLIENT_SECRET}


def chat_tokens(emu: Emulator) -> list[str]:
    return [
        r.headers["authorization"].removeprefix("Bearer ")
        for r in emu.requests
        if r.path == "/v1/chat/completions"
    ]


async def burst(service: ProviderService) -> None:
    replies = await asyncio.gather(
        *(service.complete(model=MODEL, messages=f"call {i}") for i in range(CALLS))
    )
    assert [r.text for r in replies] == [f"You said: call {i}" for i in range(CALLS)]


async def test_100_calls_with_an_expired_token_make_one_token_request(emu: Emulator) -> None:
    emu.oauth.token_ttl = 1.0
    async with ProviderService(oauth2_config(emu, refresh_skew=0.1), env=ENV) as service:
        await service.complete(model=MODEL, messages="first")
        [old] = chat_tokens(emu)
        assert emu.count(TOKEN_PATH) == 1
        await asyncio.sleep(1.1)
        assert not emu.oauth.is_valid(old)  # the emulator would refuse it now

        emu.oauth.token_ttl = 3600.0
        await burst(service)

        assert emu.count(TOKEN_PATH) == 2  # exactly one extra token request
        assert emu.oauth.issued == 2
        tokens = chat_tokens(emu)
        assert len(tokens) == 1 + CALLS  # no call was refused: none needed a retry
        assert set(tokens[1:]) == {tokens[1]} and tokens[1] != old


async def test_100_calls_refused_with_a_revoked_token_make_one_token_request(
    emu: Emulator,
) -> None:
    async with ProviderService(oauth2_config(emu), env=ENV) as service:
        await service.complete(model=MODEL, messages="first")
        [old] = chat_tokens(emu)
        emu.oauth.revoke()  # still unexpired for aiport: only the 401s tell

        await burst(service)

        assert emu.count(TOKEN_PATH) == 2
        assert emu.oauth.issued == 2
        tokens = chat_tokens(emu)
        refused = tokens[1:].count(old)
        fresh = [t for t in tokens[1:] if t != old]
        assert len(set(fresh)) == 1  # every retry carried the one new token
        assert len(fresh) == CALLS  # each call succeeded exactly once...
        assert refused <= CALLS  # ...after at most one refusal


class CountingSSO:
    """A user's token provider over the emulator's token endpoint, counting its fetches."""

    def __init__(self, token_url: str, lifetime: float) -> None:
        self.token_url = token_url
        self.lifetime = lifetime
        self.fetches = 0

    async def fetch_token(self) -> AccessToken:
        self.fetches += 1
        form = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        started = time.time()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.token_url, data=form) as response,
        ):
            data = await response.json()
        await asyncio.sleep(0.05)  # a slow SSO: the burst piles up behind this fetch
        return AccessToken.create(
            data["access_token"], expires_in=min(self.lifetime, data["expires_in"]), now=started
        )


async def test_a_users_provider_is_single_flight_too(emu: Emulator) -> None:
    sso = CountingSSO(emu.url + TOKEN_PATH, lifetime=0.4)
    config = {
        "retry": {"max_attempts": 1},
        "providers": {
            "corp": {"type": "openai", "base_url": emu.openai_base_url, "max_connections": CALLS}
        },
    }
    async with ProviderService(config, env={}, token_providers={"corp": sso}) as service:
        await service.complete(model=MODEL, messages="first")
        await asyncio.sleep(0.45)  # the token is past its (reported) expiry
        sso.lifetime = 3600.0
        await burst(service)
        assert sso.fetches == 2
        assert emu.count(TOKEN_PATH) == 2

        emu.oauth.revoke()
        await burst(service)
        assert sso.fetches == 3
        assert emu.count(TOKEN_PATH) == 3
