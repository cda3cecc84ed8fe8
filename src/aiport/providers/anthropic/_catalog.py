"""The Claude models aiport knows, with their limits and list prices.

Prices are US dollars per million tokens as published by Anthropic (input, output,
prompt-cache reads; cache writes are derived as 1.25x input). A value we could not
confirm is ``None`` rather than a guess: a wrong price silently breaks budgets, a
missing one shows as ``cost=None``. The ids
follow the ``Model`` literal of the official SDK (2.x); dated snapshot ids are aliases,
so a response naming the snapshot still finds its row.

Any other model id is still passed through to the API unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from aiport._types import ModelCapabilities, ProviderModel

__all__ = ["find_model", "known_models"]

_CHAT = ModelCapabilities(chat=True, streaming=True, tools=True, vision=True, json_output=True)


class _Row(NamedTuple):
    id: str
    description: str
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    aliases: tuple[str, ...] = ()


# Newest first. Limits and prices from Anthropic's models overview and pricing pages.
_ROWS: tuple[_Row, ...] = (
    # Announced in the SDK's `Model` literal; limits and prices not confirmed yet.
    _Row("claude-opus-5-5", "Claude Opus 5.5"),
    _Row("claude-sonnet-5-5", "Claude Sonnet 5.5"),
    _Row("claude-haiku-5-5", "Claude Haiku 5.5"),
    _Row("claude-opus-5", "Claude Opus 5"),
    _Row("claude-sonnet-5", "Claude Sonnet 5"),
    _Row("claude-mythos-5-2", "Claude Mythos 5.2"),
    _Row("claude-mythos-5-1", "Claude Mythos 5.1"),
    _Row("claude-mythos-5", "Claude Mythos 5"),
    _Row("claude-mythos-preview", "Claude Mythos (preview)"),
    _Row("claude-fable-5-2", "Claude Fable 5.2"),
    _Row("claude-fable-5-1", "Claude Fable 5.1"),
    _Row("claude-fable-5", "Claude Fable 5"),
    _Row("claude-opus-4-8", "Claude Opus 4.8"),
    _Row("claude-opus-4-7", "Claude Opus 4.7"),
    # Same list prices as the 4.5 generation of each line; the 1M context is a beta.
    _Row("claude-opus-4-6", "Claude Opus 4.6", 200_000, None, 5.0, 25.0, 0.50),
    _Row("claude-sonnet-4-6", "Claude Sonnet 4.6", 200_000, None, 3.0, 15.0, 0.30),
    _Row(
        "claude-opus-4-5",
        "Claude Opus 4.5",
        200_000,
        64_000,
        5.0,
        25.0,
        0.50,
        ("claude-opus-4-5-20251101",),
    ),
    _Row(
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        200_000,
        64_000,
        1.0,
        5.0,
        0.10,
        ("claude-haiku-4-5-20251001",),
    ),
    _Row(
        "claude-sonnet-4-5",
        "Claude Sonnet 4.5 (deprecated)",
        200_000,
        64_000,
        3.0,
        15.0,
        0.30,
        ("claude-sonnet-4-5-20250929",),
    ),
    _Row(
        "claude-opus-4-1",
        "Claude Opus 4.1 (deprecated)",
        200_000,
        32_000,
        15.0,
        75.0,
        1.50,
        ("claude-opus-4-1-20250805",),
    ),
    _Row(
        "claude-sonnet-4-0",
        "Claude Sonnet 4 (deprecated)",
        200_000,
        64_000,
        3.0,
        15.0,
        0.30,
        ("claude-sonnet-4-20250514",),
    ),
    _Row(
        "claude-opus-4-0",
        "Claude Opus 4 (deprecated)",
        200_000,
        32_000,
        15.0,
        75.0,
        1.50,
        ("claude-opus-4-20250514",),
    ),
)


def known_models(provider: str) -> dict[str, ProviderModel]:
    """The Claude models known to aiport, by id, for the provider named ``provider``."""
    return {
        row.id: ProviderModel(
            id=row.id,
            provider=provider,
            description=row.description,
            capabilities=_CHAT,
            context_window=row.context_window,
            max_output_tokens=row.max_output_tokens,
            input_price_per_million=row.input_price,
            output_price_per_million=row.output_price,
            cached_input_price_per_million=row.cache_read_price,
            # Prompt-cache writes (5-minute cache) cost 1.25x the input price.
            cache_write_price_per_million=(
                row.input_price * 1.25 if row.input_price is not None else None
            ),
            aliases=row.aliases,
        )
        for row in _ROWS
    }


def find_model(models: Mapping[str, ProviderModel], model_id: str) -> ProviderModel | None:
    """The row for ``model_id``: by id, by alias, or a dated snapshot of a known id."""
    known = models.get(model_id)
    if known is not None:
        return known
    for candidate in models.values():
        if model_id in candidate.aliases:
            return candidate
    base, _, suffix = model_id.rpartition("-")
    if base and len(suffix) == 8 and suffix.isdigit():  # "claude-x-4-5-20250929"
        return models.get(base)
    return None
