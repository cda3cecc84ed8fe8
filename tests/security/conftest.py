"""Fixtures of the security tests: an isolated keystore, a strict emulator, leak detection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from aiport.testing import Emulator

#: The key every security test uses. It matches no well-known key shape on purpose, so
#: only the redaction of the keys in use (and of their 8-character pieces) can hide it.
CANARY = "cnry7Q9xLm2Pz4Rt8Vb6Nc3KwYh5"
#: A second key, which the strict emulator refuses (401): several-key tests use it first.
REFUSED_CANARY = "rfsd3Jq8Wn5Tz2Lk7Hc4Mv9Bx6Gp"
#: The AWS access key id whose secret access key is the canary (SigV4 tests): the strict
#: emulator knows the pair, so it verifies the signatures made with the canary.
AWS_KEY_ID = "AKIDCANARYSIGV4TEST1"
#: Pieces of the canary as long as the redactor's fragment size.
FRAGMENT = 8


class Target(NamedTuple):
    """A provider of the security tests: its adapter type, a model, where it listens, and
    how its key travels."""

    kind: str
    model: str
    #: The emulator attribute holding this provider's base URL.
    url: str
    #: The one request header that carries the key (``None``: SigV4 signing, where the
    #: secret never travels, only signatures made with it).
    key_header: str | None
    #: An embedding model, for providers that have embeddings.
    embedding_model: str | None = None


REGION = "us-east-1"
BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
#: The provider signing with AWS access keys: its secret access key is the canary.
SIGV4 = "bedrock-sigv4"
#: One provider of each built-in type, and a preset, all with the canary as their key.
PROVIDERS: dict[str, Target] = {
    "openai": Target(
        "openai", "gpt-4o", "openai_base_url", "authorization", "text-embedding-3-small"
    ),
    # The default anthropic-version (2026-10-21) takes the key as a bearer token.
    "anthropic": Target("anthropic", "claude-sonnet-4-5", "anthropic_base_url", "authorization"),
    "compatible": Target("openai-compatible", "gpt-4o", "openai_base_url", "authorization"),
    "gemini": Target(
        "gemini", "gemini-2.5-flash", "gemini_base_url", "x-goog-api-key", "gemini-embedding-001"
    ),
    "azure": Target("azure", "gpt-4o", "azure_endpoint", "api-key", "text-embedding-3-small"),
    "mistral": Target(
        "mistral", "mistral-small-latest", "mistral_base_url", "authorization", "mistral-embed"
    ),
    "cohere": Target(
        "cohere", "command-a-03-2025", "cohere_base_url", "authorization", "embed-v4.0"
    ),
    # Hosted Ollama (ollama.com, or a server behind an authenticating proxy): a bearer key.
    "ollama": Target("ollama", "llama3.2", "ollama_base_url", "authorization", "nomic-embed-text"),
    # A Bedrock API key, sent as a bearer token.
    "bedrock": Target(
        "bedrock",
        BEDROCK_MODEL,
        "bedrock_endpoint",
        "authorization",
        "amazon.titan-embed-text-v2:0",
    ),
    SIGV4: Target("bedrock", BEDROCK_MODEL, "bedrock_endpoint", None),
    # A preset: a data row over the OpenAI-compatible adapter.
    "groq": Target("groq", "llama-3.3-70b-versatile", "openai_base_url", "authorization"),
}


def provider_settings(name: str, key: str) -> dict[str, Any]:
    """The credential settings (and region) of provider ``name`` with ``key`` as its key."""
    if name == SIGV4:
        return {"aws_access_key_id": AWS_KEY_ID, "aws_secret_access_key": key, "region": REGION}
    if PROVIDERS[name].kind == "bedrock":
        return {"api_key": key, "region": REGION}
    return {"api_key": key}


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
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "MISTRAL_API_KEY",
    "CO_API_KEY",
    "COHERE_API_KEY",
    "OLLAMA_API_KEY",
    "OLLAMA_HOST",
    "GROQ_API_KEY",
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
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
    """An emulator accepting only the canary key (and the tokens it issues), as an API key
    or as the AWS secret access key of :data:`AWS_KEY_ID`."""
    with Emulator(api_keys={CANARY, f"{AWS_KEY_ID}:{CANARY}"}).run_in_thread() as emulator:
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
