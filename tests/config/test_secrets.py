"""Secret references and their resolution (aiport._secrets)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from aiport._errors import ErrorCode, ProviderAuthError
from aiport._secrets import BUILTIN_SCHEMES, SecretResolver, describe_secret, split_reference

CANARY = "sk-canary-1234567890abcdef"


def _texts(error: BaseException) -> list[str]:
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


def _assert_unresolved(error: ProviderAuthError) -> None:
    assert error.code is ErrorCode.PROVIDER_AUTH_ERROR
    assert error.reason == "credentials_unresolved"
    assert error.retryable is False


# -- literals and references --------------------------------------------------------------


def test_literal_is_returned_as_secret() -> None:
    resolver = SecretResolver(env={})
    resolved = resolver.resolve(CANARY)
    assert isinstance(resolved, SecretStr)
    assert resolved.get_secret_value() == CANARY
    assert resolver.resolve(SecretStr(CANARY)).get_secret_value() == CANARY
    assert CANARY not in repr(resolved)
    assert CANARY not in str(resolved)


def test_unknown_scheme_is_a_literal() -> None:
    resolver = SecretResolver(env={})
    assert not resolver.is_reference("vault:secret/openai")
    assert resolver.resolve("vault:secret/openai").get_secret_value() == "vault:secret/openai"
    assert not resolver.is_reference("C:\\keys\\openai")
    assert not resolver.is_reference("sk-abc")


def test_is_reference_knows_builtin_and_registered_schemes() -> None:
    resolver = SecretResolver(env={})
    assert resolver.is_reference("env:OPENAI_API_KEY")
    assert resolver.is_reference("file:./key")
    assert resolver.is_reference("keyring:aiport/openai")
    assert not resolver.is_reference("vault:x")
    resolver.register("vault", lambda rest: "v")
    assert resolver.is_reference("vault:x")
    assert resolver.schemes == BUILTIN_SCHEMES | {"vault"}
    # Registering on one resolver does not leak into another (no global state).
    assert not SecretResolver(env={}).is_reference("vault:x")


def test_empty_literal_is_an_error() -> None:
    with pytest.raises(ProviderAuthError, match="empty") as caught:
        SecretResolver(env={}).resolve("", what="api_key of provider 'openai'")
    _assert_unresolved(caught.value)
    assert "api_key of provider 'openai'" in str(caught.value)


# -- env: ---------------------------------------------------------------------------------


def test_env_reference() -> None:
    resolver = SecretResolver(env={"OPENAI_API_KEY": CANARY})
    assert resolver.resolve("env:OPENAI_API_KEY").get_secret_value() == CANARY


def test_env_reference_missing_names_the_variable() -> None:
    resolver = SecretResolver(env={})
    with pytest.raises(ProviderAuthError) as caught:
        resolver.resolve("env:OPENAI_API_KEY", what="api_key of provider 'openai'")
    _assert_unresolved(caught.value)
    assert "environment variable OPENAI_API_KEY is not set" in str(caught.value)


def test_env_reference_empty_value_is_an_error() -> None:
    resolver = SecretResolver(env={"OPENAI_API_KEY": ""})
    with pytest.raises(ProviderAuthError, match="OPENAI_API_KEY is empty") as caught:
        resolver.resolve("env:OPENAI_API_KEY")
    _assert_unresolved(caught.value)


def test_env_reference_without_name() -> None:
    with pytest.raises(ProviderAuthError, match="without a variable name"):
        SecretResolver(env={}).resolve("env:")


def test_env_default_reads_os_environ() -> None:
    # Read-only use of the real environment: PATH is set wherever the tests run.
    import os

    assert SecretResolver().resolve("env:PATH").get_secret_value() == os.environ["PATH"]


# -- file: --------------------------------------------------------------------------------


def test_file_reference_strips_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(CANARY + "\n", encoding="utf-8")
    resolver = SecretResolver(env={}, base_dir=tmp_path)
    assert resolver.resolve("file:key").get_secret_value() == CANARY
    assert resolver.resolve("file:./key").get_secret_value() == CANARY
    assert resolver.resolve(f"file:{tmp_path / 'key'}").get_secret_value() == CANARY


def test_file_reference_crlf_and_bom(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"\xef\xbb\xbf" + CANARY.encode() + b"\r\n")
    resolver = SecretResolver(env={}, base_dir=tmp_path)
    assert resolver.resolve("file:key").get_secret_value() == CANARY


def test_file_reference_relative_to_cwd_without_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("abc", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert SecretResolver(env={}).resolve("file:./key").get_secret_value() == "abc"


def test_file_reference_missing(tmp_path: Path) -> None:
    resolver = SecretResolver(env={}, base_dir=tmp_path)
    with pytest.raises(ProviderAuthError) as caught:
        resolver.resolve("file:./key", what="api_key of provider 'openai'")
    _assert_unresolved(caught.value)
    assert "file ./key: not found" in str(caught.value)
    assert str(tmp_path / "key") in str(caught.value)


def test_file_reference_empty_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("\n", encoding="utf-8")
    with pytest.raises(ProviderAuthError, match="is empty"):
        SecretResolver(env={}, base_dir=tmp_path).resolve("file:key")


def test_file_reference_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(ProviderAuthError, match="is a directory"):
        SecretResolver(env={}, base_dir=tmp_path).resolve("file:dir")


def test_file_reference_not_utf8_does_not_echo_content(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(CANARY.encode() + b"\xff\xfe")
    with pytest.raises(ProviderAuthError, match="not UTF-8") as caught:
        SecretResolver(env={}, base_dir=tmp_path).resolve("file:key")
    for text in _texts(caught.value):
        assert CANARY not in text


# -- keyring: and custom schemes ----------------------------------------------------------


def test_keyring_without_resolver_tells_how_to_install() -> None:
    with pytest.raises(ProviderAuthError) as caught:
        SecretResolver(env={}).resolve("keyring:aiport/openai")
    _assert_unresolved(caught.value)
    assert "keyring:aiport/openai" in str(caught.value)
    assert "pip install 'aiport[keyring]'" in str(caught.value)


def test_keyring_with_registered_resolver() -> None:
    store = {"aiport/openai": CANARY}
    resolver = SecretResolver(env={})
    resolver.register("keyring", store.__getitem__)
    assert resolver.resolve("keyring:aiport/openai").get_secret_value() == CANARY


def test_custom_scheme() -> None:
    calls: list[str] = []

    def vault(path: str) -> str:
        calls.append(path)
        return "from-vault"

    resolver = SecretResolver(env={})
    resolver.register("vault", vault)
    assert resolver.resolve("vault:secret/data/openai").get_secret_value() == "from-vault"
    assert calls == ["secret/data/openai"]


def test_custom_scheme_may_return_secretstr() -> None:
    resolver = SecretResolver(env={})
    resolver.register("vault", lambda path: SecretStr("s3cret"))  # type: ignore[arg-type,return-value]
    assert resolver.resolve("vault:x").get_secret_value() == "s3cret"


def test_custom_scheme_failure_hides_the_exception_text() -> None:
    def leaky(path: str) -> str:
        raise ValueError(f"token {CANARY} refused")

    resolver = SecretResolver(env={})
    resolver.register("vault", leaky)
    with pytest.raises(ProviderAuthError) as caught:
        resolver.resolve("vault:secret/openai")
    _assert_unresolved(caught.value)
    assert "vault:secret/openai" in str(caught.value)
    assert "ValueError" in str(caught.value)
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value)
    assert isinstance(caught.value.__cause__, ValueError)


def test_custom_scheme_empty_value_and_wrong_type() -> None:
    resolver = SecretResolver(env={})
    resolver.register("empty", lambda path: "")
    resolver.register("wrong", lambda path: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(ProviderAuthError, match="empty value"):
        resolver.resolve("empty:x")
    with pytest.raises(ProviderAuthError, match="returned int"):
        resolver.resolve("wrong:x")
    with pytest.raises(ProviderAuthError, match="names nothing"):
        resolver.resolve("empty:")


def test_custom_scheme_can_replace_builtin_per_resolver() -> None:
    resolver = SecretResolver(env={})
    resolver.register("env", lambda name: f"patched-{name}")
    assert resolver.resolve("env:X").get_secret_value() == "patched-X"
    with pytest.raises(ProviderAuthError):
        SecretResolver(env={}).resolve("env:X")


@pytest.mark.parametrize("scheme", ["", "Vault", "1x", "va ult", "va:ult"])
def test_register_rejects_bad_scheme_names(scheme: str) -> None:
    with pytest.raises(ValueError, match="invalid secret scheme"):
        SecretResolver().register(scheme, lambda rest: rest)


def test_register_rejects_non_callable() -> None:
    with pytest.raises(TypeError):
        SecretResolver().register("vault", "nope")  # type: ignore[arg-type]


# -- canaries -----------------------------------------------------------------------------


def test_no_resolver_error_contains_the_secret(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("", encoding="utf-8")
    resolver = SecretResolver(env={"EMPTY": ""}, base_dir=tmp_path)
    resolver.register("bad", lambda rest: (_ for _ in ()).throw(RuntimeError(CANARY)))
    for reference in ("env:MISSING", "env:EMPTY", "file:missing", "file:empty", "bad:x"):
        with pytest.raises(ProviderAuthError) as caught:
            resolver.resolve(reference, what="api_key")
        assert reference.partition(":")[2] in str(caught.value)
        assert CANARY not in str(caught.value)
        assert CANARY not in repr(caught.value)


# -- describe_secret ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "<not set>"),
        (SecretStr("env:OPENAI_API_KEY"), "env:OPENAI_API_KEY"),
        (SecretStr("file:./secrets/openai"), "file:./secrets/openai"),
        (SecretStr("keyring:aiport/openai"), "keyring:aiport/openai"),
        (SecretStr(CANARY), "****cdef"),
        (SecretStr("123456789012"), "****9012"),
        (SecretStr("12345678901"), "****"),
        (SecretStr("short"), "****"),
        (SecretStr(""), "****"),
        (SecretStr("vault:abcdefghijkl"), "****ijkl"),
    ],
)
def test_describe_secret(value: SecretStr | None, shown: str) -> None:
    assert describe_secret(value) == shown


def test_describe_secret_knows_registered_schemes() -> None:
    resolver = SecretResolver()
    resolver.register("vault", lambda rest: rest)
    assert describe_secret(SecretStr("vault:abcdefghijkl"), resolver=resolver) == (
        "vault:abcdefghijkl"
    )


@given(st.text(min_size=12).filter(lambda s: split_reference(s) is None))
def test_describe_secret_never_shows_more_than_four_characters(secret: str) -> None:
    shown = describe_secret(SecretStr(secret))
    assert shown == "****" + secret[-4:]


@given(st.text(max_size=11).filter(lambda s: split_reference(s) is None))
def test_describe_secret_short_literals_fully_masked(secret: str) -> None:
    assert describe_secret(SecretStr(secret)) == "****"


@given(st.sampled_from(sorted(BUILTIN_SCHEMES)), st.text())
def test_split_reference_round_trips(scheme: str, rest: str) -> None:
    assert split_reference(f"{scheme}:{rest}") == (scheme, rest)
