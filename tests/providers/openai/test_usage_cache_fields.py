"""Prompt-cache hits in the usage of OpenAI-compatible servers: OpenAI's
``prompt_tokens_details.cached_tokens`` and DeepSeek's top-level ``prompt_cache_hit_tokens``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiport._types import ProviderModel, Usage
from aiport.providers.openai._convert import parse_usage

counts = st.integers(min_value=0, max_value=10_000_000)


def test_deepseek_cache_hits_are_cached_input_tokens() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 1500,
            "completion_tokens": 20,
            "total_tokens": 1520,
            "prompt_cache_hit_tokens": 1280,
            "prompt_cache_miss_tokens": 220,
            "completion_tokens_details": {"reasoning_tokens": 12},
        }
    )
    assert usage == Usage(
        input_tokens=1500,
        output_tokens=20,
        total_tokens=1520,
        cached_input_tokens=1280,
        reasoning_tokens=12,
    )
    # Priced as DeepSeek bills it: misses at the input price, hits at the cache-hit price.
    model = ProviderModel(
        id="deepseek-chat",
        provider="deepseek",
        input_price_per_million=0.28,
        cached_input_price_per_million=0.028,
        output_price_per_million=0.42,
    )
    cost = model.cost(usage)
    assert cost is not None
    assert abs(cost - (220 * 0.28 + 1280 * 0.028 + 20 * 0.42) / 1e6) < 1e-15


def test_openai_cached_tokens_are_read_as_before() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 2048,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 1024},
        }
    )
    assert usage.cached_input_tokens == 1024
    assert usage.total_tokens == 2053


@given(hit=counts, miss=counts, output=counts)
def test_deepseek_shape_cached_part_is_the_hits(hit: int, miss: int, output: int) -> None:
    usage = parse_usage(
        {
            "prompt_tokens": hit + miss,
            "completion_tokens": output,
            "total_tokens": hit + miss + output,
            "prompt_cache_hit_tokens": hit,
            "prompt_cache_miss_tokens": miss,
        }
    )
    assert usage.input_tokens == hit + miss
    assert usage.cached_input_tokens == hit
    assert usage.input_tokens - usage.cached_input_tokens == miss


@given(hit=counts, cached=st.integers(min_value=1, max_value=10_000_000))
def test_cached_tokens_win_when_a_server_reports_both(hit: int, cached: int) -> None:
    """A server reporting both shapes is read from OpenAI's field (DeepSeek's newer answers
    may carry ``prompt_tokens_details`` too, with the same count)."""
    usage = parse_usage(
        {
            "prompt_tokens": hit + cached,
            "prompt_tokens_details": {"cached_tokens": cached},
            "prompt_cache_hit_tokens": hit,
        }
    )
    assert usage.cached_input_tokens == cached


def test_zero_cached_tokens_with_deepseek_hits_reads_the_hits() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 0},
            "prompt_cache_hit_tokens": 64,
            "prompt_cache_miss_tokens": 36,
        }
    )
    assert usage.cached_input_tokens == 64


def test_malformed_hit_counts_count_as_zero() -> None:
    for value in (None, "64", 1.5, [64]):
        usage = parse_usage({"prompt_tokens": 100, "prompt_cache_hit_tokens": value})
        assert usage.cached_input_tokens == 0
