"""Secret values and the references that point at them.

A secret setting (a provider's ``api_key``, the ``redis_url``) holds either the secret itself
(a *literal*, discouraged in files) or a *reference* of the form ``scheme:rest``:

``env:NAME``
    the value of the environment variable ``NAME``.
``file:PATH``
    the contents of a file, without its trailing newline. A relative ``PATH`` is taken
    relative to the directory of the configuration file the reference came from (when known),
    else to the current working directory. ``~`` is expanded.
``keyring:SERVICE/NAME``
    an entry of the operating system's keyring. This scheme is reserved: it works once a
    resolver for it is registered (``pip install 'aiport[keyring]'`` provides one).

Any other scheme can be added per resolver with :meth:`SecretResolver.register` (a vault, a
cloud secret manager...). A value whose text before the first ``:`` is not a known scheme is a
literal: API keys such as ``sk-...`` contain no colon.

References are resolved lazily, when a provider first needs the credential; loading a
configuration never reads a secret. Nothing here keeps module-level state: every
:class:`SecretResolver` has its own registry of schemes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

from pydantic import SecretStr

from ._errors import ProviderAuthError

__all__ = [
    "BUILTIN_SCHEMES",
    "SecretResolver",
    "describe_secret",
    "split_reference",
]

#: The schemes every resolver knows. ``keyring`` is reserved until a resolver is registered.
BUILTIN_SCHEMES: frozenset[str] = frozenset({"env", "file", "keyring"})

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
_KEYRING_HINT = "pip install 'aiport[keyring]'"
_REASON = "credentials_unresolved"


def split_reference(
    value: str, schemes: AbstractSet[str] = BUILTIN_SCHEMES
) -> tuple[str, str] | None:
    """Split ``"scheme:rest"`` into ``(scheme, rest)`` when ``scheme`` is one of ``schemes``.

    Returns ``None`` for a literal (no colon, or an unknown text before the first colon).
    """
    scheme, sep, rest = value.partition(":")
    if not sep or scheme not in schemes:
        return None
    return scheme, rest


def describe_secret(
    value: SecretStr | str | None, *, resolver: SecretResolver | None = None
) -> str:
    """A safe, human-readable view of a secret setting, for ``aiport config check`` and logs.

    References are shown as they are (``"env:OPENAI_API_KEY"``): they name where the secret
    lives, not the secret. Literals are masked: ``"****"`` followed by their last four
    characters when they are at least 12 characters long, else ``"****"`` alone. ``None``
    reads ``"<not set>"``. Pass ``resolver`` to recognise the schemes registered on it too.
    """
    if value is None:
        return "<not set>"
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    schemes = resolver.schemes if resolver is not None else BUILTIN_SCHEMES
    if split_reference(text, schemes) is not None:
        return text
    if len(text) >= 12:
        return "****" + text[-4:]
    return "****"


class SecretResolver:
    """Turns secret settings (literals or references) into the secrets themselves.

    Args:
        env: the environment ``env:`` references read; ``None`` reads ``os.environ`` at the
            moment of resolution (so later changes to the process environment are seen).
        base_dir: the directory relative ``file:`` paths start from; ``None`` means the current
            working directory at the moment of resolution.

    Every failure raises :class:`~aiport.ProviderAuthError` with reason
    ``"credentials_unresolved"`` and a message naming the reference (never the secret).
    """

    def __init__(
        self, *, env: Mapping[str, str] | None = None, base_dir: Path | None = None
    ) -> None:
        self._env = env
        self._base_dir = base_dir
        self._resolvers: dict[str, Callable[[str], str]] = {}

    @property
    def schemes(self) -> frozenset[str]:
        """Every scheme this resolver treats as a reference (built-in and registered)."""
        return BUILTIN_SCHEMES | frozenset(self._resolvers)

    def register(self, scheme: str, resolve: Callable[[str], str]) -> None:
        """Resolve ``scheme:rest`` references by calling ``resolve(rest)``.

        ``scheme`` is lower case (``"keyring"``, ``"vault"``, ``"aws-sm"``); registering a
        built-in scheme replaces the built-in behaviour for this resolver only. ``resolve``
        returns the secret, or raises any exception when it cannot (the error is reported as a
        :class:`~aiport.ProviderAuthError` naming the reference).
        """
        if not _SCHEME_RE.fullmatch(scheme):
            raise ValueError(
                f"invalid secret scheme {scheme!r}: use lower-case letters, digits, '+', '.' "
                "or '-', starting with a letter"
            )
        if not callable(resolve):
            raise TypeError("resolve must be callable")
        self._resolvers[scheme] = resolve

    def is_reference(self, value: str) -> bool:
        """Whether ``value`` is a reference (``scheme:rest`` with a known scheme)."""
        return split_reference(value, self.schemes) is not None

    def resolve(self, value: SecretStr | str, *, what: str = "secret") -> SecretStr:
        """Return the secret ``value`` stands for.

        A literal is returned as it is; a reference is looked up. ``what`` names the setting in
        error messages (``"api_key of provider 'openai'"``).

        Raises:
            ProviderAuthError: the reference cannot be resolved, or the secret is empty.
        """
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            raise TypeError("a secret must be a str or a SecretStr")
        parts = split_reference(text, self.schemes)
        if parts is None:
            if not text:
                raise self._error(what, "the value is empty")
            return SecretStr(text)
        scheme, rest = parts
        secret = self._lookup(scheme, rest, text, what)
        if not secret:
            raise self._error(what, f"{text} resolved to an empty value")
        return SecretStr(secret)

    # -- the schemes ------------------------------------------------------------------------

    def _lookup(self, scheme: str, rest: str, reference: str, what: str) -> str:
        custom = self._resolvers.get(scheme)
        if custom is not None:
            if not rest:
                raise self._error(what, f"{reference}: the reference names nothing after ':'")
            try:
                result: object = custom(rest)
            except ProviderAuthError:
                raise
            except Exception as exc:
                raise self._error(
                    what, f"{reference}: the {scheme!r} resolver failed ({type(exc).__name__})"
                ) from exc
            if isinstance(result, SecretStr):
                result = result.get_secret_value()
            if not isinstance(result, str):
                raise self._error(
                    what,
                    f"{reference}: the {scheme!r} resolver returned "
                    f"{type(result).__name__}, not str",
                )
            return result
        if scheme == "env":
            return self._from_env(rest, what)
        if scheme == "file":
            return self._from_file(rest, what)
        # "keyring" without a registered resolver (the only other built-in scheme).
        raise self._error(
            what,
            f"{reference}: keyring references need keyring support; "
            f"install it with: {_KEYRING_HINT}",
        )

    def _from_env(self, name: str, what: str) -> str:
        if not name:
            raise self._error(what, "env: reference without a variable name")
        env = os.environ if self._env is None else self._env
        value = env.get(name)
        if value is None:
            raise self._error(what, f"environment variable {name} is not set")
        if not value:
            raise self._error(what, f"environment variable {name} is empty")
        return value

    def _from_file(self, name: str, what: str) -> str:
        if not name:
            raise self._error(what, "file: reference without a path")
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = (self._base_dir if self._base_dir is not None else Path.cwd()) / path
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise self._error(what, f"file {name}: not found (looked for {path})") from exc
        except IsADirectoryError as exc:
            raise self._error(what, f"file {name}: is a directory") from exc
        except PermissionError as exc:
            raise self._error(what, f"file {name}: permission denied") from exc
        except OSError as exc:
            raise self._error(what, f"file {name}: cannot be read ({exc.strerror})") from exc
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._error(what, f"file {name}: not UTF-8 text") from None
        text = text.removeprefix("\ufeff").rstrip("\r\n")
        if not text:
            raise self._error(what, f"file {name}: is empty")
        return text

    @staticmethod
    def _error(what: str, detail: str) -> ProviderAuthError:
        return ProviderAuthError(f"cannot resolve {what}: {detail}", reason=_REASON)
