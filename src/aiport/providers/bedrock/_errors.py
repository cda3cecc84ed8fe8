"""Bedrock error answers -> typed aiport errors.

Bedrock (a restJson1 AWS service) names the error in the ``x-amzn-ErrorType`` header
(``ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/``) and/or
the body's ``__type`` (sometimes ``namespace#Name``), with the text in ``message`` (or
``Message``). The HTTP status follows the type: ``ValidationException`` 400,
``AccessDeniedException`` 403, ``ResourceNotFoundException`` 404,
``ModelTimeoutException`` 408, ``ModelErrorException`` 424, ``ThrottlingException`` and
``ModelNotReadyException`` 429, ``InternalServerException`` 500,
``ServiceUnavailableException`` 503; the request-signing layer answers
``UnrecognizedClientException``, ``ExpiredTokenException``, ``InvalidSignatureException``
or ``MissingAuthenticationTokenException``, mostly with 403.

Inside a ConverseStream the same errors arrive as exception messages named in
camelCase (``throttlingException``, ``modelStreamErrorException``...), on a 200 answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiport._errors import (
    ContentFilterError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
)
from aiport._mapping import classify, parse_retry_after, request_id_from

__all__ = ["AUTH_ERROR_TYPES", "error_type_of", "map_error", "map_stream_exception"]

#: Errors of the credentials or the signature: the caller's AWS identity is the problem.
AUTH_ERROR_TYPES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    }
)
_RATE_LIMIT_TYPES = frozenset({"ThrottlingException", "TooManyRequestsException"})
_OVERLOADED_TYPES = frozenset({"ServiceUnavailableException", "ModelNotReadyException"})

#: The HTTP status each error type comes with, for errors met inside a stream (whose
#: answer was a 200) and for bodies that name a type but came with an odd status.
_TYPE_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    # A failure of the model mid-answer; AWS says to send the request again.
    "ModelStreamErrorException": 500,
    "ServiceUnavailableException": 503,
}

_PREVIEW = 200
_BLOCKED = "blocked by our content filters"


def error_type_of(headers: Mapping[str, str], body: Any) -> str | None:
    """The AWS error type: from ``x-amzn-ErrorType``, else the body's ``__type``/``code``.

    Both may carry a namespace (``Name:http://...`` in the header, ``ns#Name`` in the
    body); only the name is kept.
    """
    raw = headers.get("x-amzn-errortype") or headers.get("x-amzn-ErrorType")
    if not raw and isinstance(body, Mapping):
        for key in ("__type", "code", "Code"):
            value = body.get(key)
            if isinstance(value, str) and value:
                raw = value
                break
    if not raw:
        return None
    name = raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name or None


def _message_of(body: Any) -> str | None:
    if isinstance(body, Mapping):
        for key in ("message", "Message", "errorMessage"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def map_error(  # noqa: PLR0917  (the signature every adapter's map_error shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
) -> ProviderError:
    """The typed error for a Bedrock error answer.

    ``status`` 0 means an exception message inside a stream: the category then comes
    from the error type alone, and the error carries no ``status_code``.
    """
    error_type = error_type_of(headers, body)
    message = _message_of(body)
    if message is None:
        preview = " ".join(text.split())[:_PREVIEW]
        label = f"HTTP {status}" if status else "an error"
        message = f"{error_type or label} from {provider}" + (f": {preview}" if preview else "")
    effective = status or _TYPE_STATUS.get(error_type or "", 500)
    context: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status or None,
        "error_type": error_type,
        "request_id": request_id_from(headers),
        "body": body,
    }
    retry_after = parse_retry_after(headers)
    if error_type == "ModelNotReadyException":
        # A 429 that is no rate limit: the model is loading. Worth sending again.
        return ProviderAPIError(
            message, retryable=True, retry_after=retry_after, reason="overloaded", **context
        )
    if error_type == "ModelTimeoutException":
        return ProviderTimeoutError(message, retry_after=retry_after, **context)
    if error_type == "ServiceQuotaExceededException":
        # An account quota: waiting a moment does not lift it.
        return ProviderRateLimitError(
            message, retryable=False, reason="insufficient_quota", **context
        )
    if error_type == "ModelErrorException":
        return ProviderAPIError(message, retryable=False, reason="model_error", **context)
    if error_type in AUTH_ERROR_TYPES:
        return ProviderAuthError(message, **context)
    if error_type == "ValidationException" and _BLOCKED in message.lower():
        # Image models refuse prompts their content filters flag with a 400.
        return ContentFilterError(message, **context)
    error = classify(
        status=effective,
        message=message,
        error_type=error_type,
        error_code=None,
        headers=headers,
        provider=provider,
        model=model,
        body=body,
        auth_types=AUTH_ERROR_TYPES,
        rate_limit_types=_RATE_LIMIT_TYPES,
        overloaded_types=_OVERLOADED_TYPES,
    )
    if not status:
        error.status_code = None
    return error


def map_stream_exception(
    provider: str,
    exception_type: str | None,
    payload: Any,
    model: str | None,
    request_id: str | None,
) -> ProviderError:
    """The typed error for an exception message inside a ConverseStream.

    ``exception_type`` is the message's ``:exception-type`` (``throttlingException``);
    it is classified as the HTTP error of the same name would be.
    """
    name = exception_type or "InternalServerException"
    name = name[:1].upper() + name[1:]
    headers = {"x-amzn-errortype": name}
    if request_id:
        headers["x-amzn-requestid"] = request_id
    return map_error(provider, 0, headers, payload, "", model)
