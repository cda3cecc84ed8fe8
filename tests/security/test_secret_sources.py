"""Secret references beyond env: and file: — plug-in schemes and the keyring: scheme."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from aiport._errors import ProviderAuthError
from aiport._secrets import (
    BUILTIN_SCHEMES,
    ENTRY_POINT_GROUP,
    SecretResolver,
    SecretSource,
    describe_secret,
)

from .conftest import CANARY, assert_no_leak


class FakeEntryPoint:
    def __init__(self, name: str, target: Any, value: str = "fake:target") -> None:
        self.name = name
        self.value = value
        self._target = target
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


class Vault:
    """A SecretSource, as a plug-in would ship one."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_secret(self, name: str) -> str:
        self.asked.append(name)
        return {"secret/openai": CANARY}[name]


def entry_points_of(*points: FakeEntryPoint) -> Any:
    calls: list[str] = []

    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        calls.append(group)
        return list(points) if group == ENTRY_POINT_GROUP else []

    entry_points.calls = calls  # type: ignore[attr-defined]
    return entry_points


def test_a_plugin_adds_a_scheme_loaded_on_first_use() -> None:
    vault = Vault()
    point = FakeEntryPoint("vault", vault)
    resolver = SecretResolver(env={}, entry_points=entry_points_of(point))
    assert isinstance(vault, SecretSource)
    assert resolver.schemes == BUILTIN_SCHEMES | {"vault"}
    assert point.loads == 0  # discovering a plug-in does not import it
    assert resolver.is_reference("vault:secret/openai")
    assert resolver.resolve("vault:secret/openai").get_secret_value() == CANARY
    assert resolver.resolve("vault:secret/openai").get_secret_value() == CANARY
    assert point.loads == 1
    assert vault.asked == ["secret/openai", "secret/openai"]
    assert describe_secret("vault:secret/openai", resolver=resolver) == "vault:secret/openai"


def test_plugins_are_looked_for_only_when_a_value_needs_them() -> None:
    entry_points = entry_points_of(FakeEntryPoint("vault", Vault()))
    resolver = SecretResolver(env={"K": "v"}, entry_points=entry_points)
    assert resolver.resolve("env:K").get_secret_value() == "v"
    assert resolver.resolve("plain-literal-key").get_secret_value() == "plain-literal-key"
    assert entry_points.calls == []
    assert resolver.is_reference("vault:x")
    assert resolver.is_reference("other:x") is False
    assert entry_points.calls == [ENTRY_POINT_GROUP]  # once per resolver


def test_plugin_forms_class_and_function() -> None:
    resolver = SecretResolver(
        env={},
        entry_points=entry_points_of(
            FakeEntryPoint("vault", Vault),  # a class: built without arguments
            FakeEntryPoint("aws-sm", lambda name: f"aws-{name}"),  # a function
        ),
    )
    assert resolver.resolve("vault:secret/openai").get_secret_value() == CANARY
    assert resolver.resolve("aws-sm:prod/key").get_secret_value() == "aws-prod/key"


def test_plugins_cannot_take_builtin_or_invalid_schemes(caplog: pytest.LogCaptureFixture) -> None:
    resolver = SecretResolver(
        env={"X": "from-env"},
        entry_points=entry_points_of(
            FakeEntryPoint("env", lambda name: "hijacked"),
            FakeEntryPoint("Bad Name", lambda name: "x"),
        ),
    )
    assert resolver.resolve("env:X").get_secret_value() == "from-env"
    assert resolver.schemes == BUILTIN_SCHEMES
    assert "ignoring secret source plug-in" in caplog.text


def test_registered_scheme_wins_over_a_plugin() -> None:
    resolver = SecretResolver(
        env={}, entry_points=entry_points_of(FakeEntryPoint("vault", lambda n: "plugin"))
    )
    resolver.register("vault", lambda name: "registered")
    assert resolver.resolve("vault:x").get_secret_value() == "registered"
    source = Vault()
    resolver.register("vault", source)  # a SecretSource object works too
    assert resolver.resolve("vault:secret/openai").get_secret_value() == CANARY


def test_a_broken_plugin_is_an_auth_error_naming_it_not_its_message() -> None:
    resolver = SecretResolver(
        env={},
        entry_points=entry_points_of(
            FakeEntryPoint("vault", ImportError(f"no module, token {CANARY}"), "vault_pkg:Src")
        ),
    )
    with pytest.raises(ProviderAuthError) as caught:
        resolver.resolve("vault:secret/openai", what="API key of provider 'openai'")
    error = caught.value
    assert error.reason == "credentials_unresolved"
    assert "vault_pkg:Src" in error.message
    assert "ImportError" in error.message
    assert_no_leak([str(error), repr(error)], "plugin failure")


def test_listing_entry_points_may_fail_without_breaking_resolution() -> None:
    def broken(*, group: str) -> list[Any]:
        raise RuntimeError("bad metadata")

    resolver = SecretResolver(env={}, entry_points=broken)
    assert resolver.resolve("vault:x").get_secret_value() == "vault:x"  # a literal then
    assert SecretResolver(env={}, plugins=False).schemes == BUILTIN_SCHEMES


def test_needs_io_tells_blocking_references_apart() -> None:
    resolver = SecretResolver(env={}, entry_points=entry_points_of(FakeEntryPoint("vault", Vault)))
    assert not resolver.needs_io("env:X")
    assert not resolver.needs_io("file:./k")
    assert not resolver.needs_io(SecretStr("literal"))
    assert resolver.needs_io("keyring:aiport/openai")
    assert resolver.needs_io("vault:x")


def test_discovery_through_real_package_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution installed on sys.path declares the entry point: no registration call."""
    (tmp_path / "aiport_vault_fake.py").write_text(
        textwrap.dedent(
            """
            class VaultSource:
                def get_secret(self, name):
                    return "from-dist-" + name
            """
        )
    )
    info = tmp_path / "aiport_vault_fake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aiport-vault-fake\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nfakevault = aiport_vault_fake:VaultSource\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    resolver = SecretResolver(env={})
    assert "fakevault" in resolver.schemes
    assert resolver.resolve("fakevault:openai").get_secret_value() == "from-dist-openai"


# -- keyring: ------------------------------------------------------------------------------


def test_keyring_reference_without_any_store_says_how_to_get_one() -> None:
    with pytest.raises(ProviderAuthError) as caught:
        SecretResolver(env={}).resolve("keyring:aiport/openai")
    message = caught.value.message
    assert caught.value.reason == "credentials_unresolved"
    assert "keyring:aiport/openai" in message
    assert "pip install 'aiport[keyring]'" in message
    assert "aiport keys set" in message


def test_keyring_reference_must_name_service_and_entry() -> None:
    with pytest.raises(ProviderAuthError, match="SERVICE/NAME"):
        SecretResolver(env={}).resolve("keyring:aiport/")


def test_keyring_reference_reads_the_os_keyring(plaintext_keyring: str) -> None:
    import keyring.core

    backend = keyring.core.load_keyring(plaintext_keyring)
    backend.set_password("my-service", "user@example.com", CANARY)
    resolver = SecretResolver()  # os.environ: PYTHON_KEYRING_BACKEND chooses the backend
    value = resolver.resolve("keyring:my-service/user@example.com")
    assert value.get_secret_value() == CANARY
    with pytest.raises(ProviderAuthError, match="no such entry"):
        resolver.resolve("keyring:aiport/nobody")
