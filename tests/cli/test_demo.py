"""``aiport demo``, ``aiport emulate``, help texts, and the package's import hygiene."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiport.cli._app import app
from aiport.cli._demo import TOUR_MODELS, png_dimensions

_CLEAN = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "AIPORT_CONFIG": None}


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEAN and not k.startswith("AIPORT_")}
    # A config file in the working directory that would break everything if it were read.
    (tmp_path / "aiport.toml").write_text('[providers.openai]\ntype = "broken"\n')
    env["OPENAI_API_KEY"] = "sk-real-key-that-must-not-be-used-0000"
    return env


def test_demo_in_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "aiport.cli", "demo", "--output-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**_environment(tmp_path), "COLUMNS": "200"},
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8/8 steps succeeded" in result.stdout
    for number in range(1, 9):
        assert f"{number}. " in result.stdout
    for provider, model in TOUR_MODELS:  # the same request answered by every provider
        assert re.search(rf"{provider} +{re.escape(model)} +You said: ", result.stdout)
    assert "ProviderRateLimitError" in result.stdout
    assert "sk-real-key" not in result.stdout + result.stderr
    assert png_dimensions((out / "aiport-image-1.png").read_bytes()) is not None
    assert elapsed < 20


def test_demo_json_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["--json", "demo", "-o", str(tmp_path)], env=_environment(tmp_path)
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert document["output_dir"] == str(tmp_path)
    steps = document["steps"]
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert all(s["status"] == "ok" for s in steps), steps
    assert all(s["latency"] >= 0 for s in steps)
    assert steps[2]["detail"] == f"{len(TOUR_MODELS)} providers answered the same request"
    assert "PROVIDER_RATE_LIMIT_ERROR" in steps[7]["detail"]


def test_demo_default_output_dir_is_a_new_temp_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--json"], env=_environment(tmp_path))
    assert result.exit_code == 0, result.output
    directory = Path(json.loads(result.stdout)["output_dir"])
    try:
        assert directory.name.startswith("aiport-demo-")
        assert (directory / "aiport-image-1.png").is_file()
    finally:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()


def test_emulate_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "aiport.cli", "emulate", "--port", "0", "--api-key", "k-123"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, "the emulator exited early: " + process.stderr.read()  # type: ignore[union-attr]
            lines.append(line)
        text = "".join(lines)
        url = text.split("listening on ", 1)[1].split()[0]
        assert f'base_url = "{url}/v1"' in text
        host, port = url.removeprefix("http://").rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            connection.request("GET", "/v1/models", headers={"Authorization": "Bearer k-123"})
            assert connection.getresponse().status == 200
        finally:
            connection.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["chat"],
        ["embed"],
        ["image"],
        ["providers"],
        ["models"],
        ["config"],
        ["config", "check"],
        ["emulate"],
        ["demo"],
    ],
)
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    if command != ["config"]:
        assert "Examples" in result.stdout
        assert "aiport " in result.stdout.split("Examples", 1)[1]


def test_import_aiport_does_not_import_the_cli() -> None:
    code = (
        "import sys, aiport; aiport.ProviderService; aiport.Tool; "
        "assert 'aiport.cli' not in sys.modules, 'cli'; "
        "assert 'typer' not in sys.modules, 'typer'; "
        "assert 'rich' not in sys.modules, 'rich'; "
        "import aiport.cli; assert 'typer' not in sys.modules, 'typer via aiport.cli'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
