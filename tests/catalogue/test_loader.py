"""The catalogue loader: every shipped data file, the format's rules, and the registry."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest

from aiport import ConfigError, ModelCapabilities, ProviderModel, ProviderRegistry, ProviderType
from aiport._catalogue import (
    CAPABILITY_NAMES,
    catalogue_path,
    find_model,
    has_catalogue,
    known_models,
    load_catalogue,
    shipped_types,
)

SHIPPED = shipped_types()


def test_the_openai_and_anthropic_catalogues_ship() -> None:
    assert {"openai", "anthropic"} <= set(SHIPPED)


@pytest.mark.parametrize("type_name", SHIPPED)
def test_every_shipped_file_is_valid(type_name: str) -> None:
    path = catalogue_path(type_name)
    assert path is not None
    models = load_catalogue(path, type_name)  # raises ConfigError on any problem
    assert models, f"{path.name} lists no model"
    claimed: dict[str, str] = {}
    for model_id, model in models.items():
        assert model.id == model_id
        assert model.provider == type_name
        assert model.capabilities.names(), f"{path.name}: {model_id} has no capability"
        for name in (model_id, *model.aliases):
            assert claimed.setdefault(name, model_id) == model_id
        prices = [
            model.input_price_per_million,
            model.output_price_per_million,
            model.cached_input_price_per_million,
            model.cache_write_price_per_million,
            model.reasoning_price_per_million,
        ]
        assert all(p is None or p >= 0 for p in prices)
        if model.capabilities.chat and model.input_price_per_million is not None:
            # A chat model with an input price has an output price too (else cost is None).
            assert model.output_price_per_million is not None, f"{path.name}: {model_id}"


@pytest.mark.parametrize("type_name", SHIPPED)
def test_every_shipped_file_names_its_source(type_name: str) -> None:
    path = catalogue_path(type_name)
    assert path is not None
    header = path.read_text(encoding="utf-8").split("[", 1)[0]
    assert "Source:" in header or "source:" in header.lower(), (
        f"{path.name} must say where its numbers come from in a leading comment"
    )


@pytest.mark.parametrize("type_name", SHIPPED)
def test_every_shipped_file_belongs_to_a_registered_type(type_name: str) -> None:
    assert type_name in ProviderRegistry.default().types


def test_openai_numbers_kept_from_the_python_catalogue() -> None:
    models = known_models("openai")
    gpt4o = models["gpt-4o"]
    assert (gpt4o.context_window, gpt4o.max_output_tokens) == (128_000, 16_384)
    assert gpt4o.input_price_per_million == 2.50
    assert gpt4o.cached_input_price_per_million == 1.25
    assert gpt4o.output_price_per_million == 10.00
    assert gpt4o.capabilities == ModelCapabilities(
        chat=True, streaming=True, tools=True, vision=True, json_output=True
    )
    embedding = models["text-embedding-3-small"]
    assert embedding.capabilities == ModelCapabilities(embeddings=True)
    assert (embedding.input_price_per_million, embedding.output_price_per_million) == (0.02, 0.0)
    assert models["dall-e-3"].input_price_per_million is None  # billed per image
    assert models["gpt-image-1"].output_price_per_million == 40.00


def test_anthropic_numbers_kept_from_the_python_catalogue() -> None:
    models = known_models("anthropic")
    opus = models["claude-opus-4-1"]
    assert (opus.input_price_per_million, opus.output_price_per_million) == (15.0, 75.0)
    assert opus.cached_input_price_per_million == 1.50
    assert opus.cache_write_price_per_million == 18.75  # 1.25 x input
    assert opus.aliases == ("claude-opus-4-1-20250805",)
    assert models["claude-opus-5"].input_price_per_million is None  # not confirmed: left out
    for model in models.values():
        if model.input_price_per_million is not None:
            assert model.cache_write_price_per_million == model.input_price_per_million * 1.25


@pytest.mark.parametrize("type_name", SHIPPED)
def test_cache_prices_are_discounts_of_the_input_price(type_name: str) -> None:
    """A cache read never costs more than a plain input token, nor a write less than a read:
    a swapped or mistyped cache price would otherwise bill cached prompts wrongly."""
    for model_id, model in known_models(type_name).items():
        plain = model.input_price_per_million
        read = model.cached_input_price_per_million
        write = model.cache_write_price_per_million
        where = f"{type_name}.toml: {model_id}"
        if read is not None:
            assert plain is not None, f"{where}: a cache price without an input price"
            assert read <= plain, where
        if write is not None and read is not None:
            assert write >= read, where


def test_shipped_retirement_dates() -> None:
    """The providers' announced shutdown dates are in the data, so `aiport models` hides
    the retired models unless asked (the values are the providers' pages' dates)."""
    date = datetime.date
    expected = {
        ("anthropic", "claude-3-opus-20240229"): date(2026, 1, 5),
        ("anthropic", "claude-3-7-sonnet-20250219"): date(2026, 2, 19),
        ("openai", "gpt-5"): date(2026, 12, 11),
        ("openai", "gpt-4o"): date(2027, 1, 14),
        ("gemini", "gemini-2.0-flash"): date(2026, 6, 1),
        ("gemini", "imagen-3.0-generate-002"): date(2025, 11, 10),
    }
    for (type_name, model_id), retires in expected.items():
        assert known_models(type_name)[model_id].deprecated == retires, (type_name, model_id)
    # A retired model is still found by its alias, so a call to it is still priced.
    anthropic = known_models("anthropic")
    haiku = anthropic["claude-3-5-haiku-20241022"]
    assert find_model(anthropic, "claude-3-5-haiku-latest") is haiku
    # Models without an announced date stay undated.
    assert known_models("openai")["text-embedding-3-small"].deprecated is None
    assert known_models("gemini")["gemini-2.5-flash-lite"].deprecated is None


def test_every_hosted_preset_has_a_catalogue() -> None:
    """The hosted OpenAI-compatible presets know models; local servers rightly do not."""
    from aiport.providers._presets import load_presets

    presets = load_presets()
    hosted = {name for name, preset in presets.items() if preset.api_key_env is not None}
    # OpenRouter's models are other providers' models at their prices (listed live at
    # /api/v1/models): no copy is shipped.
    assert hosted - set(SHIPPED) == {"openrouter"}
    local = set(presets) - hosted
    assert local and not local & set(SHIPPED)


def test_known_models_carry_the_provider_name_and_are_the_callers_own() -> None:
    mine = known_models("openai", "my-openai")
    assert {m.provider for m in mine.values()} == {"my-openai"}
    mine.clear()
    assert known_models("openai")  # the cached catalogue is untouched


def test_types_without_a_file_know_no_models() -> None:
    assert known_models("no-such-type") == {}
    assert not has_catalogue("no-such-type")
    # A type name never becomes a path outside the catalogue directory.
    assert catalogue_path("../_catalogue/openai") is None
    assert catalogue_path("..") is None


def test_the_registry_reads_the_file_when_a_type_has_no_catalog_function() -> None:
    registry = ProviderRegistry.default()
    assert registry.get("openai").catalog is None
    assert registry.get("openai").known_models("work")["gpt-4o"].provider == "work"
    # A catalog function, when given, still wins over the file.
    custom = ProviderType(
        name="openai",
        factory="aiport.providers._factories:create_openai",
        catalog=lambda provider: {"x": ProviderModel(id="x", provider=provider)},
    )
    assert list(custom.known_models("p")) == ["x"]
    # A plug-in type without a file has no known models.
    plugin = ProviderType(name="my-plugin", factory="my_package:create")
    assert plugin.known_models("my-plugin") == {}


def test_find_model_by_id_alias_and_snapshot() -> None:
    models = known_models("anthropic")
    assert find_model(models, "claude-opus-4-1") is models["claude-opus-4-1"]
    assert find_model(models, "claude-opus-4-1-20250805") is models["claude-opus-4-1"]
    assert find_model(models, "claude-haiku-4-5-20991231") is models["claude-haiku-4-5"]
    openai = known_models("openai")
    assert find_model(openai, "gpt-4o-2024-08-06") is openai["gpt-4o"]
    assert find_model(openai, "gpt-4o-2024") is None
    assert find_model(openai, "nothing-20250101") is None


def test_a_file_is_parsed_once() -> None:
    from aiport._catalogue import _parsed

    known_models("anthropic")
    before = _parsed.cache_info()
    for _ in range(3):
        known_models("anthropic", "other")
    after = _parsed.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 3


def test_import_aiport_reads_no_catalogue() -> None:
    code = (
        "import sys, aiport\n"
        "assert 'tomllib' not in sys.modules or 'aiport._catalogue' not in sys.modules\n"
        "assert 'aiport._catalogue' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------- the format


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "example.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_merge_and_every_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        # Source: a test
        [defaults]
        capabilities = ["chat", "streaming"]
        context_window = 1000

        [models."m-1"]
        description = "first"
        max_output_tokens = 100
        input = 1
        cached_input = 0.1
        cache_write = 1.25
        output = 2.5
        reasoning = 3
        deprecated = 2026-06-30
        aliases = ["m1", "m-one"]

        [models.m2]
        capabilities = ["embeddings"]
        context_window = 8_191
        """,
    )
    models = load_catalogue(path, "mine")
    first = models["m-1"]
    assert first == ProviderModel(
        id="m-1",
        provider="mine",
        description="first",
        capabilities=ModelCapabilities(chat=True, streaming=True),
        context_window=1000,
        max_output_tokens=100,
        input_price_per_million=1.0,
        cached_input_price_per_million=0.1,
        cache_write_price_per_million=1.25,
        output_price_per_million=2.5,
        reasoning_price_per_million=3.0,
        deprecated=datetime.date(2026, 6, 30),
        aliases=("m1", "m-one"),
    )
    second = models["m2"]
    assert second.capabilities == ModelCapabilities(embeddings=True)  # its own key wins
    assert second.context_window == 8_191
    assert second.input_price_per_million is None


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ("[models.a]\ninput = -1", "models.a.input", "price"),
        ('[models.a]\ninput = "cheap"', "models.a.input", "price"),
        ("[models.a]\ninput = true", "models.a.input", "price"),
        ("[models.a]\noutput = nan", "models.a.output", "price"),
        ("[models.a]\noutput = inf", "models.a.output", "price"),
        ("[models.a]\ncontext_window = 0", "models.a.context_window", "positive"),
        ("[models.a]\ncontext_window = 1.5", "models.a.context_window", "positive"),
        ('[models.a]\ncapabilities = ["chat", "telepathy"]', "models.a.capabilities", "telepathy"),
        ('[models.a]\ncapabilities = "chat"', "models.a.capabilities", "list"),
        ("[models.a]\ndeprecated = 2026-06-30T00:00:00", "models.a.deprecated", "date"),
        ('[models.a]\ndeprecated = "soon"', "models.a.deprecated", "date"),
        ("[models.a]\naliases = [1]", "models.a.aliases", "strings"),
        ("[models.a]\nprice = 1", "models.a.price", "unknown key"),
        ("[models.a]\ndescription = 1", "models.a.description", "string"),
        ('[defaults]\naliases = ["x"]\n[models.a]', "defaults.aliases", "one model"),
        ("[defaults]\ninput = -2\n[models.a]", "defaults.input", "price"),
        ("[modles.a]\ninput = 1", "modles", "unknown table"),
        ("models = 1", "models", "table"),
        ("[models]\na = 1", "models.a", "table"),
        ('[models."x.y"]\ninput = -1', 'models."x.y".input', "price"),
    ],
)
def test_invalid_files_name_the_file_and_the_model(
    tmp_path: Path, body: str, where: str, message: str
) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path, "mine")
    problems = caught.value.problems
    assert [p.path for p in problems] == [where]
    assert problems[0].source == str(path)
    assert message in problems[0].message
    assert str(path) in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, "[models.a]\ninput = -1\n[models.b]\noutput = -1\nfoo = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path, "mine")
    assert [p.path for p in caught.value.problems] == [
        "models.a.input",
        "models.b.output",
        "models.b.foo",
    ]


def test_an_id_or_alias_claimed_twice_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, '[models.a]\naliases = ["b"]\n[models.b]\n')
    with pytest.raises(ConfigError, match="'b' is already claimed by 'a'"):
        load_catalogue(path, "mine")


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[models.a\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_catalogue(path, "mine")
    assert caught.value.problems[0].source == str(path)


def test_capability_names_are_the_model_capabilities() -> None:
    assert set(ModelCapabilities.model_fields) == CAPABILITY_NAMES
