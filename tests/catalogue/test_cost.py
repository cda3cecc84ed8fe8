"""``ProviderModel.cost``: each kind of token at its own rate, checked by hand and by property."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport import ProviderModel, Usage

PRICES = st.floats(min_value=0, max_value=1_000, allow_nan=False, allow_infinity=False)
OPTIONAL_PRICES = st.none() | PRICES
COUNTS = st.integers(min_value=0, max_value=10_000_000)


@st.composite
def priced_models(draw: st.DrawFn) -> ProviderModel:
    return ProviderModel(
        id="m",
        provider="p",
        input_price_per_million=draw(PRICES),
        output_price_per_million=draw(PRICES),
        cached_input_price_per_million=draw(OPTIONAL_PRICES),
        cache_write_price_per_million=draw(OPTIONAL_PRICES),
        reasoning_price_per_million=draw(OPTIONAL_PRICES),
    )


def _usage(plain: int, read: int, write: int, visible: int, reasoning: int) -> Usage:
    """A usage from disjoint counts (the way a provider bills them)."""
    return Usage(
        input_tokens=plain + read + write,
        cached_input_tokens=read,
        cache_creation_input_tokens=write,
        output_tokens=visible + reasoning,
        reasoning_tokens=reasoning,
    )


def _by_hand(model: ProviderModel, counts: tuple[int, int, int, int, int]) -> float:
    plain, read, write, visible, reasoning = counts
    input_price = model.input_price_per_million
    output_price = model.output_price_per_million
    assert input_price is not None and output_price is not None
    read_price = model.cached_input_price_per_million
    write_price = model.cache_write_price_per_million
    reasoning_price = model.reasoning_price_per_million
    return (
        plain * input_price
        + read * (input_price if read_price is None else read_price)
        + write * (input_price if write_price is None else write_price)
        + visible * output_price
        + reasoning * (output_price if reasoning_price is None else reasoning_price)
    ) / 1_000_000


COUNT_TUPLES = st.tuples(COUNTS, COUNTS, COUNTS, COUNTS, COUNTS)


@given(priced_models(), COUNT_TUPLES)
def test_cost_equals_the_hand_computation(
    model: ProviderModel, counts: tuple[int, int, int, int, int]
) -> None:
    cost = model.cost(_usage(*counts))
    assert cost is not None
    assert math.isclose(cost, _by_hand(model, counts), rel_tol=1e-9, abs_tol=1e-12)


@given(priced_models(), COUNT_TUPLES, st.integers(0, 4), st.integers(1, 1_000_000))
def test_cost_is_never_negative_and_grows_with_every_count(
    model: ProviderModel, counts: tuple[int, int, int, int, int], which: int, extra: int
) -> None:
    cost = model.cost(_usage(*counts))
    assert cost is not None and cost >= 0
    more = list(counts)
    more[which] += extra
    larger = model.cost(_usage(*more))
    assert larger is not None
    assert larger >= cost - 1e-12


@given(priced_models(), COUNT_TUPLES)
def test_inconsistent_counts_never_cost_less_than_nothing(
    model: ProviderModel, counts: tuple[int, int, int, int, int]
) -> None:
    # Counts an adapter got wrong (a cache part larger than the input) never go negative.
    input_tokens, output, read, write, reasoning = counts
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cached_input_tokens=read,
        cache_creation_input_tokens=write,
        reasoning_tokens=reasoning,
    )
    cost = model.cost(usage)
    assert cost is not None and cost >= 0
    # Monotone in the totals an adapter reports.
    bigger_input = model.cost(usage.model_copy(update={"input_tokens": input_tokens + 1000}))
    bigger_output = model.cost(usage.model_copy(update={"output_tokens": output + 1000}))
    assert bigger_input is not None and bigger_input >= cost - 1e-12
    assert bigger_output is not None and bigger_output >= cost - 1e-12


def test_worked_example() -> None:
    model = ProviderModel(
        id="m",
        provider="p",
        input_price_per_million=3.0,
        cached_input_price_per_million=0.3,
        cache_write_price_per_million=3.75,
        output_price_per_million=15.0,
        reasoning_price_per_million=10.0,
    )
    usage = Usage(
        input_tokens=1_000_000,  # 600k plain + 300k cache reads + 100k cache writes
        cached_input_tokens=300_000,
        cache_creation_input_tokens=100_000,
        output_tokens=200_000,  # 150k visible + 50k reasoning
        reasoning_tokens=50_000,
    )
    expected = 0.6 * 3.0 + 0.3 * 0.3 + 0.1 * 3.75 + 0.15 * 15.0 + 0.05 * 10.0
    assert model.cost(usage) == pytest.approx(expected)


def test_reasoning_defaults_to_the_output_price() -> None:
    # OpenAI and Anthropic bill reasoning tokens as output: they are part of output_tokens.
    model = ProviderModel(
        id="o", provider="p", input_price_per_million=1.0, output_price_per_million=4.0
    )
    with_reasoning = Usage(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=900_000)
    assert model.cost(with_reasoning) == pytest.approx(4.0)


def test_unknown_prices_give_none_not_zero() -> None:
    no_prices = ProviderModel(id="x", provider="p")
    assert no_prices.cost(Usage(input_tokens=10, output_tokens=10)) is None
    input_only = ProviderModel(id="e", provider="p", input_price_per_million=0.02)
    assert input_only.cost(Usage(input_tokens=1_000_000)) == pytest.approx(0.02)  # embeddings
    assert input_only.cost(Usage(input_tokens=1, output_tokens=1)) is None
    # Reasoning tokens with only a reasoning price known, and no visible output.
    reasoning_only = ProviderModel(
        id="r", provider="p", input_price_per_million=1.0, reasoning_price_per_million=2.0
    )
    assert reasoning_only.cost(
        Usage(output_tokens=1_000_000, reasoning_tokens=1_000_000)
    ) == pytest.approx(2.0)
    assert reasoning_only.cost(Usage(output_tokens=2, reasoning_tokens=1)) is None
