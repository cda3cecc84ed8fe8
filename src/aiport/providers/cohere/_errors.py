"""Cohere error bodies -> typed aiport errors.

Cohere answers errors as ``{"id": "...", "message": "..."}`` (or just ``{"message":
...}``) with no error type: the HTTP status says what happened. Besides the usual ones it
uses 498 (invalid or expired token: an auth error) and 499 (the request was cancelled
before it finished: retryable). A prompt over the context window is a 400 saying "too many
tokens". Inside a stream, an answer that failed ends with a ``message-end`` event whose
``finish_reason`` is ``ERROR`` and whose ``error`` holds the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiport._errors import ProviderAPIError, ProviderAuthError, ProviderError
from aiport._mapping import classify, looks_like_context_length, parse_retry_after

__all__ = ["map_error", "request_id_of"]

_PREVIEW = 200
#: Cohere's trace id (exposed to clients for support requests), then the usual names.
_REQUEST_ID_HEADERS = ("x-debug-trace-id", "x-request-id", "request-id")


def request_id_of(headers: Mapping[str, str], body: Any = None) -> str | None:
    """Cohere's request id: its trace-id header, else the ``id`` of an error body."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    if isinstance(body, Mapping):
        value = body.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def _message(status: int, body: Any, text: str, provider: str) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    preview = " ".join(text.split())[:_PREVIEW]
    label = f"HTTP {status}" if status else "an error"
    return f"{label} from {provider}: {preview}" if preview else f"{label} from {provider}"


def map_error(  # noqa: PLR0917  (the signature every adapter's map_error shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
) -> ProviderError:
    """The typed error for a Cohere error answer.

    ``status`` is ``0`` for an error reported inside a stream: it is classified as a
    server error unless its message says otherwise (a context-length message, say), and
    carries no ``status_code``.
    """
    message = _message(status, body, text, provider)
    request_id = request_id_of(headers, body)
    context: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status,
        "request_id": request_id,
        "body": body,
    }
    if status == 498:
        return ProviderAuthError(message, reason="invalid_token", **context)
    if status == 499:
        return ProviderAPIError(
            message,
            retryable=True,
            retry_after=parse_retry_after(headers),
            reason="cancelled",
            **context,
        )
    effective = status
    if not status:
        # In a stream: a context-length message is that failure; anything else, the server's.
        effective = 400 if looks_like_context_length(message) else 500
    error = classify(
        status=effective,
        message=message,
        error_type=None,
        error_code=None,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
    )
    error.request_id = request_id
    if not status:
        error.status_code = None
    return error
