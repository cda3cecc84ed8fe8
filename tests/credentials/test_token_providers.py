"""Users' own token providers, end to end against the emulator's OAuth2 token endpoint.

Two ways in: ``ProviderService(config, token_providers={"corp": provider})``, and a plug-in,
an entry point of the group ``aiport.token_providers`` named by ``auth = {type = "plugin",
name = "..."}`` (here a real distribution on ``sys.path``, found by ``importlib.metadata``).
Either way the provider gets what the built-in ones get: tokens kept and reused, refreshed
before expiry, one refresh for every waiting call, one retry with a fresh token on a 401,
``ProviderAuthError`` (``token_refresh_failed``) when no token can be had.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

import aiport
from aiport import (
    AccessToken,
    ConfigError,
    CredentialSource,
    ProviderAuthError,
    ProviderService,
    TokenProvider,
)
from aiport._config import AgentConfig
from aiport._credentials import build_credential
from aiport._secrets import SecretResolver
from aiport._tokens import (
    TOKEN_PROVIDER_GROUP,
    RefreshingCredential,
    load_token_provider_plugin,
    token_providers_for,
)
from aiport.testing import Emulator

#: The only API key the emulator accepts besides the tokens it issues: never used here, so
#: every successful call below was authorised by a token.
UNUSED_KEY = "sk-token-tests-never-sent-7c41d0"
CLIENT_ID = "corp-client"
CLIENT_SECRET = "corp-secret-Vb6Nc3KwYh5"
MODEL = "corp:gpt-4o-mini"


@pytest.fixture(scope="module")
def token_emulator() -> Iterator[Emulator]:
    with Emulator(api_keys={UNUSED_KEY}).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emu(token_emulator: Emulator) -> Iterator[Emulator]:
    token_emulator.reset()
    token_emulator.oauth.reset()
    token_emulator.oauth.clients = {CLIENT_ID: CLIENT_SECRET}
    token_emulator.oauth.token_ttl = 3600.0
    yield token_emulator
    token_emulator.reset()
    token_emulator.oauth.reset()


def chats(emu: Emulator) -> list[str]:
    """The Authorization header of every chat request the emulator received, in order."""
    return [
        r.headers.get("authorization", "") for r in emu.requests if r.path.endswith("/completions")
    ]


class AsyncCorpTokens:
    """A user's async token provider: the client-credentials grant, written by hand."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.calls = 0
        self.loops: set[int] = set()

    async def fetch_token(self) -> AccessToken:
        self.calls += 1
        self.loops.add(id(asyncio.get_running_loop()))
        form = {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }
        # A session per fetch: the next fetch may run on another event loop.
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.token_url, data=form) as response,
        ):
            if response.status != 200:
                raise ProviderAuthError(f"corp SSO answered HTTP {response.status}")
            data = await response.json()
        return AccessToken.create(data["access_token"], expires_in=data["expires_in"])


class BlockingCorpTokens:
    """A user's synchronous token provider (a blocking SDK): run in a worker thread."""

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.threads: list[str] = []
        self.checked = 0

    def check(self) -> None:
        self.checked += 1

    def fetch_token(self) -> AccessToken:
        self.threads.append(threading.current_thread().name)
        body = (
            f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (the emulator, on loopback)
            self.token_url,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
            data = json.loads(response.read())
        return AccessToken.create(data["access_token"], expires_in=data["expires_in"])


def corp_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},
        "providers": {"corp": {"type": "openai", "base_url": emu.openai_base_url, **provider}},
    }


# -- the public protocols --------------------------------------------------------------------


def test_the_protocols_are_public_and_structural() -> None:
    assert {"TokenProvider", "AccessToken", "SecretSource"} <= set(aiport.__all__)
    assert aiport.TokenProvider is TokenProvider
    assert isinstance(AsyncCorpTokens("https://sso.example/token"), TokenProvider)
    assert isinstance(BlockingCorpTokens("https://sso.example/token"), TokenProvider)
    assert not isinstance(object(), TokenProvider)

    class Vault:
        def get_secret(self, name: str) -> str:
            return "x"

    assert isinstance(Vault(), aiport.SecretSource)


def test_access_token_expiry_forms() -> None:
    import datetime as dt

    assert AccessToken.create("t", expires_in=10, now=100.0).expires_at == 110.0
    assert AccessToken.create("t", expires_at=1234.5).expires_at == 1234.5
    naive = dt.datetime(2030, 1, 1, 12, 0, 0)
    aware = naive.replace(tzinfo=dt.UTC)
    assert AccessToken.create("t", expires_at=naive).expires_at == aware.timestamp()
    assert AccessToken.create("t").expires_at is None
    with pytest.raises(ValueError, match="not both"):
        AccessToken.create("t", expires_in=1, expires_at=2)
    assert "t0ken-value" not in repr(AccessToken.create("t0ken-value"))


# -- programmatic: ProviderService(token_providers=...) ----------------------------------------


async def test_a_given_async_provider_is_used_kept_and_refreshed_after_a_401(
    emu: Emulator,
) -> None:
    corp = AsyncCorpTokens(emu.url + "/oauth/token")
    async with ProviderService(corp_config(emu), env={}, token_providers={"corp": corp}) as service:
        assert service.validate_provider("corp")
        assert corp.calls == 0  # validating fetches nothing
        for text in ("a", "b", "c"):
            assert (await service.complete(model=MODEL, messages=text)).text == f"You said: {text}"
        assert corp.calls == 1 and emu.oauth.issued == 1  # one token for three calls
        headers = chats(emu)
        assert len(set(headers)) == 1 and headers[0].startswith("Bearer emu-at-")

        emu.oauth.revoke()  # the server drops the token before its expiry
        reply = await service.complete(model=MODEL, messages="d")
        assert reply.text == "You said: d"
        assert corp.calls == 2 and emu.oauth.issued == 2
        refused, retried = chats(emu)[-2:]
        assert refused == headers[0] and retried != refused  # one retry, with a new token

        # The sync API runs on its own loop: the same provider serves it.
        assert service.validate_provider("corp")
    with ProviderService(corp_config(emu), env={}, token_providers={"corp": corp}) as service:
        assert service.complete_sync(model=MODEL, messages="e").text == "You said: e"
    assert corp.calls == 3 and len(corp.loops) >= 2


async def test_a_given_blocking_provider_runs_in_a_worker_thread(emu: Emulator) -> None:
    corp = BlockingCorpTokens(emu.url + "/oauth/token")
    emu.oauth.token_ttl = 1.2
    async with ProviderService(corp_config(emu), env={}, token_providers={"corp": corp}) as service:
        assert service.validate_provider("corp") and corp.checked == 1
        await service.complete(model=MODEL, messages="a")
        await asyncio.sleep(0.7)  # past half the lifetime: refreshed before the server expiry
        await service.complete(model=MODEL, messages="b")
        assert emu.oauth.issued == 2
        assert len(chats(emu)) == 2  # no 401 was needed
    assert len(corp.threads) == 2
    assert threading.main_thread().name not in corp.threads


async def test_a_failing_given_provider_is_a_refresh_failure_naming_the_provider(
    emu: Emulator,
) -> None:
    class Down:
        async def fetch_token(self) -> AccessToken:
            raise ConnectionError(f"sso down, secret was {CLIENT_SECRET}")

    class Outage:
        def fetch_token(self) -> AccessToken:
            raise ProviderAuthError("the SSO is in maintenance", retryable=True)

    class Wrong:
        def fetch_token(self) -> str:
            return "a bare string"

    async with ProviderService(
        corp_config(emu), env={}, token_providers={"corp": Down()}
    ) as service:
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model=MODEL, messages="a")
    error = caught.value
    assert error.reason == "token_refresh_failed" and error.provider == "corp"
    assert "ConnectionError from the token provider" in error.message
    assert CLIENT_SECRET not in str(error) and CLIENT_SECRET not in repr(error)
    assert chats(emu) == []  # nothing was sent without a token

    async with ProviderService(
        corp_config(emu), env={}, token_providers={"corp": Outage()}
    ) as service:
        with pytest.raises(ProviderAuthError, match="in maintenance") as caught:
            await service.complete(model=MODEL, messages="a")
    assert caught.value.retryable

    async with ProviderService(
        corp_config(emu),
        env={},
        token_providers={"corp": Wrong()},  # type: ignore[dict-item]
    ) as service:
        with pytest.raises(ProviderAuthError, match="returned str, not an AccessToken"):
            await service.complete(model=MODEL, messages="a")


def test_given_providers_are_checked_when_the_service_is_made(emu: Emulator) -> None:
    corp = AsyncCorpTokens(emu.url + "/oauth/token")
    with pytest.raises(ConfigError) as caught:
        ProviderService(corp_config(emu), env={}, token_providers={"copr": corp})
    assert "token_providers.copr" in str(caught.value)
    assert "did you mean 'corp'?" in str(caught.value)

    for field, value in (
        ("api_key", "env:CORP_KEY"),
        ("api_keys", ["env:A", "env:B"]),
        ("auth", {"type": "google"}),
    ):
        with pytest.raises(ConfigError) as caught:
            ProviderService(
                corp_config(emu, **{field: value}), env={}, token_providers={"corp": corp}
            )
        [problem] = caught.value.problems
        assert problem.path == f"providers.corp.{field}"
        assert "keep one of them" in problem.message

    with pytest.raises(TypeError, match="not a TokenProvider"):
        ProviderService(
            corp_config(emu),
            env={},
            token_providers={"corp": "a token"},  # type: ignore[dict-item]
        )
    with pytest.raises(TypeError, match="not a TokenProvider"):
        ProviderService(
            corp_config(emu),
            env={},
            token_providers={"corp": AsyncCorpTokens},  # type: ignore[dict-item]
        )


async def test_a_given_provider_for_a_gemini_provider_sends_bearer_tokens(
    emu: Emulator,
) -> None:
    corp = AsyncCorpTokens(emu.url + "/oauth/token")
    config = {
        "retry": {"max_attempts": 1},
        "providers": {"corp": {"type": "gemini", "base_url": emu.gemini_base_url}},
    }
    async with ProviderService(config, env={}, token_providers={"corp": corp}) as service:
        reply = await service.complete(model="corp:gemini-2.0-flash", messages="hi")
    assert reply.text
    [request] = [r for r in emu.requests if "generateContent" in r.path]
    assert request.headers["authorization"].startswith("Bearer emu-at-")
    assert "x-goog-api-key" not in request.headers


async def test_a_given_provider_for_an_azure_provider_sends_bearer_tokens(
    emu: Emulator,
) -> None:
    corp = AsyncCorpTokens(emu.url + "/oauth/token")
    config = {
        "retry": {"max_attempts": 1},
        "providers": {"corp": {"type": "azure", "base_url": emu.azure_endpoint}},
    }
    async with ProviderService(config, env={}, token_providers={"corp": corp}) as service:
        reply = await service.complete(model="corp:gpt-4o-mini", messages="hi")
    assert reply.text
    [request] = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert request.headers["authorization"].startswith("Bearer emu-at-")
    assert "api-key" not in request.headers


# -- declarative: auth = {type = "plugin"} ------------------------------------------------------

PLUGIN_SOURCE = '''
import aiohttp

from aiport import AccessToken, ProviderAuthError


class CorpSSO:
    """Built by aiport with the auth table's options and client_secret."""

    instances = []

    def __init__(self, *, token_url, client_id, client_secret, lifetime_cap=None):
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.lifetime_cap = lifetime_cap
        self.calls = 0
        CorpSSO.instances.append(self)

    async def check(self):
        await self.client_secret.get()

    async def fetch_token(self):
        self.calls += 1
        secret = (await self.client_secret.get()).get_secret_value()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": secret,
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.token_url, data=form) as response,
        ):
                if response.status != 200:
                    raise ProviderAuthError(f"corp SSO answered HTTP {response.status}")
                data = await response.json()
        lifetime = data["expires_in"]
        if self.lifetime_cap is not None:
            lifetime = min(lifetime, self.lifetime_cap)
        return AccessToken.create(data["access_token"], expires_in=lifetime)


def not_a_provider(**options):
    return 42


READY = CorpSSO.__new__(CorpSSO)
'''


class Distribution:
    """An installed distribution, written to a directory put on ``sys.path``."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.module = f"corp_sso_{uuid.uuid4().hex[:10]}"
        (root / f"{self.module}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
        info = root / "corp_sso-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: corp-sso\nVersion: 1.2\n")
        (info / "entry_points.txt").write_text(
            f"[{TOKEN_PROVIDER_GROUP}]\n"
            f"corp-sso = {self.module}:CorpSSO\n"
            f"ready = {self.module}:READY\n"
            f"not-a-provider = {self.module}:not_a_provider\n"
            f"broken = {self.module}_missing:CorpSSO\n"
        )
        monkeypatch.syspath_prepend(str(root))
        self._monkeypatch = monkeypatch

    def instances(self) -> list[Any]:
        import importlib

        return importlib.import_module(self.module).CorpSSO.instances  # type: ignore[no-any-return]

    def forget(self) -> None:
        import sys

        self._monkeypatch.delitem(sys.modules, self.module, raising=False)


@pytest.fixture
def distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Distribution]:
    root = tmp_path / "site"
    root.mkdir()
    dist = Distribution(root, monkeypatch)
    yield dist
    dist.forget()


def plugin_config(emu: Emulator, name: str = "corp-sso", **auth: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "type": "plugin",
        "name": name,
        "options": {"token_url": emu.url + "/oauth/token", "client_id": CLIENT_ID},
        "client_secret": "env:CORP_CLIENT_SECRET",
        **auth,
    }
    return corp_config(emu, auth=table)


ENV = {"CORP_CLIENT_SECRET": CLIENT_SECRET}


async def test_a_plugin_from_an_installed_distribution_end_to_end(
    emu: Emulator, distribution: Distribution
) -> None:
    async with ProviderService(plugin_config(emu, refresh_skew=0.1), env=ENV) as service:
        [sso] = distribution.instances()  # imported and built with the service
        assert sso.client_id == CLIENT_ID and sso.calls == 0
        assert isinstance(sso.client_secret, CredentialSource)
        assert CLIENT_SECRET not in repr(sso.client_secret)
        assert service.validate_provider("corp")
        assert emu.oauth.issued == 0

        replies = await asyncio.gather(
            *(service.complete(model=MODEL, messages=str(i)) for i in range(20))
        )
        assert [r.text for r in replies] == [f"You said: {i}" for i in range(20)]
        assert sso.calls == 1 and emu.oauth.issued == 1

        emu.oauth.revoke()
        assert (await service.complete(model=MODEL, messages="x")).text == "You said: x"
        assert sso.calls == 2
        assert chats(emu)[-2] != chats(emu)[-1]  # refused, then retried with a new token
        assert all(header.startswith("Bearer emu-at-") for header in chats(emu))

        emu.oauth.fail_next(1, status=401)
        emu.oauth.revoke()
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model=MODEL, messages="y")
        assert caught.value.reason == "token_refresh_failed"
        assert "corp SSO answered HTTP 401" in caught.value.message
        assert (await service.complete(model=MODEL, messages="z")).text == "You said: z"


async def test_a_plugin_token_is_refreshed_before_it_expires(
    emu: Emulator, distribution: Distribution
) -> None:
    config = plugin_config(emu, refresh_skew=0.2)
    config["providers"]["corp"]["auth"]["options"]["lifetime_cap"] = 0.6
    async with ProviderService(config, env=ENV) as service:
        await service.complete(model=MODEL, messages="a")
        await asyncio.sleep(0.45)  # past expiry minus skew, before the token's end
        await service.complete(model=MODEL, messages="b")
    [sso] = distribution.instances()
    assert sso.calls == 2 and emu.oauth.issued == 2
    assert len(chats(emu)) == 2  # refreshed ahead: no request was refused


def test_plugin_failures_are_config_errors_naming_the_entry_point(
    emu: Emulator, distribution: Distribution
) -> None:
    def problem(config: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as caught:
            ProviderService(config, env=ENV)
        [found] = caught.value.problems
        assert found.path == "providers.corp.auth.name"
        assert CLIENT_SECRET not in str(caught.value)
        return found.message

    missing = problem(plugin_config(emu, name="corp-ss0"))
    assert "no token provider plug-in 'corp-ss0'" in missing
    assert "'aiport.token_providers'" in missing
    assert "did you mean 'corp-sso'?" in missing

    broken = problem(plugin_config(emu, name="broken"))
    assert f"entry point 'broken = {distribution.module}_missing:CorpSSO'" in broken
    assert "of distribution 'corp-sso 1.2'" in broken
    assert "cannot be imported: ModuleNotFoundError" in broken

    config = plugin_config(emu)
    config["providers"]["corp"]["auth"]["options"]["colour"] = "blue"
    unexpected = problem(config)
    assert "cannot be built with client_id, client_secret, colour, token_url" in unexpected
    assert "TypeError" in unexpected and "colour" in unexpected

    assert "gave a int, which has no fetch_token method" in problem(
        plugin_config(emu, name="not-a-provider")
    )
    assert "takes no options or client_secret" in problem(plugin_config(emu, name="ready"))

    # A disabled provider's plug-in is not loaded, nor reported.
    disabled = plugin_config(emu, name="broken")
    disabled["providers"]["corp"]["enabled"] = False
    ProviderService(disabled, env=ENV).close()


def test_a_plugin_object_is_used_as_it_is(distribution: Distribution) -> None:
    config = AgentConfig.model_validate(
        {"providers": {"corp": {"type": "openai", "auth": {"type": "plugin", "name": "ready"}}}}
    )
    settings = config.providers["corp"]
    assert settings.auth is not None
    provider = load_token_provider_plugin("corp", settings.auth, SecretResolver(env={}))
    import importlib

    assert provider is importlib.import_module(distribution.module).READY
    credential = build_credential("corp", settings, SecretResolver(env={}))
    assert isinstance(credential, RefreshingCredential)
    assert credential.skew == 60.0


def test_plugins_are_listed_like_secret_sources_with_an_injected_lister() -> None:
    class Point:
        def __init__(self, name: str, target: Any) -> None:
            self.name, self.value, self._target = name, f"fake:{name}", target

        def load(self) -> Any:
            return self._target

    class Fixed:
        def __init__(self, token: str) -> None:
            self.token = token

        def fetch_token(self) -> AccessToken:
            return AccessToken(SecretStr(self.token))

    asked: list[str] = []

    def entry_points(*, group: str) -> list[Point]:
        asked.append(group)
        return [Point("fixed", Fixed), Point("Bad Name", Fixed), Point("fixed", object())]

    config = AgentConfig.model_validate(
        {
            "providers": {
                "a": {
                    "type": "openai",
                    "auth": {"type": "plugin", "name": "fixed", "options": {"token": "t-a"}},
                },
                "b": {
                    "type": "openai",
                    "auth": {"type": "plugin", "name": "fixed", "options": {"token": "t-b"}},
                },
                "c": {"type": "openai", "api_key": "env:C"},
            }
        }
    )
    chosen = token_providers_for(config, {}, SecretResolver(env={}), entry_points=entry_points)
    assert sorted(chosen) == ["a", "b"]
    assert asked == [TOKEN_PROVIDER_GROUP]  # listed once for every provider
    assert [p.token for p in chosen.values()] == ["t-a", "t-b"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"type": "plugin"}, "needs name"),
        ({"type": "plugin", "name": "Corp SSO"}, "entry point name"),
        ({"type": "plugin", "name": "x", "token_url": "https://a.example/t"}, "from token_url"),
        ({"type": "plugin", "name": "x", "scopes": ["a"]}, "not from scopes"),
        ({"type": "oauth2", "name": "x"}, "for 'plugin' only"),
        ({"type": "google", "options": {"a": 1}}, "for 'plugin' only"),
    ],
)
def test_invalid_plugin_auth_tables(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig.model_validate({"providers": {"p": {"type": "openai", "auth": auth}}})
    assert message in str(caught.value)
