"""Config over the catalogue: override any field of a known model, add unknown models."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiport import ConfigError, ModelCapabilities, ProviderService
from aiport._catalogue import known_models
from aiport.testing import Emulator
from tests.catalogue.conftest import config_file

OVERRIDES = """
[providers.openai.models."gpt-4o-mini"]
input_price_per_million = 1.0
context_window = 50_000
deprecated = 2030-01-31
capabilities = ["chat", "streaming", "tools"]

[providers.openai.models."my-finetune"]
name = "ft:gpt-4o-mini:acme"
description = "our fine-tune"
input_price_per_million = 2.0
output_price_per_million = 8.0
cached_input_price_per_million = 0.5
cache_write_price_per_million = 2.5
reasoning_price_per_million = 9.0

[providers.openai.models.chat]
name = "gpt-4o"
output_price_per_million = 20.0
"""


@pytest.fixture
async def service(tmp_path: Path, emulator: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(config_file(tmp_path, emulator, OVERRIDES), env={}) as svc:
        yield svc


async def test_config_overrides_a_catalogue_field_and_keeps_the_others(
    service: ProviderService,
) -> None:
    built_in = known_models("openai")["gpt-4o-mini"]
    model = service.known_models("openai")["gpt-4o-mini"]
    assert model.input_price_per_million == 1.0  # config
    assert model.context_window == 50_000  # config
    assert model.deprecated == datetime.date(2030, 1, 31)  # config
    assert model.capabilities == ModelCapabilities(chat=True, streaming=True, tools=True)
    # Everything the config leaves out comes from the catalogue.
    assert model.output_price_per_million == built_in.output_price_per_million
    assert model.cached_input_price_per_million == built_in.cached_input_price_per_million
    assert model.max_output_tokens == built_in.max_output_tokens
    assert model.description == built_in.description


async def test_config_adds_an_unknown_model_with_its_prices(service: ProviderService) -> None:
    model = service.known_models("openai")["my-finetune"]
    assert model.description == "our fine-tune"
    assert model.input_price_per_million == 2.0
    assert model.output_price_per_million == 8.0
    assert model.cached_input_price_per_million == 0.5
    assert model.cache_write_price_per_million == 2.5
    assert model.reasoning_price_per_million == 9.0
    assert model.context_window is None


async def test_a_renamed_model_starts_from_the_upstream_models_row(
    service: ProviderService,
) -> None:
    gpt4o = known_models("openai")["gpt-4o"]
    chat = service.known_models("openai")["chat"]
    assert chat.id == "chat"
    assert chat.output_price_per_million == 20.0  # config
    assert chat.input_price_per_million == gpt4o.input_price_per_million  # catalogue
    assert chat.context_window == gpt4o.context_window
    assert chat.capabilities == gpt4o.capabilities


async def test_calls_are_priced_by_the_config(service: ProviderService) -> None:
    # An unknown upstream model priced only by the config.
    reply = await service.complete(model="openai:my-finetune", messages="Hello there")
    row = service.known_models("openai")["my-finetune"]
    assert reply.usage.input_tokens > 0
    assert reply.cost == pytest.approx(row.cost(reply.usage))
    assert reply.cost is not None and reply.cost > 0
    # A known model with an overridden price.
    mini = await service.complete(model="openai:gpt-4o-mini", messages="Hello there")
    expected = (mini.usage.input_tokens * 1.0 + mini.usage.output_tokens * 0.60) / 1_000_000
    assert mini.cost == pytest.approx(expected)
    # A renamed model: the table's prices win over the upstream model's row.
    chat = await service.complete(model="openai:chat", messages="Hello there")
    assert chat.cost == pytest.approx(
        (chat.usage.input_tokens * 2.50 + chat.usage.output_tokens * 20.0) / 1_000_000
    )


def test_invalid_prices_in_config_are_config_errors(tmp_path: Path, emulator: Emulator) -> None:
    bad = '[providers.openai.models.x]\nreasoning_price_per_million = -1\ndeprecated = "soon"\n'
    with pytest.raises(ConfigError) as caught:
        ProviderService(config_file(tmp_path, emulator, bad), env={})
    paths = {p.path for p in caught.value.problems}
    assert "providers.openai.models.x.reasoning_price_per_million" in paths
    assert "providers.openai.models.x.deprecated" in paths
