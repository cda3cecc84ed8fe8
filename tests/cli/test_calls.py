"""``aiport chat``, ``embed`` and ``image`` against the emulator."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiport.cli._demo import png_dimensions
from tests.cli.conftest import Cli


def test_chat_prints_the_answer(cli: Cli) -> None:
    result = cli("chat", "openai:gpt-4o-mini", "Hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: Hello there\n"
    assert result.stderr == ""


def test_chat_on_anthropic(cli: Cli) -> None:
    result = cli("chat", "anthropic:claude-sonnet-4-6", "Bonjour")
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: Bonjour\n"


def test_chat_stream(cli: Cli) -> None:
    result = cli("chat", "--stream", "anthropic:claude-sonnet-4-6", "one two three four")
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: one two three four\n"


def test_chat_json(cli: Cli) -> None:
    result = cli("--json", "chat", "openai:gpt-4o-mini", "Hi")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["text"] == "You said: Hi"
    assert document["provider"] == "openai"
    assert document["model"].startswith("gpt-4o-mini")
    assert document["finish_reason"] == "stop"
    assert document["usage"]["output_tokens"] > 0
    assert document["usage"]["total_tokens"] == (
        document["usage"]["input_tokens"] + document["usage"]["output_tokens"]
    )
    assert document["latency"] >= 0
    assert document["tool_calls"] == []


def test_chat_json_after_the_command_and_streamed(cli: Cli) -> None:
    result = cli("chat", "openai:gpt-4o-mini", "Hi again", "--stream", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # one document: the deltas are not printed
    assert document["text"] == "You said: Hi again"
    assert document["usage"]["output_tokens"] > 0


def test_chat_prompt_from_stdin(cli: Cli) -> None:
    result = cli("chat", "openai:gpt-4o-mini", input="from a pipe\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "You said: from a pipe\n"
    dash = cli("chat", "openai:gpt-4o-mini", "-", input="dash means stdin")
    assert dash.stdout == "You said: dash means stdin\n"


def test_chat_without_a_prompt_is_a_usage_error(cli: Cli) -> None:
    result = cli("chat", "openai:gpt-4o-mini", input="")
    assert result.exit_code == 2
    assert "PROMPT" in result.stderr


def test_chat_options_reach_the_provider(cli: Cli) -> None:
    result = cli(
        "--json",
        "chat",
        "openai:gpt-4o-mini",
        "--system",
        "Be terse.",
        "--temperature",
        "0.2",
        "--max-tokens",
        "2",
        "a b c d e f g",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["finish_reason"] == "length"
    assert document["usage"]["output_tokens"] == 2


def test_chat_invalid_option_value(cli: Cli) -> None:
    result = cli("chat", "openai:gpt-4o-mini", "--temperature", "7", "Hi")
    assert result.exit_code == 2


def test_verbose_logs_to_stderr(cli: Cli) -> None:
    result = cli("-v", "chat", "openai:gpt-4o-mini", "Hi")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("You said: Hi")
    assert "openai:gpt-4o-mini" in result.stderr  # the statistics line
    assert logging.getLogger("aiport").handlers == []  # removed when the command ends


def test_embed_human(cli: Cli) -> None:
    result = cli("embed", "openai:text-embedding-3-small", "--dimensions", "256", "cat", "dog")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("1: 256 dims [")
    assert lines[1].startswith("2: 256 dims [")
    numbers = lines[0].split("[", 1)[1].split("]", 1)[0].split(", ")
    assert len(numbers) == 5  # four numbers and "..."
    assert numbers[-1] == "..."


def test_embed_json(cli: Cli) -> None:
    result = cli("--json", "embed", "openai:text-embedding-3-small", "a", "b", "c")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["provider"] == "openai"
    assert [len(v) for v in document["embeddings"]] == [1536, 1536, 1536]
    assert document["usage"]["input_tokens"] > 0


def test_image_bytes_written_as_png(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "images"
    result = cli("image", "openai:gpt-image-1", "A red fox", "-o", str(out))
    assert result.exit_code == 0, result.output
    path = out / "aiport-image-1.png"
    assert result.stdout.strip() == str(path)
    assert png_dimensions(path.read_bytes()) == (16, 16)


def test_image_urls_are_downloaded_and_never_overwritten(cli: Cli, tmp_path: Path) -> None:
    args = ("--json", "image", "openai:dall-e-2", "A cat", "--n", "2", "--size", "256x256")
    first = cli(*args, "--output-dir", str(tmp_path))
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert document["provider"] == "openai"
    assert document["files"] == [
        str(tmp_path / "aiport-image-1.png"),
        str(tmp_path / "aiport-image-2.png"),
    ]
    second = cli(*args, "--output-dir", str(tmp_path))
    assert json.loads(second.stdout)["files"] == [
        str(tmp_path / "aiport-image-3.png"),
        str(tmp_path / "aiport-image-4.png"),
    ]
    for number in range(1, 5):
        assert png_dimensions((tmp_path / f"aiport-image-{number}.png").read_bytes()) == (16, 16)
