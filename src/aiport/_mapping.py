"""Shared error classification: HTTP status first, then the provider's error type.

Each provider's ``_errors`` module parses its own error body and calls
``classify`` with what it found; the rules common to all providers live here once.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
)

__all__ = ["classify", "looks_like_context_length", "parse_retry_after", "request_id_from"]

_CONTEXT_LENGTH = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens"
    r"|input is too long|reduce the length of the messages"
    r"|exceeds? the (?:model'?s? )?(?:maximum |max )?context",
    re.IGNORECASE,
)
_CONTENT_FILTER = re.compile(r"content[_ ]?(?:filter|policy|management)|safety system", re.I)


def looks_like_context_length(*texts: str | None) -> bool:
    """Whether an error type/code/message says the context window was exceeded."""
    return any(text and _CONTEXT_LENGTH.search(text) for text in texts)


def looks_like_content_filter(*texts: str | None) -> bool:
    """Whether an error type/code/message says a content policy refused the request."""
    return any(text and _CONTENT_FILTER.search(text) for text in texts)


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or HTTP date).

    Negative or unparseable values give ``None``; a date in the past gives ``0``.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def request_id_from(headers: Mapping[str, str]) -> str | None:
    """The provider's request id from the usual headers."""
    for name in ("x-request-id", "request-id", "x-amzn-requestid", "apim-request-id"):
        value = headers.get(name)
        if value:
            return value
    return None


def classify(
    *,
    status: int,
    message: str,
    error_type: str | None,
    error_code: str | None,
    headers: Mapping[str, str],
    provider: str,
    model: str | None,
    body: Any,
    auth_types: frozenset[str] = frozenset(),
    rate_limit_types: frozenset[str] = frozenset(),
    overloaded_types: frozenset[str] = frozenset(),
    content_filter_types: frozenset[str] = frozenset(),
    context_length_types: frozenset[str] = frozenset(),
) -> ProviderError:
    """Build the typed error for an HTTP error response.

    The status decides the category; the provider's type/code refine it (an auth error
    type on a 400, a context-length code on a 400, a rate-limit type on a 200 stream
    error...). ``retryable`` follows the category: 408, 409, 429 and 5xx may succeed
    when sent again, 4xx never.
    """
    context: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status or None,
        "error_type": error_code or error_type,
        "request_id": request_id_from(headers),
        "body": body,
    }
    kinds = {k for k in (error_type, error_code) if k}
    retry_after = parse_retry_after(headers)
    if status in (401, 403) or kinds & auth_types:
        return ProviderAuthError(message, **context)
    if status == 429 or kinds & rate_limit_types:
        return ProviderRateLimitError(message, retry_after=retry_after, **context)
    if kinds & context_length_types or (
        status in (400, 413, 422) and looks_like_context_length(error_type, error_code, message)
    ):
        return ContextLengthExceededError(message, **context)
    if kinds & content_filter_types or (
        status == 400 and looks_like_content_filter(error_code, error_type)
    ):
        return ContentFilterError(message, **context)
    if status in (408, 409) or status >= 500 or kinds & overloaded_types:
        return ProviderAPIError(
            message,
            retryable=True,
            retry_after=retry_after,
            reason="overloaded" if (status == 529 or kinds & overloaded_types) else "server_error",
            **context,
        )
    if 400 <= status < 500:
        return InvalidRequestError(message, **context)
    return ProviderAPIError(message, retryable=False, reason="unexpected_status", **context)
