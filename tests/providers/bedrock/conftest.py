"""Fixtures of the Bedrock adapter tests: static AWS test credentials in a sealed AWS
environment (no real config file, no instance metadata), an emulator that verifies the
SigV4 signatures, and a service with a ``bedrock`` provider pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiport import ProviderService
from aiport.testing import Emulator

#: The emulator knows the secret of this key id, so it recomputes every signature.
ACCESS_KEY_ID = "AKIDEMULATORTEST0001"
SECRET_KEY = "emu/Secret+Canary0123456789abcdefGHIJKLMN"
#: Session credentials (a second identity, with a session token the emulator checks).
SESSION_KEY_ID = "ASIAEMULATORSESSION1"
SESSION_SECRET = "emu/SessionSecret+Canary9876543210zyxwvu"
SESSION_TOKEN = "FwoGZXIvYXdzEmulatorSessionTokenCanary0123456789"
#: A Bedrock API key (bearer token).
API_KEY = "bedrock-api-key-canary-ABSKZW11bGF0b3I0123456789"

REGION = "us-east-1"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-pro-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"

ACCEPTED = {
    f"{ACCESS_KEY_ID}:{SECRET_KEY}",
    f"{SESSION_KEY_ID}:{SESSION_SECRET}:{SESSION_TOKEN}",
    API_KEY,
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Static test keys in the environment; empty AWS config files; no metadata service.

    Returns the directory of the AWS config files (``config`` and ``credentials``).
    """
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "config").write_text("")
    (aws / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return aws


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(api_keys=ACCEPTED) as emulator:
        yield emulator


def bedrock_config(emu: Emulator, **provider: Any) -> dict[str, Any]:
    """A config with one ``bedrock`` provider on the emulator (one attempt per call)."""
    return {
        "retry": {"max_attempts": 1},
        "providers": {"bedrock": {"type": "bedrock", "base_url": emu.bedrock_endpoint, **provider}},
    }


@pytest.fixture
async def service(emu: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(bedrock_config(emu), env={}) as svc:
        yield svc
