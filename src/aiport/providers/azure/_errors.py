"""Azure OpenAI error bodies -> typed aiport errors.

Azure answers in several shapes, depending on which layer refused the request:

- the API gateway (keys, quotas, firewall): ``{"error": {"code": "401", "message": ...}}``
  with the HTTP status as a string code, or the older ``{"statusCode": 401, "message"}``;
- the service: ``{"error": {"code": "DeploymentNotFound", "message": ...}}``,
  ``{"error": {"code": "PermissionDenied", ...}}``...;
- the model backend: OpenAI's ``{"error": {"message", "type", "param", "code"}}``;
- the content filter: a 400 with ``code: "content_filter"`` (chat) or
  ``"content_policy_violation"`` (images) and an inner error
  (``innererror``/``inner_error``, code ``ResponsibleAIPolicyViolation``) holding the
  filter's verdict per category (``content_filter_result`` or ``content_filter_results``).

The OpenAI mapping does the classification; this module adds Azure's codes, the blocked
categories in the message of a ``ContentFilterError`` (the full verdict stays in
``error.body``), and Azure's request-id headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiport._errors import ContentFilterError, ProviderError
from aiport._mapping import request_id_from
from aiport.providers.azure._convert import filtered_categories
from aiport.providers.openai._errors import error_fields
from aiport.providers.openai._errors import map_error as map_openai_error

__all__ = ["azure_request_id", "content_filter_verdict", "map_error"]

#: Inner-error code of every content-filter refusal.
_POLICY_VIOLATION = "ResponsibleAIPolicyViolation"
_CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "contentFilter"})
#: Service codes and the HTTP status they mean, for errors inside a stream (no status).
_STATUS_OF_CODE = {
    "DeploymentNotFound": 404,
    "PermissionDenied": 403,
    "Unauthorized": 401,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Timeout": 408,
    "TooManyRequests": 429,
    "content_filter": 400,
    "content_policy_violation": 400,
}


def azure_request_id(headers: Mapping[str, str]) -> str | None:
    """The request id of an Azure answer: ``x-request-id``, ``apim-request-id`` (the
    gateway's, present even when the backend never saw the request), ``x-ms-request-id``."""
    return request_id_from(headers) or headers.get("x-ms-request-id") or None


def _inner_error(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        return {}
    error = body.get("error")
    if not isinstance(error, Mapping):
        return {}
    inner = error.get("innererror", error.get("inner_error"))
    return inner if isinstance(inner, Mapping) else {}


def content_filter_verdict(body: Any) -> Mapping[str, Any]:
    """The filter's per-category verdict inside an error body (empty when there is none)."""
    inner = _inner_error(body)
    verdict = inner.get("content_filter_result", inner.get("content_filter_results"))
    return verdict if isinstance(verdict, Mapping) else {}


def _status_of(code: str | None) -> int:
    if code is None:
        return 0
    if code.isdigit() and len(code) == 3:
        return int(code)
    return _STATUS_OF_CODE.get(code, 0)


def map_error(  # noqa: PLR0917  (the signature every adapter's map_error shares)
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    text: str,
    model: str | None,
    *,
    deployment: str | None = None,
) -> ProviderError:
    """The typed error for an Azure OpenAI error answer (``status`` 0: inside a stream).

    ``deployment`` (the deployment the request went to) is named in the message of a
    ``DeploymentNotFound`` error.

    A content-filter refusal is a ``ContentFilterError`` whose message names the blocked
    categories (``hate=high, jailbreak=detected``); ``DeploymentNotFound`` an
    ``InvalidRequestError`` with reason ``deployment_not_found``; 401/403 (keys, Entra ID
    roles, firewall rules) ``ProviderAuthError``; 429 ``ProviderRateLimitError`` with
    ``retry_after`` from ``retry-after-ms`` or ``retry-after``.
    """
    _, _, code = error_fields(status, body, text, provider)
    inner_code = _inner_error(body).get("code")
    effective = status or _status_of(code) or (400 if inner_code == _POLICY_VIOLATION else 0)
    error = map_openai_error(provider, effective, headers, body, text, model)
    if not status:
        error.status_code = None
    if error.request_id is None:
        error.request_id = azure_request_id(headers)
    if code is not None and code == str(effective):
        # The gateway repeats the HTTP status as its code: no information of its own.
        error.error_type = None
    if code == "DeploymentNotFound":
        error.reason = "deployment_not_found"
        if deployment is not None and deployment != model:
            error.message += f" (deployment {deployment!r}, configured for model {model!r})"
        elif deployment is not None:
            error.message += (
                f" (deployment {deployment!r}: aiport uses the model id as the deployment "
                "name unless the model's `deployment` is set in the provider's models table)"
            )
    elif code in _CONTENT_FILTER_CODES or inner_code == _POLICY_VIOLATION:
        if not isinstance(error, ContentFilterError):
            error = ContentFilterError(
                error.message,
                provider=provider,
                model=model,
                status_code=error.status_code,
                error_type=code or str(inner_code),
                request_id=error.request_id,
                body=body,
            )
        blocked = filtered_categories(content_filter_verdict(body))
        if blocked:
            listed = ", ".join(f"{name}={why}" for name, why in blocked.items())
            error.message += f" [filtered: {listed}]"
    error.args = (error.message,)
    return error
