"""What the CLI shows of the model catalogue: model filters and the table of provider types.

The table of provider types (``aiport providers --types``, the README, ``aiport demo``)
is generated from the registry and the catalogue, never written by hand: a type offers a
capability when at least one of its known models does, and counts its known models. A
type without a catalogue (a generic server whose models vary) shows ``?``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from aiport._registry import ProviderRegistry
    from aiport._types import ProviderModel

__all__ = [
    "CAPABILITY_COLUMNS",
    "MARKDOWN_END",
    "MARKDOWN_START",
    "TypeSummary",
    "builtin_registry",
    "filter_models",
    "parse_token_count",
    "provider_types_table",
    "render_markdown",
    "summarize_types",
]

#: Capability field -> its column heading, in table order.
CAPABILITY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chat", "chat"),
    ("streaming", "stream"),
    ("tools", "tools"),
    ("vision", "vision"),
    ("json_output", "JSON"),
    ("embeddings", "embeddings"),
    ("images", "images"),
)
#: The README's generated block sits between these two lines.
MARKDOWN_START = "<!-- providers:start -->"
MARKDOWN_END = "<!-- providers:end -->"


@dataclass(frozen=True, slots=True)
class TypeSummary:
    """One provider type as the table shows it.

    ``capabilities`` is ``None`` for a type without a catalogue (it depends on the
    model the server runs).
    """

    name: str
    description: str
    capabilities: dict[str, bool] | None
    models: int

    def document(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "type": self.name,
            "description": self.description,
            "capabilities": None
            if self.capabilities is None
            else [name for name, offered in self.capabilities.items() if offered],
            "known_models": self.models,
        }


def builtin_registry() -> ProviderRegistry:
    """The registry of aiport's own provider types: built-in ones and the OpenAI-compatible
    presets, without the third-party plug-ins installed here (the README must not depend
    on them)."""
    from aiport._plugins import ProviderTypeTable
    from aiport._registry import _BUILTIN_TYPES, ProviderRegistry

    return ProviderRegistry(ProviderTypeTable(_BUILTIN_TYPES, plugins=False))


def summarize_types(registry: ProviderRegistry) -> list[TypeSummary]:
    """Every type of ``registry``, sorted by name, with what its known models offer."""
    summaries: list[TypeSummary] = []
    for name in sorted(registry.names()):
        provider_type = registry.types[name]
        models = provider_type.known_models(name)
        capabilities: dict[str, bool] | None = None
        if models:
            capabilities = {
                field: any(getattr(m.capabilities, field) for m in models.values())
                for field, _ in CAPABILITY_COLUMNS
            }
        else:
            capabilities = _preset_capabilities(name)
        summaries.append(TypeSummary(name, provider_type.description, capabilities, len(models)))
    return summaries


def _preset_capabilities(name: str) -> dict[str, bool] | None:
    """What the endpoints of an OpenAI-compatible preset offer, from its quirk flags (its
    models may still lack some of it); None when ``name`` is not a preset."""
    from aiport.providers._presets import load_presets

    preset = load_presets().get(name)
    if preset is None:
        return None
    quirks = preset.quirks
    return {
        "chat": True,
        "streaming": True,
        "tools": "tools" not in quirks.unsupported,
        "vision": quirks.image_input,
        "json_output": bool(quirks.response_format),
        "embeddings": quirks.embeddings,
        "images": quirks.images,
    }


def render_markdown(summaries: Sequence[TypeSummary]) -> str:
    """The README table of provider types, between its marker comments (no final newline)."""
    headings = ["type", "description", *(h for _, h in CAPABILITY_COLUMNS), "known models"]
    lines = [
        MARKDOWN_START,
        "| " + " | ".join(headings) + " |",
        "| --- | --- | " + " | ".join(":-:" for _ in CAPABILITY_COLUMNS) + " | --: |",
    ]
    for summary in summaries:
        if summary.capabilities is None:
            cells = ["?"] * len(CAPABILITY_COLUMNS)
        else:
            cells = ["✓" if summary.capabilities[f] else "" for f, _ in CAPABILITY_COLUMNS]
        description = summary.description.replace("|", "\\|")
        row = [f"`{summary.name}`", description, *cells, str(summary.models)]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "✓: at least one known model of the type offers it (for a preset without a model "
        "catalogue: its endpoints offer it); ?: the type has no model catalogue (it "
        "depends on the model the server runs). Generated from the registry "
        "and `src/aiport/_catalogue/*.toml` by `aiport providers --types --markdown`; a "
        "test keeps this table equal to that output.",
        MARKDOWN_END,
    ]
    return "\n".join(lines)


def provider_types_table(summaries: Sequence[TypeSummary], title: str | None = None) -> Table:
    """The provider types as a terminal table (``yes``, blank, or ``?`` as in Markdown)."""
    from aiport.cli._output import table

    headings = ["type", *(h for _, h in CAPABILITY_COLUMNS), "models", "description"]
    rows: list[list[Any]] = []
    for summary in summaries:
        if summary.capabilities is None:
            cells = ["?"] * len(CAPABILITY_COLUMNS)
        else:
            cells = ["yes" if summary.capabilities[f] else "" for f, _ in CAPABILITY_COLUMNS]
        rows.append([summary.name, *cells, summary.models, summary.description or None])
    return table(title, headings, rows, wrap=("description",))


def filter_models(
    models: Iterable[ProviderModel],
    *,
    capabilities: Sequence[str] = (),
    max_input_price: float | None = None,
    min_context: int | None = None,
    include_retired: bool = False,
    today: datetime.date | None = None,
) -> list[ProviderModel]:
    """The models that pass every filter given.

    A price or window filter drops models whose value is unknown; retired models (whose
    retirement date, ``deprecated``, is ``today`` or earlier) are dropped unless
    ``include_retired``. A model retiring later is kept: it still answers.
    """
    today = today or datetime.date.today()
    found: list[ProviderModel] = []
    for model in models:
        if not all(getattr(model.capabilities, c) for c in capabilities):
            continue
        if max_input_price is not None and (
            model.input_price_per_million is None or model.input_price_per_million > max_input_price
        ):
            continue
        if min_context is not None and (
            model.context_window is None or model.context_window < min_context
        ):
            continue
        if model.deprecated is not None and model.deprecated <= today and not include_retired:
            continue
        found.append(model)
    return found


_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_token_count(text: str) -> int:
    """``128000``, ``128k``, ``1M``, ``1.5M`` -> a token count (``ValueError`` otherwise)."""
    match = _COUNT.match(text.replace("_", "").replace(",", ""))
    if match is None:
        raise ValueError(f"not a token count: {text!r} (examples: 128000, 128k, 1M)")
    number, unit = match.groups()
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]
    return round(float(number) * scale)


def format_date(value: datetime.date | None) -> str | None:
    """An ISO date, or ``None``."""
    return value.isoformat() if value is not None else None
