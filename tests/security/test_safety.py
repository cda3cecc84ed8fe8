"""Keys in headers only, no credentials through redirects, base URL rules, supply chain.

The header and redirect tests run for one provider of every built-in type and a preset
(``PROVIDERS`` of the conftest), Bedrock both with an API key and signing with SigV4.
"""

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

from .conftest import CANARY, PROVIDERS, assert_no_leak, leaks, provider_settings

ROOT = Path(__file__).resolve().parents[2]


def config(emu: Emulator, provider: str) -> dict[str, Any]:
    """One provider on the emulator, the canary as its key, no retries."""
    target = PROVIDERS[provider]
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            provider: {
                "type": target.kind,
                "base_url": getattr(emu, target.url),
                **provider_settings(provider, CANARY),
            }
        },
    }


@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_keys_travel_only_in_headers(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
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
    target = PROVIDERS[provider]
    model = f"{provider}:{target.model}"
    async with ProviderService(config(emu, provider), env={}) as service:
        await service.complete(model=model, messages="hi")
        async with service.stream(model=model, messages="hi") as events:
            async for _ in events:
                pass
        if target.embedding_model is not None:
            await service.embed(model=f"{provider}:{target.embedding_model}", input=["a"])
        if provider == "openai":
            await service.generate_image(model="openai:dall-e-2", prompt="x", size="256x256")
    calls = 2 + (target.embedding_model is not None) + (provider == "openai")
    assert len(urls) == calls
    assert_no_leak(urls, "request URL")  # query strings included
    assert len(emu.requests) == calls
    for recorded in emu.requests:
        assert_no_leak([recorded.path, recorded.raw_body.decode("utf-8", "replace")], "request")
        carried = [name for name, value in recorded.headers.items() if leaks(value)]
        # The key in its one header; with SigV4, the secret in none (only signatures).
        assert carried == ([target.key_header] if target.key_header else []), recorded.headers
    if target.key_header is None:
        assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256") for r in emu.requests)


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
@pytest.mark.parametrize("provider", list(PROVIDERS))
async def test_redirects_are_errors_and_carry_nothing(
    server: Callable[[Handler], Awaitable[str]], emu: Emulator, provider: str, status: int
) -> None:
    received: list[dict[str, str]] = []

    async def attacker(request: web.Request) -> web.StreamResponse:
        received.append(dict(request.headers))
        return web.json_response({})

    target = await server(attacker)

    async def redirector(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": target + request.path_qs})

    base = await server(redirector)
    settings = config(emu, provider)
    # The provider's own path prefix (``/v1``...) on the redirecting server.
    path = getattr(emu, PROVIDERS[provider].url).removeprefix(emu.url)
    settings["providers"][provider]["base_url"] = base + path
    model = f"{provider}:{PROVIDERS[provider].model}"
    async with ProviderService(settings, env={}) as service:
        with pytest.raises(ProviderAPIError, match="redirect") as caught:
            await service.complete(model=model, messages="hi")
        assert caught.value.status_code == status
        assert caught.value.provider == provider
        with pytest.raises(ProviderAPIError, match="redirect"):
            await drain(service, model)
    assert received == []  # the redirect target never heard from us
    assert emu.requests == []


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
    # Data the package reads at run time: the model catalogue and the preset rows.
    package = ROOT / "src" / "aiport"
    data = sorted(
        p.relative_to(package.parent).as_posix() for p in package.glob("_catalogue/*.toml")
    )
    assert len(data) > 1
    data.append("aiport/providers/presets.toml")
    assert [n for n in data if n not in names] == []
    # And every module and data file of the source tree: nothing left behind. (By suffix:
    # a stray editor or coverage file in the tree is no part of the package.)
    sources = [
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*")
        if p.suffix in {".py", ".pyi", ".toml", ".json", ".typed"} and "__pycache__" not in p.parts
    ]
    assert len(sources) > len(data)
    assert [n for n in sources if n not in names] == []
    assert not [n for n in names if n.endswith(".pth")]
    outside = [
        n
        for n in names
        if not n.startswith("aiport/")
        and not (n.startswith("aiport-") and n.split("/")[0].endswith(".dist-info"))
    ]
    assert outside == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
