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
    an entry of the operating system's keyring (through the ``keyring`` package:
    ``pip install 'aiport[keyring]'``); where no OS keyring exists (headless servers, CI),
    aiport's encrypted key file, unlocked with ``AIPORT_KEYSTORE_PASSPHRASE`` (see
    :mod:`aiport._keystore` and ``aiport keys``). ``SERVICE/NAME`` splits at the last ``/``.

Other schemes come from plug-ins: a distribution declares an entry point in the group
``aiport.secret_sources`` whose name is the scheme (``vault``) and whose object is a
:class:`SecretSource`, a class of one (built without arguments), or a function taking the
text after ``scheme:`` and returning the secret. A scheme can also be added per resolver with
:meth:`SecretResolver.register`. A value whose text before the first ``:`` is not a known
scheme is a literal: API keys such as ``sk-...`` contain no colon.

References are resolved lazily, when a provider first needs the credential; loading a
configuration never reads a secret. Nothing here keeps module-level state: every
:class:`SecretResolver` has its own registry of schemes, and looks for plug-ins (once) only
when it meets a value it does not otherwise understand.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr

from ._errors import ProviderAuthError

__all__ = [
    "BUILTIN_SCHEMES",
    "ENTRY_POINT_GROUP",
    "EntryPointsFunction",
    "SecretResolver",
    "SecretSource",
    "describe_secret",
    "discover_plugins",
    "split_reference",
]

#: The schemes every resolver knows.
BUILTIN_SCHEMES: frozenset[str] = frozenset({"env", "file", "keyring"})
#: The entry-point group of secret-source plug-ins (entry point name = scheme).
ENTRY_POINT_GROUP = "aiport.secret_sources"

_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
_KEYRING_HINT = "pip install 'aiport[keyring]'"
_REASON = "credentials_unresolved"

logger = logging.getLogger("aiport")


@runtime_checkable
class SecretSource(Protocol):
    """Where the secrets of one reference scheme live (a vault, a cloud secret manager...).

    Implement ``get_secret(name)``: it receives the text after ``scheme:`` (for
    ``api_key = "vault:prod/openai"``, ``"prod/openai"``) and returns the secret, a
    non-empty ``str`` or ``SecretStr``.

    Registering it: a distribution declares an entry point in the group
    ``aiport.secret_sources`` whose name is the scheme (lower-case letters, digits, ``+``,
    ``.`` or ``-``, starting with a letter; not ``env``, ``file`` or ``keyring``)::

        [project.entry-points."aiport.secret_sources"]
        vault = "aiport_vault:VaultSource"

    The object is a ``SecretSource``, a class of one (built once per resolver, without
    arguments) or a plain function ``name -> secret``. Plug-ins are listed the first time a
    value shaped like an unknown reference is met, and imported on first use. Without a
    distribution, ``SecretResolver.register(scheme, source)`` adds a scheme to one resolver.

    When it is called: lazily, the first time a provider needs the credential (not when the
    configuration is loaded), and again only after the provider refused the value it gave
    (a 401; for a key of ``api_keys`` also a 403 or an exhausted quota): a secret rotated
    at its source is read again then. Values are kept in memory in between: it is not
    called per request.

    Threads: it may block (network, disk); from async code aiport calls it in a worker
    thread, elsewhere (``validate_provider``, ``aiport config check``, a provider's first
    setup) on the calling thread. Calls for different references may run at once in
    different threads, so it must be thread-safe.

    Failures: it raises any exception. A :class:`~aiport.ProviderAuthError` reaches the
    caller as it is; anything else becomes one (reason ``"credentials_unresolved"``) naming
    the reference and the exception's type, never its message (which might quote a
    secret).
    """

    def get_secret(self, name: str) -> str | SecretStr:
        """The secret called ``name``."""
        ...


#: Lists the entry points of a group, like ``importlib.metadata.entry_points(group=...)``.
EntryPointsFunction = Callable[..., Iterable[Any]]


def discover_plugins(
    group: str,
    *,
    entry_points: EntryPointsFunction | None = None,
    valid_name: re.Pattern[str],
    reserved: AbstractSet[str] = frozenset(),
    kind: str,
) -> dict[str, Any]:
    """The entry points of ``group`` by name, listed without importing any of them.

    Secret-source plug-ins (``aiport.secret_sources``) and token-provider plug-ins
    (``aiport.token_providers``) are found this way. A name that ``valid_name`` does not
    match in full, or that is ``reserved`` (a built-in), is skipped with a warning naming
    ``kind``; of two entry points with one name the first listed is kept (with a warning).
    A failure to list (a broken distribution) is logged and finds nothing: it must not
    break every credential.

    Args:
        group: the entry-point group.
        entry_points: lists entry points instead of ``importlib.metadata.entry_points``
            (called as ``entry_points(group=...)``).
        valid_name: the form of a usable name.
        reserved: names no plug-in may take.
        kind: what a plug-in of the group is, for the log lines (``"secret source plug-in"``).
    """
    list_entry_points = entry_points
    if list_entry_points is None:
        from importlib.metadata import entry_points as metadata_entry_points

        list_entry_points = metadata_entry_points
    found: dict[str, Any] = {}
    try:
        candidates = list(list_entry_points(group=group))
    except Exception:  # a broken distribution must not break every credential
        logger.warning("could not list the %s entry points", group, exc_info=True)
        return found
    for entry_point in candidates:
        name = str(getattr(entry_point, "name", ""))
        if not valid_name.fullmatch(name) or name in reserved:
            logger.warning(
                "ignoring %s %r (entry-point group %s): not a valid name, or a built-in one",
                kind,
                name,
                group,
            )
            continue
        if name in found:
            logger.warning(
                "two %ss are named %r (entry-point group %s): using %s, ignoring %s",
                kind,
                name,
                group,
                getattr(found[name], "value", "?"),
                getattr(entry_point, "value", "?"),
            )
            continue
        found[name] = entry_point
    return found


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
        plugins: whether to look for secret-source plug-ins (the ``aiport.secret_sources``
            entry points); they are listed on the first value that needs them.
        entry_points: lists entry points instead of ``importlib.metadata.entry_points``
            (called as ``entry_points(group=...)``; for tests and frozen applications).

    Every failure raises :class:`~aiport.ProviderAuthError` with reason
    ``"credentials_unresolved"`` and a message naming the reference (never the secret).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
        plugins: bool = True,
        entry_points: EntryPointsFunction | None = None,
    ) -> None:
        self._env = env
        self._base_dir = base_dir
        self._resolvers: dict[str, Callable[[str], Any]] = {}
        self._plugins_enabled = plugins
        self._entry_points = entry_points
        # scheme -> entry point, found on first need; loaded (imported) on first use.
        self._plugins: dict[str, Any] | None = None
        self._loaded: dict[str, Callable[[str], Any]] = {}

    @property
    def env(self) -> Mapping[str, str]:
        """The environment ``env:`` references (and the keystore passphrase) are read from."""
        return os.environ if self._env is None else self._env

    @property
    def schemes(self) -> frozenset[str]:
        """Every scheme this resolver treats as a reference (built-in, plug-in, registered)."""
        return BUILTIN_SCHEMES | frozenset(self._resolvers) | frozenset(self._plugin_schemes())

    def register(self, scheme: str, resolve: Callable[[str], str] | SecretSource) -> None:
        """Resolve ``scheme:rest`` references by calling ``resolve(rest)``.

        ``scheme`` is lower case (``"keyring"``, ``"vault"``, ``"aws-sm"``); registering a
        built-in or plug-in scheme replaces it for this resolver only. ``resolve`` is a
        function or a :class:`SecretSource`; it returns the secret, or raises any exception
        when it cannot (the error is reported as a :class:`~aiport.ProviderAuthError` naming
        the reference).
        """
        if not _SCHEME_RE.fullmatch(scheme):
            raise ValueError(
                f"invalid secret scheme {scheme!r}: use lower-case letters, digits, '+', '.' "
                "or '-', starting with a letter"
            )
        self._resolvers[scheme] = _as_function(resolve)

    def is_reference(self, value: str) -> bool:
        """Whether ``value`` is a reference (``scheme:rest`` with a known scheme)."""
        return self._split(value) is not None

    def needs_io(self, value: SecretStr | str) -> bool:
        """Whether resolving ``value`` may block (keyring, plug-ins), unlike env and literals."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        parts = self._split(text)
        return parts is not None and (
            parts[0] in self._resolvers or parts[0] not in ("env", "file")
        )

    # -- plug-ins ---------------------------------------------------------------------------

    def _split(self, text: str) -> tuple[str, str] | None:
        parts = split_reference(text, BUILTIN_SCHEMES | frozenset(self._resolvers))
        if parts is not None:
            return parts
        scheme, sep, _ = text.partition(":")
        # Only a value shaped like a reference makes the resolver look for plug-ins.
        if sep and _SCHEME_RE.fullmatch(scheme):
            return split_reference(text, frozenset(self._plugin_schemes()))
        return None

    def _plugin_schemes(self) -> dict[str, Any]:
        if self._plugins is None:
            self._plugins = self._discover() if self._plugins_enabled else {}
        return self._plugins

    def _discover(self) -> dict[str, Any]:
        return discover_plugins(
            ENTRY_POINT_GROUP,
            entry_points=self._entry_points,
            valid_name=_SCHEME_RE,
            reserved=BUILTIN_SCHEMES,
            kind="secret source plug-in",
        )

    def _plugin(self, scheme: str, reference: str, what: str) -> Callable[[str], Any]:
        loaded = self._loaded.get(scheme)
        if loaded is not None:
            return loaded
        entry_point = self._plugin_schemes()[scheme]
        try:
            target = entry_point.load()
            if isinstance(target, type):
                target = target()
            loaded = _as_function(target)
        except Exception as exc:
            raise self._error(
                what,
                f"{reference}: the secret source plug-in for {scheme!r} "
                f"({getattr(entry_point, 'value', '?')}) cannot be loaded "
                f"({type(exc).__name__})",
            ) from exc
        self._loaded[scheme] = loaded
        return loaded

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
        parts = self._split(text)
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
        if custom is None and scheme not in BUILTIN_SCHEMES:
            custom = self._plugin(scheme, reference, what)
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
        return self._from_keyring(rest, reference, what)

    def _from_keyring(self, rest: str, reference: str, what: str) -> str:
        service, _, name = rest.strip().rpartition("/")
        if not service or not name:
            raise self._error(what, f"{reference}: write keyring references as SERVICE/NAME")
        from ._keystore import KeystoreError, KeystoreUnavailableError, lookup

        try:
            secret = lookup(service, name, env=self.env)
        except KeystoreUnavailableError as exc:
            raise self._error(
                what,
                f"{reference}: {exc} (keyring references read the OS keyring, supported "
                f"with: {_KEYRING_HINT}, or aiport's encrypted key file, written by "
                "`aiport keys set`)",
            ) from None
        except KeystoreError as exc:
            raise self._error(what, f"{reference}: {exc}") from None
        if secret is None:
            hint = f" (store it with: aiport keys set {name})" if service == "aiport" else ""
            raise self._error(what, f"{reference}: no such entry in the keystore{hint}")
        return secret

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


def _as_function(source: object) -> Callable[[str], Any]:
    """A ``name -> secret`` function from a :class:`SecretSource` or a function."""
    get_secret = getattr(source, "get_secret", None)
    if callable(get_secret):
        return get_secret  # type: ignore[no-any-return]
    if callable(source):
        return source
    raise TypeError("resolve must be callable, or a SecretSource with a get_secret method")
