"""``aiport batch run`` against an emulator running in a thread."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import Result

from aiport.cli import _batch

RunCli = Callable[..., Result]


def write_jsonl(path: Path, *lines: Any) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def test_every_line_answered_in_order(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        ask("first", custom_id="a-1"),
        "",  # blank lines are skipped
        ask("second", model="openai:gpt-4o"),
        {  # the OpenAI Batch API form
            "custom_id": "req-3",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "openai:gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "third"}]},
                ],
            },
        },
    )
    target = tmp_path / "out.jsonl"
    result = run_cli(
        "batch", "run", str(source), "-o", str(target), "--model", "openai:gpt-4o-mini"
    )
    assert result.exit_code == 0, result.output + result.stderr
    records = read_jsonl(target)
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[0]["custom_id"] == "a-1"
    assert "custom_id" not in records[1]
    assert records[2]["custom_id"] == "req-3"
    assert [r["response"]["text"] for r in records] == [
        "You said: first",
        "You said: second",
        "You said: third",
    ]
    assert records[0]["response"]["model"].startswith("gpt-4o-mini")
    assert records[1]["response"]["model"].startswith("gpt-4o")
    assert records[0]["response"]["usage"]["input_tokens"] > 0
    assert "3 ok, 0 failed, 3 in all" in result.stderr
    assert "batch: 3/3 done" in result.stderr  # plain counts: stderr is not a terminal
    assert result.stdout == ""


def test_failing_and_malformed_lines(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        ask("no model", custom_id=7),
        '{"messages": [oops',
        # Over the emulator's context window: the provider's own 400.
        ask("word " * 300, custom_id="too-long", model="openai:gpt-4o-mini"),
        "[1, 2]",
        {"custom_id": "no-messages", "model": "openai:gpt-4o-mini"},
        ask("no model anywhere"),
        ask("fine again", model="openai:gpt-4o-mini"),
    )
    target = tmp_path / "out.jsonl"
    result = run_cli("batch", "run", str(source), "-o", str(target))
    assert result.exit_code == 1
    records = read_jsonl(target)
    assert len(records) == 7
    assert [r["index"] for r in records] == list(range(7))
    ok = [r for r in records if "response" in r]
    assert [r["index"] for r in ok] == [6]
    assert records[0]["custom_id"] == 7
    assert "no model given" in records[0]["error"]["message"]

    by_index = {r["index"]: r for r in records}
    assert by_index[1]["line"] == 2
    assert by_index[1]["error"]["reason"] == "invalid_input"
    assert "not valid JSON" in by_index[1]["error"]["message"]
    assert by_index[2]["custom_id"] == "too-long"
    assert by_index[2]["error"]["status_code"] == 400
    assert by_index[2]["error"]["code"] == "PROVIDER_API_ERROR"
    assert "expected a JSON object, got an array" in by_index[3]["error"]["message"]
    assert by_index[4]["custom_id"] == "no-messages"
    assert "messages" in by_index[4]["error"]["message"]
    assert "no model given" in by_index[5]["error"]["message"]

    for line in (1, 2, 3, 4, 5, 6):
        assert f"line {line}: error:" in result.stderr
    assert "1 ok, 6 failed, 7 in all" in result.stderr


def test_json_summary_and_no_progress(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ask("a"), "null", ask("b"))
    target = tmp_path / "out.jsonl"
    result = run_cli(
        "--json", "batch", "run", str(source), "-o", str(target), "-m", "openai:gpt-4o-mini"
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary == {
        "input": str(source),
        "output": str(target),
        "total": 3,
        "ok": 2,
        "failed": 1,
        "failed_lines": [2],
    }
    assert "batch:" not in result.stderr
    assert "line 2: error:" in result.stderr
    assert "got null" in result.stderr


def test_progress_bar_on_a_terminal(
    tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_batch, "_stderr_is_terminal", lambda out: True)
    source = write_jsonl(tmp_path / "in.jsonl", *(ask(f"q{i}") for i in range(12)))
    target = tmp_path / "out.jsonl"
    result = run_cli(
        "batch",
        "run",
        str(source),
        "-o",
        str(target),
        "-m",
        "openai:gpt-4o-mini",
        "--concurrency",
        "3",
    )
    assert result.exit_code == 0, result.stderr
    assert "12/12" in result.stderr
    assert "batch: " not in result.stderr  # the bar, not the plain counts
    assert len(read_jsonl(target)) == 12


def test_plain_counts_every_tenth(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", *(ask(f"q{i}") for i in range(25)))
    result = run_cli(
        "batch", "run", str(source), "-o", str(tmp_path / "o.jsonl"), "-m", "openai:gpt-4o-mini"
    )
    assert result.exit_code == 0
    counts = [line for line in result.stderr.splitlines() if line.startswith("batch: ")]
    assert counts[-1] == "batch: 25/25 done"
    assert 10 <= len(counts) <= 13


def test_every_kind_of_json_that_is_not_an_object_is_named(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", '"text"', "true", "3", "null", "[]")
    result = run_cli("batch", "run", str(source), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    for kind in ("a string", "a boolean", "a number", "null", "an array"):
        assert f"expected a JSON object, got {kind}" in result.stderr


def test_without_the_app_state_the_default_configuration_is_used(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``batch_app`` mounted on its own (no global options): the usual lookup applies.
    monkeypatch.setenv("AIPORT_CONFIG", str(config_file))
    service = _batch._service(SimpleNamespace(obj=None))  # type: ignore[arg-type]
    try:
        assert service.provider_names == ["openai"]
    finally:
        service.close()


def test_many_failures_are_listed_up_to_a_limit(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", *(["{bad"] * 25))
    result = run_cli("batch", "run", str(source), "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 1
    assert result.stderr.count("not valid JSON") == 20
    assert "... and 5 more failed lines" in result.stderr


def test_an_empty_input_is_a_success(tmp_path: Path, run_cli: RunCli) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    result = run_cli("batch", "run", str(source), "-o", str(target))
    assert result.exit_code == 0
    assert target.read_text(encoding="utf-8") == ""
    assert "0 ok, 0 failed, 0 in all" in result.stderr


def test_bad_paths(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ask("a"))
    missing = run_cli("batch", "run", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o"))
    assert missing.exit_code == 2
    same = run_cli("batch", "run", str(source), "-o", str(source))
    assert same.exit_code == 1
    assert "must not be the input" in same.stderr
    unwritable = run_cli("batch", "run", str(source), "-o", str(tmp_path / "no-dir" / "o.jsonl"))
    assert unwritable.exit_code == 1
    assert "cannot write" in unwritable.stderr
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    unreadable = run_cli("batch", "run", str(binary), "-o", str(tmp_path / "o.jsonl"))
    assert unreadable.exit_code == 1
    assert "cannot read" in unreadable.stderr
    zero = run_cli("batch", "run", str(source), "-o", str(tmp_path / "o"), "--concurrency", "0")
    assert zero.exit_code == 2


def test_an_invalid_configuration_is_reported(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ask("a"))
    config = tmp_path / "bad.toml"
    config.write_text('[providers.x]\ntype = "nope"\n', encoding="utf-8")
    result = run_cli(
        "--config", str(config), "batch", "run", str(source), "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 1
    assert "CONFIG_ERROR" in result.stderr


def test_help_lists_the_command(run_cli: RunCli) -> None:
    result = run_cli("batch", "--help")
    assert result.exit_code == 0
    assert "run" in result.stdout


def test_provider_batch_goes_through_the_batch_api(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", ask("one", custom_id="x-1"), ask("two"), ask("three")
    )
    target = tmp_path / "out.jsonl"
    result = run_cli(
        "batch",
        "run",
        str(source),
        "-o",
        str(target),
        "--model",
        "openai:gpt-4o-mini",
        "--provider-batch",
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "resume with --provider-batch --batch-id batch_" in result.stderr
    records = read_jsonl(target)
    assert [r["response"]["text"] for r in records] == [
        "You said: one",
        "You said: two",
        "You said: three",
    ]
    assert records[0]["custom_id"] == "x-1"


def test_provider_batch_needs_one_model(tmp_path: Path, run_cli: RunCli) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        ask("one", model="openai:gpt-4o-mini"),
        ask("two", model="openai:gpt-4o"),
    )
    result = run_cli(
        "batch", "run", str(source), "-o", str(tmp_path / "out.jsonl"), "--provider-batch"
    )
    assert result.exit_code == 1
    assert "one model" in result.stderr
    lone = run_cli(
        "batch", "run", str(source), "-o", str(tmp_path / "o2.jsonl"), "--batch-id", "b-1"
    )
    assert lone.exit_code == 2
