"""The model catalogue: one TOML data file per provider type, read on first use.

``<type>.toml`` next to this module lists the models a provider type knows, with their
limits, capabilities and list prices (US dollars per million tokens)::

    [defaults]                       # merged into every model (a model's own keys win)
    capabilities = ["chat", "streaming", "tools", "vision", "json_output"]

    [models."gpt-4o"]
    description = "GPT-4o: fast, multimodal flagship"
    context_window = 128_000         # input tokens
    max_output_tokens = 16_384
    input = 2.50                     # per million input tokens
    cached_input = 1.25              # cache-read input tokens (default: input)
    cache_write = 3.125              # cache-write input tokens (default: input)
    output = 10.00                   # per million output tokens
    reasoning = 10.00                # reasoning tokens (default: output)
    deprecated = 2026-06-30          # when the provider retires the model
    aliases = ["gpt-4o-2024-08-06"]

Every key but the table name is optional; an unknown key, a wrong type, a negative price
or a duplicated alias is an error naming the file and the model (a catalogue is data we
ship, so a bad one must fail loudly, never drop a price silently). Files are parsed
once per process and kept; ``tomllib`` itself is imported only then, so
``import aiport`` does no catalogue work.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiport._errors import ConfigError, ConfigProblem
from aiport._types import ModelCapabilities, ProviderModel

__all__ = [
    "CAPABILITY_NAMES",
    "MODEL_KEYS",
    "catalogue_path",
    "find_model",
    "has_catalogue",
    "known_models",
    "load_catalogue",
    "model_fields",
    "shipped_types",
]

_DIRECTORY = Path(__file__).resolve().parent

#: The capability names a catalogue may list (the fields of ``ModelCapabilities``).
CAPABILITY_NAMES: frozenset[str] = frozenset(ModelCapabilities.model_fields)

#: Catalogue key -> ``ProviderModel`` field, for the keys whose value is a price.
_PRICE_KEYS: dict[str, str] = {
    "input": "input_price_per_million",
    "cached_input": "cached_input_price_per_million",
    "cache_write": "cache_write_price_per_million",
    "output": "output_price_per_million",
    "reasoning": "reasoning_price_per_million",
}
_TOKEN_KEYS = ("context_window", "max_output_tokens")
#: Every key a model table (or ``[defaults]``) may hold.
MODEL_KEYS: frozenset[str] = frozenset(
    {"description", "capabilities", "deprecated", "aliases", *_TOKEN_KEYS, *_PRICE_KEYS}
)
# A type name becomes a file name: keep it to plain names (no path separators, no "..").
_TYPE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# The date suffix of a snapshot id: -20250929 (Anthropic) or -2024-08-06 (OpenAI).
_SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def catalogue_path(type_name: str) -> Path | None:
    """The data file of provider type ``type_name``, or ``None`` when none is shipped."""
    if not _TYPE_NAME.match(type_name) or ".." in type_name:
        return None
    path = _DIRECTORY / f"{type_name}.toml"
    return path if path.is_file() else None


def has_catalogue(type_name: str) -> bool:
    """Whether a data file is shipped for provider type ``type_name``."""
    return catalogue_path(type_name) is not None


def shipped_types() -> list[str]:
    """The provider types that have a data file, sorted."""
    return sorted(path.stem for path in _DIRECTORY.glob("*.toml"))


def known_models(type_name: str, provider: str | None = None) -> dict[str, ProviderModel]:
    """The models of provider type ``type_name``, by id, for the provider ``provider``.

    ``provider`` (default: the type name) is the configured provider name the rows carry.
    A type without a data file knows no models. The returned dict is the caller's own.

    Raises:
        ConfigError: the data file is invalid (each problem names the file and model).
    """
    rows = _parsed(type_name)
    if provider is None or provider == type_name:
        return dict(rows)
    return {key: row.model_copy(update={"provider": provider}) for key, row in rows.items()}


def find_model(models: Mapping[str, ProviderModel], model_id: str) -> ProviderModel | None:
    """The row for ``model_id`` in ``models``: by id, by alias, or a dated snapshot of a
    known id (``claude-opus-4-1-20250805``, ``gpt-4o-2024-08-06`` -> the undated row)."""
    known = models.get(model_id)
    if known is not None:
        return known
    for candidate in models.values():
        if model_id in candidate.aliases:
            return candidate
    snapshot = _SNAPSHOT_SUFFIX.search(model_id)
    if snapshot is not None:
        return models.get(model_id[: snapshot.start()])
    return None


def load_catalogue(path: Path, provider: str) -> dict[str, ProviderModel]:
    """The models of the catalogue file ``path`` (this module's format), for ``provider``.

    Read afresh on every call (``known_models`` keeps aiport's own files); a plug-in's
    catalog function may use it for a data file of its own.

    Raises:
        ConfigError: the file is not valid TOML or not a valid catalogue; every problem
            names the file and the model.
        OSError: the file cannot be read.
    """
    import tomllib  # only when a catalogue is first needed

    source = str(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not valid TOML: {exc}", source)]) from None
    return _build(document, provider, source)


@functools.cache
def _parsed(type_name: str) -> Mapping[str, ProviderModel]:
    path = catalogue_path(type_name)
    return {} if path is None else load_catalogue(path, type_name)


def _build(document: Mapping[str, Any], provider: str, source: str) -> dict[str, ProviderModel]:
    problems: list[ConfigProblem] = []
    for key in document:
        if key not in ("defaults", "models"):
            problems.append(ConfigProblem(key, "unknown table (expected [defaults], [models])"))
    defaults = document.get("defaults", {})
    models = document.get("models", {})
    if not isinstance(defaults, Mapping):
        problems.append(ConfigProblem("defaults", "must be a table"))
        defaults = {}
    elif "aliases" in defaults:
        problems.append(ConfigProblem("defaults.aliases", "aliases belong to one model"))
    if not isinstance(models, Mapping):
        problems.append(ConfigProblem("models", "must be a table of model tables"))
        models = {}
    default_fields = model_fields(defaults, "defaults", problems)

    rows: dict[str, ProviderModel] = {}
    names: dict[str, str] = {}  # every id and alias -> the model that claims it
    for model_id, table in models.items():
        where = f"models.{_quote(model_id)}"
        if not isinstance(table, Mapping):
            problems.append(ConfigProblem(where, "must be a table"))
            continue
        if not model_id.strip():
            problems.append(ConfigProblem(where, "a model id cannot be empty"))
            continue
        fields = {**default_fields, **model_fields(table, where, problems)}
        for name in (model_id, *fields.get("aliases", ())):
            owner = names.setdefault(name, model_id)
            if owner != model_id:
                problems.append(
                    ConfigProblem(where, f"id or alias {name!r} is already claimed by {owner!r}")
                )
        rows[model_id] = ProviderModel(id=model_id, provider=provider, **fields)
    if problems:
        raise ConfigError([ConfigProblem(p.path, p.message, p.source or source) for p in problems])
    return rows


def model_fields(
    table: Mapping[str, Any], where: str, problems: list[ConfigProblem]
) -> dict[str, Any]:
    """The ``ProviderModel`` fields a catalogue table gives, checked.

    Appends one problem (path ``where.key``) per invalid value to ``problems`` and leaves
    that value out. Shared with the config loader, which accepts the same keys.
    """
    fields: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{where}.{key}"
        if key not in MODEL_KEYS:
            problems.append(
                ConfigProblem(
                    path, f"unknown key (expected one of {', '.join(sorted(MODEL_KEYS))})"
                )
            )
        elif key == "description":
            if isinstance(value, str):
                fields["description"] = value
            else:
                problems.append(ConfigProblem(path, "must be a string"))
        elif key == "capabilities":
            capabilities = _capabilities(value, path, problems)
            if capabilities is not None:
                fields["capabilities"] = capabilities
        elif key in _TOKEN_KEYS:
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                fields[key] = value
            else:
                problems.append(ConfigProblem(path, "must be a positive whole number of tokens"))
        elif key in _PRICE_KEYS:
            if _is_price(value):
                fields[_PRICE_KEYS[key]] = float(value)
            else:
                problems.append(
                    ConfigProblem(path, "must be a price in US dollars per million tokens (>= 0)")
                )
        elif key == "deprecated":
            # A TOML datetime is a `datetime`, which is also a `date`: accept only dates.
            if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
                fields["deprecated"] = value
            else:
                problems.append(ConfigProblem(path, "must be a date (2026-06-30)"))
        elif key == "aliases":
            if isinstance(value, list) and all(isinstance(a, str) and a.strip() for a in value):
                fields["aliases"] = tuple(value)
            else:
                problems.append(ConfigProblem(path, "must be a list of non-empty strings"))
    return fields


def _capabilities(value: Any, path: str, problems: list[ConfigProblem]) -> ModelCapabilities | None:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        problems.append(ConfigProblem(path, "must be a list of capability names"))
        return None
    unknown = [name for name in value if name not in CAPABILITY_NAMES]
    if unknown:
        expected = ", ".join(sorted(CAPABILITY_NAMES))
        problems.append(
            ConfigProblem(path, f"unknown capability {unknown[0]!r} (expected any of {expected})")
        )
        return None
    return ModelCapabilities(**dict.fromkeys(value, True))


def _is_price(value: Any) -> bool:
    """A finite, non-negative number (a bool is not a number here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _quote(model_id: str) -> str:
    return f'"{model_id}"' if not re.fullmatch(r"[A-Za-z0-9_-]+", model_id) else model_id
