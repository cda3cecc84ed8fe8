"""Google error bodies -> aiport errors (unit level; the end-to-end tests cover the wire)."""

from __future__ import annotations

from typing import Any

import pytest

from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
)
from aiport.providers.gemini._errors import map_error, map_stream_error, retry_delay


def body(
    code: int, status: str, message: str = "msg", details: list[Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
    }


def retry_info(delay: Any) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


@pytest.mark.parametrize(
    ("status", "data", "cls", "error_type"),
    [
        (
            400,
            body(400, "INVALID_ARGUMENT", "API key not valid.", [error_info("API_KEY_INVALID")]),
            ProviderAuthError,
            "API_KEY_INVALID",
        ),
        (
            400,
            body(400, "FAILED_PRECONDITION", "User location is not supported"),
            InvalidRequestError,
            "FAILED_PRECONDITION",
        ),
        (
            401,
            body(401, "UNAUTHENTICATED", details=[error_info("ACCESS_TOKEN_EXPIRED")]),
            ProviderAuthError,
            "ACCESS_TOKEN_EXPIRED",
        ),
        (
            403,
            body(403, "PERMISSION_DENIED", details=[error_info("SERVICE_DISABLED")]),
            ProviderAuthError,
            "SERVICE_DISABLED",
        ),
        (404, body(404, "NOT_FOUND"), InvalidRequestError, "NOT_FOUND"),
        (429, body(429, "RESOURCE_EXHAUSTED"), ProviderRateLimitError, "RESOURCE_EXHAUSTED"),
        (500, body(500, "INTERNAL"), ProviderAPIError, "INTERNAL"),
        (503, body(503, "UNAVAILABLE"), ProviderAPIError, "UNAVAILABLE"),
    ],
)
def test_classes(
    status: int, data: dict[str, Any], cls: type[ProviderError], error_type: str
) -> None:
    error = map_error("gemini", status, {}, data, "", "m")
    assert type(error) is cls
    assert error.error_type == error_type
    assert error.status_code == status
    assert error.body == data


def test_context_length_message() -> None:
    message = (
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    )
    error = map_error("gemini", 400, {}, body(400, "INVALID_ARGUMENT", message), "", "m")
    assert isinstance(error, ContextLengthExceededError)


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [
        ("34.4s", 34.4),
        ("2s", 2.0),
        ("0.5s", 0.5),
        (".25s", 0.25),
        ({"seconds": 3, "nanos": 500_000_000}, 3.5),
        ("soon", None),
        ("-1s", None),
    ],
)
def test_retry_delay(delay: Any, seconds: float | None) -> None:
    assert retry_delay([{"@type": "x"}, retry_info(delay)]) == seconds


def test_retry_after_header_wins_over_retry_info() -> None:
    data = body(429, "RESOURCE_EXHAUSTED", details=[retry_info("30s")])
    assert map_error("gemini", 429, {"retry-after": "5"}, data, "", "m").retry_after == 5.0
    assert map_error("gemini", 429, {}, data, "", "m").retry_after == 30.0
    # A server error may say how long to wait too.
    server = map_error(
        "gemini", 503, {}, body(503, "UNAVAILABLE", details=[retry_info("7s")]), "", "m"
    )
    assert server.retry_after == 7.0


def test_bodies_that_are_not_googles() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    error = map_error("gemini", 502, {}, None, html, "m")
    assert isinstance(error, ProviderAPIError)
    assert error.retryable
    assert "502 Bad Gateway" in error.message
    listed = map_error("gemini", 429, {}, [body(429, "RESOURCE_EXHAUSTED", "slow down")], "", "m")
    assert isinstance(listed, ProviderRateLimitError)
    assert listed.message == "slow down"


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        (body(429, "RESOURCE_EXHAUSTED"), ProviderRateLimitError),
        ({"error": {"status": "UNAUTHENTICATED", "message": "x"}}, ProviderAuthError),
        ({"error": {"message": "no code"}}, ProviderAPIError),
    ],
)
def test_stream_errors_have_no_status(payload: dict[str, Any], cls: type[ProviderError]) -> None:
    error = map_stream_error("gemini", payload, "m", "req-1")
    assert type(error) is cls
    assert error.status_code is None
    assert error.request_id == "req-1"
