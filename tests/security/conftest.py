"""Fixtures of the security tests: an isolated keystore, a strict emulator, leak detection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from aiport.testing import Emulator

#: The key every security test uses. It matches no well-known key shape on purpose, so
#: only the redaction of the keys in use (and of their 8-character pieces) can hide it.
CANARY = "cnry7Q9xLm2Pz4Rt8Vb6Nc3KwYh5"
#: A second key, which the strict emulator refuses (401): several-key tests use it first.
REFUSED_CANARY = "rfsd3Jq8Wn5Tz2Lk7Hc4Mv9Bx6Gp"
#: Pieces of the canary as long as the redactor's fragment size.
FRAGMENT = 8

#: Variables that would let the developer's own keystore or keys into a test.
_ISOLATED = (
    "AIPORT_KEYSTORE",
    "AIPORT_KEYSTORE_PASSPHRASE",
    "AIPORT_KEYSTORE_PATH",
    "AIPORT_CONFIG",
    "AIPORT_ENV",
    "PYTHON_KEYRING_BACKEND",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
)


def leaks(text: str, secret: str = CANARY) -> list[str]:
    """The pieces of ``secret`` (whole, or any 8 characters of it) that occur in ``text``."""
    pieces = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    return sorted(piece for piece in pieces if piece in text)


def assert_no_leak(texts: Iterable[str], what: str = "", secret: str = CANARY) -> None:
    for text in texts:
        found = leaks(text, secret)
        assert not found, f"{what}: the key leaked ({found}) in: {text[:2000]}"


@pytest.fixture(autouse=True)
def isolated_keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets empty data and config directories and none of the caller's keys."""
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    return data


@pytest.fixture
def plaintext_keyring(monkeypatch: pytest.MonkeyPatch) -> str:
    """A real keyring backend (``keyrings.alt``'s file) chosen the documented way."""
    pytest.importorskip("keyring")
    pytest.importorskip("keyrings.alt")
    name = "keyrings.alt.file.PlaintextKeyring"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", name)
    return name


@pytest.fixture(scope="session")
def strict_emulator() -> Iterator[Emulator]:
    """An emulator accepting only the canary key (and the tokens it issues)."""
    with Emulator(api_keys={CANARY}).run_in_thread() as emulator:
        yield emulator


@pytest.fixture
def emu(strict_emulator: Emulator) -> Iterator[Emulator]:
    strict_emulator.reset()
    strict_emulator.oauth.reset()
    strict_emulator.oauth.clients = None
    strict_emulator.oauth.token_ttl = 3600.0
    yield strict_emulator
    strict_emulator.reset()
    strict_emulator.oauth.reset()
