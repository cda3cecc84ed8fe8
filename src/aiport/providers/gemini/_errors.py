"""Google error bodies -> typed aiport errors.

Google APIs answer errors as ``{"error": {"code", "message", "status", "details": [...]}}``
where ``status`` is the canonical gRPC code name (``INVALID_ARGUMENT`` 400,
``UNAUTHENTICATED`` 401, ``PERMISSION_DENIED`` 403, ``NOT_FOUND`` 404,
``RESOURCE_EXHAUSTED`` 429, ``INTERNAL`` 500, ``UNAVAILABLE`` 503, ``DEADLINE_EXCEEDED``
504...) and ``details`` holds typed objects: ``google.rpc.ErrorInfo`` (a ``reason`` such as
``API_KEY_INVALID``), ``google.rpc.RetryInfo`` (``retryDelay``: how long to wait, as a
protobuf Duration ``"34.4s"``), ``google.rpc.QuotaFailure``...

Specifics handled here:

- an invalid API key is a **400** ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``:
  it is a ``ProviderAuthError``, like every ErrorInfo reason about credentials;
- ``retry_after`` comes from the ``Retry-After`` header when there is one, else from
  ``RetryInfo.retryDelay``;
- "The input token count (N) exceeds the maximum number of tokens allowed (M)" is a
  ``ContextLengthExceededError``;
- mid-stream, the same error object arrives as an SSE event on a 200 answer
  (:func:`map_stream_error`): its ``code`` picks the class, ``status_code`` stays ``None``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from aiport._errors import ContextLengthExceededError, ProviderError
from aiport._mapping import classify, request_id_from

__all__ = ["STATUS_CODES", "error_details", "map_error", "map_stream_error", "retry_delay"]

#: The HTTP status of each canonical status name, for errors that carry only the name.
STATUS_CODES: Mapping[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

#: ErrorInfo reasons (and statuses) that mean the credential is missing, wrong or barred.
_AUTH_TYPES = frozenset(
    {
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "API_KEY_INVALID",
        "API_KEY_EXPIRED",
        "API_KEY_SERVICE_BLOCKED",
        "API_KEY_HTTP_REFERRER_BLOCKED",
        "API_KEY_IP_ADDRESS_BLOCKED",
        "ACCESS_TOKEN_EXPIRED",
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        "CREDENTIALS_MISSING",
        "SERVICE_DISABLED",
    }
)
_RATE_LIMIT_TYPES = frozenset({"RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED"})
_OVERLOADED_TYPES = frozenset({"UNAVAILABLE"})
_CONTEXT_LENGTH = re.compile(
    r"input token count.*exceeds the maximum number of tokens|exceeds the maximum number of "
    r"tokens allowed|context window",
    re.IGNORECASE | re.DOTALL,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")
_PREVIEW = 200


def retry_delay(details: Any) -> float | None:
    """Seconds of the ``google.rpc.RetryInfo`` among an error's ``details``, if any.

    ``retryDelay`` is a protobuf Duration: ``"34.4s"`` in JSON, or
    ``{"seconds": 34, "nanos": 400000000}`` from some proxies.
    """
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, Mapping) or not str(detail.get("@type", "")).endswith(
            "google.rpc.RetryInfo"
        ):
            continue
        delay = detail.get("retryDelay")
        seconds: float | None = None
        if isinstance(delay, str):
            match = _DURATION.match(delay)
            seconds = float(match.group(1)) if match else None
        elif isinstance(delay, Mapping):
            whole, nanos = delay.get("seconds", 0), delay.get("nanos", 0)
            try:
                seconds = float(whole) + float(nanos) / 1e9
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def error_details(body: Any) -> tuple[str | None, str | None, str | None, int | None, Any]:
    """``(message, status, ErrorInfo reason, code, details)`` of a Google error body."""
    if not isinstance(body, Mapping):
        return None, None, None, None, None
    error = body.get("error")
    if not isinstance(error, Mapping):
        # Some proxies answer a bare list of one error: [{"error": {...}}].
        return None, None, None, None, None
    message = error.get("message")
    status = error.get("status")
    code = error.get("code")
    details = error.get("details")
    reason: str | None = None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith(
            "google.rpc.ErrorInfo"
        ):
            value = detail.get("reason")
            if isinstance(value, str) and value:
                reason = value
                break
    return (
        message if isinstance(message, str) and message else None,
        status if isinstance(status, str) and status else None,
        reason,
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        details,
    )


def map_error(  # noqa: PLR0917  (the signature every adapter's map_error shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
) -> ProviderError:
    """The typed error for a Google error answer.

    ``body`` is the parsed JSON (``None`` if it was not JSON) and ``text`` the raw body,
    both already scrubbed of credentials. ``status`` 0 means an error event inside a
    stream: the body's ``code`` (or ``status`` name) then decides the class, and the
    error carries no ``status_code``.
    """
    if isinstance(body, list) and len(body) == 1:
        body = body[0]  # streamGenerateContent without alt=sse answers a JSON array
    message, status_name, reason, code, details = error_details(body)
    if message is None:
        preview = " ".join(text.split())[:_PREVIEW]
        label = f"HTTP {status}" if status else "an error"
        message = f"{label} from {provider}: {preview}" if preview else f"{label} from {provider}"
    effective = status
    if not effective:
        effective = code or STATUS_CODES.get(status_name or "", 0) or 500
    context: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status or None,
        "error_type": reason or status_name,
        "request_id": request_id_from(headers),
        "body": body,
    }
    if effective == 400 and _CONTEXT_LENGTH.search(message):
        return ContextLengthExceededError(message, **context)
    error = classify(
        status=effective,
        message=message,
        error_type=status_name,
        error_code=reason,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
        auth_types=_AUTH_TYPES,
        rate_limit_types=_RATE_LIMIT_TYPES,
        overloaded_types=_OVERLOADED_TYPES,
    )
    if error.retry_after is None and error.retryable:
        error.retry_after = retry_delay(details)
    if not status:
        error.status_code = None
    return error


def map_stream_error(
    provider: str, payload: Mapping[str, Any], model: str | None, request_id: str | None
) -> ProviderError:
    """The typed error for an ``{"error": {...}}`` event inside a stream."""
    headers = {"x-request-id": request_id} if request_id else {}
    return map_error(provider, 0, headers, dict(payload), "", model)
