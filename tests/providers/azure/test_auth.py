"""Azure OpenAI credentials: the key only ever in the ``api-key`` header, or an Entra ID
bearer token from the ``azure`` token provider (refreshed once on a 401)."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from aiport import ProviderService
from aiport._errors import ProviderAuthError
from aiport._tokens import AZURE_COGNITIVE_SCOPE
from aiport.testing import Emulator, Fault, RecordedRequest
from aiport.testing._azure import AzureRoutes

from .conftest import AZURE_KEY, ENTRA_TOKENS

CHAT = "/openai/deployments/gpt-4o/chat/completions"


def azure_calls(emu: Emulator) -> list[RecordedRequest]:
    """The requests to Azure OpenAI (not those to the token endpoint)."""
    return [r for r in emu.requests if r.path.startswith("/openai/")]


async def exercise(service: ProviderService) -> None:
    """One call of each operation."""
    await service.complete(model="azure:gpt-4o", messages="Hi")
    async for _ in service.stream(model="azure:gpt-4o", messages="Hi"):
        pass
    await service.embed(model="azure:text-embedding-3-small", input=["Hi"])
    await service.generate_image(model="azure:dall-e-3", prompt="Hi")


async def test_key_travels_only_in_the_api_key_header(
    service: ProviderService, emu: Emulator, routes: AzureRoutes
) -> None:
    await exercise(service)
    assert len(emu.requests) == 4
    for request, query in zip(emu.requests, routes.queries, strict=True):
        assert request.headers["api-key"] == AZURE_KEY
        assert "authorization" not in request.headers
        others = {k: v for k, v in request.headers.items() if k != "api-key"}
        assert AZURE_KEY not in json.dumps(others)
        assert AZURE_KEY not in request.path
        assert AZURE_KEY not in json.dumps(query)
        assert AZURE_KEY.encode() not in request.raw_body


async def test_api_key_from_the_standard_variable(emu: Emulator) -> None:
    config = {
        "retry": {"max_attempts": 1},
        "providers": {"azure": {"type": "azure", "base_url": emu.azure_endpoint}},
    }
    async with ProviderService(config, env={"AZURE_OPENAI_API_KEY": AZURE_KEY}) as service:
        response = await service.complete(model="azure:gpt-4o", messages="Hi")
    assert response.text == "You said: Hi"
    assert emu.requests[-1].headers["api-key"] == AZURE_KEY


# --------------------------------------------------------------------------- Entra ID


class AzureToken(NamedTuple):
    token: str
    expires_on: int


class EmulatorEntraCredential:
    """Stands in for ``azure.identity.DefaultAzureCredential``: its tokens come from the
    emulator's OAuth2 endpoint (the client-credentials grant), which the emulator's Azure
    routes then accept as bearer tokens, as Azure accepts Entra ID tokens."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> AzureToken:
        self.scopes.append(scopes)
        basic = base64.b64encode(b"aiport-tests:client-secret").decode()
        request = urllib.request.Request(  # noqa: S310  (the loopback emulator)
            self.token_url,
            data=b"grant_type=client_credentials",
            headers={
                "Authorization": f"Basic {basic}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            issued = json.load(answer)
        return AzureToken(issued["access_token"], int(time.time() + issued["expires_in"]))


class ListedCredential:
    """A fake Azure credential that hands out the given tokens in turn."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = list(tokens)
        self.calls = 0

    def get_token(self, *scopes: str) -> AzureToken:
        self.calls += 1
        return AzureToken(self.tokens.pop(0), int(time.time()) + 3600)


@pytest.fixture
def install_credential(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Make ``DefaultAzureCredential()`` (what ``auth: {type: azure}`` builds) return a fake."""
    identity = pytest.importorskip("azure.identity")

    def install(credential: Any) -> None:
        monkeypatch.setattr(identity, "DefaultAzureCredential", lambda *a, **k: credential)

    return install


async def test_entra_id_token_is_sent_as_bearer(
    make_service: Callable[..., ProviderService],
    emu: Emulator,
    install_credential: Callable[[Any], None],
) -> None:
    credential = EmulatorEntraCredential(emu.url + "/oauth/token")
    install_credential(credential)
    async with make_service(api_key=None, auth={"type": "azure"}) as service:
        await exercise(service)
    assert credential.scopes == [(AZURE_COGNITIVE_SCOPE,)]  # one token served every call
    assert emu.oauth.issued == 1
    calls = azure_calls(emu)
    assert len(calls) == 4
    for request in calls:
        scheme, _, token = request.headers["authorization"].partition(" ")
        assert scheme == "Bearer"
        assert emu.oauth.is_valid(token)
        assert "api-key" not in request.headers


async def test_revoked_token_is_refreshed_once_after_a_401(
    make_service: Callable[..., ProviderService],
    emu: Emulator,
    install_credential: Callable[[Any], None],
) -> None:
    credential = EmulatorEntraCredential(emu.url + "/oauth/token")
    install_credential(credential)
    async with make_service(api_key=None, auth={"type": "azure"}) as service:
        await service.complete(model="azure:gpt-4o", messages="Hi")
        emu.oauth.revoke()
        response = await service.complete(model="azure:gpt-4o", messages="Hi")
    assert response.text == "You said: Hi"
    first, refused, retried = (r.headers["authorization"] for r in azure_calls(emu))
    assert refused == first != retried
    assert emu.oauth.issued == 2


async def test_token_refused_twice_is_an_auth_error(
    make_service: Callable[..., ProviderService],
    emu: Emulator,
    install_credential: Callable[[Any], None],
) -> None:
    credential = ListedCredential(["stale-token-aaaaaaaa", "stale-token-bbbbbbbb"])
    install_credential(credential)
    async with make_service(api_key=None, auth={"type": "azure"}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model="azure:gpt-4o", messages="Hi")
    assert info.value.status_code == 401
    assert "Access token is missing, invalid" in info.value.message
    assert credential.calls == 2  # the first token, then one fresh one
    assert len(emu.requests) == 2


async def test_bearer_without_the_role_is_forbidden(
    make_service: Callable[..., ProviderService],
    emu: Emulator,
    install_credential: Callable[[Any], None],
) -> None:
    install_credential(ListedCredential([ENTRA_TOKENS[0]]))
    emu.add_fault(Fault.status(403), path=CHAT)
    async with make_service(api_key=None, auth={"type": "azure"}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model="azure:gpt-4o", messages="Hi")
    assert info.value.status_code == 403
    assert info.value.error_type == "PermissionDenied"
    assert "Principal does not have access" in info.value.message
