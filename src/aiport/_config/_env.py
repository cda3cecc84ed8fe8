"""Settings from ``AIPORT_*`` environment variables.

``AIPORT_A__B__C=value`` sets ``a.b.c`` (names lower-cased, ``__`` between levels);
values starting with ``[`` or ``{`` are JSON. A few ``AIPORT_*`` variables are read by
other parts of aiport and are not settings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._config._layering import deep_merge
from aiport._config._problems import Loc, format_path
from aiport._errors import ConfigError, ConfigProblem

__all__ = ["ENV_PREFIX", "env_layer", "env_overlay"]

#: The environment variable prefix of configuration overrides.
ENV_PREFIX = "AIPORT_"
#: Variables with the prefix that other parts of aiport read: not settings.
_ENV_RESERVED = frozenset(
    {
        "AIPORT_CONFIG",
        "AIPORT_ENV",
        "AIPORT_KEYSTORE",
        "AIPORT_KEYSTORE_PASSPHRASE",
        "AIPORT_KEYSTORE_PATH",
    }
)
_ENV_RESERVED_PREFIX = "AIPORT_TEST_"


def env_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings held by ``AIPORT_*`` variables of ``env``, as a nested dict.

    ``AIPORT_A__B__C=value`` sets ``a.b.c`` (names lower-cased). Values starting with ``[``
    or ``{`` are JSON; others stay strings (validation converts ``"5"`` or ``"true"``).
    ``AIPORT_CONFIG``, ``AIPORT_ENV`` and ``AIPORT_TEST_*`` are not settings.

    Raises:
        ConfigError: a variable name with an empty level, or a value that is not valid JSON.
    """
    overlay, _, problems = env_layer(env)
    if problems:
        raise ConfigError(problems)
    return overlay


def env_layer(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[Loc, str], list[ConfigProblem]]:
    """The environment layer: its settings, the variable that set each location, and the
    malformed variables (as problems, so that they are reported with the others)."""
    overlay: dict[str, Any] = {}
    variables: dict[Loc, str] = {}
    problems: list[ConfigProblem] = []
    for name in sorted(env):
        if (
            not name.startswith(ENV_PREFIX)
            or name in _ENV_RESERVED
            or name.startswith(_ENV_RESERVED_PREFIX)
        ):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        loc: Loc = tuple(parts)
        if not all(parts):
            problems.append(
                ConfigProblem(
                    path=name,
                    message="an empty level in the variable name (use '__' between levels only)",
                    source="environment",
                )
            )
            continue
        value: Any = env[name]
        if value.lstrip()[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(
                    ConfigProblem(
                        path=format_path(loc),
                        message=(
                            f"{name} is not valid JSON: {exc.msg} "
                            f"(line {exc.lineno}, column {exc.colno})"
                        ),
                        source="environment",
                    )
                )
                continue
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        overlay = deep_merge(overlay, nested)
        variables[loc] = name
    return overlay, variables, problems
