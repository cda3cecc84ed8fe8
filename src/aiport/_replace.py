"""Building pydantic models on the hot path without pydantic's generic machinery.

``replaced``: the hot path copies a few models per call (the options with the upstream
model name, the response with its attempts, a cached response with its latency). The
result is exactly what ``model_copy(update=changes)`` gives (a shallow copy, the changed
values set without validation, the fields set updated), made directly: about a third of
the cost, and it adds up (docs/decisions.md 13).

``trusted``: a new instance from values that are valid by construction, the way
``model_construct`` makes one, without its Python-level work (it looks up every field's
default and alias on each call: slower than validating a small model). For a response
with its message and usage that is ~2 µs less per call (docs/decisions.md 18). The
caller owns the guarantee: every field present, in declaration order, each value of its
field's type and already normalised as the model's validators would leave it.
tests/test_trusted_models.py checks each such caller against the validating constructor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["replaced", "trusted"]

ModelT = TypeVar("ModelT", bound=BaseModel)


# BaseModel's own slots, set through their descriptors (a little cheaper than
# ``object.__setattr__`` by name, and these objects are made once per stream event).
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def replaced(model: ModelT, changes: Mapping[str, Any]) -> ModelT:
    """A shallow copy of ``model`` with ``changes`` applied (not validated: the values must
    already be valid for their fields, as with ``model_copy(update=...)``)."""
    copied = _new(type(model))
    _set_dict(copied, {**model.__dict__, **changes})
    _set_fields_set(copied, model.__pydantic_fields_set__ | changes.keys())
    extra = model.__pydantic_extra__
    _set_extra(copied, None if extra is None else dict(extra))
    private = model.__pydantic_private__
    _set_private(copied, None if private is None else dict(private))
    return copied


def trusted(cls: type[ModelT], values: dict[str, Any], fields_set: set[str]) -> ModelT:
    """An instance of ``cls`` holding ``values`` as they are, without validation.

    ``values`` must hold every field of ``cls`` in declaration order (defaults included)
    and become the instance's own ``__dict__``; ``fields_set`` names the fields a
    validating call would have been given (what ``model_fields_set`` reports), and is
    kept as is. Only for models without private attributes or extra fields (every
    shared type: ``extra="forbid"``).
    """
    model = _new(cls)
    _set_dict(model, values)
    _set_fields_set(model, fields_set)
    _set_extra(model, None)
    _set_private(model, None)
    return model
