"""Where a provider gets its credential from, resolved lazily.

A ``CredentialSource`` hands out the current secret; ``invalidate`` makes the next
``get`` resolve it again (after a 401, or when a key was rotated). Token providers with
expiry and refresh implement the same protocol (:class:`aiport._tokens.RefreshingCredential`).

:func:`build_credential` makes a provider's credential from its configuration, in this order:

1. a token provider: one given to ``ProviderService(token_providers=...)``, else the
   ``auth`` table's (OAuth2 client credentials, Azure AD, Google ADC, a plug-in);
2. ``api_key``: a reference (``env:``, ``file:``, ``keyring:``, a plug-in scheme) or a literal;
   ``api_keys``: several of them, a :class:`KeyPool`;
3. none of these: the provider type's standard variable (``OPENAI_API_KEY``...), then the key
   ``aiport keys set NAME`` stored (``keyring:aiport/NAME``).

Several keys (:class:`KeyPool`)
    Each call uses one key, chosen by the pool's rotation: ``"round-robin"`` spreads calls
    over the keys in turn, ``"failover"`` uses the first usable key in configured order.
    A key the provider refuses (401/403, or a 429 that waiting will not fix, such as an
    exhausted quota) is *set aside* for :data:`SET_ASIDE_SECONDS`; its reference is resolved
    again before it is next used, so a key replaced at its source comes back. A key answered
    with 429 *rests* until its ``Retry-After`` (:data:`DEFAULT_REST_SECONDS` without one).
    When every key is set aside, a call still tries one: a key whose reference now resolves
    to another value than the one refused (a replaced key is picked up at once), else the
    key set aside longest. The choosing, and trying another key at once after a refusal,
    is done by :class:`aiport.layers._rotation.KeyRotationLayer`: it names the keys of each
    attempt in a context variable (:class:`KeySelection`) that the rate-limit layer (each
    key has its own buckets) and the pool's ``get`` read. Adapters see one
    ``CredentialSource`` and know nothing of it. Token credentials (``auth``) stay single.

Keys are named in logs, hook events, errors and ``aiport config check`` only by
:func:`key_fingerprint`: ``key#`` and 8 hex digits of the key's SHA-256, then ``…`` and
its last four characters (``key#3f2a9c1e…wxyz``).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

from pydantic import SecretStr

from aiport._errors import ProviderAuthError

if TYPE_CHECKING:
    from aiport._config import ProviderConfig
    from aiport._secrets import SecretResolver
    from aiport._tokens import TokenProvider

__all__ = [
    "DEFAULT_REST_SECONDS",
    "SET_ASIDE_SECONDS",
    "CredentialSource",
    "KeyPool",
    "KeyRotation",
    "KeySelection",
    "KeyUse",
    "PooledKey",
    "SecretReference",
    "StaticCredential",
    "build_credential",
    "check_credential",
    "current_key_selection",
    "current_key_use",
    "invalidate_after_failure",
    "is_refreshable",
    "key_fingerprint",
    "key_use_scope",
    "recording_key_use",
    "selecting",
]

_T = TypeVar("_T")

#: How a provider with several API keys spreads its calls over them.
KeyRotation: TypeAlias = Literal["round-robin", "failover"]
#: Seconds a key the provider refused (401/403, exhausted quota) is set aside.
SET_ASIDE_SECONDS = 300.0
#: Seconds a key answered with 429 rests when the answer says no Retry-After.
DEFAULT_REST_SECONDS = 1.0
#: The longest rest a Retry-After can impose on a key.
MAX_REST_SECONDS = 600.0
_FINGERPRINT_HEX = 8
_FINGERPRINT_TAIL = 4
_TAIL_MIN_LENGTH = 12


def key_fingerprint(secret: str) -> str:
    """How aiport names an API key wherever it has to: ``key#3f2a9c1e…wxyz``.

    ``key#``, the first 8 hex digits of the key's SHA-256, ``…`` and the key's last 4
    characters (left out for keys shorter than 12 characters). Enough to tell keys apart
    and to recognise one's own key; never enough to use it. The only form in which a key
    appears in logs, hook events, error messages and ``aiport config check``.
    """
    digest = hashlib.sha256(secret.encode()).hexdigest()[:_FINGERPRINT_HEX]
    if len(secret) < _TAIL_MIN_LENGTH:
        return f"key#{digest}"
    return f"key#{digest}…{secret[-_FINGERPRINT_TAIL:]}"


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
    token_provider: TokenProvider | None = None,
) -> CredentialSource | None:
    """The credential of provider ``name`` as configured (nothing is resolved yet).

    Args:
        name: the provider's configured name.
        config: its configuration (``auth`` table, ``api_key`` or ``api_keys``).
        resolver: resolves secret references (``env:``, ``file:``, ``keyring:``...).
        default_env: the provider type's standard key variable (``OPENAI_API_KEY``), used
            when neither ``auth`` nor ``api_key`` is set; the keystore entry
            ``keyring:aiport/NAME`` backs it up.
        token_provider: a user's token provider; it replaces whatever ``config`` says
            (``ProviderService`` makes sure nothing else is configured), with the skew of
            ``config.auth`` if there is one, else :data:`~aiport._tokens.DEFAULT_REFRESH_SKEW`.

    Returns ``None`` when the provider has no credential at all (a local server), a
    :class:`~aiport._tokens.RefreshingCredential` for a token provider, and a
    :class:`KeyPool` for two keys or more in ``api_keys``.

    Raises:
        ConfigError: an ``auth = {type = "plugin"}`` table whose plug-in cannot be loaded.
    """
    auth = config.auth
    if token_provider is not None or auth is not None:
        from aiport._tokens import DEFAULT_REFRESH_SKEW, RefreshingCredential, build_token_provider

        if token_provider is None:
            assert auth is not None
            token_provider = build_token_provider(name, auth, resolver)
        skew = auth.refresh_skew if auth is not None else DEFAULT_REFRESH_SKEW
        return RefreshingCredential(token_provider, name=name, skew=skew)
    what = f"API key of provider {name!r}"
    if config.api_key is not None:
        return SecretReference(config.api_key, resolver, what=what)
    if config.api_keys:
        references = [
            SecretReference(value, resolver, what=f"API key api_keys[{index}] of provider {name!r}")
            for index, value in enumerate(config.api_keys)
        ]
        if len(references) == 1:
            return references[0]  # nothing to rotate: no pool, no rotation layer
        return KeyPool(name, references, rotation=config.key_rotation)
    if default_env:
        return SecretReference(
            SecretStr(f"env:{default_env}"),
            resolver,
            what=what,
            fallback=SecretStr(f"keyring:aiport/{name}"),
        )
    return None


# ---------------------------------------------------------------------- several keys


class PooledKey:
    """One API key of a :class:`KeyPool`: where it comes from, and how it is faring.

    Attributes:
        index: its position in ``api_keys``.
        fingerprint: :func:`key_fingerprint` of the key, once it was resolved.
        scope: the rate-limit scope of its buckets (``limit_scope(provider, key)``: a hash,
            never the key), once it was resolved.
        set_aside_until: ``clock()`` time before which it is not chosen (it was refused).
        resting_until: ``clock()`` time before which it is not chosen (it was rate-limited).
        refused: the fingerprint of the value refused, while it is set aside.
    """

    __slots__ = (
        "_provider",
        "_resolved",
        "fingerprint",
        "index",
        "reference",
        "refused",
        "resting_until",
        "scope",
        "set_aside_until",
    )

    def __init__(self, index: int, reference: SecretReference, provider: str) -> None:
        self.index = index
        self.reference = reference
        self._provider = provider
        self._resolved: SecretStr | None = None
        self.fingerprint: str | None = None
        self.scope = provider
        self.set_aside_until = 0.0
        self.resting_until = 0.0
        self.refused: str | None = None

    @property
    def path(self) -> str:
        """Where the key is configured, relative to its provider: ``api_keys[1]``."""
        return f"api_keys[{self.index}]"

    @property
    def label(self) -> str:
        """The fingerprint, or ``api_keys[N]`` while the key was never resolved."""
        return self.fingerprint or self.path

    async def secret(self) -> SecretStr:
        """The key (resolved on first use, and again after it was refused).

        Raises:
            ProviderAuthError: the reference does not resolve.
        """
        secret = await self.reference.get()
        if secret is not self._resolved:
            self._learn(secret)
        return secret

    def _learn(self, secret: SecretStr) -> None:
        from aiport._limits import limit_scope

        text = secret.get_secret_value()
        self.fingerprint = key_fingerprint(text)
        self.scope = limit_scope(self._provider, text)
        self._resolved = secret

    def holds(self, secret: str) -> bool:
        """Whether ``secret`` is this key's value as last resolved."""
        return self._resolved is not None and self._resolved.get_secret_value() == secret

    def usable(self, now: float) -> bool:
        """Neither set aside nor resting at ``now``."""
        return now >= self.set_aside_until and now >= self.resting_until

    def __repr__(self) -> str:
        return f"PooledKey({self.path}, {self.label})"


class KeyPool:
    """Several API keys of one provider: a :class:`CredentialSource` that rotates them.

    Args:
        provider: the provider's configured name.
        references: the keys (unresolved), in configured order; at least one.
        rotation: ``"round-robin"`` (each call starts at the next key) or ``"failover"``
            (each call starts at the first key).
        set_aside: seconds a refused key is not chosen (see the module documentation).
        clock: a monotonic clock.

    Which key a call uses is decided per attempt by the rotation layer
    (``KeyRotationLayer``), which makes a :class:`KeySelection` current; ``get`` returns
    the key chosen there. Outside a selection (Batch API operations, the cache scope)
    ``get`` returns the first usable key in configured order.
    """

    def __init__(
        self,
        provider: str,
        references: Sequence[SecretReference],
        *,
        rotation: KeyRotation = "round-robin",
        set_aside: float = SET_ASIDE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not references:
            raise ValueError("a KeyPool needs at least one key")
        if rotation not in ("round-robin", "failover"):
            raise ValueError(f"unknown key rotation {rotation!r}: 'round-robin' or 'failover'")
        self.provider = provider
        self.rotation: KeyRotation = rotation
        self.keys = tuple(PooledKey(i, ref, provider) for i, ref in enumerate(references))
        self.set_aside_seconds = float(set_aside)
        self.clock = clock
        # next() on a count is atomic: calls on several event loops still take turns.
        self._turns = itertools.count()

    # -- choosing --------------------------------------------------------------------------

    def order(self) -> tuple[PooledKey, ...]:
        """Every key, in the order one call prefers them (round-robin: the next turn)."""
        if self.rotation == "failover" or len(self.keys) == 1:
            return self.keys
        start = next(self._turns) % len(self.keys)
        return self.keys[start:] + self.keys[:start]

    def select(
        self, order: Sequence[PooledKey], exclude: AbstractSet[PooledKey] = frozenset()
    ) -> KeySelection | None:
        """The keys an attempt may use: those of ``order`` not excluded and usable now.

        When none is usable and nothing was excluded (the call's first attempt): ``None``
        if a key is resting (the caller fails with the soonest rest), else a *last resort*
        selection of every key, set aside longest first, to be narrowed down with
        :meth:`KeySelection.narrow_to_replaced`. ``None`` when keys were excluded and no
        other is usable.
        """
        now = self.clock()
        candidates = tuple(k for k in order if k not in exclude and k.usable(now))
        if candidates:
            return KeySelection(self, candidates)
        if exclude or any(k.resting_until > now for k in self.keys):
            return None
        oldest_first = tuple(sorted(self.keys, key=lambda k: k.set_aside_until))
        return KeySelection(self, oldest_first, last_resort=True)

    def soonest_rest(self) -> float | None:
        """Seconds until the first resting key may be used again (``None``: none rests)."""
        now = self.clock()
        waits = [k.resting_until - now for k in self.keys if k.resting_until > now]
        return min(waits) if waits else None

    # -- health ----------------------------------------------------------------------------

    def set_aside(self, key: PooledKey) -> float:
        """Stop choosing ``key`` for a while (it was refused); return for how many seconds.

        Its reference is resolved again before it is next used.
        """
        key.set_aside_until = self.clock() + self.set_aside_seconds
        key.refused = key.fingerprint
        key.reference.invalidate()
        return self.set_aside_seconds

    def rest(self, key: PooledKey, seconds: float | None) -> float:
        """Stop choosing ``key`` for ``seconds`` (its Retry-After; a default without one,
        at most :data:`MAX_REST_SECONDS`); return the rest imposed."""
        wait = DEFAULT_REST_SECONDS if seconds is None else min(max(seconds, 0.0), MAX_REST_SECONDS)
        key.resting_until = max(key.resting_until, self.clock() + wait)
        return wait

    def served(self, key: PooledKey) -> None:
        """``key`` served a call: it is no longer set aside (it was tried as a last resort)."""
        if key.set_aside_until:
            key.set_aside_until = 0.0
            key.refused = None

    # -- CredentialSource ------------------------------------------------------------------

    async def get(self) -> SecretStr:
        """The key of the current attempt, or outside one the first usable key."""
        selection = _SELECTION.get()
        if selection is not None and selection.pool is self:
            key = selection.chosen
            if key is None:
                key = await selection.choose()
            return await key.secret()
        now = self.clock()
        error: ProviderAuthError | None = None
        for key in sorted(self.keys, key=lambda k: not k.usable(now)):
            try:
                return await key.secret()
            except ProviderAuthError as exc:
                error = error or exc
        assert error is not None
        raise error

    def invalidate(self) -> None:
        """Resolve every key again on its next use."""
        for key in self.keys:
            key.reference.invalidate()

    def invalidate_secret(self, secret: str) -> None:
        """Resolve the key whose value is ``secret`` again on its next use."""
        for key in self.keys:
            if key.holds(secret):
                key.reference.invalidate()

    async def check(self) -> None:
        """Resolve every key (nothing is sent); raise the first that does not resolve."""
        for key in self.keys:
            await key.secret()

    def __repr__(self) -> str:
        labels = ", ".join(key.label for key in self.keys)
        return f"KeyPool({self.provider!r}, {self.rotation}, [{labels}])"


class KeySelection:
    """The keys one attempt may use, best first, and the one it uses (``chosen``).

    The rotation layer makes it current (:func:`selecting`); the rate-limit layer sets
    ``chosen`` to the first candidate with room in its buckets; the pool's ``get`` reads it
    (choosing the first candidate that resolves if nobody chose).
    """

    __slots__ = ("candidates", "chosen", "last_resort", "pool", "unresolved")

    def __init__(
        self, pool: KeyPool, candidates: tuple[PooledKey, ...], *, last_resort: bool = False
    ) -> None:
        self.pool = pool
        self.candidates = candidates
        #: Every key is set aside: the candidates are all of them, set aside longest first.
        self.last_resort = last_resort
        self.chosen: PooledKey | None = None
        #: Candidates whose reference did not resolve (set aside), with the error.
        self.unresolved: list[tuple[PooledKey, ProviderAuthError]] = []

    async def resolves(self, key: PooledKey) -> bool:
        """Resolve ``key``; one that does not is set aside and remembered."""
        try:
            await key.secret()
        except ProviderAuthError as exc:
            self.pool.set_aside(key)
            self.unresolved.append((key, exc))
            return False
        return True

    async def narrow_to_replaced(self) -> None:
        """Keep, of a last-resort selection, the keys whose reference now gives another
        value than the one refused; when none does, the key set aside longest."""
        replaced = []
        for key in self.candidates:
            key.reference.invalidate()  # read the source again: it may hold a new key now
            try:
                await key.secret()
            except ProviderAuthError:
                continue
            if key.refused is not None and key.fingerprint != key.refused:
                replaced.append(key)
        self.candidates = tuple(replaced) if replaced else self.candidates[:1]

    async def choose(self) -> PooledKey:
        """Choose the first candidate that resolves.

        Raises:
            ProviderAuthError: no candidate resolves (the last resolution error).
        """
        for key in self.candidates:
            if await self.resolves(key):
                self.chosen = key
                return key
        raise self.unusable()

    def unusable(self) -> ProviderAuthError:
        """The error of an attempt none of whose candidates resolves."""
        if self.unresolved:
            error = self.unresolved[-1][1]
            return ProviderAuthError(
                error.message, provider=self.pool.provider, reason=error.reason
            )
        return ProviderAuthError(
            f"provider {self.pool.provider!r} has no usable API key",
            provider=self.pool.provider,
            reason="credentials_unresolved",
        )

    def __repr__(self) -> str:
        chosen = self.chosen.label if self.chosen is not None else None
        return f"KeySelection({[k.label for k in self.candidates]}, chosen={chosen})"


_SELECTION: ContextVar[KeySelection | None] = ContextVar("aiport_key_selection", default=None)


def current_key_selection() -> KeySelection | None:
    """The key selection of the attempt being served, if its provider has several keys."""
    return _SELECTION.get()


@contextmanager
def selecting(selection: KeySelection) -> Iterator[KeySelection]:
    """Make ``selection`` current for the code inside the ``with`` block."""
    token = _SELECTION.set(selection)
    try:
        yield selection
    finally:
        _SELECTION.reset(token)


class KeyUse:
    """Which key served a call, by fingerprint: filled in by the rotation layer, read by
    the hooks layer for its events and log lines."""

    __slots__ = ("key",)

    def __init__(self) -> None:
        self.key: str | None = None


_KEY_USE: ContextVar[KeyUse | None] = ContextVar("aiport_key_use", default=None)


def current_key_use() -> KeyUse | None:
    """Where the current call records the key it used, if anyone asked."""
    return _KEY_USE.get()


@contextmanager
def recording_key_use(use: KeyUse) -> Iterator[KeyUse]:
    """Make ``use`` the record of the call run inside the ``with`` block."""
    token = _KEY_USE.set(use)
    try:
        yield use
    finally:
        _KEY_USE.reset(token)


async def key_use_scope(use: KeyUse, events: AsyncIterator[_T]) -> AsyncGenerator[_T, None]:
    """Iterate ``events`` with ``use`` current while the first item is produced (when a
    stream picks its key), without leaking the variable into the consumer's context."""
    try:
        with recording_key_use(use):
            try:
                first = await anext(events)
            except StopAsyncIteration:
                return
        yield first
        async for item in events:
            yield item
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
