"""Anthropic error bodies -> typed aiport errors.

The API answers errors as ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the HTTP status matching the type (``authentication_error`` 401,
``permission_error`` 403, ``not_found_error`` 404, ``request_too_large`` 413,
``rate_limit_error`` 429, ``api_error`` 500, ``timeout_error`` 504,
``overloaded_error`` 529...). Mid-stream, the same ``error`` object arrives as an SSE
``error`` event on a 200 response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiport._errors import ContextLengthExceededError, InvalidRequestError, ProviderError
from aiport._mapping import classify, request_id_from

__all__ = ["map_error", "map_stream_error"]

_AUTH_TYPES = frozenset({"authentication_error", "permission_error"})
_RATE_LIMIT_TYPES = frozenset({"rate_limit_error"})
_OVERLOADED_TYPES = frozenset({"overloaded_error"})

#: The HTTP status each error type comes with, to classify errors that arrive inside a
#: stream (whose HTTP status was 200).
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_PREVIEW = 200


def _says_context_length(message: str) -> bool:
    # Narrower than the shared detector on purpose: a 413 says "Request exceeds the
    # maximum allowed number of bytes", which is about bytes, not the context window.
    lowered = message.lower()
    return "prompt is too long" in lowered or "context window" in lowered


def map_error(  # noqa: PLR0917  (the signature every adapter shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
) -> ProviderError:
    """The typed error for an Anthropic HTTP error answer.

    ``body`` is the parsed JSON (``None`` if it was not JSON) and ``text`` the raw body,
    both already scrubbed of credentials.
    """
    error_type: str | None = None
    message: str | None = None
    body_request_id: str | None = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            kind = error.get("type")
            error_type = kind if isinstance(kind, str) else None
            raw_message = error.get("message")
            message = raw_message if isinstance(raw_message, str) else None
        rid = body.get("request_id")
        body_request_id = rid if isinstance(rid, str) else None
    if message is None and error_type is not None:
        message = f"{error_type} (no message)"
    if message is None:
        preview = text[:_PREVIEW] + ("..." if len(text) > _PREVIEW else "")
        message = f"HTTP {status} with an unexpected body: {preview!r}"
    request_id = request_id_from(headers) or body_request_id

    if status == 413 or error_type == "request_too_large":
        cls = ContextLengthExceededError if _says_context_length(message) else InvalidRequestError
        return cls(
            message,
            provider=provider,
            model=model,
            status_code=status or None,
            error_type=error_type,
            request_id=request_id,
            body=body,
        )
    error = classify(
        status=status,
        message=message,
        error_type=error_type,
        error_code=None,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
        auth_types=_AUTH_TYPES,
        rate_limit_types=_RATE_LIMIT_TYPES,
        overloaded_types=_OVERLOADED_TYPES,
    )
    if error.request_id is None:
        error.request_id = request_id
    return error


def map_stream_error(
    provider: str, payload: Mapping[str, Any], model: str | None, request_id: str | None
) -> ProviderError:
    """The typed error for an ``error`` event inside a stream.

    The type decides the class as if it had come with its usual HTTP status; the error's
    ``status_code`` stays ``None`` because the HTTP answer itself was a 200.
    """
    error = payload.get("error")
    kind = error.get("type") if isinstance(error, dict) else None
    status = _TYPE_STATUS.get(kind, 500) if isinstance(kind, str) else 500
    headers = {"request-id": request_id} if request_id else {}
    mapped = map_error(provider, status, headers, dict(payload), "", model)
    mapped.status_code = None
    return mapped
