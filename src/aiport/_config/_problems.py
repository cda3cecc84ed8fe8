"""Where a configuration problem is and how it is worded.

A problem is located by a tuple path (``("providers", "openai", "retry", "max_attempts")``)
and reported as a :class:`~aiport.ConfigProblem` whose ``path`` is the dotted form
(:func:`format_path`). Pydantic's errors are turned into such problems without ever
rendering an input value (it may be a secret), and a misspelt option gets a "did you mean".
"""

from __future__ import annotations

import difflib
import json
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from aiport._errors import ConfigError, ConfigProblem

__all__ = [
    "CrossFieldError",
    "Loc",
    "Located",
    "as_problem",
    "format_path",
    "located_from_validation_error",
]

#: Keys written as they are in a path; others are quoted.
_PLAIN_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")

#: Where a setting is: keys of tables, positions in lists.
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Located:
    """A problem with its location as a tuple (the string path is derived from it)."""

    loc: Loc
    message: str


class CrossFieldError(ConfigError):
    """Raised by model validators for problems across fields; carries their locations.

    It passes through pydantic untouched (it is not a ``ValueError``) and is turned into a
    plain :class:`ConfigError` by the entry points.
    """

    def __init__(self, located: Sequence[Located]) -> None:
        self.located = tuple(located)
        super().__init__([ConfigProblem(format_path(p.loc), p.message) for p in self.located])


def as_problem(located: Located, source: str | None = None) -> ConfigProblem:
    """``located`` as the :class:`ConfigProblem` users see (``source``: the layer's label)."""
    return ConfigProblem(path=format_path(located.loc), message=located.message, source=source)


def format_path(loc: Sequence[str | int]) -> str:
    """The dotted path of a setting: ``providers.openai.models."gpt-4.1".fallbacks[0]``.

    Keys that are not plain words (letters, digits, ``_``, ``-``) are quoted as in TOML;
    list positions are written ``[n]``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _PLAIN_SEGMENT_RE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out += f".{text}" if out else text
    return out


def located_from_validation_error(exc: ValidationError, cls: type[BaseModel]) -> list[Located]:
    """Every error of ``exc`` as a located message; input values are never rendered."""
    located: list[Located] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        loc: Loc = tuple(error["loc"])
        message = error["msg"]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            message = f"invalid key: {message}"
        elif error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            message = "unknown option" + _suggestion(cls, loc)
        elif error["type"] == "missing":
            message = "required setting is missing"
        located.append(Located(loc, message))
    return located


def _suggestion(cls: type[BaseModel], loc: Loc) -> str:
    """``"; did you mean 'x'?"`` for a misspelt option at ``loc``, else ``""``."""
    owner = _type_at(cls, loc[:-1])
    if owner is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_at(cls: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found at ``loc`` below ``cls`` (following dict values and lists)."""
    current: Any = cls
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin, args = get_origin(current), get_args(current)
        if origin is dict and len(args) == 2:
            current = args[1]
        elif origin is list and args:
            current = args[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the interesting type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            candidates = [a for a in get_args(annotation) if a is not type(None)]
            if len(candidates) != 1:
                return annotation
            annotation = candidates[0]
        else:
            return annotation
