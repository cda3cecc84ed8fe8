"""OpenAI error bodies -> typed aiport errors.

OpenAI answers ``{"error": {"message", "type", "param", "code"}}``. OpenAI-compatible
servers vary: ``{"error": "text"}`` (Ollama), ``{"message": ..., "type": ...}`` (vLLM),
``{"detail": ...}`` (FastAPI-based servers), or an HTML page from a proxy. All of them
end up in ``aiport._mapping.classify``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._errors import ProviderError, ProviderRateLimitError
from aiport._mapping import classify, parse_retry_after, request_id_from

__all__ = ["error_fields", "map_error"]

_AUTH_TYPES = frozenset(
    {"invalid_api_key", "authentication_error", "permission_denied", "insufficient_permissions"}
)
_RATE_LIMIT_TYPES = frozenset({"rate_limit_exceeded", "rate_limit_error"})
_CONTEXT_LENGTH_TYPES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTENT_FILTER_TYPES = frozenset({"content_filter", "content_policy_violation"})

#: For errors that arrive inside a stream (no HTTP status of their own): the status the
#: same error would have had as a plain answer, so ``classify`` picks the same category.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "insufficient_permissions": 403,
    "not_found_error": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "api_error": 500,
    "internal_error": 500,
    "service_unavailable": 503,
    "engine_overloaded": 503,
    "overloaded_error": 529,
}

_PREVIEW = 200


def _as_text(value: Any) -> str | None:
    """A wire field as text (compatible servers send numeric codes too)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def error_fields(
    status: int, body: Any, text: str, provider: str
) -> tuple[str, str | None, str | None]:
    """``(message, type, code)`` from any of the error body shapes described above."""
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = _as_text(error.get("message"))
            error_type = _as_text(error.get("type"))
            code = _as_text(error.get("code"))
        elif isinstance(error, str) and error:
            message = error
            error_type = _as_text(body.get("type"))
            code = _as_text(body.get("code"))
        elif body.get("message"):
            message = _as_text(body.get("message"))
            error_type = _as_text(body.get("type"))
            code = _as_text(body.get("code"))
        elif "detail" in body:
            detail = body["detail"]
            message = detail if isinstance(detail, str) else json.dumps(detail)[: _PREVIEW * 5]
    if not message:
        # Not an error body we know (an HTML page from a proxy, plain text, nothing):
        # show its beginning, whitespace collapsed so an HTML page stays one line.
        preview = " ".join(text.split())[:_PREVIEW]
        label = f"HTTP {status}" if status else "an error"
        message = f"{label} from {provider}: {preview}" if preview else f"{label} from {provider}"
    return message, error_type, code


def map_error(  # noqa: PLR0917  (the signature every adapter's map_error shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
) -> ProviderError:
    """The typed error for an OpenAI (or compatible) error answer.

    ``status`` is ``0`` for an error event inside a stream: the category is then
    inferred from the error type (and the error carries no ``status_code``).
    ``insufficient_quota`` (an exhausted balance) is a 429 that waiting will not fix:
    a ``ProviderRateLimitError`` with ``retryable=False`` and reason
    ``"insufficient_quota"``.
    """
    message, error_type, code = error_fields(status, body, text, provider)
    if "insufficient_quota" in (error_type, code) and status in (0, 429):
        return ProviderRateLimitError(
            message,
            provider=provider,
            model=model,
            status_code=status or None,
            error_type=code or error_type,
            request_id=request_id_from(headers),
            retryable=False,
            retry_after=parse_retry_after(headers),
            reason="insufficient_quota",
            body=body,
        )
    effective = status
    if not status:
        effective = _STATUS_OF_TYPE.get(code or "", 0) or _STATUS_OF_TYPE.get(error_type or "", 0)
        if not effective:
            # An unknown error in the middle of an answer is the server's failure.
            effective = 500
    error = classify(
        status=effective,
        message=message,
        error_type=error_type,
        error_code=code,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
        auth_types=_AUTH_TYPES,
        rate_limit_types=_RATE_LIMIT_TYPES,
        content_filter_types=_CONTENT_FILTER_TYPES,
        context_length_types=_CONTEXT_LENGTH_TYPES,
    )
    if not status:
        error.status_code = None
    return error
