"""``replaced``: pydantic's ``model_copy(update=...)`` without its generic machinery.

The hot path copies a few models per call (the options with the upstream model name,
the response with its attempts, a cached response with its latency). The result is
exactly what ``model_copy(update=changes)`` gives (a shallow copy, the changed values
set without validation, the fields set updated), made directly: about a third of the
cost, and it adds up (docs/decisions.md 13).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["replaced"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def replaced(model: ModelT, changes: Mapping[str, Any]) -> ModelT:
    """A shallow copy of ``model`` with ``changes`` applied (not validated: the values must
    already be valid for their fields, as with ``model_copy(update=...)``)."""
    copied = object.__new__(type(model))
    object.__setattr__(copied, "__dict__", {**model.__dict__, **changes})
    object.__setattr__(
        copied, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys()
    )
    extra = model.__pydantic_extra__
    object.__setattr__(copied, "__pydantic_extra__", None if extra is None else dict(extra))
    private = model.__pydantic_private__
    object.__setattr__(copied, "__pydantic_private__", None if private is None else dict(private))
    return copied
