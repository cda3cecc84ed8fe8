"""Layering: merging the layers of a configuration, and tracing a problem to its layer.

Each layer (the file, the profile, the environment, the overrides...) is a plain nested
dict with a label; :func:`deep_merge` lays one over another, and
:func:`sourced_problem` names the layer a problem most likely comes from (and the
``AIPORT_*`` variable, when it is the environment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from aiport._config._problems import Loc, Located, as_problem
from aiport._errors import ConfigProblem

__all__ = ["Layer", "deep_merge", "plain_data", "sourced_problem"]


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged over ``base`` into a new dict; neither input is modified.

    Where both hold a mapping under a key, the mappings are merged the same way; any other
    value of ``overlay`` (lists included) replaces the one in ``base``.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping):
            merged[key] = deep_merge(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of a configuration: its settings, and the label its problems are shown with."""

    data: Mapping[str, Any]
    label: str


def _has(data: Mapping[str, Any], loc: Loc) -> bool:
    """Whether ``data`` holds a setting (or table) at ``loc``."""
    current: Any = data
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _origin(loc: Loc, layers: Sequence[Layer]) -> str | None:
    """The label of the layer a problem at ``loc`` most likely comes from.

    The last layer setting ``loc`` itself; else the first layer that created the nearest
    enclosing table (a missing setting belongs to whoever wrote the table without it).
    """
    for layer in reversed(layers):
        if loc and _has(layer.data, loc):
            return layer.label
    for size in range(len(loc) - 1, 0, -1):
        for layer in layers:
            if _has(layer.data, loc[:size]):
                return layer.label
    return layers[0].label if layers else None


def plain_data(value: Any) -> Any:
    """Mappings and pydantic models (only the settings they set) as plain nested dicts."""
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_unset=True)
    if isinstance(value, Mapping):
        return {key: plain_data(item) for key, item in value.items()}
    return value


def sourced_problem(
    located: Located, layers: Sequence[Layer], env_vars: Mapping[Loc, str]
) -> ConfigProblem:
    """``located`` as a problem naming its layer (and the variable that set it, if any)."""
    source = _origin(located.loc, layers)
    message = located.message
    if source == "environment":
        for size in range(len(located.loc), 0, -1):
            variable = env_vars.get(located.loc[:size])
            if variable is not None:
                message = f"{message} (set by {variable})"
                break
    return as_problem(Located(located.loc, message), source)
