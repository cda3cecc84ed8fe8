"""Ollama error bodies -> typed aiport errors.

Ollama answers errors as ``{"error": "<text>"}`` with an HTTP status (``server/routes.go``):
400 for bad requests, capabilities a model lacks (``"does not support tools"``,
``"\\"llama3.2\\" does not support thinking"``) and prompts over the context length; 404
for a model that is not pulled (``model 'x' not found`` from ``/api/chat``, ``model "x"
not found, try pulling it first`` from ``/api/embed``); 401/403 from ollama.com or an
authenticating proxy; 503 when the server's queue is full; 500 for runner failures.
Mid-stream, an error is a line ``{"error": "..."}`` after a 200 (``status`` 0 here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aiport._errors import InvalidRequestError, ProviderCapabilityError, ProviderError
from aiport._mapping import classify, request_id_from

__all__ = ["map_error"]

_NOT_FOUND = re.compile(r"model ['\"]?(?P<name>[^'\"]+?)['\"]? not found", re.IGNORECASE)
_PREVIEW = 200


def error_message(status: int, body: Any, text: str, provider: str) -> str:
    """The error text of an Ollama body, or the start of an unexpected one."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, str) and error:
            return error
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])  # an OpenAI-style proxy in front of Ollama
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
    """The typed error for an Ollama error answer.

    A 404 naming a model is an ``InvalidRequestError`` with reason ``model_not_found``
    whose message says to pull it; a 400 saying the model ``does not support`` something
    is a ``ProviderCapabilityError``; the rest follows the HTTP status (context-length
    texts become ``ContextLengthExceededError``). ``status`` 0 is an error line inside a
    stream: the server failed mid-answer, classified as a 500 without a status code.
    """
    message = error_message(status, body, text, provider)
    context: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status or None,
        "request_id": request_id_from(headers),
        "body": body,
    }
    if status == 404:
        found = _NOT_FOUND.search(message)
        if found is not None:
            name = found.group("name") or model or "MODEL"
            return InvalidRequestError(
                f"{message} (run `ollama pull {name}` on the Ollama server, or check the "
                "model name)",
                reason="model_not_found",
                **context,
            )
    if status == 400 and "does not support" in message:
        return ProviderCapabilityError(message, **context)
    error = classify(
        status=status or 500,
        message=message,
        error_type=None,
        error_code=None,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
    )
    if not status:
        error.status_code = None
    return error
