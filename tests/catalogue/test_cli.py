"""``aiport models`` filters, ``aiport providers --types``, and the README's generated table."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from aiport._catalogue import known_models
from aiport._types import ProviderModel
from aiport.cli._catalogue import (
    MARKDOWN_END,
    MARKDOWN_START,
    builtin_registry,
    filter_models,
    parse_token_count,
    render_markdown,
    summarize_types,
)
from aiport.testing import Emulator
from tests.cli.conftest import Cli, provider_toml

README = Path(__file__).resolve().parents[2] / "README.md"

EXTRA = """
[providers.openai.models."gpt-4o-mini"]
deprecated = 2020-01-31

[providers.openai.models."gpt-4o"]
deprecated = 2999-12-31

[providers.openai.models.cheap-ft]
name = "ft:gpt-4o-mini:acme"
input_price_per_million = 0.01
output_price_per_million = 0.02
context_window = 2_000_000
"""


@pytest.fixture
def catalogue_cli(make_cli: Callable[..., Cli], cli_emulator: Emulator) -> Cli:
    return make_cli(provider_toml(cli_emulator, extra=EXTRA), AIPORT_TEST_KEY="sk-any-0000")


def _ids(cli: Cli, *args: str) -> list[str]:
    result = cli("--json", "models", *args)
    assert result.exit_code == 0, result.output
    return [m["id"] for m in json.loads(result.stdout)["models"]]


def test_models_price_and_window_filters(catalogue_cli: Cli) -> None:
    # With the retiring models too, so the filters are tested on their own.
    every = ("--include-retired",)
    cheap = _ids(catalogue_cli, "--max-input-price", "0.15", "-C", "chat", *every)
    assert "openai:cheap-ft" in cheap
    assert "openai:gpt-4.1-nano" in cheap  # $0.10
    assert "openai:gpt-4o" not in cheap  # $2.50
    assert not any(i.startswith("anthropic:claude-opus-5") for i in cheap)  # price unknown
    big = _ids(catalogue_cli, "--min-context", "1M", *every)
    assert set(big) == {
        "openai:cheap-ft",
        "openai:gpt-4.1",
        "openai:gpt-4.1-mini",
        "openai:gpt-4.1-nano",
    }
    assert _ids(catalogue_cli, "--min-context", "1_047_577", *every) == ["openai:cheap-ft"]
    # Without the flag, the models past their shipped retirement date are left out.
    today = datetime.date.today()
    openai_models = known_models("openai")
    assert set(_ids(catalogue_cli, "--min-context", "1M")) == {
        i for i in big if (d := _retires(openai_models, i)) is None or d > today
    }


def _retires(models: Mapping[str, ProviderModel], qualified_id: str) -> datetime.date | None:
    model = models.get(qualified_id.partition(":")[2])
    return model.deprecated if model is not None else None


def test_models_hide_retired_unless_asked(catalogue_cli: Cli) -> None:
    listed = _ids(catalogue_cli)
    assert "openai:gpt-4o-mini" not in listed  # retired (the config's date)
    assert "openai:gpt-4o" in listed  # retires later: still answers, so still listed
    assert "anthropic:claude-3-opus-20240229" not in listed  # retired 2026-01-05
    assert "openai:text-embedding-3-small" in listed  # no date announced
    assert "anthropic:claude-sonnet-4-6" in listed
    result = catalogue_cli("--json", "models", "--include-retired", "-p", "openai")
    rows = {m["id"]: m for m in json.loads(result.stdout)["models"]}
    assert rows["openai:gpt-4o-mini"]["deprecated"] == "2020-01-31"  # the config's date wins
    assert rows["openai:gpt-4o"]["deprecated"] == "2999-12-31"
    assert rows["openai:gpt-4.1"]["deprecated"] == "2027-01-14"  # the catalogue's
    assert rows["openai:text-embedding-3-small"]["deprecated"] is None
    table = catalogue_cli("models", "--include-deprecated", "-p", "openai")  # the old name
    header = table.stdout.splitlines()[0]
    assert "retires" in header
    assert "2020-01-31" in table.stdout
    assert "2999-12-31" in table.stdout
    retired = _ids(catalogue_cli, "--include-retired", "-p", "anthropic")
    assert "anthropic:claude-3-opus-20240229" in retired


def test_filter_models_keeps_a_model_until_its_retirement_day() -> None:
    model = known_models("openai")["gpt-4.1"]
    assert model.deprecated is not None
    day = model.deprecated
    assert filter_models([model], today=day - datetime.timedelta(days=1)) == [model]
    assert filter_models([model], today=day) == []
    assert filter_models([model], today=day, include_retired=True) == [model]


def test_models_json_has_every_price(catalogue_cli: Cli) -> None:
    result = catalogue_cli("--json", "models", "-p", "anthropic")
    row = {m["id"]: m for m in json.loads(result.stdout)["models"]}["anthropic:claude-opus-4-5"]
    assert row["cache_write_price_per_million"] == 6.25
    assert row["cached_input_price_per_million"] == 0.5
    assert row["deprecated"] is None
    assert "reasoning_price_per_million" in row


def test_models_of_a_type_that_is_not_configured(catalogue_cli: Cli) -> None:
    ids = _ids(catalogue_cli, "--provider", "gemini")
    today = datetime.date.today()
    gemini = known_models("gemini")
    assert ids == [
        f"gemini:{m}"
        for m, row in gemini.items()
        if row.deprecated is None or row.deprecated > today
    ]
    every = _ids(catalogue_cli, "--all", "--include-retired")
    for type_name in ("openai", "anthropic"):
        assert {f"{type_name}:{m}" for m in known_models(type_name)} <= set(every)
    assert "openai:cheap-ft" not in every  # --all is the built-in catalogue only


def test_models_bad_window_is_a_usage_error(catalogue_cli: Cli) -> None:
    result = catalogue_cli("models", "--min-context", "lots")
    assert result.exit_code == 2
    assert "not a token count" in result.output


def test_parse_token_count() -> None:
    assert parse_token_count("128000") == 128_000
    assert parse_token_count("128k") == 128_000
    assert parse_token_count("1M") == 1_000_000
    assert parse_token_count("1.5m") == 1_500_000
    assert parse_token_count("1,048,576") == 1_048_576
    with pytest.raises(ValueError, match="not a token count"):
        parse_token_count("1G")


def test_filter_models_drops_unknown_values() -> None:
    models = list(known_models("anthropic").values())
    priced = filter_models(models, max_input_price=1000)
    assert priced and all(m.input_price_per_million is not None for m in priced)
    assert filter_models(models, capabilities=["embeddings"]) == []


def test_provider_types_table(catalogue_cli: Cli) -> None:
    result = catalogue_cli("--json", "providers", "--types")
    assert result.exit_code == 0, result.output
    rows = {r["type"]: r for r in json.loads(result.stdout)["provider_types"]}
    assert rows["openai"]["known_models"] == len(known_models("openai"))
    assert set(rows["openai"]["capabilities"]) == {
        "chat",
        "streaming",
        "tools",
        "vision",
        "json_output",
        "embeddings",
        "images",
    }
    assert "embeddings" not in rows["anthropic"]["capabilities"]
    assert rows["openai-compatible"]["capabilities"] is None  # no catalogue: unknown
    text = catalogue_cli("providers", "--types")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0].split()[:3] == ["type", "chat", "stream"]


def test_a_preset_with_a_catalogue_offers_what_its_models_offer() -> None:
    summaries = {s.name: s for s in summarize_types(builtin_registry())}
    for name in ("together", "fireworks", "xai", "perplexity", "cerebras"):
        models = known_models(name)
        summary = summaries[name]
        assert summary.models == len(models) > 0
        assert summary.capabilities == {
            field: any(getattr(m.capabilities, field) for m in models.values())
            for field in summary.capabilities or {}
        }
    offered = {name: summaries[name].capabilities or {} for name in summaries}
    assert offered["perplexity"]["tools"] is False  # the Sonar API takes no tools
    assert offered["xai"]["images"] and offered["xai"]["vision"]
    assert offered["together"]["embeddings"] and not offered["cerebras"]["vision"]
    # A preset without a catalogue still shows what its endpoints offer.
    assert summaries["openrouter"].models == 0
    assert offered["openrouter"]["chat"] and offered["openrouter"]["vision"]
    assert summaries["vllm"].capabilities is not None


def test_every_registered_type_is_in_the_table() -> None:
    registry = builtin_registry()
    summaries = summarize_types(registry)
    assert [s.name for s in summaries] == sorted(registry.names())
    for summary in summaries:
        assert summary.models == len(known_models(summary.name))


def test_readme_table_is_the_generated_one(catalogue_cli: Cli) -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index(MARKDOWN_START)
    end = text.index(MARKDOWN_END) + len(MARKDOWN_END)
    generated = render_markdown(summarize_types(builtin_registry()))
    assert text[start:end] == generated, (
        "the README's provider table is stale: run "
        "`python -m aiport.cli providers --types --markdown` and paste it between the markers"
    )
    printed = catalogue_cli("providers", "--types", "--markdown")
    assert printed.stdout.rstrip("\n") == generated


def test_prices_keep_their_significant_digits() -> None:
    from aiport.cli._output import format_price

    assert [format_price(p) for p in (2.5, 0.075, 0.0375, 0.0, 1234.5, None)] == [
        "$2.50",
        "$0.075",
        "$0.0375",
        "$0.00",
        "$1,234.50",
        "-",
    ]


def test_demo_shows_the_provider_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from aiport.cli._app import app

    monkeypatch.chdir(tmp_path)
    env = {"OPENAI_API_KEY": None, "ANTHROPIC_API_KEY": None, "AIPORT_CONFIG": None}
    result = CliRunner().invoke(app, ["--json", "demo", "-o", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    expected = [s.document() for s in summarize_types(builtin_registry())]
    assert document["provider_types"] == expected
    text = CliRunner().invoke(app, ["demo", "-o", str(tmp_path)], env={**env, "COLUMNS": "250"})
    assert text.exit_code == 0, text.output
    assert "Provider types aiport speaks" in text.stdout
    for summary in summarize_types(builtin_registry()):
        assert summary.name in text.stdout
    assert "$0." in text.stdout  # the calls' costs are shown
