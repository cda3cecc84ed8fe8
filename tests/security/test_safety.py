"""Keys in headers only, no credentials through redirects, base URL rules, supply chain."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from aiport import ProviderAPIError, ProviderService
from aiport._errors import ConfigError
from aiport._http import HttpClient
from aiport.providers._base import check_base_url
from aiport.testing import Emulator

from .conftest import CANARY, assert_no_leak

ROOT = Path(__file__).resolve().parents[2]


def config(emu: Emulator) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "openai": {"type": "openai", "base_url": emu.openai_base_url, "api_key": CANARY},
            "anthropic": {
                "type": "anthropic",
                "base_url": emu.anthropic_base_url,
                "api_key": CANARY,
            },
            "local": {
                "type": "openai-compatible",
                "base_url": emu.openai_base_url,
                "api_key": CANARY,
            },
        },
    }


async def test_keys_travel_only_in_headers(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    urls: list[str] = []
    request, stream = HttpClient.request, HttpClient.stream

    async def spy_request(self: HttpClient, method: str, url: str, **kw: Any) -> Any:
        urls.append(url)
        return await request(self, method, url, **kw)

    def spy_stream(self: HttpClient, method: str, url: str, **kw: Any) -> Any:
        urls.append(url)
        return stream(self, method, url, **kw)

    monkeypatch.setattr(HttpClient, "request", spy_request)
    monkeypatch.setattr(HttpClient, "stream", spy_stream)
    async with ProviderService(config(emu), env={}) as service:
        for provider in ("openai", "anthropic", "local"):
            model = "claude-sonnet-4-5" if provider == "anthropic" else "gpt-4o"
            await service.complete(model=f"{provider}:{model}", messages="hi")
            async with service.stream(model=f"{provider}:{model}", messages="hi") as events:
                async for _ in events:
                    pass
        await service.embed(model="openai:text-embedding-3-small", input=["a"])
        await service.generate_image(model="openai:dall-e-2", prompt="x", size="256x256")
    assert len(urls) >= 8
    assert_no_leak(urls, "request URL")
    assert emu.requests
    for recorded in emu.requests:
        assert_no_leak([recorded.path, recorded.raw_body.decode("utf-8", "replace")], "request")
        carried = [name for name, value in recorded.headers.items() if CANARY in value]
        assert carried in (["authorization"], ["x-api-key"]), recorded.headers.keys()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def drain(service: ProviderService, model: str) -> None:
    async with service.stream(model=model, messages="hi") as events:
        async for _ in events:
            pass


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_errors_and_carry_nothing(
    server: Callable[[Handler], Awaitable[str]], status: int
) -> None:
    received: list[dict[str, str]] = []

    async def attacker(request: web.Request) -> web.StreamResponse:
        received.append(dict(request.headers))
        return web.json_response({})

    target = await server(attacker)

    async def redirector(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": target + "/v1/chat/completions"})

    base = await server(redirector)
    settings = {
        "retry": {"max_attempts": 1},
        "providers": {
            "openai": {"type": "openai", "base_url": base + "/v1", "api_key": CANARY},
            "anthropic": {"type": "anthropic", "base_url": base, "api_key": CANARY},
        },
    }
    async with ProviderService(settings, env={}) as service:
        for model in ("openai:gpt-4o", "anthropic:claude-sonnet-4-5"):
            with pytest.raises(ProviderAPIError, match="redirect") as caught:
                await service.complete(model=model, messages="hi")
            assert caught.value.status_code == status
            with pytest.raises(ProviderAPIError, match="redirect"):
                await drain(service, model)
    assert received == []  # the redirect target never heard from us


def test_base_url_must_be_http_or_https(caplog: pytest.LogCaptureFixture) -> None:
    for bad in ("ftp://example.com/v1", "file:///etc/passwd", "example.com/v1", "http://"):
        with pytest.raises(ConfigError, match="http:// or https://"):
            check_base_url("p", bad)
    with caplog.at_level(logging.WARNING, logger="aiport"):
        check_base_url("p", "https://api.example.com/v1")
        check_base_url("p", "http://127.0.0.1:8000/v1")
        check_base_url("p", "http://localhost:11434/v1")
        check_base_url("p", "http://[::1]:8000/v1")
        assert caplog.records == []
        check_base_url("lan", "http://192.168.1.20:8000/v1")
    assert len(caplog.records) == 1
    assert "plain http" in caplog.text and "'lan'" in caplog.text


def test_adapters_check_their_base_url(caplog: pytest.LogCaptureFixture) -> None:
    from aiport.providers.openai import OpenAIProvider

    http = HttpClient()
    with pytest.raises(ConfigError):
        OpenAIProvider(name="x", base_url="gopher://h/v1", credential=None, http=http)
    settings = {"providers": {"remote": {"type": "openai", "base_url": "http://10.1.2.3/v1"}}}
    with (
        caplog.at_level(logging.WARNING, logger="aiport"),
        ProviderService(settings, env={}) as service,
    ):
        service.get_provider("remote")
    assert "plain http to 10.1.2.3" in caplog.text


def test_import_makes_no_network_connection() -> None:
    script = textwrap.dedent(
        """
        import socket

        attempts = []

        def refuse(*args, **kwargs):
            attempts.append(args[:1])
            raise OSError("network blocked by the test")

        class NoSocket(socket.socket):
            def __init__(self, *args, **kwargs):
                refuse(*args)

        socket.socket = NoSocket
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        socket.socketpair = refuse

        import aiport
        from aiport import *  # noqa: F403
        for name in aiport.__all__:
            getattr(aiport, name)
        import aiport.testing
        import aiport.cli._app
        import aiport._keystore, aiport._tokens, aiport._credentials, aiport._secrets
        from aiport._secrets import SecretResolver
        SecretResolver().schemes  # plug-in discovery reads metadata, not the network
        print("attempts", len(attempts))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "attempts 0"


def test_the_wheel_holds_only_the_package(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    wheels = list(tmp_path.glob("aiport-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
    assert "aiport/__init__.py" in names
    assert "aiport/py.typed" in names
    # The model catalogue is data the package reads at run time.
    catalogue = sorted(p.name for p in (ROOT / "src/aiport/_catalogue").glob("*.toml"))
    assert catalogue
    assert [n for n in catalogue if f"aiport/_catalogue/{n}" not in names] == []
    assert not [n for n in names if n.endswith(".pth")]
    outside = [
        n
        for n in names
        if not n.startswith("aiport/")
        and not (n.startswith("aiport-") and n.split("/")[0].endswith(".dist-info"))
    ]
    assert outside == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
