"""Checks of single settings, and the annotated field types built from them.

Names (providers, models, aliases), HTTP header names and values, and secret settings:
a secret is checked without its value ever being quoted, and a built-in reference
(``env:``, ``file:``, ``keyring:``...) that cannot work is rejected at load time. The
value itself is never resolved here (see :mod:`aiport._secrets`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, SecretStr
from pydantic_core import PydanticCustomError

from aiport._secrets import BUILTIN_SCHEMES, split_reference

__all__ = [
    "HeaderName",
    "HeaderValue",
    "NonEmptyName",
    "ProviderName",
    "SecretSetting",
    "check_secret_reference",
]

_PROVIDER_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_provider_name(name: str) -> str:
    if not _PROVIDER_NAME_RE.fullmatch(name):
        raise PydanticCustomError(
            "provider_name",
            "provider names may contain only letters, digits, '_', '.' and '-' "
            "(':' separates a provider from a model)",
        )
    return name


def _check_name(name: str) -> str:
    if not name.strip():
        raise PydanticCustomError("empty_name", "must not be empty")
    if name != name.strip():
        raise PydanticCustomError("name_whitespace", "must not start or end with whitespace")
    return name


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME_RE.fullmatch(name):
        raise PydanticCustomError("header_name", "is not a valid HTTP header name")
    return name


def _check_header_value(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise PydanticCustomError(
            "header_value", "an HTTP header value must not contain line breaks or NUL"
        )
    return value


ProviderName = Annotated[str, AfterValidator(_check_provider_name)]
NonEmptyName = Annotated[str, AfterValidator(_check_name)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]


def check_secret_reference(value: SecretStr) -> None:
    """Reject empty secrets and built-in references that cannot work (never quoting the value)."""
    text = value.get_secret_value()
    if not text:
        raise PydanticCustomError("empty_secret", "must not be empty")
    parts = split_reference(text, BUILTIN_SCHEMES)
    if parts is None:
        if text != text.strip():
            raise PydanticCustomError(
                "secret_whitespace", "must not start or end with whitespace or a line break"
            )
        return
    scheme, rest = parts
    if not rest.strip():
        raise PydanticCustomError(
            "empty_reference", "the {scheme}: reference names nothing", {"scheme": scheme}
        )
    if scheme == "keyring" and "/" not in rest.strip("/"):
        raise PydanticCustomError(
            "keyring_reference", "keyring references take the form keyring:SERVICE/NAME"
        )


def _checked_secret(value: SecretStr) -> SecretStr:
    check_secret_reference(value)
    return value


#: A secret setting inside a list (``api_keys``): each item checked, its problems located.
SecretSetting = Annotated[SecretStr, AfterValidator(_checked_secret)]
