"""Short-lived bearer tokens: the ``TokenProvider`` protocol and the credential that refreshes.

A :class:`TokenProvider` fetches an :class:`AccessToken` (a secret and when it expires).
:class:`RefreshingCredential` turns one into a :class:`~aiport._credentials.CredentialSource`:

- it refreshes a token ``skew`` seconds before it expires (at most half its lifetime early);
- refreshes are single-flight: however many calls find the token expired at once, on however
  many event loops and threads, the provider is asked once and every caller gets its answer;
- ``invalidate()`` forces the next call to refresh (``HttpProvider`` does it on a 401, then
  retries the request once with the fresh token);
- a failed refresh raises :class:`~aiport.ProviderAuthError` with reason
  ``"token_refresh_failed"`` (the next call tries again).

Built-in providers: :class:`OAuth2ClientCredentials` (RFC 6749 client-credentials grant over
aiohttp), :class:`AzureADTokenProvider` (Microsoft Entra ID through ``azure-identity``) and
:class:`GoogleADCTokenProvider` (application-default credentials through ``google-auth``);
the last two import their package only when they first need it.

Users' own providers get the same wrapping, from two places: the ``token_providers``
argument of ``ProviderService`` (:func:`token_providers_for` checks it), and plug-ins, entry
points of the group :data:`TOKEN_PROVIDER_GROUP` that an ``auth = {type = "plugin", name =
"..."}`` table names (:func:`load_token_provider_plugin`; they are listed by the same code as
secret-source plug-ins, :func:`aiport._secrets.discover_plugins`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import datetime as dt
import inspect
import ipaddress
import json
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from aiport._errors import ConfigError, ConfigProblem, ProviderAuthError
from aiport._redact import Redactor

if TYPE_CHECKING:
    from aiport._config import AgentConfig, ProviderConfig
    from aiport._credentials import CredentialSource
    from aiport._secrets import EntryPointsFunction, SecretResolver

__all__ = [
    "AZURE_COGNITIVE_SCOPE",
    "DEFAULT_REFRESH_SKEW",
    "GOOGLE_CLOUD_PLATFORM_SCOPE",
    "PLUGIN_NAME_RE",
    "REFRESH_FAILED",
    "TOKEN_PROVIDER_GROUP",
    "AccessToken",
    "AzureADTokenProvider",
    "GoogleADCTokenProvider",
    "OAuth2ClientCredentials",
    "RefreshingCredential",
    "TokenProvider",
    "build_token_provider",
    "is_loopback_host",
    "load_token_provider_plugin",
    "token_providers_for",
    "token_url_problem",
]

#: The scope of Azure OpenAI (Azure AI services) tokens.
AZURE_COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
#: The scope of Google Cloud APIs (Vertex AI included).
GOOGLE_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: ``ProviderAuthError.reason`` when a token cannot be had.
REFRESH_FAILED = "token_refresh_failed"
#: Seconds before its expiry a token is replaced, unless ``auth.refresh_skew`` says otherwise.
DEFAULT_REFRESH_SKEW = 60.0
#: The entry-point group of token-provider plug-ins (entry point name = ``auth.name``).
TOKEN_PROVIDER_GROUP = "aiport.token_providers"  # noqa: S105 (a name, not a secret)
#: The form of a token-provider plug-in's name.
PLUGIN_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")

_MAX_TOKEN_RESPONSE = 1024 * 1024
_DETAIL_LIMIT = 300


# ---------------------------------------------------------------------- URL safety


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def token_url_problem(url: str) -> str | None:
    """What is wrong with a token endpoint URL, or ``None``.

    A token request carries the client secret, so the URL must be https; plain http is only
    accepted to a loopback address (a local test server). No user info, no fragment.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return "must be an https:// URL with a host"
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in url):
        return "must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password (the client secret is sent apart)"
    if parts.fragment:
        return "must not have a #fragment"
    if parts.scheme == "http" and not is_loopback_host(host):
        return "must use https: plain http would send the client secret unencrypted"
    return None


# ---------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A bearer token and when it stops working: what a :class:`TokenProvider` returns.

    Attributes:
        token: the secret, sent as ``Authorization: Bearer <token>`` (or as the provider
            type sends tokens); never shown by ``repr``.
        expires_at: Unix time (seconds, ``time.time()``'s clock) of its expiry; ``None``
            when unknown: the token is then used until the provider answers 401.

    ``AccessToken.create("...", expires_in=3600)`` is the short way to make one.
    """

    token: SecretStr
    expires_at: float | None = None

    @classmethod
    def create(
        cls,
        token: str | SecretStr,
        *,
        expires_in: float | None = None,
        expires_at: float | dt.datetime | None = None,
        now: float | None = None,
    ) -> AccessToken:
        """A token valid for ``expires_in`` seconds from ``now`` (default: ``time.time()``),
        or until ``expires_at`` (Unix time, or an aware ``datetime``; a naive one is UTC);
        with neither, of unknown expiry."""
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        if expires_in is not None and expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        if isinstance(expires_at, dt.datetime):
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=dt.UTC)
            return cls(secret, expires_at.timestamp())
        if expires_at is not None:
            return cls(secret, float(expires_at))
        if expires_in is None:
            return cls(secret, None)
        return cls(secret, (time.time() if now is None else now) + float(expires_in))

    def __repr__(self) -> str:
        return f"AccessToken(token=SecretStr('**********'), expires_at={self.expires_at!r})"


@runtime_checkable
class TokenProvider(Protocol):
    """Where short-lived bearer tokens come from; implement it to bring your own (a company
    SSO, a vault that issues tokens, an identity service aiport has no built-in for).

    **What to implement.** ``fetch_token()``, returning a new :class:`AccessToken`; an
    ``async def`` or a plain ``def``. Optionally ``check()`` (sync or async, no network
    call): raise when tokens cannot be had as configured (a missing setting or package);
    ``ProviderService.validate_provider`` and ``aiport config check`` call it.

    **Using it.** ``ProviderService(config, token_providers={"corp": MyTokenProvider()})``
    gives it to the configured provider ``corp`` (which must then have no ``api_key``,
    ``api_keys`` or ``auth``). Or ship it as a plug-in: an entry point in the group
    ``aiport.token_providers`` whose object is a token provider, a class of one or a
    function returning one, named by ``auth = {type = "plugin", name = "..."}``; a class or
    function is called with the table's ``options`` as keyword arguments (and its
    ``client_secret``, if set, as ``client_secret=``: a credential source, ``await
    client_secret.get()`` resolves it). Either way aiport wraps it exactly like its built-in
    providers, as described below.

    **When it is called.** Only when a call needs a token and there is none, or it is about
    to expire, or the provider answered 401 to it; never once per request. Return a new
    token each time rather than one you cached: aiport asks only when it needs a fresh one,
    and retries a refused request only if the token changed.

    **Expiry and skew.** A token is replaced ``skew`` seconds before its ``expires_at``
    (``auth.refresh_skew``, default 60; :data:`DEFAULT_REFRESH_SKEW` for ``token_providers``),
    but never earlier than half its lifetime (counted from when it arrived): a one-hour
    token is used 59 minutes, a 60-second one 30 seconds. To refresh earlier, report an
    earlier ``expires_at``. A token with ``expires_at=None`` is used until a 401. A 401
    (a token revoked early) makes aiport fetch a new token and send the refused request
    once more with it.

    **Concurrency.** For one configured provider, at most one ``fetch_token`` runs at a
    time: every call waiting meanwhile, on any event loop or thread (the sync API runs on a
    background loop), gets its token or its error; a waiting call that is cancelled does
    not cancel it. An ``async def fetch_token`` runs on the event loop of the call that
    needed the token, possibly another loop next time: it must not block, nor keep
    loop-bound objects (an ``aiohttp.ClientSession``) from one call to the next. A plain
    ``def fetch_token`` runs in a worker thread and may block. One object given to several
    providers is called by each on its own, possibly at once.

    **Failures.** Raise any exception; every waiting call then fails with
    :class:`~aiport.ProviderAuthError`, reason ``"token_refresh_failed"``, naming the
    provider. A ``ProviderAuthError`` you raise keeps its message and its ``retryable``
    (``True`` for a passing outage lets the retry policy try again); anything else is
    reported by its type only (its text might quote a secret). The next call tries again.
    """

    def fetch_token(self) -> Awaitable[AccessToken] | AccessToken:
        """A new token (``async def`` or ``def``; see the class documentation)."""
        ...


@dataclass(slots=True)
class _Held:
    token: AccessToken
    refresh_at: float | None


@dataclass(slots=True)
class _State:
    held: _Held | None = None
    inflight: concurrent.futures.Future[AccessToken] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class RefreshingCredential:
    """A credential whose secret is a token from a :class:`TokenProvider`, kept fresh.

    Args:
        provider: where tokens come from.
        name: the provider's configured name (in error messages).
        skew: seconds before expiry a token is replaced (at most half its lifetime).
        clock: Unix time, for tests.
    """

    #: A 401 answer is worth one retry with a fresh token.
    refreshable: ClassVar[bool] = True

    def __init__(
        self,
        provider: TokenProvider,
        *,
        name: str | None = None,
        skew: float = DEFAULT_REFRESH_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if skew < 0:
            raise ValueError("skew must be >= 0")
        self.provider = provider
        self.name = name
        self.skew = float(skew)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()
        #: How many tokens were fetched (successful refreshes).
        self.refreshes = 0

    # -- CredentialSource ------------------------------------------------------------------

    async def get(self) -> SecretStr:
        """The current token, refreshed first when it is expired or about to be."""
        with self._lock:
            held = self._state.held
            if held is not None and self._usable(held):
                return held.token.token
            future = self._state.inflight
            start = future is None
            if future is None:
                future = concurrent.futures.Future()
                # Running: a caller that is cancelled cannot cancel everyone's refresh.
                future.set_running_or_notify_cancel()
                self._state.inflight = future
        if start:
            task = asyncio.get_running_loop().create_task(self._refresh(future))
            self._state.tasks.add(task)
            task.add_done_callback(self._state.tasks.discard)
        try:
            token = await asyncio.wrap_future(future)
        except ProviderAuthError as exc:
            # A copy per caller: one exception object raised in many tasks would gather
            # every caller's traceback.
            raise _copy(exc) from exc.__cause__
        return token.token

    def invalidate(self) -> None:
        """Forget the token: the next ``get`` fetches a new one."""
        with self._lock:
            self._state.held = None

    def invalidate_secret(self, secret: str) -> None:
        """Forget the token if it is still ``secret`` (a newer one is kept)."""
        with self._lock:
            held = self._state.held
            if held is not None and held.token.token.get_secret_value() == secret:
                self._state.held = None

    async def check(self) -> None:
        """Whether tokens can be fetched as configured, without fetching one (no network)."""
        check = getattr(self.provider, "check", None)
        if callable(check):
            try:
                result = check()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise self._failure(exc) from exc

    # -- refreshing ------------------------------------------------------------------------

    def _usable(self, held: _Held) -> bool:
        return held.refresh_at is None or self._clock() < held.refresh_at

    async def _fetch(self) -> object:
        fetch = self.provider.fetch_token
        if inspect.iscoroutinefunction(fetch):
            return await fetch()
        # A plain function may block (a synchronous SDK): off the event loop.
        result: object = await asyncio.to_thread(fetch)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _refresh(self, future: concurrent.futures.Future[AccessToken]) -> None:
        try:
            token = _checked(await self._fetch())
        except asyncio.CancelledError:
            self._finish(future, error=self._failure(None))
            raise
        except Exception as exc:
            error = self._failure(exc)
            error.__cause__ = exc
            self._finish(future, error=error)
            return
        self._finish(future, token=token)

    def _finish(
        self,
        future: concurrent.futures.Future[AccessToken],
        *,
        token: AccessToken | None = None,
        error: ProviderAuthError | None = None,
    ) -> None:
        with self._lock:
            if token is not None:
                self._state.held = _Held(token, self._refresh_at(token))
                self.refreshes += 1
            if self._state.inflight is future:
                self._state.inflight = None
        if token is not None:
            future.set_result(token)
        else:
            assert error is not None
            future.set_exception(error)

    def _refresh_at(self, token: AccessToken) -> float | None:
        if token.expires_at is None:
            return None
        now = self._clock()
        lifetime = max(token.expires_at - now, 0.0)
        return token.expires_at - min(self.skew, lifetime / 2)

    def _failure(self, exc: BaseException | None) -> ProviderAuthError:
        who = f" of provider {self.name!r}" if self.name else ""
        if exc is None:
            detail = "the refresh was cancelled"
        elif isinstance(exc, ProviderAuthError):
            detail = exc.message
        else:
            detail = f"{type(exc).__name__} from the token provider"
        return ProviderAuthError(
            f"cannot get an access token{who}: {detail}",
            provider=self.name,
            reason=REFRESH_FAILED,
            retryable=isinstance(exc, ProviderAuthError) and exc.retryable,
        )

    def __repr__(self) -> str:
        return f"RefreshingCredential({type(self.provider).__name__}, name={self.name!r})"


def _checked(token: object) -> AccessToken:
    if not isinstance(token, AccessToken):
        raise ProviderAuthError(
            f"the token provider returned {type(token).__name__}, not an AccessToken",
            reason=REFRESH_FAILED,
        )
    if not isinstance(token.token, SecretStr) or not token.token.get_secret_value():
        raise ProviderAuthError("the token provider returned no token", reason=REFRESH_FAILED)
    expires_at = token.expires_at
    if expires_at is not None and (
        isinstance(expires_at, bool)
        or not isinstance(expires_at, int | float)
        or math.isnan(expires_at)
    ):
        raise ProviderAuthError(
            "the token provider returned an AccessToken whose expires_at is not a Unix time",
            reason=REFRESH_FAILED,
        )
    return token


def _copy(error: ProviderAuthError) -> ProviderAuthError:
    return ProviderAuthError(
        error.message,
        provider=error.provider,
        model=error.model,
        status_code=error.status_code,
        error_type=error.error_type,
        retryable=error.retryable,
        reason=error.reason,
    )


# ---------------------------------------------------------------------- secrets of providers


async def _secret_text(source: CredentialSource | SecretStr | str | None) -> str | None:
    if source is None:
        return None
    if isinstance(source, SecretStr):
        return source.get_secret_value()
    if isinstance(source, str):
        return source
    return (await source.get()).get_secret_value()


async def _check_secret(source: CredentialSource | SecretStr | str | None) -> None:
    check = getattr(source, "check", None)
    if callable(check):
        result = check()
        if inspect.isawaitable(result):
            await result


def _refresh_error(message: str, *, retryable: bool = False) -> ProviderAuthError:
    return ProviderAuthError(message, reason=REFRESH_FAILED, retryable=retryable)


def _scrubbed(text: str, redactor: Redactor) -> str:
    text = redactor.scrub(" ".join(text.split()))
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."


# ---------------------------------------------------------------------- OAuth2


class OAuth2ClientCredentials:
    """The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4).

    Args:
        token_url: the token endpoint (https; plain http only to a loopback address).
        client_id: the client id.
        client_secret: the client secret: a credential source (a ``SecretReference``), a
            ``SecretStr`` or a string.
        scopes: scopes to ask for (sent space-separated).
        audience: an ``audience`` parameter, for servers that want one.
        client_auth: ``"basic"`` (HTTP Basic, the standard) or ``"post"`` (form fields).
        timeout: seconds one token request may take.
        extra: more form parameters.

    Requests are form-encoded POSTs that never follow redirects. A non-2xx answer raises
    :class:`~aiport.ProviderAuthError` (reason ``"token_refresh_failed"``) with the
    server's ``error`` and ``error_description``, scrubbed of the client secret.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: CredentialSource | SecretStr | str,
        scopes: Iterable[str] = (),
        audience: str | None = None,
        client_auth: str = "basic",
        timeout: float = 10.0,
        extra: dict[str, str] | None = None,
    ) -> None:
        problem = token_url_problem(token_url)
        if problem is not None:
            raise ValueError(f"token_url {problem}")
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        if not client_id:
            raise ValueError("client_id must not be empty")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = tuple(scopes)
        self.audience = audience
        self.client_auth = client_auth
        self.timeout = float(timeout)
        self.extra = dict(extra or {})
        self.host = urlsplit(token_url).hostname or "?"

    async def check(self) -> None:
        """The client secret resolves (no request is sent)."""
        await _check_secret(self._client_secret)

    async def fetch_token(self) -> AccessToken:
        import aiohttp

        secret = await _secret_text(self._client_secret)
        if not secret:
            raise _refresh_error("the OAuth2 client secret is empty")
        redactor = Redactor([secret])
        form = {"grant_type": "client_credentials", **self.extra}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        if self.audience:
            form["audience"] = self.audience
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = secret
        started = time.time()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as session,
                session.post(
                    self.token_url, data=form, headers=headers, allow_redirects=False
                ) as response,
            ):
                status = response.status
                body = await response.content.read(_MAX_TOKEN_RESPONSE)
        except TimeoutError:
            raise _refresh_error(
                f"the token endpoint at {self.host} did not answer within {self.timeout:g}s",
                retryable=True,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _refresh_error(
                f"cannot reach the token endpoint at {self.host} ({type(exc).__name__})",
                retryable=True,
            ) from None
        return self._parse(status, body, redactor, started)

    def _parse(self, status: int, body: bytes, redactor: Redactor, started: float) -> AccessToken:
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        if 300 <= status < 400:
            raise _refresh_error(
                f"the token endpoint at {self.host} answered with a redirect (HTTP {status}), "
                "which aiport does not follow: check token_url"
            )
        if status >= 400 or not (200 <= status < 300):
            error = description = ""
            if isinstance(data, dict):
                error = str(data.get("error") or "")
                description = str(data.get("error_description") or "")
            detail = ": ".join(part for part in (error, description) if part)
            suffix = f": {_scrubbed(detail, redactor)}" if detail else ""
            raise _refresh_error(
                f"the token endpoint at {self.host} answered HTTP {status}{suffix}",
                retryable=status >= 500 or status == 429,
            )
        if not isinstance(data, dict):
            raise _refresh_error(f"the token endpoint at {self.host} answered with no JSON object")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise _refresh_error(f"the token endpoint at {self.host} answered no access_token")
        token_type = data.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise _refresh_error(
                f"the token endpoint at {self.host} issued a {token_type!r} token, not a bearer "
                "token"
            )
        expires_in = data.get("expires_in")
        lifetime: float | None = None
        if isinstance(expires_in, int | float | str) and not isinstance(expires_in, bool):
            try:
                lifetime = float(expires_in)
            except ValueError:
                lifetime = None
        return AccessToken.create(token, expires_in=lifetime, now=started)

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"
        )


# ---------------------------------------------------------------------- Azure AD


def _import_optional(module: str, package: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise _refresh_error(
            f"this token provider needs the {package} package: pip install 'aiport[{extra}]'"
        ) from None


class AzureADTokenProvider:
    """Microsoft Entra ID (Azure AD) tokens for Azure OpenAI, through ``azure-identity``.

    Args:
        credential: an ``azure-identity`` credential (anything with ``get_token(*scopes)``
            returning an object with ``token`` and ``expires_on``, sync or async). Default:
            a ``ClientSecretCredential`` when ``tenant_id``, ``client_id`` and
            ``client_secret`` are given, else ``DefaultAzureCredential`` (environment,
            workload identity, managed identity, Azure CLI...), made on first use.
        scopes: default ``https://cognitiveservices.azure.com/.default``.
    """

    def __init__(
        self,
        credential: Any = None,
        *,
        scopes: Sequence[str] = (AZURE_COGNITIVE_SCOPE,),
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: CredentialSource | SecretStr | str | None = None,
    ) -> None:
        self._credential = credential
        self.scopes = tuple(scopes) or (AZURE_COGNITIVE_SCOPE,)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret

    async def check(self) -> None:
        """The package is installed and the client secret (if any) resolves."""
        if self._credential is None:
            _import_optional("azure.identity", "azure-identity", "azure")
        await _check_secret(self._client_secret)

    async def _get_credential(self) -> Any:
        if self._credential is None:
            identity = _import_optional("azure.identity", "azure-identity", "azure")
            secret = await _secret_text(self._client_secret)
            if secret is not None:
                self._credential = identity.ClientSecretCredential(
                    self.tenant_id, self.client_id, secret
                )
            elif self.client_id is not None:
                self._credential = identity.DefaultAzureCredential(
                    managed_identity_client_id=self.client_id
                )
            else:
                self._credential = identity.DefaultAzureCredential()
        return self._credential

    async def fetch_token(self) -> AccessToken:
        credential = await self._get_credential()
        get_token = credential.get_token
        try:
            if inspect.iscoroutinefunction(get_token):
                result = await get_token(*self.scopes)
            else:
                result = await asyncio.to_thread(get_token, *self.scopes)
        except Exception as exc:
            secret = self._client_secret
            redactor = Redactor([secret] if isinstance(secret, str) else [])
            raise _refresh_error(
                f"Azure AD: {type(exc).__name__}: {_scrubbed(str(exc), redactor)}"
            ) from exc
        expires_on = getattr(result, "expires_on", None)
        return AccessToken(
            SecretStr(str(result.token)),
            float(expires_on) if isinstance(expires_on, int | float) else None,
        )

    def __repr__(self) -> str:
        return f"AzureADTokenProvider(scopes={list(self.scopes)!r})"


# ---------------------------------------------------------------------- Google ADC


class GoogleADCTokenProvider:
    """Google application-default credentials (Vertex AI...), through ``google-auth``.

    Args:
        credentials: ``google.auth.credentials.Credentials`` (anything with
            ``refresh(request)``, ``token`` and ``expiry``, a naive UTC datetime). Default:
            ``google.auth.default(scopes=...)``, made on first use.
        scopes: default ``https://www.googleapis.com/auth/cloud-platform``.
        request: the transport ``refresh`` is given; default
            ``google.auth.transport.requests.Request()``.
    """

    def __init__(
        self,
        credentials: Any = None,
        *,
        scopes: Sequence[str] = (GOOGLE_CLOUD_PLATFORM_SCOPE,),
        request: Any = None,
    ) -> None:
        self._credentials = credentials
        self.scopes = tuple(scopes) or (GOOGLE_CLOUD_PLATFORM_SCOPE,)
        self._request = request

    async def check(self) -> None:
        """The package is installed (credentials are looked for at the first request)."""
        if self._credentials is None:
            _import_optional("google.auth", "google-auth", "google")

    def _refresh_now(self) -> AccessToken:
        if self._credentials is None:
            auth = _import_optional("google.auth", "google-auth", "google")
            self._credentials, _project = auth.default(scopes=list(self.scopes))
        if self._request is None:
            transport = _import_optional(
                "google.auth.transport.requests", "google-auth[requests]", "google"
            )
            self._request = transport.Request()
        credentials = self._credentials
        credentials.refresh(self._request)
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise _refresh_error("Google credentials gave no token")
        expiry = getattr(credentials, "expiry", None)
        expires_at: float | None = None
        if isinstance(expiry, dt.datetime):
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=dt.UTC)
            expires_at = expiry.timestamp()
        return AccessToken(SecretStr(token), expires_at)

    async def fetch_token(self) -> AccessToken:
        try:
            return await asyncio.to_thread(self._refresh_now)
        except ProviderAuthError:
            raise
        except Exception as exc:
            raise _refresh_error(
                f"Google credentials: {type(exc).__name__}: {_scrubbed(str(exc), Redactor())}"
            ) from exc

    def __repr__(self) -> str:
        return f"GoogleADCTokenProvider(scopes={list(self.scopes)!r})"


# ---------------------------------------------------------------------- from configuration


def build_token_provider(
    name: str,
    auth: ProviderConfig.AuthConfig,
    resolver: SecretResolver,
    *,
    entry_points: EntryPointsFunction | None = None,
) -> TokenProvider:
    """The token provider an ``auth`` table describes (its client secret resolved lazily).

    A ``plugin`` table loads its plug-in now (:func:`load_token_provider_plugin`, which
    raises :class:`~aiport.ConfigError` when it cannot).
    """
    if auth.type == "plugin":
        return load_token_provider_plugin(name, auth, resolver, entry_points=entry_points)
    secret = _client_secret(name, auth, resolver)
    if auth.type == "oauth2":
        assert auth.token_url is not None
        assert auth.client_id is not None
        assert secret is not None
        return OAuth2ClientCredentials(
            token_url=auth.token_url,
            client_id=auth.client_id,
            client_secret=secret,
            scopes=auth.scopes,
            audience=auth.audience,
            client_auth=auth.client_auth,
            timeout=auth.timeout,
        )
    if auth.type == "azure":
        return AzureADTokenProvider(
            scopes=auth.scopes or (AZURE_COGNITIVE_SCOPE,),
            tenant_id=auth.tenant_id,
            client_id=auth.client_id,
            client_secret=secret,
        )
    return GoogleADCTokenProvider(scopes=auth.scopes or (GOOGLE_CLOUD_PLATFORM_SCOPE,))


def _client_secret(
    name: str, auth: ProviderConfig.AuthConfig, resolver: SecretResolver
) -> CredentialSource | None:
    if auth.client_secret is None:
        return None
    from aiport._credentials import SecretReference

    return SecretReference(
        auth.client_secret, resolver, what=f"auth.client_secret of provider {name!r}"
    )


# ---------------------------------------------------------------------- users' own providers


def _is_token_provider(value: object) -> bool:
    return not isinstance(value, type) and callable(getattr(value, "fetch_token", None))


def _why(exc: BaseException) -> str:
    """An exception in a configuration problem: its type, and its text for the kinds whose
    text is about code (an import, a signature), never about data that could be secret."""
    if isinstance(exc, ImportError | TypeError | AttributeError):
        text = " ".join(str(exc).split())
        if len(text) > _DETAIL_LIMIT:
            text = text[: _DETAIL_LIMIT - 3] + "..."
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return type(exc).__name__


def _list_plugins(entry_points: EntryPointsFunction | None) -> dict[str, Any]:
    from aiport._secrets import discover_plugins

    return discover_plugins(
        TOKEN_PROVIDER_GROUP,
        entry_points=entry_points,
        valid_name=PLUGIN_NAME_RE,
        kind="token provider plug-in",
    )


def load_token_provider_plugin(
    provider: str,
    auth: ProviderConfig.AuthConfig,
    resolver: SecretResolver,
    *,
    entry_points: EntryPointsFunction | None = None,
    plugins: Mapping[str, Any] | None = None,
) -> TokenProvider:
    """Import and build the token provider of an ``auth = {type = "plugin"}`` table.

    The entry point named ``auth.name`` in the group :data:`TOKEN_PROVIDER_GROUP` is
    loaded. A token provider object is used as it is (it takes no ``options``); a class or
    a function is called with ``auth.options`` as keyword arguments, plus
    ``client_secret=`` a credential source when ``auth.client_secret`` is set, and must
    return a token provider.

    Args:
        provider: the configured provider's name (in problem paths).
        auth: its ``auth`` table (``type = "plugin"``).
        resolver: resolves ``auth.client_secret`` (lazily, when the plug-in asks).
        entry_points: lists entry points instead of ``importlib.metadata.entry_points``.
        plugins: the group's entry points by name, already listed.

    Raises:
        ConfigError: at ``providers.NAME.auth.name``: no such entry point (with the names
            installed), or it cannot be imported, built, or gives no token provider; the
            problem names the entry point and its distribution.
    """
    from aiport._plugins import _origin
    from aiport._suggest import close_matches

    plugin = auth.name
    assert plugin is not None
    path = f"providers.{provider}.auth.name"
    found = _list_plugins(entry_points) if plugins is None else plugins
    entry_point = found.get(plugin)
    if entry_point is None:
        suggestions = close_matches(plugin, found)
        hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
        installed = ", ".join(sorted(found)) or "none"
        raise ConfigError(
            [
                ConfigProblem(
                    path,
                    f"no token provider plug-in {plugin!r}: no entry point of that name in the "
                    f"group {TOKEN_PROVIDER_GROUP!r}{hint} (installed: {installed})",
                )
            ]
        )
    origin = _origin(entry_point)

    def problem(detail: str) -> ConfigError:
        return ConfigError(
            [ConfigProblem(path, f"the token provider plug-in {plugin!r} ({origin}) {detail}")]
        )

    try:
        target = entry_point.load()
    except Exception as exc:
        raise problem(f"cannot be imported: {_why(exc)}") from exc
    arguments: dict[str, Any] = dict(auth.options)
    secret = _client_secret(provider, auth, resolver)
    if secret is not None:
        arguments["client_secret"] = secret
    if _is_token_provider(target):
        if arguments:
            raise problem(
                "is a token provider object, which takes no options or client_secret: "
                "ship a class or a function to be configured"
            )
        return target  # type: ignore[no-any-return]
    if not callable(target):
        raise problem(
            f"is a {type(target).__name__}: expected a token provider (with a fetch_token "
            "method), a class of one, or a function returning one"
        )
    try:
        built = target(**arguments)
    except Exception as exc:
        given = ", ".join(sorted(arguments)) or "no arguments"
        raise problem(f"cannot be built with {given}: {_why(exc)}") from exc
    if not _is_token_provider(built):
        raise problem(f"gave a {type(built).__name__}, which has no fetch_token method")
    return built  # type: ignore[no-any-return]


def token_providers_for(
    config: AgentConfig,
    given: Mapping[str, TokenProvider],
    resolver: SecretResolver,
    *,
    entry_points: EntryPointsFunction | None = None,
) -> dict[str, TokenProvider]:
    """The users' own token providers of a service, by configured provider name.

    Those ``given`` to ``ProviderService(token_providers=...)``, checked: each names a
    configured provider without ``api_key``, ``api_keys`` or ``auth``. And the plug-ins
    that ``auth = {type = "plugin"}`` tables of enabled providers name, imported and built
    now, so that a missing or broken plug-in is reported when the service is made.

    Raises:
        ConfigError: every problem found (unknown provider, two credentials, plug-in).
        TypeError: a given object has no ``fetch_token`` method.
    """
    from aiport._suggest import close_matches

    problems: list[ConfigProblem] = []
    chosen: dict[str, TokenProvider] = {}
    for name, token_provider in given.items():
        if not _is_token_provider(token_provider):
            raise TypeError(
                f"token_providers[{name!r}] is a {type(token_provider).__name__}, not a "
                "TokenProvider (an object with a fetch_token method)"
            )
        settings = config.providers.get(name)
        if settings is None:
            suggestions = close_matches(name, config.providers)
            hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
            known = ", ".join(config.providers) or "none configured"
            problems.append(
                ConfigProblem(
                    f"token_providers.{name}",
                    f"a token provider is given for {name!r}, which is not a configured "
                    f"provider{hint} (providers: {known})",
                )
            )
            continue
        for setting in ("auth", "api_key", "api_keys"):
            if getattr(settings, setting) is not None:
                problems.append(
                    ConfigProblem(
                        f"providers.{name}.{setting}",
                        f"provider {name!r} has a token provider given in "
                        f"ProviderService(token_providers=...) and {setting} in its "
                        "configuration: keep one of them",
                    )
                )
                break
        else:
            chosen[name] = token_provider
    plugins: dict[str, Any] | None = None
    for name, settings in config.providers.items():
        auth = settings.auth
        if auth is None or auth.type != "plugin" or not settings.enabled or name in given:
            continue
        if plugins is None:
            plugins = _list_plugins(entry_points)
        try:
            chosen[name] = load_token_provider_plugin(name, auth, resolver, plugins=plugins)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return chosen
