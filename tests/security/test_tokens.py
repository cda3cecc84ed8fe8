"""Short-lived tokens: the refreshing credential, OAuth2 against the emulator, Azure, Google."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import pytest
from aiohttp import web
from pydantic import SecretStr

from aiport import ProviderService
from aiport._config import AgentConfig, ProviderConfig
from aiport._credentials import SecretReference, build_credential
from aiport._errors import ConfigError, ProviderAuthError
from aiport._secrets import SecretResolver
from aiport._tokens import (
    AZURE_COGNITIVE_SCOPE,
    GOOGLE_CLOUD_PLATFORM_SCOPE,
    AccessToken,
    AzureADTokenProvider,
    GoogleADCTokenProvider,
    OAuth2ClientCredentials,
    RefreshingCredential,
    TokenProvider,
    is_loopback_host,
    token_url_problem,
)
from aiport.testing import Emulator, Fault

from .conftest import CANARY, assert_no_leak

CLIENT_SECRET = "clsec-Hq8Wn3Tz6Yp1Kd5Rm"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingProvider:
    """Issues token-1, token-2... after an optional gate; can be told to fail."""

    def __init__(self, clock: Clock, lifetime: float | None = 100.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.fail_with: BaseException | None = None

    async def fetch_token(self) -> AccessToken:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        else:
            await asyncio.sleep(0.01)
        if self.fail_with is not None:
            raise self.fail_with
        return AccessToken.create(
            f"token-{self.calls}", expires_in=self.lifetime, now=self.clock.now
        )


# -- the refreshing credential -------------------------------------------------------------


async def test_single_flight_100_concurrent_callers_with_an_expired_token() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    credential = RefreshingCredential(provider, name="p", skew=10, clock=clock)
    assert isinstance(provider, TokenProvider)
    assert (await credential.get()).get_secret_value() == "token-1"
    clock.now += 101  # expired
    results = await asyncio.gather(*(credential.get() for _ in range(100)))
    assert {r.get_secret_value() for r in results} == {"token-2"}
    assert provider.calls == 2  # exactly one refresh for the 100 callers
    assert credential.refreshes == 2


async def test_refresh_before_expiry_with_skew_capped_at_half_the_lifetime() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=100)
    credential = RefreshingCredential(provider, skew=10, clock=clock)
    await credential.get()
    clock.now += 89
    assert (await credential.get()).get_secret_value() == "token-1"
    clock.now += 2  # 91 s: within the 10 s skew
    assert (await credential.get()).get_secret_value() == "token-2"

    short = CountingProvider(clock, lifetime=10)
    capped = RefreshingCredential(short, skew=60, clock=clock)  # skew > lifetime
    await capped.get()
    clock.now += 4
    assert (await capped.get()).get_secret_value() == "token-1"  # not every call
    clock.now += 2
    assert (await capped.get()).get_secret_value() == "token-2"

    forever = CountingProvider(clock, lifetime=None)
    unknown = RefreshingCredential(forever, clock=clock)
    await unknown.get()
    clock.now += 10**6
    await unknown.get()
    assert forever.calls == 1  # no expiry known: kept until invalidated


async def test_invalidate_forces_a_refresh_and_a_stale_invalidation_keeps_the_new_token() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    credential = RefreshingCredential(provider, clock=clock)
    await credential.get()
    credential.invalidate()
    assert (await credential.get()).get_secret_value() == "token-2"
    credential.invalidate_secret("token-1")  # a late 401 for the old token
    assert (await credential.get()).get_secret_value() == "token-2"
    credential.invalidate_secret("token-2")
    assert (await credential.get()).get_secret_value() == "token-3"


async def test_a_failed_refresh_is_token_refresh_failed_for_every_caller() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    provider.fail_with = RuntimeError(f"upstream said {CANARY}")
    credential = RefreshingCredential(provider, name="corp", clock=clock)
    results = await asyncio.gather(*(credential.get() for _ in range(100)), return_exceptions=True)
    assert provider.calls == 1
    assert all(isinstance(r, ProviderAuthError) for r in results)
    errors = [r for r in results if isinstance(r, ProviderAuthError)]
    assert len({id(e) for e in errors}) == 100  # one error object per caller
    error = errors[0]
    assert error.reason == "token_refresh_failed"
    assert error.provider == "corp"
    assert "RuntimeError" in error.message
    assert isinstance(error.__cause__, RuntimeError)
    assert_no_leak([str(error), repr(error)], "refresh failure")
    provider.fail_with = None
    assert (await credential.get()).get_secret_value() == "token-2"  # tried again


async def test_a_provider_returning_nothing_is_a_refresh_failure() -> None:
    class Empty:
        async def fetch_token(self) -> AccessToken:
            return AccessToken(SecretStr(""))

    with pytest.raises(ProviderAuthError, match="returned no token"):
        await RefreshingCredential(Empty()).get()


async def test_a_plain_def_provider_runs_off_the_loop_and_bad_answers_are_refused() -> None:
    class Blocking:
        def __init__(self) -> None:
            self.threads: list[str] = []
            self.answer: object = AccessToken.create("sync-token", expires_in=100)

        def fetch_token(self) -> Any:
            self.threads.append(threading.current_thread().name)
            time.sleep(0.02)  # a blocking SDK call
            return self.answer

    provider = Blocking()
    credential = RefreshingCredential(provider, name="p")
    results = await asyncio.gather(*(credential.get() for _ in range(20)))
    assert {r.get_secret_value() for r in results} == {"sync-token"}
    assert len(provider.threads) == 1  # single-flight holds for plain functions too
    assert provider.threads[0] != threading.current_thread().name

    for answer, message in (
        ("a bare string", "returned str, not an AccessToken"),
        (AccessToken(SecretStr("t"), float("nan")), "expires_at is not a Unix time"),
        (AccessToken(SecretStr("t"), "soon"), "expires_at is not a Unix time"),  # type: ignore[arg-type]
        (AccessToken(SecretStr("")), "returned no token"),
    ):
        provider.answer = answer
        credential.invalidate()
        with pytest.raises(ProviderAuthError, match=message) as caught:
            await credential.get()
        assert caught.value.reason == "token_refresh_failed"


async def test_a_cancelled_caller_does_not_cancel_the_refresh() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    provider.gate = asyncio.Event()
    credential = RefreshingCredential(provider, clock=clock)
    first = asyncio.create_task(credential.get())
    second = asyncio.create_task(credential.get())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    provider.gate.set()
    assert (await second).get_secret_value() == "token-1"
    assert first.cancelled()
    assert provider.calls == 1


def test_single_flight_across_threads_and_event_loops() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    started = threading.Barrier(4)
    credential = RefreshingCredential(provider, clock=clock)
    seen: list[str] = []

    def worker() -> None:
        started.wait()
        seen.append(asyncio.run(credential.get()).get_secret_value())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["token-1"] * 4
    assert provider.calls == 1


async def test_check_uses_the_providers_check_without_fetching() -> None:
    class Checked(CountingProvider):
        checked = 0

        def check(self) -> None:
            self.checked += 1
            if self.checked > 1:
                raise ValueError("misconfigured")

    provider = Checked(Clock())
    credential = RefreshingCredential(provider)
    await credential.check()
    with pytest.raises(ProviderAuthError, match="ValueError"):
        await credential.check()
    assert provider.calls == 0
    await RefreshingCredential(CountingProvider(Clock())).check()  # no check(): nothing to do
    assert "token" not in repr(credential).lower() or "Checked" in repr(credential)
    assert repr(AccessToken.create("secret-token-value")).count("secret-token-value") == 0
    with pytest.raises(ValueError, match="skew"):
        RefreshingCredential(provider, skew=-1)


# -- OAuth2 client credentials against the emulator ------------------------------------------


def oauth(emu: Emulator, **options: Any) -> OAuth2ClientCredentials:
    defaults: dict[str, Any] = {
        "token_url": emu.url + "/oauth/token",
        "client_id": "my-client",
        "client_secret": CLIENT_SECRET,
    }
    return OAuth2ClientCredentials(**{**defaults, **options})


async def test_oauth2_client_credentials_basic_and_post(emu: Emulator) -> None:
    emu.oauth.clients = {"my-client": CLIENT_SECRET}
    token = await oauth(emu, scopes=["a", "b"], audience="api").fetch_token()
    assert token.token.get_secret_value().startswith("emu-at-")
    assert token.expires_at is not None and token.expires_at > time.time() + 3000
    request = emu.requests[-1]
    assert request.headers["authorization"].startswith("Basic ")
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert b"grant_type=client_credentials" in request.raw_body
    assert b"scope=a+b" in request.raw_body
    assert CLIENT_SECRET.encode() not in request.raw_body  # basic: only in the header

    secret_ref = SecretReference(
        SecretStr("env:SECRET"), SecretResolver(env={"SECRET": CLIENT_SECRET}), what="secret"
    )
    await oauth(emu, client_auth="post", client_secret=secret_ref).fetch_token()
    assert "authorization" not in emu.requests[-1].headers
    assert b"client_secret=" in emu.requests[-1].raw_body
    assert emu.oauth.issued == 2
    assert emu.oauth.requests == ["my-client", "my-client"]
    assert emu.count("/oauth/token") == 2


async def test_oauth2_errors_are_scrubbed_auth_errors(emu: Emulator) -> None:
    emu.oauth.clients = {"my-client": "the-right-secret"}
    with pytest.raises(ProviderAuthError) as caught:
        await oauth(emu).fetch_token()
    assert caught.value.reason == "token_refresh_failed"
    assert "HTTP 401: invalid_client" in caught.value.message
    assert caught.value.retryable is False

    emu.oauth.clients = None
    emu.add_fault(
        Fault.status(400, message=f"the secret {CLIENT_SECRET} is revoked"), path="/oauth/token"
    )
    with pytest.raises(ProviderAuthError) as caught:
        await oauth(emu).fetch_token()
    assert "invalid_request" in caught.value.message
    assert_no_leak([str(caught.value), repr(caught.value)], "token error", secret=CLIENT_SECRET)

    emu.add_fault(Fault.status(503), path="/oauth/token")
    with pytest.raises(ProviderAuthError) as caught:
        await oauth(emu).fetch_token()
    assert caught.value.retryable is True

    emu.oauth.fail_next(1, status=400, error="invalid_scope")
    with pytest.raises(ProviderAuthError, match="invalid_scope"):
        await oauth(emu).fetch_token()

    emu.add_fault(Fault.malformed_body(), path="/oauth/token")
    with pytest.raises(ProviderAuthError, match="HTTP 502"):
        await oauth(emu).fetch_token()


def test_token_url_rules() -> None:
    assert token_url_problem("https://login.example.com/oauth2/token") is None
    assert token_url_problem("http://127.0.0.1:8080/token") is None
    assert token_url_problem("http://[::1]:8080/token") is None
    assert token_url_problem("http://localhost/token") is None
    assert "https" in (token_url_problem("http://auth.example.com/token") or "")
    assert token_url_problem("ftp://auth.example.com/token") is not None
    assert token_url_problem("https://user:pw@auth.example.com/token") is not None
    assert token_url_problem("https://auth.example.com/token#x") is not None
    assert token_url_problem("https://auth.example.com:99999/") is not None
    assert is_loopback_host("127.8.9.10") and not is_loopback_host("10.0.0.1")
    assert not is_loopback_host(None)
    with pytest.raises(ValueError, match="https"):
        OAuth2ClientCredentials(
            token_url="http://auth.example.com/t", client_id="c", client_secret="s"
        )
    with pytest.raises(ValueError, match="client_auth"):
        OAuth2ClientCredentials(
            token_url="https://a.example/t", client_id="c", client_secret="s", client_auth="jwt"
        )
    with pytest.raises(ValueError, match="client_id"):
        OAuth2ClientCredentials(token_url="https://a.example/t", client_id="", client_secret="s")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts small aiohttp servers answering every request with a handler; gives their URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_oauth2_odd_answers(scripted: Callable[[Handler], Awaitable[str]]) -> None:
    answers = [
        web.Response(text="not json", status=200),
        web.json_response({"token_type": "Bearer"}),
        web.json_response({"access_token": "x", "token_type": "mac"}),
        web.json_response({"access_token": "tok", "expires_in": "120"}),
        web.json_response({"access_token": "tok", "expires_in": "soon"}),
    ]

    async def handler(request: web.Request) -> web.StreamResponse:
        return answers.pop(0)

    url = await scripted(handler) + "/token"
    provider = OAuth2ClientCredentials(token_url=url, client_id="c", client_secret="s")
    with pytest.raises(ProviderAuthError, match="no JSON object"):
        await provider.fetch_token()
    with pytest.raises(ProviderAuthError, match="no access_token"):
        await provider.fetch_token()
    with pytest.raises(ProviderAuthError, match="not a bearer token"):
        await provider.fetch_token()
    token = await provider.fetch_token()
    assert token.expires_at is not None and token.expires_at > time.time() + 100
    assert (await provider.fetch_token()).expires_at is None


async def test_oauth2_never_follows_redirects(
    scripted: Callable[[Handler], Awaitable[str]],
) -> None:
    stolen: list[web.Request] = []

    async def attacker(request: web.Request) -> web.StreamResponse:
        stolen.append(request)
        return web.json_response({"access_token": "evil"})

    target = await scripted(attacker)

    async def redirector(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target + "/steal")

    url = await scripted(redirector) + "/token"
    provider = OAuth2ClientCredentials(token_url=url, client_id="c", client_secret=CLIENT_SECRET)
    with pytest.raises(ProviderAuthError, match="redirect"):
        await provider.fetch_token()
    assert stolen == []


async def test_oauth2_unreachable_and_slow(scripted: Callable[[Handler], Awaitable[str]]) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return web.json_response({})

    url = await scripted(slow)
    provider = OAuth2ClientCredentials(
        token_url=url + "/t", client_id="c", client_secret="s", timeout=0.1
    )
    with pytest.raises(ProviderAuthError, match="did not answer") as caught:
        await provider.fetch_token()
    assert caught.value.retryable
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = OAuth2ClientCredentials(
        token_url=f"http://127.0.0.1:{port}/t", client_id="c", client_secret="s"
    )
    with pytest.raises(ProviderAuthError, match="cannot reach"):
        await closed.fetch_token()


# -- token auth through the service ---------------------------------------------------------


def token_config(emu: Emulator, **auth: Any) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "corp": {
                "type": "openai",
                "base_url": emu.openai_base_url,
                "auth": {
                    "type": "oauth2",
                    "token_url": emu.url + "/oauth/token",
                    "client_id": "my-client",
                    "client_secret": "env:CORP_CLIENT_SECRET",
                    **auth,
                },
            },
        },
    }


async def test_service_uses_tokens_and_reuses_them(emu: Emulator) -> None:
    emu.oauth.clients = {"my-client": CLIENT_SECRET}
    env = {"CORP_CLIENT_SECRET": CLIENT_SECRET}
    async with ProviderService(token_config(emu, scopes=["llm"]), env=env) as service:
        assert service.validate_provider("corp")
        assert emu.oauth.issued == 0  # validating fetched nothing
        for _ in range(3):
            reply = await service.complete(model="corp:gpt-4o", messages="hi")
            assert reply.text == "You said: hi"
        assert emu.oauth.issued == 1
        chats = [r for r in emu.requests if r.path == "/v1/chat/completions"]
        assert all(r.headers["authorization"].startswith("Bearer emu-at-") for r in chats)
        results = await asyncio.gather(
            *(service.complete(model="corp:gpt-4o", messages="x") for _ in range(50))
        )
        assert len(results) == 50
        assert emu.oauth.issued == 1


async def test_expiring_tokens_are_refreshed_before_they_expire(emu: Emulator) -> None:
    emu.oauth.token_ttl = 0.4
    env = {"CORP_CLIENT_SECRET": CLIENT_SECRET}
    async with ProviderService(token_config(emu, refresh_skew=0.1), env=env) as service:
        await service.complete(model="corp:gpt-4o", messages="a")
        await asyncio.sleep(0.35)  # past the refresh point, before the emulator's expiry
        await service.complete(model="corp:gpt-4o", messages="b")
        assert emu.oauth.issued == 2
        assert emu.count("/v1/chat/completions") == 2  # no 401 was needed


async def test_a_401_is_retried_once_with_a_fresh_token(emu: Emulator) -> None:
    env = {"CORP_CLIENT_SECRET": CLIENT_SECRET}
    async with ProviderService(token_config(emu), env=env) as service:
        await service.complete(model="corp:gpt-4o", messages="a")
        emu.oauth.revoke()  # the server forgets the token early
        reply = await service.complete(model="corp:gpt-4o", messages="b")
        assert reply.text == "You said: b"
        assert emu.oauth.issued == 2
        chats = [r for r in emu.requests if r.path == "/v1/chat/completions"]
        assert len(chats) == 3
        assert chats[1].headers["authorization"] != chats[2].headers["authorization"]

        emu.oauth.revoke()
        async with service.stream(model="corp:gpt-4o", messages="streamed") as stream:
            async for _ in stream:
                pass
        assert stream.response.text == "You said: streamed"
        assert emu.oauth.issued == 3

        # A token refused twice: one retry only, then the 401 is the caller's.
        emu.add_fault(Fault.status(401), times=2, path="/v1/chat/completions")
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model="corp:gpt-4o", messages="c")
        assert caught.value.status_code == 401
        assert emu.oauth.issued == 4

        adapter = service.get_provider("corp").unwrap()  # type: ignore[attr-defined]
        emu.oauth.revoke()
        models = await adapter.get_json("models")
        assert models["object"] == "list"
        assert emu.oauth.issued == 5


async def test_refresh_failure_reaches_the_caller(emu: Emulator) -> None:
    env = {"CORP_CLIENT_SECRET": CLIENT_SECRET}
    async with ProviderService(token_config(emu), env=env) as service:
        emu.oauth.fail_next(1, status=401)
        with pytest.raises(ProviderAuthError) as caught:
            await service.complete(model="corp:gpt-4o", messages="a")
        assert caught.value.reason == "token_refresh_failed"
        assert caught.value.provider == "corp"
        assert emu.count("/v1/chat/completions") == 0
        await service.complete(model="corp:gpt-4o", messages="a")  # recovers
    async with ProviderService(token_config(emu), env={}) as service:
        assert not service.validate_provider("corp")  # the client secret does not resolve
        with pytest.raises(ProviderAuthError, match="CORP_CLIENT_SECRET is not set") as caught:
            await service.complete(model="corp:gpt-4o", messages="a")
        assert caught.value.reason == "token_refresh_failed"


# -- configuration of token providers --------------------------------------------------------


def provider_config(**auth: Any) -> dict[str, Any]:
    return {"providers": {"p": {"type": "openai", "auth": auth}}}


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"type": "oauth2", "token_url": "https://a.example/t"}, "missing: client_id"),
        (
            {
                "type": "oauth2",
                "token_url": "http://a.example/t",
                "client_id": "c",
                "client_secret": "env:S",
            },
            "must use https",
        ),
        ({"type": "google", "client_id": "c"}, "not from client_id"),
        ({"type": "azure", "client_secret": "env:S"}, "needs client_id and tenant_id"),
        ({"type": "azure", "token_url": "https://a.example/t"}, "for 'oauth2' only"),
        ({"type": "kerberos"}, "auth.type"),
        ({"type": "oauth2", "client_secret": "keyring:nothing"}, "keyring:SERVICE/NAME"),
    ],
)
def test_invalid_auth_tables(auth: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AgentConfig.model_validate(provider_config(**auth))
    assert message in str(caught.value)


def test_api_key_and_auth_are_exclusive() -> None:
    config = provider_config(type="google")
    config["providers"]["p"]["api_key"] = "env:K"
    with pytest.raises(ConfigError, match="either api_key or an auth table"):
        AgentConfig.model_validate(config)


def test_build_credential_kinds() -> None:
    resolver = SecretResolver(env={})
    google = ProviderConfig.model_validate({"type": "openai", "auth": {"type": "google"}})
    credential = build_credential("g", google, resolver)
    assert isinstance(credential, RefreshingCredential)
    assert isinstance(credential.provider, GoogleADCTokenProvider)
    assert credential.provider.scopes == (GOOGLE_CLOUD_PLATFORM_SCOPE,)
    azure = ProviderConfig.model_validate(
        {"type": "openai", "auth": {"type": "azure", "refresh_skew": 30}}
    )
    credential = build_credential("a", azure, resolver)
    assert isinstance(credential, RefreshingCredential)
    assert credential.skew == 30
    assert isinstance(credential.provider, AzureADTokenProvider)
    assert credential.provider.scopes == (AZURE_COGNITIVE_SCOPE,)
    plain = ProviderConfig.model_validate({"type": "openai-compatible"})
    assert build_credential("local", plain, resolver) is None
    keyed = ProviderConfig.model_validate({"type": "openai", "api_key": "env:K"})
    assert isinstance(build_credential("k", keyed, resolver), SecretReference)
    assert "client_secret" not in repr(credential) and CANARY not in repr(azure)


# -- Azure AD ------------------------------------------------------------------------------


class AzureToken(NamedTuple):
    token: str
    expires_on: int


class FakeAzureCredential:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.scopes: list[tuple[str, ...]] = []
        self.threads: list[str] = []
        self.fail = False

    def get_token(self, *scopes: str) -> AzureToken:
        self.scopes.append(scopes)
        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise RuntimeError(f"AADSTS7000215: invalid secret {CLIENT_SECRET}")
        return AzureToken("azure-token", int(time.time()) + 3600)


class FakeAsyncAzureCredential:
    async def get_token(self, *scopes: str) -> AzureToken:
        return AzureToken("async-azure-token", int(time.time()) + 60)


async def test_azure_provider_with_a_given_credential() -> None:
    fake = FakeAzureCredential()
    credential = RefreshingCredential(AzureADTokenProvider(fake), name="azure")
    await credential.check()
    assert (await credential.get()).get_secret_value() == "azure-token"
    assert fake.scopes == [(AZURE_COGNITIVE_SCOPE,)]
    assert fake.threads[0] != threading.current_thread().name  # blocking call off the loop
    token = await AzureADTokenProvider(FakeAsyncAzureCredential()).fetch_token()
    assert token.token.get_secret_value() == "async-azure-token"
    fake.fail = True
    with pytest.raises(ProviderAuthError) as caught:
        await AzureADTokenProvider(fake, client_secret=CLIENT_SECRET).fetch_token()
    assert "AADSTS7000215" in caught.value.message
    assert_no_leak([str(caught.value)], "azure error", secret=CLIENT_SECRET)


async def test_azure_builds_its_credential_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    identity = pytest.importorskip("azure.identity")
    made: list[FakeAzureCredential] = []

    def factory(*args: Any, **kwargs: Any) -> FakeAzureCredential:
        made.append(FakeAzureCredential(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(identity, "ClientSecretCredential", factory)
    monkeypatch.setattr(identity, "DefaultAzureCredential", factory)
    config = ProviderConfig.model_validate(
        {
            "type": "openai",
            "auth": {
                "type": "azure",
                "tenant_id": "tenant",
                "client_id": "app",
                "client_secret": "env:AZ_SECRET",
            },
        }
    )
    credential = build_credential("az", config, SecretResolver(env={"AZ_SECRET": CLIENT_SECRET}))
    assert credential is not None
    await credential.check()  # type: ignore[attr-defined]
    assert made == []
    assert (await credential.get()).get_secret_value() == "azure-token"
    assert made[0].args == ("tenant", "app", CLIENT_SECRET)
    await AzureADTokenProvider().fetch_token()
    assert made[1].args == () and made[1].kwargs == {}
    await AzureADTokenProvider(client_id="mi-client").fetch_token()
    assert made[2].kwargs == {"managed_identity_client_id": "mi-client"}


async def test_azure_and_google_without_their_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    monkeypatch.setitem(sys.modules, "google.auth", None)
    for provider in (AzureADTokenProvider(), GoogleADCTokenProvider()):
        credential = RefreshingCredential(provider, name="x")
        with pytest.raises(ProviderAuthError, match=r"pip install 'aiport\[(azure|google)\]'"):
            await credential.check()
        with pytest.raises(ProviderAuthError, match="pip install") as caught:
            await credential.get()
        assert caught.value.reason == "token_refresh_failed"


# -- Google application-default credentials ------------------------------------------------


class FakeGoogleCredentials:
    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: dt.datetime | None = None
        self.requests: list[Any] = []
        self.fail = False

    def refresh(self, request: Any) -> None:
        self.requests.append(request)
        if self.fail:
            raise RuntimeError("invalid_grant: Token has been expired or revoked.")
        self.token = f"ya29.fake-{len(self.requests)}"
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=59)


async def test_google_provider_with_given_credentials() -> None:
    fake = FakeGoogleCredentials()
    request = object()
    credential = RefreshingCredential(GoogleADCTokenProvider(fake, request=request))
    await credential.check()
    assert (await credential.get()).get_secret_value() == "ya29.fake-1"
    assert fake.requests == [request]
    token = await GoogleADCTokenProvider(fake, request=request).fetch_token()
    assert token.expires_at is not None
    assert abs(token.expires_at - (time.time() + 59 * 60)) < 5  # naive expiry read as UTC
    fake.fail = True
    with pytest.raises(ProviderAuthError, match="invalid_grant"):
        await GoogleADCTokenProvider(fake, request=request).fetch_token()

    class NoToken(FakeGoogleCredentials):
        def refresh(self, request: Any) -> None:
            self.token = None

    with pytest.raises(ProviderAuthError, match="gave no token"):
        await GoogleADCTokenProvider(NoToken(), request=request).fetch_token()


async def test_google_uses_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth = pytest.importorskip("google.auth")
    transport = pytest.importorskip("google.auth.transport.requests")
    fake = FakeGoogleCredentials()
    asked: list[Any] = []

    def default(scopes: Any = None) -> tuple[FakeGoogleCredentials, str]:
        asked.append(scopes)
        return fake, "my-project"

    monkeypatch.setattr(auth, "default", default)
    provider = GoogleADCTokenProvider()
    await provider.check()
    token = await provider.fetch_token()
    assert token.token.get_secret_value() == "ya29.fake-1"
    assert asked == [[GOOGLE_CLOUD_PLATFORM_SCOPE]]
    assert isinstance(fake.requests[0], transport.Request)


async def test_emulator_token_endpoint_refuses_bad_requests(emu: Emulator) -> None:
    import aiohttp

    from aiport.testing._faults import Call

    url = emu.url + "/oauth/token"
    form = {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}
    async with aiohttp.ClientSession() as http:

        async def error_of(method: str, target: str, **kw: Any) -> tuple[int, str]:
            async with http.request(method, target, **kw) as response:
                return response.status, (await response.json())["error"]

        assert await error_of("GET", url) == (405, "invalid_request")
        assert await error_of("POST", emu.url + "/oauth/other", data=form) == (
            404,
            "invalid_request",
        )
        assert await error_of("POST", url, json=form) == (400, "invalid_request")
        assert await error_of("POST", url, data={**form, "grant_type": "password"}) == (
            400,
            "unsupported_grant_type",
        )
        assert await error_of("POST", url, data={"grant_type": "client_credentials"}) == (
            401,
            "invalid_client",
        )
        bad_basic = {"Authorization": "Basic !!!"}
        assert await error_of("POST", url, data={"grant_type": "client_credentials"},
                              headers=bad_basic) == (401, "invalid_client")  # fmt: skip
        no_colon = {"Authorization": "Basic " + __import__("base64").b64encode(b"x").decode()}
        assert await error_of("POST", url, data={"grant_type": "client_credentials"},
                              headers=no_colon) == (401, "invalid_client")  # fmt: skip
        emu.add_fault(Fault.status(429, retry_after="3"), path="/oauth/token")
        async with http.post(url, data=form) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "3"
            assert (await response.json())["error"] == "temporarily_unavailable"
    assert emu.oauth.issued == 0
    call = Call("POST", "/oauth/token", {}, {}, None, b"", 0)
    assert emu.oauth.context_length_error(call).status == 400
    assert emu.oauth.stream_error_status(Fault.stream_error()).code == 500
    assert "server_error" in emu.oauth.stream_error_event(Fault.stream_error()).data
