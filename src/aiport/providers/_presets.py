"""OpenAI-compatible presets: provider types that are rows of data, not classes.

Each table of ``presets.toml`` (next to this module) is one provider type served by the
OpenAI adapter: its default base URL, the variable holding its key (none for local
servers), its headers, and its quirks (``aiport.providers.openai._quirks.ServerQuirks``).
The file is parsed once per process, when a provider type that is not built in is first
looked up or when provider types are listed (``ProviderRegistry.default()``), never by
``import aiport``. A bad row is a ``ConfigError`` naming the file and the preset: the file
ships with aiport, so it must fail loudly rather than lose a quirk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiport._errors import ConfigError, ConfigProblem, ProviderNotFoundError
from aiport.providers.openai._quirks import RESPONSE_FORMATS, TOOL_CHOICES, ServerQuirks

if TYPE_CHECKING:
    from aiport._registry import ProviderType

__all__ = ["PRESETS_FILE", "Preset", "load_presets", "preset_named", "preset_types"]

#: The data file of the presets.
PRESETS_FILE = Path(__file__).resolve().parent / "presets.toml"

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FLAGS = ("embeddings", "images", "stream_usage", "message_names", "image_input", "image_urls")
_KEYS = frozenset(
    {
        "description",
        "base_url",
        "api_key_env",
        "docs",
        "headers",
        "max_tokens_field",
        "unsupported",
        "tool_choice",
        "response_format",
        *_FLAGS,
    }
)


@dataclass(frozen=True, slots=True)
class Preset:
    """One OpenAI-compatible server kind."""

    name: str
    description: str
    base_url: str
    #: The variable that holds the key (``GROQ_API_KEY``); ``None``: a local server.
    api_key_env: str | None
    docs: str
    headers: Mapping[str, str]
    quirks: ServerQuirks

    def provider_type(self) -> ProviderType:
        """The registry row of this preset (built by ``create_preset``)."""
        from aiport._registry import ProviderType
        from aiport.providers._factories import create_preset

        return ProviderType(
            name=self.name,
            factory=functools.partial(create_preset, preset=self.name),
            description=f"{self.description} [OpenAI-compatible preset, {self.base_url}]",
            api_key_env=self.api_key_env,
            requires_api_key=self.api_key_env is not None,
        )


@functools.cache
def load_presets(path: Path = PRESETS_FILE) -> Mapping[str, Preset]:
    """The presets of ``path`` (the shipped file by default), by name, checked.

    Raises:
        ConfigError: the file is not valid TOML, or a row is invalid (every problem is
            listed with the preset and key it concerns).
    """
    import tomllib  # only when presets are first needed

    source = str(path)
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([ConfigProblem("", f"cannot read the presets: {exc}", source)]) from None
    problems: list[ConfigProblem] = []
    presets: dict[str, Preset] = {}
    for name, row in document.items():
        found = _preset(name, row, problems)
        if found is not None:
            presets[name] = found
    if problems:
        raise ConfigError([ConfigProblem(p.path, p.message, source) for p in problems])
    return presets


def _strings(value: Any, path: str, problems: list[ConfigProblem]) -> frozenset[str] | None:
    if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
        return frozenset(value)
    problems.append(ConfigProblem(path, "must be a list of non-empty strings"))
    return None


def _preset(name: str, row: Any, problems: list[ConfigProblem]) -> Preset | None:
    start = len(problems)
    if not _NAME.fullmatch(name):
        problems.append(
            ConfigProblem(name, "a preset name is lower-case letters, digits, '-' and '_'")
        )
    if not isinstance(row, Mapping):
        problems.append(ConfigProblem(name, "must be a table"))
        return None
    for key in row:
        if key not in _KEYS:
            expected = ", ".join(sorted(_KEYS))
            problems.append(ConfigProblem(f"{name}.{key}", f"unknown key (expected {expected})"))
    texts: dict[str, str] = {}
    for key in ("description", "base_url", "docs", "api_key_env"):
        value = row.get(key)
        if value is None and key in ("docs", "api_key_env"):
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(ConfigProblem(f"{name}.{key}", "must be a non-empty string"))
        else:
            texts[key] = value
    base_url = texts.get("base_url", "")
    if base_url and not base_url.startswith(("http://", "https://")):
        problems.append(ConfigProblem(f"{name}.base_url", "must be an http(s) URL"))
    api_key_env = texts.get("api_key_env")
    if api_key_env is not None and not _ENV_NAME.fullmatch(api_key_env):
        problems.append(ConfigProblem(f"{name}.api_key_env", "must be a variable name"))
    headers = row.get("headers", {})
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        problems.append(ConfigProblem(f"{name}.headers", "must be a table of strings"))
        headers = {}
    quirks: dict[str, Any] = {"source": texts.get("docs", "")}
    # A preset opts in to the endpoints it has; the other flags default to OpenAI's.
    quirks["embeddings"] = quirks["images"] = False
    for flag in _FLAGS:
        if flag in row:
            if isinstance(row[flag], bool):
                quirks[flag] = row[flag]
            else:
                problems.append(ConfigProblem(f"{name}.{flag}", "must be true or false"))
    field = row.get("max_tokens_field", "max_tokens")
    if field in ("max_tokens", "max_completion_tokens"):
        quirks["max_tokens_field"] = field
    else:
        problems.append(
            ConfigProblem(
                f"{name}.max_tokens_field", "must be 'max_tokens' or 'max_completion_tokens'"
            )
        )
    for key, allowed in (
        ("unsupported", None),
        ("tool_choice", TOOL_CHOICES),
        ("response_format", RESPONSE_FORMATS),
    ):
        if key not in row:
            continue
        if key != "unsupported" and row[key] == []:
            quirks[key] = frozenset()
            continue
        values = _strings(row[key], f"{name}.{key}", problems)
        if values is None:
            continue
        unknown = sorted(values - allowed) if allowed is not None else []
        if unknown:
            problems.append(
                ConfigProblem(
                    f"{name}.{key}",
                    f"unknown value {unknown[0]!r} "
                    f"(expected any of {', '.join(sorted(allowed or ()))})",
                )
            )
            continue
        quirks[key] = values
    if len(problems) > start:
        return None
    return Preset(
        name=name,
        description=texts["description"],
        base_url=base_url.rstrip("/"),
        api_key_env=api_key_env,
        docs=texts.get("docs", ""),
        headers=dict(headers),
        quirks=ServerQuirks(**quirks),
    )


def preset_named(name: str) -> Preset:
    """The shipped preset called ``name``.

    Raises:
        ProviderNotFoundError: there is none (with close matches as suggestions).
    """
    presets = load_presets()
    found = presets.get(name)
    if found is None:
        from aiport._suggest import close_matches

        suggestions = close_matches(name, presets)
        raise ProviderNotFoundError(
            f"no OpenAI-compatible preset called {name!r} (presets: {', '.join(sorted(presets))})",
            suggestions=suggestions,
        )
    return found


def preset_types() -> dict[str, ProviderType]:
    """A registry row for every shipped preset, by name."""
    return {name: preset.provider_type() for name, preset in load_presets().items()}
