"""``aiport keys``: store provider API keys in the OS keyring, or in an encrypted file.

Keys are stored under the keyring service ``aiport`` with the provider's name, so a
provider reads them back as ``api_key = "keyring:aiport/NAME"`` (or on its own, when it has
no ``api_key`` and its standard variable such as ``OPENAI_API_KEY`` is unset). A key never
comes from the command line itself (it would stay in the shell history and be visible in the
process list): ``set`` reads it from a hidden prompt, from stdin when piped, or from an
environment variable named with ``--from-env``.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from aiport.cli._output import Output, table

if TYPE_CHECKING:
    from aiport._keystore import EncryptedFileStore, KeyringStore

__all__ = ["keys_app"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_ERROR_CODE = "KEYSTORE_ERROR"


def _examples(*lines: str) -> str:
    return "**Examples**\n\n```\n" + "\n".join(lines) + "\n```"


keys_app = typer.Typer(
    help="Store provider API keys in the OS keyring (or, where there is none, in an "
    "encrypted file). Providers read them as keyring:aiport/NAME.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    epilog=_examples(
        "aiport keys set openai                      # hidden prompt",
        "pass show openai | aiport keys set openai   # from stdin",
        "aiport keys set openai --from-env OPENAI_API_KEY",
        "aiport keys get openai",
        "aiport keys list",
        "aiport keys delete openai",
    ),
)

ProviderArgument = Annotated[
    str, typer.Argument(metavar="PROVIDER", help="The provider's name, as in the configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="STORE",
        help="'keyring', 'file' or 'auto' (default: $AIPORT_KEYSTORE, else the OS keyring "
        "when one is usable, else the encrypted file).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout (same as the global --json)."),
]


def _output(ctx: typer.Context, json_mode: bool) -> Output:
    return Output(json_mode=json_mode or bool(getattr(ctx.obj, "json", False)))


def _fail(out: Output, message: str) -> NoReturn:
    if out.json_mode:
        out.json({"error": {"code": _ERROR_CODE, "message": message}})
    sys.stderr.write(f"error: {_ERROR_CODE}: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(1)


def _check_provider(out: Output, provider: str) -> None:
    if not _NAME_RE.fullmatch(provider):
        _fail(
            out,
            f"invalid provider name {provider!r}: use letters, digits, '_', '.' and '-'",
        )


def mask(key: str) -> str:
    """``****`` and the last four characters (only ``****`` for keys under 12 characters)."""
    return "****" + key[-4:] if len(key) >= 12 else "****"


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _prompt_passphrase(creating: bool) -> str:
    if creating:
        sys.stderr.write(
            "Creating an encrypted key file: choose a passphrase (set "
            "AIPORT_KEYSTORE_PASSPHRASE to skip this prompt next time).\n"
        )
    first = getpass.getpass("Keystore passphrase: ")
    if creating:
        again = getpass.getpass("Repeat the passphrase: ")
        if again != first:
            from aiport._keystore import KeystoreError

            raise KeystoreError("the two passphrases differ")
    return first


def _open(out: Output, store: str | None) -> KeyringStore | EncryptedFileStore:
    from aiport._keystore import PASSPHRASE_ENV, KeystoreError, open_keystore

    prompt = None if os.environ.get(PASSPHRASE_ENV) or not _interactive() else _prompt_passphrase
    try:
        return open_keystore(store, passphrase=prompt)
    except KeystoreError as exc:
        _fail(out, str(exc))


def _where(keystore: KeyringStore | EncryptedFileStore) -> dict[str, Any]:
    return {"store": keystore.kind, "location": keystore.description}


def _read_key(out: Output, provider: str, from_env: str | None) -> str:
    if from_env is not None:
        value = os.environ.get(from_env, "")
        if not value:
            _fail(out, f"the environment variable {from_env} is not set or empty")
    elif _interactive():
        value = getpass.getpass(f"API key of {provider} (hidden): ")
    else:
        value = sys.stdin.read() if sys.stdin is not None else ""
    value = value.strip()
    if not value:
        _fail(out, "no key given (the prompt or stdin was empty)")
    if any(c.isspace() or ord(c) < 32 for c in value):
        _fail(out, "the key contains whitespace or control characters: check what was pasted")
    return value


@keys_app.command("set")
def set_key(
    ctx: typer.Context,
    *,
    provider: ProviderArgument,
    from_env: Annotated[
        str | None,
        typer.Option(
            "--from-env",
            metavar="VAR",
            help="Copy the key from this environment variable instead of prompting.",
        ),
    ] = None,
    store: StoreOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Store (or replace) the API key of PROVIDER.

    The key is read from a hidden prompt, or from stdin when it is piped, never from the
    command line. Without an OS keyring the encrypted file is used; its passphrase comes
    from AIPORT_KEYSTORE_PASSPHRASE or a prompt.
    """
    from aiport._keystore import KeystoreError

    out = _output(ctx, json_mode)
    _check_provider(out, provider)
    key = _read_key(out, provider, from_env)
    keystore = _open(out, store)
    try:
        keystore.set(provider, key)
    except KeystoreError as exc:
        _fail(out, str(exc))
    if out.json_mode:
        out.json({"provider": provider, "key": mask(key), **_where(keystore)})
        return
    out.text(f"stored the key of {provider!r} ({mask(key)}) in the {keystore.description}")
    out.info(f'Providers read it as api_key = "keyring:aiport/{provider}".')


@keys_app.command("get")
def get_key(
    ctx: typer.Context,
    *,
    provider: ProviderArgument,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Print the whole key instead of a masked one.")
    ] = False,
    store: StoreOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show the stored key of PROVIDER, masked (the last four characters) unless --reveal."""
    from aiport._keystore import KeystoreError

    out = _output(ctx, json_mode)
    _check_provider(out, provider)
    keystore = _open(out, store)
    try:
        key = keystore.get(provider)
    except KeystoreError as exc:
        _fail(out, str(exc))
    if key is None:
        _fail(out, f"no key is stored for {provider!r} in the {keystore.description}")
    shown = key if reveal else mask(key)
    if out.json_mode:
        out.json({"provider": provider, "key": shown, **_where(keystore)})
        return
    out.text(shown)


@keys_app.command("list")
def list_keys(
    ctx: typer.Context,
    *,
    store: StoreOption = None,
    json_mode: JsonOption = False,
) -> None:
    """List the providers that have a stored key (keys masked)."""
    from aiport._keystore import KeystoreError

    out = _output(ctx, json_mode)
    keystore = _open(out, store)
    try:
        rows = [(name, keystore.get(name)) for name in keystore.names()]
    except KeystoreError as exc:
        _fail(out, str(exc))
    entries = [{"provider": name, "key": mask(key)} for name, key in rows if key]
    if out.json_mode:
        out.json({"keys": entries, **_where(keystore)})
        return
    if not entries:
        out.info(f"No keys stored in the {keystore.description}.")
        return
    out.print(table(None, ["provider", "key"], [[e["provider"], e["key"]] for e in entries]))
    out.info(f"in the {keystore.description}")


@keys_app.command("delete")
def delete_key(
    ctx: typer.Context,
    *,
    provider: ProviderArgument,
    store: StoreOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Delete the stored key of PROVIDER (exit code 1 when there is none)."""
    from aiport._keystore import KeystoreError

    out = _output(ctx, json_mode)
    _check_provider(out, provider)
    keystore = _open(out, store)
    try:
        deleted = keystore.delete(provider)
    except KeystoreError as exc:
        _fail(out, str(exc))
    if not deleted:
        _fail(out, f"no key is stored for {provider!r} in the {keystore.description}")
    if out.json_mode:
        out.json({"provider": provider, "deleted": True, **_where(keystore)})
        return
    out.text(f"deleted the key of {provider!r} from the {keystore.description}")
