"""SigV4 signing and AWS credentials: where they come from, where they go, where they never go."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from aiport import ProviderService
from aiport._errors import ConfigError, ProviderAuthError
from aiport.testing import Emulator

from .conftest import (
    ACCESS_KEY_ID,
    API_KEY,
    CLAUDE,
    SECRET_KEY,
    SESSION_KEY_ID,
    SESSION_SECRET,
    SESSION_TOKEN,
    bedrock_config,
)

MODEL = f"bedrock:{CLAUDE}"


async def call(emu: Emulator, env: dict[str, str] | None = None, **provider: Any) -> Any:
    async with ProviderService(bedrock_config(emu, **provider), env=env or {}) as service:
        return await service.complete(model=MODEL, messages="Hello")


async def test_requests_carry_a_verified_sigv4_signature(emu: Emulator) -> None:
    response = await call(emu)
    assert response.text == "You said: Hello"
    (request,) = emu.requests
    authorization = request.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(signed)
    assert "x-amz-security-token" not in request.headers
    # The emulator knows the secret and recomputed the signature over the final body.
    assert request.path == f"/model/{CLAUDE}/converse"


async def test_a_wrong_secret_fails_the_signature_check(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not/the+right/secret0123456789abcdefghij")
    with pytest.raises(ProviderAuthError) as info:
        await call(emu)
    assert info.value.error_type == "InvalidSignatureException"
    assert info.value.status_code == 403


async def test_an_unknown_access_key_is_unrecognized(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWNKEY000000")
    with pytest.raises(ProviderAuthError) as info:
        await call(emu)
    assert info.value.error_type == "UnrecognizedClientException"


async def test_session_credentials_send_their_token(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SESSION_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SESSION_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    await call(emu)
    request = emu.requests[-1]
    assert request.headers["x-amz-security-token"] == SESSION_TOKEN
    assert "x-amz-security-token" in request.headers["authorization"]


async def test_expired_credentials_are_resolved_again_on_the_next_call(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SESSION_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SESSION_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "an-old-session-token-that-expired")
    async with ProviderService(bedrock_config(emu), env={}) as service:
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hello")
        assert info.value.error_type == "ExpiredTokenException"
        # The user refreshes their session (aws sso login, a new token in the env...).
        monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
        response = await service.complete(model=MODEL, messages="Hello")
    assert response.text == "You said: Hello"


async def test_explicit_keys_from_secret_references(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    secret_file = tmp_path / "bedrock-secret"
    secret_file.write_text(SESSION_SECRET + "\n")
    # env: references read the service's environment, as api_key references do.
    await call(
        emu,
        env={"MY_BEDROCK_KEY_ID": SESSION_KEY_ID, "MY_BEDROCK_TOKEN": SESSION_TOKEN},
        aws_access_key_id="env:MY_BEDROCK_KEY_ID",
        aws_secret_access_key=f"file:{secret_file}",
        aws_session_token="env:MY_BEDROCK_TOKEN",
    )
    assert SESSION_KEY_ID in emu.requests[-1].headers["authorization"]


async def test_a_named_profile_from_the_shared_credentials_file(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, aws_env: Path
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    (aws_env / "credentials").write_text(
        f"[work]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    (aws_env / "config").write_text("[profile work]\nregion = eu-west-3\n")
    await call(emu, aws_profile="work")
    assert "/eu-west-3/bedrock/aws4_request" in emu.requests[-1].headers["authorization"]


async def test_credential_process_credentials_are_refreshed(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, aws_env: Path, tmp_path: Path
) -> None:
    """Refreshable credentials (here ``credential_process``, as SSO or assumed roles are)
    are refreshed by botocore once near expiry, off the event loop."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    counter = tmp_path / "calls"
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "p.write_text(str(int(p.read_text() if p.exists() else '0') + 1))\n"
        "soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)\n"
        "print(json.dumps({'Version': 1, "
        f"'AccessKeyId': {SESSION_KEY_ID!r}, 'SecretAccessKey': {SESSION_SECRET!r}, "
        f"'SessionToken': {SESSION_TOKEN!r}, 'Expiration': soon.isoformat()}}))\n"
    )
    (aws_env / "config").write_text(
        f"[profile proc]\ncredential_process = {sys.executable} {script}\n"
    )
    async with ProviderService(bedrock_config(emu, aws_profile="proc"), env={}) as service:
        for _ in range(2):
            response = await service.complete(model=MODEL, messages="Hello")
            assert response.text == "You said: Hello"
    # Expiring within botocore's refresh window: fetched again for the second call.
    assert int(counter.read_text()) >= 2


async def test_region_from_aws_region(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    await call(emu)
    assert "/ap-southeast-2/bedrock/" in emu.requests[-1].headers["authorization"]
    await call(emu, region="us-west-2")
    assert "/us-west-2/bedrock/" in emu.requests[-1].headers["authorization"]


async def test_no_region_is_a_config_error(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="region"):
        await call(emu)


async def test_no_credentials_is_an_auth_error(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    async with ProviderService(bedrock_config(emu), env={}) as service:
        assert service.validate_provider("bedrock") is False
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hello")
    assert info.value.reason == "credentials_missing"
    assert "AWS_BEARER_TOKEN_BEDROCK" in info.value.message
    assert emu.requests == []


async def test_validate_provider_finds_credentials_without_a_request(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, aws_env: Path
) -> None:
    async with ProviderService(bedrock_config(emu), env={}) as service:
        assert service.validate_provider("bedrock") is True
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    (aws_env / "credentials").write_text(
        f"[work]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    async with ProviderService(bedrock_config(emu, aws_profile="work"), env={}) as service:
        assert service.validate_provider("bedrock") is True
    async with ProviderService(bedrock_config(emu, aws_profile="missing"), env={}) as service:
        assert service.validate_provider("bedrock") is False
    assert emu.requests == []


async def test_a_bedrock_api_key_is_a_bearer_token(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    await call(
        emu, env={"AWS_BEARER_TOKEN_BEDROCK": API_KEY}, api_key="env:AWS_BEARER_TOKEN_BEDROCK"
    )
    request = emu.requests[-1]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert "x-amz-date" not in request.headers


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ({"aws_access_key_id": "AKIAX"}, "providers.bedrock.aws_secret_access_key"),
        ({"aws_session_token": "t"}, "providers.bedrock.aws_session_token"),
        (
            {"aws_access_key_id": "k", "aws_secret_access_key": "s", "aws_profile": "p"},
            "providers.bedrock.aws_profile",
        ),
        ({"api_key": "key", "aws_profile": "p"}, "providers.bedrock.api_key"),
    ],
)
async def test_inconsistent_credentials_are_config_errors(
    emu: Emulator, provider: dict[str, Any], path: str
) -> None:
    with pytest.raises(ConfigError) as info:
        await call(emu, **provider)
    assert path in {p.path for p in info.value.problems}


async def test_without_botocore_the_error_names_the_extra(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "botocore" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match=r"pip install 'aiport\[bedrock\]'"):
        await call(emu)


def test_import_aiport_does_not_load_botocore() -> None:
    import subprocess

    code = (
        "import sys, aiport, aiport.providers.bedrock\n"
        "from aiport.providers._factories import create_bedrock\n"
        "assert 'botocore' not in sys.modules, 'botocore was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_secrets_never_reach_logs_urls_or_errors(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aiport.testing import Fault

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SESSION_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SESSION_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    caplog.set_level(logging.DEBUG)
    config = bedrock_config(emu)
    config["log_requests"] = True
    async with ProviderService(config, env={}) as service:
        await service.complete(model=MODEL, messages="Hello")
        [e async for e in service.stream(model=MODEL, messages="Hello")]
        emu.add_fault(
            Fault.status(403, message=f"token {SESSION_TOKEN} and {SESSION_SECRET} echoed")
        )
        with pytest.raises(ProviderAuthError) as info:
            await service.complete(model=MODEL, messages="Hello")
    signatures = [r.headers["authorization"].rsplit("Signature=", 1)[1] for r in emu.requests[:2]]
    shown = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [str(info.value), repr(info.value), json.dumps(info.value.body)]
    )
    for secret in (SESSION_SECRET, SESSION_TOKEN, *signatures):
        assert secret not in shown
        assert secret[:10] not in shown
        assert all(secret not in r.path for r in emu.requests)


async def test_arn_model_ids_are_one_signed_path_segment(emu: Emulator) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-x-v1:0"
    async with ProviderService(bedrock_config(emu), env={}) as service:
        response = await service.complete(model=f"bedrock:{arn}", messages="Hello")
    assert response.text == "You said: Hello"
    assert emu.requests[-1].path == f"/model/{arn}/converse"


async def test_the_signature_covers_the_path_as_sent_not_as_boto3_would_encode_it(
    emu: Emulator,
) -> None:
    """HTTP clients send a model id's ':' raw (yarl normalises '%3A'); AWS signs the path
    as received. Signing the '%3A' form while sending ':' is refused, as AWS refuses it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from aiport._http import HttpClient
    from aiport._types import ModelCompletionOptions
    from aiport.providers.bedrock import BedrockProvider

    class EncodedPathSigner:
        async def sign(
            self, method: str, url: str, headers: Any, body: bytes | None
        ) -> dict[str, str]:
            encoded = url.replace(":0/", "%3A0/")
            request = AWSRequest(method=method, url=encoded, data=body, headers=dict(headers))
            SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_KEY), "bedrock", "us-east-1").add_auth(
                request
            )
            return dict(request.headers.items())

        def invalidate(self) -> None: ...

        async def check(self) -> None: ...

    http = HttpClient()
    try:
        provider = BedrockProvider(
            region="us-east-1", signer=EncodedPathSigner(), http=http, base_url=emu.url
        )
        with pytest.raises(ProviderAuthError) as info:
            await provider.complete(ModelCompletionOptions(model=CLAUDE, messages="Hello"))
    finally:
        await http.aclose()
    assert info.value.error_type == "InvalidSignatureException"
