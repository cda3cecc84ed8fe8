"""The base of every configuration model: frozen, unknown options forbidden, and invalid
input raised as one :class:`~aiport.ConfigError` listing every problem with its path."""

from __future__ import annotations

from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from aiport._config._problems import (
    CrossFieldError,
    Located,
    as_problem,
    located_from_validation_error,
)
from aiport._errors import ConfigError

__all__ = ["ConfigModel", "ConfigModelT", "validate_located"]


class ConfigModel(BaseModel):
    """Common behaviour: frozen, unknown options forbidden, errors raised as ConfigError.

    Invalid input raises :class:`~aiport.ConfigError` (never pydantic's ``ValidationError``,
    whose text quotes input values, secrets included), raised outside the ``except`` block so
    that the pydantic error is not even kept as its context.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
            return
        except ValidationError as exc:
            located = _problems_of(type(self), exc, data)
        except CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([as_problem(p) for p in located])

    # Tell pydantic this ``__init__`` only wraps its own: nested models are then built by
    # pydantic-core directly, so the errors of every nested table are collected together.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj``; invalid input raises :class:`~aiport.ConfigError`."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            located = _problems_of(cls, exc, obj)
        except CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([as_problem(p) for p in located])

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Validate a JSON document; invalid input raises :class:`~aiport.ConfigError`."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            located = _problems_of(cls, exc, None)
        except CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([as_problem(p) for p in located])

    @classmethod
    def _validate_located(cls, data: Any) -> Self:
        """Validate ``data``, raising :class:`CrossFieldError` (problems with locations)."""
        try:
            return super().model_validate(data)
        except ValidationError as exc:
            located = _problems_of(cls, exc, data)
        raise CrossFieldError(located)

    @classmethod
    def _extra_problems(cls, data: Any) -> list[Located]:
        """Problems to report beside pydantic's when field validation fails (none here)."""
        return []


ConfigModelT = TypeVar("ConfigModelT", bound=ConfigModel)


def _problems_of(cls: type[ConfigModel], exc: ValidationError, data: Any) -> list[Located]:
    """Every problem of a failed validation, with the model's own cross-field problems."""
    located = located_from_validation_error(exc, cls)
    seen = {(p.loc, p.message) for p in located}
    located.extend(p for p in cls._extra_problems(data) if (p.loc, p.message) not in seen)
    return located


def validate_located(cls: type[ConfigModelT], data: Any) -> ConfigModelT:
    """Validate ``data`` as ``cls``, raising :class:`CrossFieldError` (with locations)."""
    return cls._validate_located(data)
