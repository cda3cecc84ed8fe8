"""The keystore: the OS keyring (a real keyrings.alt backend), the encrypted file, `aiport keys`."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from aiport import ProviderService
from aiport._config import AgentConfig
from aiport._errors import ProviderAuthError
from aiport._keystore import (
    EncryptedFileStore,
    KeyringStore,
    KeystoreError,
    KeystoreUnavailableError,
    WrongPassphraseError,
    keystore_path,
    lookup,
    open_keystore,
    os_keyring,
)
from aiport.cli._app import app
from aiport.testing import Emulator

from .conftest import CANARY, assert_no_leak

pytest.importorskip("cryptography")
keyring = pytest.importorskip("keyring")

PASSPHRASE = "correct horse battery staple"


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=env)


def file_env(tmp_path: Path) -> dict[str, str]:
    return {
        "AIPORT_KEYSTORE": "file",
        "AIPORT_KEYSTORE_PATH": str(tmp_path / "store" / "keys.enc"),
        "AIPORT_KEYSTORE_PASSPHRASE": PASSPHRASE,
    }


# -- choosing the OS keyring ----------------------------------------------------------------


def test_no_usable_backend_means_no_os_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import chainer, fail
    from keyrings.alt.file import PlaintextKeyring

    monkeypatch.setattr(keyring, "get_keyring", fail.Keyring)
    assert os_keyring() is None
    # A plain-text file backend is never picked on its own (keyring does not recommend it)...
    monkeypatch.setattr(keyring, "get_keyring", PlaintextKeyring)
    assert os_keyring() is None
    # ...and a chainer with nothing to chain is no keyring either.
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    monkeypatch.setattr(keyring, "get_keyring", chainer.ChainerBackend)
    assert os_keyring() is None


def test_an_explicit_backend_is_used(plaintext_keyring: str) -> None:
    backend = os_keyring()
    assert type(backend).__name__ == "PlaintextKeyring"
    assert isinstance(open_keystore(), KeyringStore)


def test_a_broken_backend_name_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no.such.Backend")
    with pytest.raises(KeystoreError, match="PYTHON_KEYRING_BACKEND"):
        os_keyring()


def test_without_the_keyring_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)
    assert os_keyring() is None
    assert isinstance(open_keystore(), EncryptedFileStore)
    with pytest.raises(KeystoreUnavailableError, match=r"aiport\[keyring\]"):
        open_keystore("keyring")


def test_unknown_store_kind() -> None:
    with pytest.raises(KeystoreError, match="unknown keystore"):
        open_keystore("vault")


def test_without_cryptography_there_is_no_file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiport._keystore as ks

    monkeypatch.setattr(ks, "_has_cryptography", lambda: False)
    with pytest.raises(KeystoreUnavailableError, match="cryptography"):
        open_keystore("file")
    with pytest.raises(KeystoreUnavailableError, match="cryptography"):
        EncryptedFileStore(Path("x"))


# -- the OS keyring store ------------------------------------------------------------------


def test_keyring_store_round_trip(plaintext_keyring: str, isolated_keystore: Path) -> None:
    store = open_keystore("keyring")
    assert isinstance(store, KeyringStore)
    assert "PlaintextKeyring" in store.description
    assert store.get("openai") is None
    store.set("openai", CANARY)
    store.set("anthropic", "second-key-0123456789")
    assert store.get("openai") == CANARY
    assert store.names() == ["anthropic", "openai"]
    assert store.delete("openai") is True
    assert store.delete("openai") is False
    assert store.names() == ["anthropic"]
    # The keyring itself, read by anyone else, has the entry under service "aiport".
    backend = keyring.core.load_keyring(plaintext_keyring)
    assert backend.get_password("aiport", "anthropic") == "second-key-0123456789"
    assert CANARY not in repr(store)


def test_keyring_errors_do_not_quote_the_backend(plaintext_keyring: str) -> None:
    class Exploding:
        def get_password(self, service: str, name: str) -> str:
            raise RuntimeError(f"backend says {CANARY}")

    store = KeyringStore(Exploding())
    with pytest.raises(KeystoreError) as caught:
        store.get("openai")
    assert "RuntimeError" in str(caught.value)
    assert_no_leak([str(caught.value)], "keyring error")


# -- the encrypted file store --------------------------------------------------------------


def test_encrypted_file_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "keys.enc"
    store = EncryptedFileStore(path, passphrase=PASSPHRASE)
    assert not store.exists
    assert store.get("openai") is None
    assert store.names() == []
    store.set("openai", CANARY)
    store.set("openai", CANARY)  # replacing is fine
    store.set("anthropic", "another-key-abcdef")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    for visible in (CANARY.encode(), b"anthropic", b"openai", PASSPHRASE.encode()):
        assert visible not in raw  # secrets and even entry names are encrypted
    assert json.loads(raw)["header"]["kdf"]["name"] == "scrypt"

    again = EncryptedFileStore(path, passphrase=PASSPHRASE)
    assert again.get("openai") == CANARY
    assert again.names() == ["anthropic", "openai"]
    assert again.delete("anthropic") is True
    assert again.delete("anthropic") is False
    assert EncryptedFileStore(path, passphrase=PASSPHRASE).names() == ["openai"]


def test_wrong_passphrase_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "keys.enc"
    EncryptedFileStore(path, passphrase=PASSPHRASE).set("openai", CANARY)
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        EncryptedFileStore(path, passphrase="not it").get("openai")

    document = json.loads(path.read_text())
    document["header"]["cipher"] = "AES-256-GCM "  # the header is authenticated
    path.write_text(json.dumps(document))
    with pytest.raises(WrongPassphraseError):
        EncryptedFileStore(path, passphrase=PASSPHRASE).get("openai")

    path.write_text("not a keystore")
    with pytest.raises(KeystoreError, match="not an aiport keystore"):
        EncryptedFileStore(path, passphrase=PASSPHRASE).get("openai")
    document["header"]["kdf"]["n"] = 3  # not a power of two: refused before any work
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreError, match="not an aiport keystore"):
        EncryptedFileStore(path, passphrase=PASSPHRASE).get("openai")


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keys.enc"
    with pytest.raises(KeystoreError, match="AIPORT_KEYSTORE_PASSPHRASE"):
        EncryptedFileStore(path).set("openai", CANARY)
    asked: list[bool] = []

    def prompt(creating: bool) -> str:
        asked.append(creating)
        return PASSPHRASE

    EncryptedFileStore(path, passphrase=prompt).set("openai", CANARY)
    assert asked == [True]  # asked once, knowing the file is being created
    monkeypatch.setenv("AIPORT_KEYSTORE_PASSPHRASE", PASSPHRASE)
    assert EncryptedFileStore(path).get("openai") == CANARY
    with pytest.raises(KeystoreError, match="must not be empty"):
        EncryptedFileStore(path, passphrase="").get("openai")
    with pytest.raises(KeystoreError, match="empty secret"):
        EncryptedFileStore(path, passphrase=PASSPHRASE).set("openai", "")
    with pytest.raises(KeystoreError, match="invalid entry name"):
        EncryptedFileStore(path, passphrase=PASSPHRASE).set("a:b", "x")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.enc"
    errors: list[BaseException] = []

    def write(name: str) -> None:
        try:
            EncryptedFileStore(path, passphrase=PASSPHRASE).set(name, f"key-of-{name}-0123")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"p{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert EncryptedFileStore(path, passphrase=PASSPHRASE).names() == ["p0", "p1", "p2", "p3"]


def test_default_path_follows_xdg(isolated_keystore: Path) -> None:
    assert keystore_path() == isolated_keystore / "aiport" / "keys.enc"
    assert keystore_path({"AIPORT_KEYSTORE_PATH": "/x/y.enc"}) == Path("/x/y.enc")


# -- lookup (what keyring: references read) ------------------------------------------------


def test_lookup_reads_the_keyring_then_the_file(plaintext_keyring: str, tmp_path: Path) -> None:
    env = {**os.environ, **file_env(tmp_path)}
    del env["AIPORT_KEYSTORE"]
    EncryptedFileStore(Path(env["AIPORT_KEYSTORE_PATH"]), env=env).set("openai", "from-file-key")
    assert lookup("aiport", "openai", env=env) == "from-file-key"
    open_keystore("keyring", env=env).set("openai", CANARY)
    assert lookup("aiport", "openai", env=env) == CANARY  # the OS keyring first
    assert lookup("aiport", "openai", env={**env, "AIPORT_KEYSTORE": "file"}) == "from-file-key"
    assert lookup("aiport", "nobody", env=env) is None
    without_passphrase = {k: v for k, v in env.items() if k != "AIPORT_KEYSTORE_PASSPHRASE"}
    with pytest.raises(KeystoreError, match="AIPORT_KEYSTORE_PASSPHRASE"):
        lookup("aiport", "nobody", env=without_passphrase)


def test_lookup_without_any_store() -> None:
    with pytest.raises(KeystoreUnavailableError, match="no aiport key file"):
        lookup("aiport", "openai")
    with pytest.raises(KeystoreUnavailableError):
        lookup("aiport", "openai", env={"AIPORT_KEYSTORE": "keyring"})


# -- aiport keys ---------------------------------------------------------------------------


def test_keys_commands_with_the_os_keyring(plaintext_keyring: str) -> None:
    stored = invoke("keys", "set", "openai", input=CANARY + "\n")
    assert stored.exit_code == 0, stored.output
    assert "PlaintextKeyring" in stored.stdout
    assert "****" + CANARY[-4:] in stored.stdout
    masked = invoke("keys", "get", "openai")
    assert masked.stdout.strip() == "****" + CANARY[-4:]
    revealed = invoke("keys", "get", "openai", "--reveal")
    assert revealed.stdout.strip() == CANARY
    document = json.loads(invoke("--json", "keys", "get", "openai").stdout)
    assert document == {
        "provider": "openai",
        "key": "****" + CANARY[-4:],
        "store": "keyring",
        "location": document["location"],
    }
    listing = json.loads(invoke("keys", "list", "--json").stdout)
    assert listing["keys"] == [{"provider": "openai", "key": "****" + CANARY[-4:]}]
    table = invoke("keys", "list")
    assert "openai" in table.stdout
    for result in (stored, masked, table):
        assert_no_leak([result.output], "aiport keys output")
    deleted = invoke("keys", "delete", "openai")
    assert deleted.exit_code == 0
    again = invoke("keys", "delete", "openai")
    assert again.exit_code == 1
    assert again.stderr.startswith("error: KEYSTORE_ERROR: no key is stored for 'openai'")
    missing = invoke("keys", "get", "openai", "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "KEYSTORE_ERROR"
    empty = invoke("keys", "list")
    assert "No keys stored" in empty.stderr


def test_keys_set_never_takes_the_key_from_argv(plaintext_keyring: str) -> None:
    result = invoke("keys", "set", "openai", CANARY)
    assert result.exit_code == 2  # an unexpected extra argument
    from_env = invoke("keys", "set", "openai", "--from-env", "MY_KEY", env={"MY_KEY": CANARY})
    assert from_env.exit_code == 0, from_env.output
    assert invoke("keys", "get", "openai", "--reveal").stdout.strip() == CANARY
    unset = invoke("keys", "set", "openai", "--from-env", "NOT_SET_ANYWHERE")
    assert unset.exit_code == 1
    assert "NOT_SET_ANYWHERE is not set" in unset.stderr
    assert invoke("keys", "set", "openai", input="\n").exit_code == 1
    spaced = invoke("keys", "set", "openai", input="two words\n")
    assert "whitespace" in spaced.stderr
    bad = invoke("keys", "set", "open ai", input=CANARY)
    assert "invalid provider name" in bad.stderr


def test_keys_store_option_and_unavailable_keyring(tmp_path: Path) -> None:
    result = invoke("keys", "list", "--store", "keyring")
    assert result.exit_code == 1
    assert "no usable OS keyring" in result.stderr
    env = file_env(tmp_path)
    env.pop("AIPORT_KEYSTORE")
    stored = invoke("keys", "set", "openai", "--store", "file", input=CANARY, env=env)
    assert stored.exit_code == 0, stored.output
    assert "encrypted file" in stored.stdout
    wrong = invoke(
        "keys", "get", "openai", "--store", "file",
        env={**env, "AIPORT_KEYSTORE_PASSPHRASE": "wrong"},
    )  # fmt: skip
    assert wrong.exit_code == 1
    assert "wrong passphrase" in wrong.stderr


def test_the_encrypted_store_round_trips_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, **file_env(tmp_path)}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    stored = run("-m", "aiport.cli", "keys", "set", "openai", stdin=CANARY + "\n")
    assert stored.returncode == 0, stored.stderr
    path = Path(env["AIPORT_KEYSTORE_PATH"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    revealed = run("-m", "aiport.cli", "keys", "get", "openai", "--reveal")
    assert revealed.returncode == 0, revealed.stderr
    assert revealed.stdout.strip() == CANARY
    # A third process resolves the reference the way a provider does.
    code = (
        "from aiport._secrets import SecretResolver; "
        "print(SecretResolver().resolve('keyring:aiport/openai').get_secret_value())"
    )
    resolved = run("-c", code)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == CANARY


# -- providers read stored keys ------------------------------------------------------------


def _config(emu: Emulator, **provider: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "retry": {"max_attempts": 1},
            "providers": {
                "openai": {"type": "openai", "base_url": emu.openai_base_url, **provider}
            },
        }
    )


def test_provider_reads_a_keyring_reference(plaintext_keyring: str, emu: Emulator) -> None:
    open_keystore("keyring").set("openai", CANARY)
    with ProviderService(_config(emu, api_key="keyring:aiport/openai"), env=os.environ) as svc:
        reply = svc.complete_sync(model="openai:gpt-4o", messages="hi")
    assert reply.text == "You said: hi"
    assert emu.requests[-1].headers["authorization"] == f"Bearer {CANARY}"


def test_provider_without_api_key_falls_back_to_the_keystore(tmp_path: Path, emu: Emulator) -> None:
    env = file_env(tmp_path)
    EncryptedFileStore(Path(env["AIPORT_KEYSTORE_PATH"]), env=env).set("openai", CANARY)
    with ProviderService(_config(emu), env=env) as svc:
        assert svc.complete_sync(model="openai:gpt-4o", messages="hi").text == "You said: hi"
    # The standard variable wins over the keystore when it is set.
    with ProviderService(_config(emu), env={**env, "OPENAI_API_KEY": "sk-other"}) as svc:
        with pytest.raises(ProviderAuthError) as caught:
            svc.complete_sync(model="openai:gpt-4o", messages="hi")
        assert caught.value.status_code == 401
    # Neither: the error names both places looked at.
    with ProviderService(_config(emu), env={}) as svc:
        assert not svc.validate_provider("openai")
        with pytest.raises(ProviderAuthError) as caught:
            svc.complete_sync(model="openai:gpt-4o", messages="hi")
    message = caught.value.message
    assert "OPENAI_API_KEY is not set" in message
    assert "keyring:aiport/openai" in message


def test_keys_prompts_for_the_key_and_a_new_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import getpass

    import aiport.cli._keys as keys_module

    answers = [CANARY, PASSPHRASE, PASSPHRASE]
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    monkeypatch.setattr(keys_module, "_interactive", lambda: True)
    env = {"AIPORT_KEYSTORE_PATH": str(tmp_path / "keys.enc")}
    result = invoke("keys", "set", "openai", "--store", "file", env=env)
    assert result.exit_code == 0, result.output
    assert prompts == ["API key of openai (hidden): ", "Keystore passphrase: ",
                       "Repeat the passphrase: "]  # fmt: skip
    assert "choose a passphrase" in result.stderr
    store = EncryptedFileStore(tmp_path / "keys.enc", passphrase=PASSPHRASE)
    assert store.get("openai") == CANARY

    answers[:] = [PASSPHRASE]  # an existing file: asked once, no confirmation
    shown = invoke("keys", "get", "openai", "--store", "file", env=env)
    assert shown.stdout.strip() == "****" + CANARY[-4:]

    answers[:] = ["other-key-0123456789", "one", "two"]
    mismatch = invoke("keys", "set", "anthropic", "--store", "file",
                      env={"AIPORT_KEYSTORE_PATH": str(tmp_path / "new.enc")})  # fmt: skip
    assert mismatch.exit_code == 1
    assert "the two passphrases differ" in mismatch.stderr
