"""Where ``aiport keys`` keeps API keys: the OS keyring, or an encrypted file.

Two stores hold ``(service, name) -> secret`` entries; ``aiport keys`` uses the service
``"aiport"`` and the provider's name, so ``aiport keys set openai`` is read back by the
reference ``keyring:aiport/openai`` (and by a provider called ``openai`` that has no
``api_key`` and no key in its standard environment variable).

:class:`KeyringStore`
    the operating system's keyring (macOS Keychain, Windows Credential Locker, the Secret
    Service on Linux desktops...) through the ``keyring`` package
    (``pip install 'aiport[keyring]'``).
:class:`EncryptedFileStore`
    for machines without one (headless servers, CI, containers): one file, mode 0600,
    encrypted with AES-256-GCM under a key derived by scrypt from a passphrase
    (``AIPORT_KEYSTORE_PASSPHRASE``, or a prompt from ``aiport keys``). Entry names are
    encrypted too; the header (format, KDF parameters, salt) is authenticated.

Which store is used: ``AIPORT_KEYSTORE`` = ``keyring``, ``file`` or ``auto`` (default:
the OS keyring when a usable backend exists, else the file). A keyring backend is usable
when it is a real one: not ``keyring.backends.fail.Keyring``, not an empty chainer, and
recommended by ``keyring`` (priority >= 1) unless chosen explicitly with
``PYTHON_KEYRING_BACKEND`` or keyring's own configuration file (the plain-text file backends
of ``keyrings.alt`` are never picked on their own). The file lives at
``AIPORT_KEYSTORE_PATH``, else ``keys.enc`` in aiport's directory of the user's data
directory (``$XDG_DATA_HOME/aiport``, ``~/.local/share/aiport``, ``~/Library/Application
Support/aiport``, ``%APPDATA%\\aiport``).

Nothing here prompts on its own: prompts are the caller's (``passphrase`` callables).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = [
    "PASSPHRASE_ENV",
    "PATH_ENV",
    "SERVICE",
    "STORE_ENV",
    "EncryptedFileStore",
    "KeyStore",
    "KeyringStore",
    "KeystoreError",
    "KeystoreUnavailableError",
    "WrongPassphraseError",
    "keystore_path",
    "lookup",
    "open_keystore",
    "os_keyring",
]

#: The keyring service of the keys ``aiport keys`` stores.
SERVICE = "aiport"
#: The variable holding the passphrase of the encrypted file store.
PASSPHRASE_ENV = "AIPORT_KEYSTORE_PASSPHRASE"  # noqa: S105 (a variable name)
#: The variable choosing the store: ``auto`` (default), ``keyring`` or ``file``.
STORE_ENV = "AIPORT_KEYSTORE"
#: The variable naming the encrypted file (default: see :func:`keystore_path`).
PATH_ENV = "AIPORT_KEYSTORE_PATH"

StoreKind = Literal["auto", "keyring", "file"]
#: A passphrase, or a function giving one (its argument: whether the file is being created,
#: so a prompt can ask for a confirmation).
Passphrase = str | Callable[[bool], str]

_INDEX = ":index"  # the keyring entry listing a service's names (':' is never in a name)
_FORMAT = "aiport-keystore"
_VERSION = 1
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_BYTES = 32
_NONCE_BYTES = 12
_SALT_BYTES = 16
_INSTALL_HINT = "pip install 'aiport[keyring]'"

logger = logging.getLogger("aiport")


class KeystoreError(Exception):
    """A keystore cannot be used; the message says why (and never holds a secret)."""


class KeystoreUnavailableError(KeystoreError):
    """No store exists here: no usable OS keyring, and no encrypted file (or no support)."""


class WrongPassphraseError(KeystoreError):
    """The encrypted file does not open with the passphrase given."""


class KeyStore(Protocol):
    """Secrets by (service, name)."""

    #: ``"keyring"`` or ``"file"``.
    kind: str
    #: Where the secrets are, for people (``"OS keyring (SecretService)"``, a file path).
    description: str

    def get(self, name: str, *, service: str = SERVICE) -> str | None:
        """The secret, or ``None`` when there is none."""
        ...

    def set(self, name: str, secret: str, *, service: str = SERVICE) -> None:
        """Store (or replace) a secret."""
        ...

    def delete(self, name: str, *, service: str = SERVICE) -> bool:
        """Remove a secret; whether there was one."""
        ...

    def names(self, *, service: str = SERVICE) -> list[str]:
        """The names stored for ``service``, sorted."""
        ...


# ---------------------------------------------------------------------- the OS keyring


def os_keyring(env: Mapping[str, str] | None = None) -> Any | None:
    """The usable OS keyring backend, or ``None`` (``keyring`` missing, or no real backend).

    ``PYTHON_KEYRING_BACKEND`` (read from ``env``) and keyring's configuration file choose a
    backend explicitly; an explicit choice is used even when keyring does not recommend it
    (the ``keyrings.alt`` file backends, in tests).
    """
    environ = os.environ if env is None else env
    try:
        import keyring
        import keyring.core
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    explicit = True
    name = environ.get("PYTHON_KEYRING_BACKEND")
    try:
        if name:
            backend: Any = keyring.core.load_keyring(name)
        else:
            backend = keyring.core.load_config()
            if backend is None:
                explicit = False
                backend = keyring.get_keyring()
    except Exception as exc:
        raise KeystoreError(
            f"the keyring backend cannot be loaded ({type(exc).__name__}); "
            "check PYTHON_KEYRING_BACKEND or keyring's configuration file"
        ) from None
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not list(backend.backends):
        return None
    if not explicit and not keyring.core.recommended(backend):
        return None
    return backend


class KeyringStore:
    """Secrets in the operating system's keyring (``keyring`` backend given or detected)."""

    kind = "keyring"

    def __init__(self, backend: Any = None, *, env: Mapping[str, str] | None = None) -> None:
        if backend is None:
            backend = os_keyring(env)
            if backend is None:
                raise KeystoreUnavailableError(
                    "no usable OS keyring backend here "
                    f"(install one with: {_INSTALL_HINT}, or use the encrypted file store)"
                )
        self._backend = backend
        self.description = f"OS keyring ({_backend_name(backend)})"

    def get(self, name: str, *, service: str = SERVICE) -> str | None:
        value = self._call("read", self._backend.get_password, service, name)
        return value if isinstance(value, str) and value else None

    def set(self, name: str, secret: str, *, service: str = SERVICE) -> None:
        _check_name(name)
        self._call("write", self._backend.set_password, service, name, secret)
        self._update_index(service, add=name)

    def delete(self, name: str, *, service: str = SERVICE) -> bool:
        _check_name(name)
        existed = self.get(name, service=service) is not None
        if existed:
            from keyring.errors import PasswordDeleteError

            # Missing after all (removed meanwhile): nothing left to delete.
            with contextlib.suppress(PasswordDeleteError):
                self._call("delete", self._backend.delete_password, service, name)
        self._update_index(service, remove=name)
        return existed

    def names(self, *, service: str = SERVICE) -> list[str]:
        return sorted(n for n in self._index(service) if self.get(n, service=service))

    def _index(self, service: str) -> list[str]:
        raw = self._call("read", self._backend.get_password, service, _INDEX)
        if not raw:
            return []
        try:
            names = json.loads(raw)
        except ValueError:
            return []
        return sorted({n for n in names if isinstance(n, str)}) if isinstance(names, list) else []

    def _update_index(self, service: str, *, add: str = "", remove: str = "") -> None:
        before = self._index(service)
        names = sorted({*before, *([add] if add else [])} - {remove})
        if names != before:
            self._call("write", self._backend.set_password, service, _INDEX, json.dumps(names))

    def _call(self, action: str, function: Callable[..., Any], *args: str) -> Any:
        from keyring.errors import PasswordDeleteError

        try:
            return function(*args)
        except PasswordDeleteError:
            raise
        except Exception as exc:
            # The backend's message may quote what it was given: report its type only.
            raise KeystoreError(
                f"the OS keyring ({_backend_name(self._backend)}) could not {action} the entry "
                f"({type(exc).__name__})"
            ) from None

    def __repr__(self) -> str:
        return f"<KeyringStore {self.description}>"


def _backend_name(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------- the encrypted file


def keystore_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the encrypted file store lives (see the module documentation)."""
    environ = os.environ if env is None else env
    explicit = environ.get(PATH_ENV)
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        base = Path(environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":  # pragma: no cover - exercised on macOS only
        base = Path.home() / "Library" / "Application Support"
    else:
        data_home = environ.get("XDG_DATA_HOME")
        base = Path(data_home) if data_home else Path.home() / ".local" / "share"
    return base / "aiport" / "keys.enc"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


class EncryptedFileStore:
    """Secrets in one encrypted file (AES-256-GCM, scrypt-derived key, mode 0600).

    Args:
        path: the file (created with its directory, mode 0700, on the first ``set``).
        passphrase: the passphrase, or a function giving it (called with ``True`` when the
            file is about to be created); ``None`` reads ``AIPORT_KEYSTORE_PASSPHRASE``
            from ``env``.
        env: the environment to read the passphrase from (default ``os.environ``).

    Every operation reads the file afresh (another process may have changed it); writes
    are atomic (a temporary file renamed over the old one) and serialised across processes
    by a lock file beside it.
    """

    kind = "file"

    def __init__(
        self,
        path: Path | None = None,
        *,
        passphrase: Passphrase | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        _require_cryptography()
        self._env = os.environ if env is None else env
        self.path = path if path is not None else keystore_path(self._env)
        self._passphrase = passphrase
        self._secret: str | None = None
        self._keys: dict[tuple[bytes, int, int, int], bytes] = {}
        self.description = f"encrypted file {self.path}"

    @property
    def exists(self) -> bool:
        """Whether the file exists yet."""
        return self.path.is_file()

    # -- the operations ----------------------------------------------------------------

    def get(self, name: str, *, service: str = SERVICE) -> str | None:
        entries = self._read()
        value = entries.get(service, {}).get(name)
        return value if isinstance(value, str) and value else None

    def set(self, name: str, secret: str, *, service: str = SERVICE) -> None:
        _check_name(name)
        if not secret:
            raise KeystoreError("refusing to store an empty secret")
        with self._locked():
            entries = self._read()
            entries.setdefault(service, {})[name] = secret
            self._write(entries)

    def delete(self, name: str, *, service: str = SERVICE) -> bool:
        _check_name(name)
        if not self.exists:
            return False
        with self._locked():
            entries = self._read()
            table = entries.get(service, {})
            if name not in table:
                return False
            del table[name]
            if not table:
                entries.pop(service, None)
            self._write(entries)
        return True

    def names(self, *, service: str = SERVICE) -> list[str]:
        return sorted(self._read().get(service, {}))

    # -- the file ----------------------------------------------------------------------

    def _get_passphrase(self, creating: bool) -> str:
        if self._secret is not None:
            return self._secret
        source = self._passphrase
        if source is None:
            value = self._env.get(PASSPHRASE_ENV)
            if not value:
                raise KeystoreError(
                    f"the encrypted key file {self.path} needs a passphrase: set "
                    f"{PASSPHRASE_ENV}"
                    + (" or run `aiport keys` in a terminal" if not creating else "")
                )
        elif isinstance(source, str):
            value = source
        else:
            value = source(creating)
        if not value:
            raise KeystoreError("the keystore passphrase must not be empty")
        self._secret = value
        return value

    def _key(self, salt: bytes, n: int, r: int, p: int, creating: bool) -> bytes:
        cached = self._keys.get((salt, n, r, p))
        if cached is not None:
            return cached
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        passphrase = self._get_passphrase(creating)
        key = Scrypt(salt=salt, length=_KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode())
        self._keys[(salt, n, r, p)] = key
        return key

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise KeystoreError(
                f"cannot read the key file {self.path}: {exc.strerror or type(exc).__name__}"
            ) from None
        self._warn_if_exposed()
        try:
            header, salt, nonce, ciphertext = _parse_document(raw)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(
                f"the key file {self.path} is not an aiport keystore (or is damaged)"
            ) from None
        kdf = header["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._key(salt, n, r, p, creating=False)
        try:
            plain = AESGCM(key).decrypt(nonce, ciphertext, _aad(header))
        except InvalidTag:
            self._secret = None
            self._keys.clear()
            raise WrongPassphraseError(
                f"cannot open the key file {self.path}: wrong passphrase, or the file was modified"
            ) from None
        data = json.loads(plain)
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise KeystoreError(f"the key file {self.path} holds no entries table")
        return {
            str(service): {str(k): str(v) for k, v in table.items()}
            for service, table in entries.items()
            if isinstance(table, dict)
        }

    def _write(self, entries: dict[str, dict[str, str]]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        creating = not self.exists
        salt = secrets.token_bytes(_SALT_BYTES)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "cipher": "AES-256-GCM",
            "kdf": {
                "name": "scrypt",
                "salt": _b64(salt),
                "n": _SCRYPT_N,
                "r": _SCRYPT_R,
                "p": _SCRYPT_P,
            },
        }
        key = self._key(salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, creating=creating)
        plain = json.dumps({"entries": entries}, separators=(",", ":")).encode()
        data = AESGCM(key).encrypt(nonce, plain, _aad(header))
        document = {"header": header, "nonce": _b64(nonce), "data": _b64(data)}
        payload = json.dumps(document, indent=1).encode() + b"\n"
        self._make_directory()
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)  # an older file may have had wider permissions

    def _make_directory(self) -> None:
        directory = self.path.parent
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._make_directory()
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: single-writer by convention
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _warn_if_exposed(self) -> None:
        if os.name != "posix":  # pragma: no cover
            return
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & 0o077:
                logger.warning(
                    "the key file %s can be read by other users (mode %o): run chmod 600 on it",
                    self.path,
                    mode,
                )

    def __repr__(self) -> str:
        return f"<EncryptedFileStore {self.path}>"


def _parse_document(raw: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """The header, salt, nonce and ciphertext of a key file (``ValueError`` if malformed)."""
    document = json.loads(raw)
    header = document["header"]
    if header.get("format") != _FORMAT or header.get("version") != _VERSION:
        raise ValueError("unknown format")
    kdf = header["kdf"]
    n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    if kdf.get("name") != "scrypt" or not (
        2**10 <= n <= 2**22 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
    ):
        raise ValueError("unsupported key derivation")
    return header, _unb64(kdf["salt"]), _unb64(document["nonce"]), _unb64(document["data"])


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _check_name(name: str) -> None:
    if not name or ":" in name or any(c.isspace() for c in name):
        raise KeystoreError(
            f"invalid entry name {name!r}: use a provider name (letters, digits, '_', '.', '-')"
        )


def _has_cryptography() -> bool:
    try:
        import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    except ImportError:
        return False
    return True


def _require_cryptography() -> None:
    if not _has_cryptography():
        raise KeystoreUnavailableError(
            f"the encrypted key file needs the cryptography package: {_INSTALL_HINT}"
        )


# ---------------------------------------------------------------------- choosing a store


def open_keystore(
    kind: StoreKind | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    passphrase: Passphrase | None = None,
    path: Path | None = None,
) -> KeyringStore | EncryptedFileStore:
    """The store ``aiport keys`` uses.

    ``kind`` (default: ``AIPORT_KEYSTORE``, else ``auto``): ``keyring`` requires a usable OS
    keyring, ``file`` the encrypted file, ``auto`` takes the OS keyring when there is a
    usable one, else the file.

    Raises:
        KeystoreUnavailableError: the store asked for cannot exist here (a hint says what to
            install).
        KeystoreError: ``kind`` is not a known store, or the keyring backend is broken.
    """
    environ = os.environ if env is None else env
    chosen = (kind or environ.get(STORE_ENV) or "auto").strip().lower()
    if chosen not in ("auto", "keyring", "file"):
        raise KeystoreError(f"unknown keystore {chosen!r}: use 'auto', 'keyring' or 'file'")
    if chosen in ("auto", "keyring"):
        backend = os_keyring(environ)
        if backend is not None:
            return KeyringStore(backend)
        if chosen == "keyring":
            raise KeystoreUnavailableError(
                "no usable OS keyring backend here (headless session?); "
                f"install keyring support with: {_INSTALL_HINT}, or use the encrypted file "
                f"store ({STORE_ENV}=file)"
            )
    if not _has_cryptography():
        raise KeystoreUnavailableError(
            "no OS keyring backend is usable here and the encrypted key file needs the "
            f"cryptography package: {_INSTALL_HINT}"
        )
    return EncryptedFileStore(path, passphrase=passphrase, env=environ)


def lookup(service: str, name: str, *, env: Mapping[str, str] | None = None) -> str | None:
    """The secret a ``keyring:SERVICE/NAME`` reference stands for, or ``None``.

    Never prompts: the OS keyring is read when usable (and ``AIPORT_KEYSTORE`` is not
    ``file``), then the encrypted file when it exists (and ``AIPORT_KEYSTORE`` is not
    ``keyring``), unlocked with ``AIPORT_KEYSTORE_PASSPHRASE``.

    Raises:
        KeystoreUnavailableError: neither store exists here.
        KeystoreError: a store exists but cannot be read (no passphrase, wrong one...).
    """
    environ = os.environ if env is None else env
    chosen = (environ.get(STORE_ENV) or "auto").strip().lower()
    backend = os_keyring(environ) if chosen != "file" else None
    if backend is not None:
        value = KeyringStore(backend).get(name, service=service)
        if value is not None:
            return value
    path = keystore_path(environ)
    if chosen != "keyring" and path.is_file():
        return EncryptedFileStore(path, env=environ).get(name, service=service)
    if backend is None:
        raise KeystoreUnavailableError(
            "no usable OS keyring backend here and no aiport key file at " + str(path)
        )
    return None
