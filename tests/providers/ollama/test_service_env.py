"""A ``ProviderService(env=...)`` mapping reaches the Ollama provider: its ``OLLAMA_HOST``
is the default base URL, with nothing in the process environment."""

from __future__ import annotations

import socket

import pytest

from aiport import ProviderService
from aiport.testing import Emulator

CONFIG = {"retry": {"max_attempts": 1}, "providers": {"local": {"type": "ollama"}}}


def unused_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_ollama_host_of_the_env_mapping_is_the_default_base_url(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    env = {"OLLAMA_HOST": f"127.0.0.1:{emulator.port}"}
    async with ProviderService(CONFIG, env=env) as service:
        response = await service.complete(model="local:llama3.2", messages="Hi")
    assert response.text == "You said: Hi"
    assert emulator.requests[-1].path == "/api/chat"


async def test_the_env_mapping_wins_over_the_process_ollama_host(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process points at a port where nothing listens: only the mapping can succeed.
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{unused_port()}")
    env = {"OLLAMA_HOST": f"http://127.0.0.1:{emulator.port}"}
    async with ProviderService(CONFIG, env=env) as service:
        response = await service.complete(model="local:llama3.2", messages="Hi")
    assert response.text == "You said: Hi"
