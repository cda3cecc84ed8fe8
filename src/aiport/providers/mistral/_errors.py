"""Mistral error bodies -> typed aiport errors.

Mistral answers errors in several shapes, depending on which layer refused the request:

- the API: ``{"object": "error", "message": "...", "type": "invalid_request_error",
  "param": null, "code": null}``, e.g. a prompt over the context window ("Prompt contains
  N tokens and 0 draft tokens, too large for model with M maximum context length") or a
  rate limit (``"type": "rate_limited", "code": "1300"`` with HTTP 429); older answers put
  validation details in ``message`` as ``{"detail": [...]}``;
- request validation (HTTP 422): ``{"detail": [{"type": "extra_forbidden", "loc": ["body",
  "seed"], "msg": "Extra inputs are not permitted", "input": ...}]}``;
- the gateway: ``{"message": "Unauthorized", "request_id": "..."}`` (HTTP 401), or
  ``{"detail": "Unauthorized"}``.

Errors inside a stream arrive as the API shape in a ``data:`` event of a 200 answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._errors import ProviderError
from aiport._mapping import classify

__all__ = ["error_fields", "map_error", "request_id_of"]

_AUTH_TYPES = frozenset({"unauthorized", "invalid_api_key", "authentication_error"})
_RATE_LIMIT_TYPES = frozenset({"rate_limited", "service_tier_capacity_exceeded"})

#: For errors inside a stream (no HTTP status of their own): the status the same error
#: would have had as a plain answer, so ``classify`` picks the same category.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "invalid_model": 400,
    "unauthorized": 401,
    "rate_limited": 429,
    "service_tier_capacity_exceeded": 429,
}

_PREVIEW = 200
#: Response headers that carry Mistral's request id, best first.
_REQUEST_ID_HEADERS = ("x-kong-request-id", "mistral-correlation-id", "x-request-id")


def request_id_of(headers: Mapping[str, str], body: Any = None) -> str | None:
    """Mistral's request id: a response header, else the ``request_id`` of an error body."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    if isinstance(body, Mapping):
        value = body.get("request_id")
        if isinstance(value, str) and value:
            return value
    return None


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _details(details: list[Any]) -> tuple[str, str | None]:
    """A validation error list -> one readable line, and the first error's type."""
    lines: list[str] = []
    first_type: str | None = None
    for detail in details:
        if not isinstance(detail, Mapping):
            continue
        loc = detail.get("loc")
        where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
        msg = _as_text(detail.get("msg")) or "invalid"
        lines.append(f"{where}: {msg}" if where else msg)
        if first_type is None:
            first_type = _as_text(detail.get("type"))
    return "; ".join(lines), first_type


def error_fields(
    status: int, body: Any, text: str, provider: str
) -> tuple[str, str | None, str | None]:
    """``(message, type, code)`` from any of the error shapes described above."""
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    if isinstance(body, Mapping):
        raw_message = body.get("message")
        if isinstance(raw_message, Mapping) and isinstance(raw_message.get("detail"), list):
            message, error_type = _details(raw_message["detail"])
        elif raw_message is not None and not isinstance(raw_message, str):
            message = json.dumps(raw_message)[: _PREVIEW * 5]
        else:
            message = _as_text(raw_message)
        error_type = _as_text(body.get("type")) or error_type
        code = _as_text(body.get("code"))
        detail = body.get("detail")
        if message is None and isinstance(detail, list):
            message, error_type = _details(detail)
            message = f"invalid request: {message}"
        elif message is None and isinstance(detail, str):
            message = detail
    if not message:
        # Not an error body we know (a proxy's HTML page, plain text, nothing).
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
    """The typed error for a Mistral error answer.

    ``status`` is ``0`` for an error event inside a stream: the category is then inferred
    from the error type (an unknown one counts as a server error), and the error carries
    no ``status_code``.
    """
    message, error_type, code = error_fields(status, body, text, provider)
    effective = status or _STATUS_OF_TYPE.get(error_type or "", 500)
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
    )
    # Mistral's numeric codes ("1300") say less than its types ("rate_limited").
    error.error_type = error_type or code
    error.request_id = request_id_of(headers, body)
    if not status:
        error.status_code = None
    return error
