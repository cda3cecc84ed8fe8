"""The canary: one key through every provider type, error path and sink, never seen again.

For each provider type (openai, anthropic, openai-compatible, gemini, azure, mistral,
cohere, hosted ollama, bedrock with an API key and with SigV4 signing — where the canary
is the AWS secret access key — and a preset, groq) and each failure (401, 403, 404, 429,
500 — each answer echoing the key and a piece of it, as careless servers do — a timeout,
a connection reset, an HTML error page, a broken JSON body), the key must not appear,
whole or as any 8-character piece, in: the error's str, repr, context and traceback (with
its causes); the service, configuration and provider objects; the log at DEBUG; the hook
events; and the command line's output (text, ``--json``, ``--stream``, ``-v``, ``config
check``, ``providers``, ``models``).

The same holds with several keys per provider (``api_keys``): a refused key is named only
by its fingerprint, in the key events and the log, and neither key leaks.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiport import Hooks, ProviderError, ProviderService
from aiport._credentials import key_fingerprint
from aiport.cli._app import app
from aiport.testing import Emulator, Fault

from .conftest import (
    CANARY,
    PROVIDERS,
    REFUSED_CANARY,
    SIGV4,
    assert_no_leak,
    leaks,
    provider_settings,
)

ECHO = f"key {CANARY} is not valid here (fragment {CANARY[5:17]})"
FAULTS: dict[str, Fault] = {
    "401": Fault.status(401, message=ECHO),
    "403": Fault.status(403, message=ECHO),
    "404": Fault.status(404, message=ECHO),
    "429": Fault.status(429, message=ECHO, retry_after="0"),
    "500": Fault.status(500, message=ECHO),
    "timeout": Fault.hang(5),
    "reset": Fault.reset(),
    "malformed-body": Fault.malformed_body(),
    "malformed-json": Fault.malformed_json(),
}


def credential(name: str, key: str, *, several_keys: bool = False) -> dict[str, Any]:
    """The credential settings of provider ``name``, with ``key`` as its (good) key."""
    values = provider_settings(name, key)
    if several_keys and name != SIGV4:
        # The refused one first, so that every call starts with a refusal.
        del values["api_key"]
        values |= {"api_keys": [REFUSED_CANARY, key], "key_rotation": "failover"}
    return values


def settings(emu: Emulator, *, several_keys: bool = False) -> dict[str, Any]:
    providers = {
        name: {
            "type": target.kind,
            "base_url": getattr(emu, target.url),
            **credential(name, CANARY, several_keys=several_keys),
            "headers": {"X-Trace": "canary-test"},
        }
        for name, target in PROVIDERS.items()
    }
    return {
        "retry": {"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.02},
        "timeouts": {"connect": 2, "first_token": 0.3, "idle": 0.3, "total": 0.3},
        "log_requests": True,
        "providers": providers,
    }


def error_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, ProviderError):
        texts += [repr(error.context()), repr(error.body), error.message]
    cause = error.__cause__ or error.__context__
    while cause is not None:
        texts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return texts


def test_the_leak_detector_sees_pieces() -> None:
    assert leaks("..." + CANARY[3:11] + "...") == [CANARY[3:11]]
    assert leaks(CANARY[:7]) == []


# Every provider x every failure, with one key; with several keys (api_keys) too, except
# for SigV4 signing, whose one identity is a key pair.
LIBRARY_CASES = [
    pytest.param(provider, path, keys, id=f"{provider}-{path}-{keys}")
    for provider in PROVIDERS
    for keys in ("one-key", "several-keys")
    for path in FAULTS
    if not (provider == SIGV4 and keys == "several-keys")
]


@pytest.mark.parametrize(("provider", "path", "keys"), LIBRARY_CASES)
async def test_canary_in_the_library(
    emu: Emulator, caplog: pytest.LogCaptureFixture, provider: str, path: str, keys: str
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[str] = []
    hooks = Hooks()
    for register in (
        hooks.on_request,
        hooks.on_response,
        hooks.on_error,
        hooks.on_attempt,
        hooks.on_key,
    ):
        register(lambda event: events.append(repr(event)))
    model = f"{provider}:{PROVIDERS[provider].model}"
    texts: list[str] = []
    several = keys == "several-keys"
    config = settings(emu, several_keys=several)
    # The timeout path waits until the client gives up: a per-call timeout shorter than the
    # configured ones (which the warm-up call keeps) makes that quick.
    timeout = 0.1 if path == "timeout" else None
    async with ProviderService(config, env={}, hooks=hooks) as service:
        assert (await service.complete(model=model, messages="warm up")).text
        emu.add_fault(FAULTS[path], times=None)
        with pytest.raises(ProviderError) as caught:
            await service.complete(model=model, messages="hi", timeout=timeout)
        texts += error_texts(caught.value)
        try:  # a stream may skip one malformed event and succeed: both are fine here
            async with service.stream(model=model, messages="hi", timeout=timeout) as stream:
                async for event in stream:
                    texts.append(repr(event))
        except ProviderError as exc:
            texts += error_texts(exc)
        layered = service.get_provider(provider)
        adapter = layered.unwrap()
        texts += [
            repr(service),
            str(service),
            repr(service.config),
            str(service.config),
            repr(service.config.providers[provider]),
            service.config.model_dump_json(),
            repr(service.config.model_dump()),
            repr(layered),
            repr(adapter),
            repr(vars(adapter)),
        ]
    emu.reset()
    assert len(emu.requests) == 0
    logged = [logging.Formatter().format(record) for record in caplog.records]
    assert logged, "the calls were logged"
    for secret in (CANARY, REFUSED_CANARY) if several else (CANARY,):
        assert_no_leak(texts, f"{provider}/{path}: errors and objects", secret)
        assert_no_leak(events, f"{provider}/{path}: hook events", secret)
        assert_no_leak(logged, f"{provider}/{path}: logs", secret)
    if several:
        # The keys are named, by fingerprint only: the refused one where it was set aside,
        # the good one where it served the warm-up call.
        refused, good = key_fingerprint(REFUSED_CANARY), key_fingerprint(CANARY)
        assert any("KeyEvent" in e and refused in e for e in events), events
        assert any("ResponseEvent" in e and good in e for e in events), events
        assert any(refused in line and "set aside" in line for line in logged)
        assert any(good in line for line in logged)


def write_config(tmp_path: Path, emu: Emulator, api_key: str) -> Path:
    lines = ["[retry]", "max_attempts = 2", "initial_backoff = 0.01", "max_backoff = 0.02", ""]
    lines += ["[timeouts]", "first_token = 0.3", "idle = 0.3", "total = 0.3", ""]
    for name, target in PROVIDERS.items():
        lines += [
            f"[providers.{name}]",
            f'type = "{target.kind}"',
            f'base_url = "{getattr(emu, target.url)}"',
            *(f"{key} = {json.dumps(value)}" for key, value in credential(name, api_key).items()),
            "",
        ]
    path = tmp_path / "aiport.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_canary_on_the_command_line(emu: Emulator, tmp_path: Path, provider: str) -> None:
    path = write_config(tmp_path, emu, "env:CANARY_KEY")
    env = {"CANARY_KEY": CANARY, "COLUMNS": "200"}
    runner = CliRunner()
    model = f"{provider}:{PROVIDERS[provider].model}"
    for fault_name, fault in FAULTS.items():
        for extra in ([], ["--json"], ["--stream"]):
            emu.add_fault(fault, times=None)
            result = runner.invoke(
                app, ["--config", str(path), "-v", "chat", model, "hi", *extra], env=env
            )
            emu.reset()
            assert result.exit_code == (
                0 if extra == ["--stream"] and fault.kind == "malformed" else 1
            ), (fault_name, result.output)
            assert_no_leak([result.stdout, result.stderr], f"cli {fault_name} {extra}")
            if extra == ["--json"]:
                assert json.loads(result.stdout)["error"]["code"].startswith("PROVIDER_")


def test_canary_in_config_check_and_providers(emu: Emulator, tmp_path: Path) -> None:
    path = write_config(tmp_path, emu, CANARY)  # written literally: warned about, masked
    runner = CliRunner()
    env = {"COLUMNS": "200"}
    outputs = []
    for args in (
        ["config", "check"],
        ["--json", "config", "check"],
        ["providers"],
        ["--json", "providers"],
        ["-v", "models"],
    ):
        result = runner.invoke(app, ["--config", str(path), *args], env=env)
        # Literal keys in the file are warnings: they fail the check, nothing else.
        assert result.exit_code == (1 if args[-1] == "check" else 0), result.output
        outputs += [result.stdout, result.stderr]
    assert "written literally" in outputs[0]
    assert "****" + CANARY[-4:] in outputs[0]
    assert_no_leak(outputs, "config check / providers")


def test_several_keys_on_the_command_line(emu: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "aiport.toml"
    path.write_text(
        "[retry]\nmax_attempts = 1\n\n"
        "[providers.openai]\n"
        'type = "openai"\n'
        f'base_url = "{emu.openai_base_url}"\n'
        'api_keys = ["env:REFUSED_KEY", "env:CANARY_KEY"]\n'
        'key_rotation = "failover"\n',
        encoding="utf-8",
    )
    env = {"CANARY_KEY": CANARY, "REFUSED_KEY": REFUSED_CANARY, "COLUMNS": "200"}
    # Each invocation starts with the refused key: the answers echo it (a server can only
    # echo what it was sent), and every later key is scrubbed the same way.
    echo = f"key {REFUSED_CANARY} is not valid here (fragment {REFUSED_CANARY[5:17]})"
    faults = {
        "401": Fault.status(401, message=echo),
        "429": Fault.status(429, message=echo, retry_after="0"),
        "500": Fault.status(500, message=echo),
    }
    runner = CliRunner()
    outputs: list[str] = []
    for fault_name in (None, "401", "429", "500"):
        for extra in ([], ["--json"], ["--stream"]):
            if fault_name is not None:
                emu.add_fault(faults[fault_name], times=None)
            result = runner.invoke(
                app, ["--config", str(path), "-v", "chat", "openai:gpt-4o", "hi", *extra], env=env
            )
            emu.reset()
            assert result.exit_code == (0 if fault_name is None else 1), result.output
            outputs += [result.stdout, result.stderr]
    for args in (["config", "check"], ["--json", "config", "check"], ["providers"]):
        result = runner.invoke(app, ["--config", str(path), *args], env=env)
        assert result.exit_code == 0, result.output
        outputs += [result.stdout, result.stderr]
    text = "\n".join(outputs)
    assert key_fingerprint(REFUSED_CANARY) in text  # named where it was refused
    assert key_fingerprint(CANARY) in text  # and in config check
    assert_no_leak(outputs, "several keys on the command line")
    assert_no_leak(outputs, "several keys on the command line", REFUSED_CANARY)
