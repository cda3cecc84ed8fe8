"""Starting and stopping: async, in a thread, the pytest fixtures, and serve_forever."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from openai import OpenAI

from aiport.testing import Emulator, Fault

from .conftest import OA


def sync_chat(emu: Emulator, text: str = "hi", **headers: str) -> tuple[int, Any]:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]})
    request = urllib.request.Request(  # noqa: S310 - our own http:// URL
        emu.openai_base_url + "/chat/completions",
        data=body.encode(),
        headers={**OA, "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - our own http:// URL
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_run_in_thread_serves_sync_code() -> None:
    with Emulator().run_in_thread() as emu:
        assert emu.url.startswith("http://127.0.0.1:")
        assert emu.openai_base_url == emu.url + "/v1"
        assert emu.anthropic_base_url == emu.url
        status, body = sync_chat(emu, "from a thread")
        assert status == 200
        assert body["choices"][0]["message"]["content"] == "You said: from a thread"
        emu.fail_next(1, Fault.status(429))
        assert sync_chat(emu)[0] == 429
        assert emu.count() == 2
    with pytest.raises(RuntimeError):
        _ = emu.url


def test_sync_sdk_in_thread() -> None:
    with (
        Emulator(api_keys=["sk-one-1234567"]).run_in_thread() as emu,
        OpenAI(base_url=emu.openai_base_url, api_key="sk-one-1234567", max_retries=0) as client,
    ):
        r = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "sync"}]
        )
        assert r.choices[0].message.content == "You said: sync"


def test_stopping_a_thread_with_a_hang_is_prompt() -> None:
    runner = Emulator().run_in_thread()
    emu = runner.start()
    emu.add_fault(Fault.hang())
    errors: list[BaseException] = []

    def call() -> None:
        try:
            sync_chat(emu)
        except Exception as exc:  # the connection is closed under it
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while emu.count() < 1:
        time.sleep(0.01)
    started = time.monotonic()
    runner.stop()
    assert time.monotonic() - started < 3
    thread.join(5)
    assert not thread.is_alive()
    assert errors


def test_explicit_port_and_double_start() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Emulator(port=port).run_in_thread() as emu:
        assert emu.port == port
        assert emu.url == f"http://127.0.0.1:{port}"
        with pytest.raises(OSError, match="in use"):  # the port is taken
            Emulator(port=port).run_in_thread().start()


async def test_async_start_stop_and_restart() -> None:
    emu = Emulator()
    with pytest.raises(RuntimeError):
        _ = emu.url
    await emu.start()
    with pytest.raises(RuntimeError):
        await emu.start()
    await emu.stop()
    await emu.stop()  # idempotent
    async with emu:
        assert emu.port > 0


def test_pytest_fixture(aiport_emulator: Emulator) -> None:
    assert sync_chat(aiport_emulator)[0] == 200
    assert aiport_emulator.count() == 1


async def test_pytest_fixture_in_async_test(aiport_emulator: Emulator) -> None:
    from openai import AsyncOpenAI

    async with AsyncOpenAI(
        base_url=aiport_emulator.openai_base_url, api_key="k", max_retries=0
    ) as client:
        r = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "async"}]
        )
    assert r.choices[0].message.content == "You said: async"


def test_session_fixture(aiport_emulator_session: Emulator) -> None:
    aiport_emulator_session.reset()
    assert sync_chat(aiport_emulator_session)[0] == 200
    assert aiport_emulator_session.count() == 1


def test_serve_forever_stops_cleanly_on_ctrl_c() -> None:
    code = (
        "from aiport.testing import Emulator\n"
        "Emulator().serve_forever(on_ready=lambda e: print(e.url, flush=True))\n"
        "print('bye', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url + "/v1/models", timeout=5).close()  # noqa: S310
        info.value.close()
        assert info.value.code == 401  # no key
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.strip() == "bye"
    assert "Traceback" not in err
