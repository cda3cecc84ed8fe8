"""Where a provider gets its credential from, resolved lazily.

A ``CredentialSource`` hands out the current secret; ``invalidate`` makes the next
``get`` resolve it again (after a 401, or when a key was rotated). Token providers with
expiry and refresh implement the same protocol (:class:`aiport._tokens.RefreshingCredential`).

:func:`build_credential` makes a provider's credential from its configuration, in this order:

1. an ``auth`` table: a token provider (OAuth2 client credentials, Azure AD, Google ADC);
2. ``api_key``: a reference (``env:``, ``file:``, ``keyring:``, a plug-in scheme) or a literal;
3. neither: the provider type's standard variable (``OPENAI_API_KEY``...), then the key
   ``aiport keys set NAME`` stored (``keyring:aiport/NAME``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import SecretStr

from aiport._errors import ProviderAuthError

if TYPE_CHECKING:
    from aiport._config import ProviderConfig
    from aiport._secrets import SecretResolver

__all__ = [
    "CredentialSource",
    "SecretReference",
    "StaticCredential",
    "build_credential",
    "check_credential",
    "invalidate_after_failure",
    "is_refreshable",
]


@runtime_checkable
class CredentialSource(Protocol):
    """Gives the secret a provider authenticates with."""

    async def get(self) -> SecretStr:
        """The current secret (resolving or refreshing it when needed)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached secret; the next ``get`` resolves it again."""
        ...


@runtime_checkable
class _Checkable(Protocol):
    async def check(self) -> None: ...


@runtime_checkable
class _SecretInvalidating(Protocol):
    def invalidate_secret(self, secret: str) -> None: ...


class StaticCredential:
    """A secret given directly."""

    __slots__ = ("_secret",)

    def __init__(self, secret: SecretStr | str) -> None:
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)

    async def get(self) -> SecretStr:
        return self._secret

    def invalidate(self) -> None:
        """Nothing to forget: the value is fixed."""

    def __repr__(self) -> str:
        return "StaticCredential(SecretStr('**********'))"


class SecretReference:
    """A configured value (``env:NAME``, ``file:PATH``, a literal...) resolved on first use.

    Resolution runs once and is cached until ``invalidate``. References that may block
    (``keyring:``, plug-in schemes) are resolved in a worker thread, and concurrent first
    calls share that one resolution.

    ``fallback``: a second value tried when ``value`` does not resolve (the keystore entry
    behind a provider's standard environment variable).
    """

    __slots__ = ("_cached", "_fallback", "_lock", "_resolver", "_value", "_what")

    def __init__(
        self,
        value: SecretStr,
        resolver: SecretResolver,
        *,
        what: str,
        fallback: SecretStr | None = None,
    ) -> None:
        self._value = value
        self._fallback = fallback
        self._resolver = resolver
        self._what = what
        self._cached: SecretStr | None = None
        self._lock = threading.Lock()

    async def get(self) -> SecretStr:
        cached = self._cached
        if cached is not None:
            return cached
        if not self._blocking():
            # Environment variables and small files: fast enough to read inline.
            return self.resolve_now()
        return await asyncio.to_thread(self.resolve_now)

    def _blocking(self) -> bool:
        values = [self._value] if self._fallback is None else [self._value, self._fallback]
        return any(self._resolver.needs_io(v) for v in values)

    def resolve_now(self) -> SecretStr:
        """Resolve synchronously (used by ``validate_provider`` and ``get``)."""
        with self._lock:
            if self._cached is None:
                self._cached = self._resolve()
            return self._cached

    def _resolve(self) -> SecretStr:
        try:
            return self._resolver.resolve(self._value, what=self._what)
        except ProviderAuthError as first:
            if self._fallback is None:
                raise
            try:
                return self._resolver.resolve(self._fallback, what=self._what)
            except ProviderAuthError as second:
                prefix = f"cannot resolve {self._what}: "
                raise ProviderAuthError(
                    f"{first.message}; nor from the aiport keystore: "
                    f"{second.message.removeprefix(prefix)}",
                    reason=first.reason,
                ) from None

    async def check(self) -> None:
        """Resolve now (nothing is sent anywhere)."""
        await self.get()

    def invalidate(self) -> None:
        self._cached = None

    def __repr__(self) -> str:
        return f"SecretReference({self._what})"


def is_refreshable(credential: CredentialSource | None) -> bool:
    """Whether a 401 is worth one retry with a fresh secret (token credentials)."""
    return bool(getattr(credential, "refreshable", False))


async def check_credential(credential: CredentialSource) -> None:
    """Whether ``credential`` can give a secret, without a network call where possible.

    Credentials with a ``check()`` coroutine (token providers: no token is fetched) use it;
    others are resolved with ``get()``.
    """
    if isinstance(credential, _Checkable):
        await credential.check()
    else:
        await credential.get()


def invalidate_after_failure(credential: CredentialSource, secret: str | None) -> None:
    """Forget ``secret`` after the server refused it (and only it, when the credential can
    tell: a token refreshed meanwhile by another call is kept)."""
    if secret is not None and isinstance(credential, _SecretInvalidating):
        credential.invalidate_secret(secret)
    else:
        credential.invalidate()


def build_credential(
    name: str,
    config: ProviderConfig,
    resolver: SecretResolver,
    *,
    default_env: str | None = None,
) -> CredentialSource | None:
    """The credential of provider ``name`` as configured (nothing is resolved yet).

    Args:
        name: the provider's configured name.
        config: its configuration (``auth`` table, or ``api_key``).
        resolver: resolves secret references (``env:``, ``file:``, ``keyring:``...).
        default_env: the provider type's standard key variable (``OPENAI_API_KEY``), used
            when neither ``auth`` nor ``api_key`` is set; the keystore entry
            ``keyring:aiport/NAME`` backs it up.

    Returns ``None`` when the provider has no credential at all (a local server).
    """
    auth = config.auth
    if auth is not None:
        from aiport._tokens import RefreshingCredential, build_token_provider

        return RefreshingCredential(
            build_token_provider(name, auth, resolver), name=name, skew=auth.refresh_skew
        )
    what = f"API key of provider {name!r}"
    if config.api_key is not None:
        return SecretReference(config.api_key, resolver, what=what)
    if default_env:
        return SecretReference(
            SecretStr(f"env:{default_env}"),
            resolver,
            what=what,
            fallback=SecretStr(f"keyring:aiport/{name}"),
        )
    return None
