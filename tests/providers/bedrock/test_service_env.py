"""A ``ProviderService(env=...)`` mapping reaches the Bedrock provider: its access keys,
its ``env:`` references and its region, with none of them in the process environment."""

from __future__ import annotations

import os
from typing import Any

import pytest

from aiport import ProviderService
from aiport._config import load_config
from aiport._http import HttpClient, HttpTimeouts
from aiport._registry import ProviderContext
from aiport.providers.bedrock._factory import build_bedrock
from aiport.testing import Emulator

from .conftest import (
    ACCESS_KEY_ID,
    CLAUDE,
    SECRET_KEY,
    SESSION_KEY_ID,
    SESSION_SECRET,
    SESSION_TOKEN,
    bedrock_config,
)

MODEL = f"bedrock:{CLAUDE}"


@pytest.fixture
def bare_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS keys and no region in the process environment (the autouse ``aws_env``
    fixture put test keys there): whatever the call uses must come from the mapping."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)


async def complete(emu: Emulator, env: dict[str, str], **provider: Any) -> str:
    """Run one completion; return the Authorization header the emulator received."""
    async with ProviderService(bedrock_config(emu, **provider), env=env) as service:
        response = await service.complete(model=MODEL, messages="Hello")
    assert response.text == "You said: Hello"
    return emu.requests[-1].headers["authorization"]


@pytest.mark.usefixtures("bare_process_env")
async def test_explicit_key_references_and_region_come_from_the_mapping(emu: Emulator) -> None:
    env = {
        "TEAM_KEY_ID": SESSION_KEY_ID,
        "TEAM_SECRET": SESSION_SECRET,
        "TEAM_TOKEN": SESSION_TOKEN,
        "AWS_REGION": "eu-central-1",
    }
    assert not any(name in os.environ for name in env)
    authorization = await complete(
        emu,
        env,
        aws_access_key_id="env:TEAM_KEY_ID",
        aws_secret_access_key="env:TEAM_SECRET",
        aws_session_token="env:TEAM_TOKEN",
    )
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={SESSION_KEY_ID}/")
    assert "/eu-central-1/bedrock/aws4_request" in authorization
    assert emu.requests[-1].headers["x-amz-security-token"] == SESSION_TOKEN


@pytest.mark.usefixtures("bare_process_env")
async def test_standard_aws_variables_of_the_mapping_sign_the_request(emu: Emulator) -> None:
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "ap-northeast-1",
    }
    authorization = await complete(emu, env)
    # The emulator recomputed the signature with the secret it knows for this key id.
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert "/ap-northeast-1/bedrock/aws4_request" in authorization
    assert "x-amz-security-token" not in emu.requests[-1].headers


async def test_the_mapping_wins_over_the_process_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process has other (valid) keys and another region: the mapping's are used.
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    env = {
        "AWS_ACCESS_KEY_ID": SESSION_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SESSION_SECRET,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "AWS_REGION": "sa-east-1",
    }
    authorization = await complete(emu, env)
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={SESSION_KEY_ID}/")
    assert "/sa-east-1/bedrock/aws4_request" in authorization
    # The configured region still wins over every variable.
    authorization = await complete(emu, env, region="us-west-2")
    assert "/us-west-2/bedrock/aws4_request" in authorization


async def test_a_context_without_env_or_resolver_reads_the_process_environment(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, http: HttpClient
) -> None:
    """A context built by third-party code that predates ``env`` and ``secrets``."""
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    monkeypatch.setenv("PLUGIN_KEY_ID", ACCESS_KEY_ID)
    config = load_config(
        bedrock_config(
            emu, aws_access_key_id="env:PLUGIN_KEY_ID", aws_secret_access_key=SECRET_KEY
        ),
        env={},
    )
    timeouts = HttpTimeouts(connect=5, first_token=10, idle=10, total=20)
    context = ProviderContext(
        name="bedrock",
        config=config.providers["bedrock"],
        agent_config=config,
        http=http,
        credential=None,
        models={},
        timeouts=timeouts,
        model_timeouts={},
    )
    assert context.env is os.environ
    provider = build_bedrock(context)
    from aiport._types import ModelCompletionOptions

    response = await provider.complete(ModelCompletionOptions(model=CLAUDE, messages="Hello"))
    assert response.text == "You said: Hello"
    authorization = emu.requests[-1].headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert "/eu-north-1/bedrock/aws4_request" in authorization
