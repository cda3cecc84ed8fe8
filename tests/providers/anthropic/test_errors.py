"""Anthropic error bodies -> typed errors (pure mapping)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimitError,
)
from aiport.providers.anthropic._errors import map_error, map_stream_error


def body(error_type: str, message: str, request_id: str | None = "req_body") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        out["request_id"] = request_id
    return out


@pytest.mark.parametrize(
    ("status", "error_type", "message", "cls", "reason", "retryable"),
    [
        (
            400,
            "invalid_request_error",
            "max_tokens: Field required",
            InvalidRequestError,
            "invalid_request",
            False,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
            ContextLengthExceededError,
            "context_length_exceeded",
            False,
        ),
        (401, "authentication_error", "invalid x-api-key", ProviderAuthError, None, False),
        (
            402,
            "billing_error",
            "Your credit balance is too low",
            InvalidRequestError,
            "invalid_request",
            False,
        ),
        (403, "permission_error", "no access", ProviderAuthError, None, False),
        (404, "not_found_error", "model: claude-x", InvalidRequestError, "invalid_request", False),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            InvalidRequestError,
            "invalid_request",
            False,
        ),
        (
            413,
            "request_too_large",
            "prompt is too long for this model",
            ContextLengthExceededError,
            "context_length_exceeded",
            False,
        ),
        (429, "rate_limit_error", "slow down", ProviderRateLimitError, None, True),
        (500, "api_error", "Internal server error", ProviderAPIError, "server_error", True),
        (504, "timeout_error", "Request timed out", ProviderAPIError, "server_error", True),
        (529, "overloaded_error", "Overloaded", ProviderAPIError, "overloaded", True),
    ],
)
def test_status_and_type_mapping(
    *,
    status: int,
    error_type: str,
    message: str,
    cls: type[Exception],
    reason: str | None,
    retryable: bool,
) -> None:
    error = map_error("anthropic", status, {}, body(error_type, message), "", "claude-x")
    assert type(error) is cls
    assert error.reason == reason
    assert error.retryable is retryable
    assert error.status_code == status
    assert error.error_type == error_type
    assert error.message == message
    assert error.provider == "anthropic" and error.model == "claude-x"
    assert error.request_id == "req_body"


def test_request_id_header_wins_and_retry_after() -> None:
    headers = CIMultiDict({"Request-Id": "req_header", "Retry-After": "7"})
    error = map_error("anthropic", 429, headers, body("rate_limit_error", "x"), "", None)
    assert error.request_id == "req_header"
    assert error.retry_after == 7.0
    error = map_error(
        "anthropic",
        529,
        CIMultiDict({"retry-after-ms": "1500"}),
        body("overloaded_error", "x"),
        "",
        None,
    )
    assert error.retry_after == 1.5


def test_non_json_body() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1>" + "x" * 400 + "</body></html>"
    error = map_error("anthropic", 502, {}, None, html, None)
    assert type(error) is ProviderAPIError and error.retryable
    assert error.message.startswith(
        "HTTP 502 with an unexpected body: '<html><body><h1>502 Bad Gateway"
    )
    assert len(error.message) < 300
    assert error.request_id is None
    error = map_error("anthropic", 400, {}, {"unexpected": True}, '{"unexpected": true}', None)
    assert type(error) is InvalidRequestError
    assert "HTTP 400" in error.message


def test_stream_error_has_no_status() -> None:
    error = map_stream_error(
        "anthropic", body("overloaded_error", "Overloaded", None), "m", "req_s"
    )
    assert type(error) is ProviderAPIError
    assert (error.reason, error.retryable, error.status_code) == ("overloaded", True, None)
    assert error.request_id == "req_s"
    unknown = map_stream_error(
        "anthropic", {"type": "error", "error": {"type": "new_kind"}}, "m", None
    )
    assert type(unknown) is ProviderAPIError and unknown.retryable
