"""Where a provider gets its credential from, resolved lazily.

A ``CredentialSource`` hands out the current secret; ``invalidate`` makes the next
``get`` resolve it again (after a 401, or when a key was rotated). Token providers with
expiry and refresh implement the same protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import SecretStr

if TYPE_CHECKING:
    from aiport._secrets import SecretResolver

__all__ = ["CredentialSource", "SecretReference", "StaticCredential"]


@runtime_checkable
class CredentialSource(Protocol):
    """Gives the secret a provider authenticates with."""

    async def get(self) -> SecretStr:
        """The current secret (resolving or refreshing it when needed)."""
        ...

    def invalidate(self) -> None:
        """Forget the cached secret; the next ``get`` resolves it again."""
        ...


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

    Resolution runs once and is cached until ``invalidate``; concurrent first calls share
    one resolution.
    """

    __slots__ = ("_cached", "_resolver", "_value", "_what")

    def __init__(self, value: SecretStr, resolver: SecretResolver, *, what: str) -> None:
        self._value = value
        self._resolver = resolver
        self._what = what
        self._cached: SecretStr | None = None

    async def get(self) -> SecretStr:
        if self._cached is not None:
            return self._cached
        # Reading env vars and small files is fast enough to do inline; resolvers that
        # block longer (keyring, vaults) run in a thread.
        return self.resolve_now()

    def resolve_now(self) -> SecretStr:
        """Resolve synchronously (used by ``validate_provider`` and ``get``)."""
        if self._cached is None:
            self._cached = self._resolver.resolve(self._value, what=self._what)
        return self._cached

    def invalidate(self) -> None:
        self._cached = None

    def __repr__(self) -> str:
        return f"SecretReference({self._what})"
