"""Error bodies -> typed errors (pure), and the model catalogue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._catalogue import known_models
from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
)
from aiport._types import Usage
from aiport.providers.openai._errors import map_error


def openai_error(
    message: str = "m", type_: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def mapped(
    status: int, body: Any, headers: dict[str, str] | None = None, text: str | None = None
) -> ProviderError:
    if text is None:
        text = json.dumps(body) if body is not None else ""
    return map_error("openai", status, headers or {}, body, text, "gpt-4o")


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (401, openai_error("Incorrect API key", code="invalid_api_key"), ProviderAuthError, False),
        (403, openai_error("Region", code="unsupported_country"), ProviderAuthError, False),
        (404, openai_error("no model", code="model_not_found"), InvalidRequestError, False),
        (400, openai_error("bad"), InvalidRequestError, False),
        (
            400,
            openai_error("too long", code="context_length_exceeded"),
            ContextLengthExceededError,
            False,
        ),
        (
            400,
            openai_error("refused", code="content_policy_violation"),
            ContentFilterError,
            False,
        ),
        (
            429,
            openai_error("slow down", "requests", "rate_limit_exceeded"),
            ProviderRateLimitError,
            True,
        ),
        (500, openai_error("oops", "server_error"), ProviderAPIError, True),
        (503, openai_error("overloaded", "server_error"), ProviderAPIError, True),
    ],
)
def test_statuses_and_types(
    status: int, body: Any, cls: type[ProviderError], retryable: bool
) -> None:
    error = mapped(status, body, {"x-request-id": "req_9"})
    assert type(error) is cls
    assert error.status_code == status
    assert error.retryable is retryable
    assert error.request_id == "req_9"
    assert error.provider == "openai"
    assert error.model == "gpt-4o"
    assert error.message == body["error"]["message"]
    assert error.body == body


def test_rate_limit_keeps_retry_after() -> None:
    error = mapped(429, openai_error(code="rate_limit_exceeded"), {"retry-after": "2"})
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after == 2
    assert error.code is ErrorCode.PROVIDER_RATE_LIMIT_ERROR
    error = mapped(429, openai_error(code="rate_limit_exceeded"), {"retry-after-ms": "250"})
    assert error.retry_after == 0.25


def test_insufficient_quota_is_a_rate_limit_that_is_not_retryable() -> None:
    body = openai_error(
        "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
    )
    error = mapped(429, body, {"retry-after": "1"})
    assert type(error) is ProviderRateLimitError
    assert error.retryable is False
    assert error.reason == "insufficient_quota"
    assert error.error_type == "insufficient_quota"
    assert error.retry_after == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "model 'x' not found"}, "model 'x' not found"),
        (
            {"object": "error", "message": "bad input", "type": "BadRequestError", "code": 400},
            "bad input",
        ),
        ({"detail": "Not authenticated"}, "Not authenticated"),
        ({"detail": [{"loc": ["body", "model"], "msg": "field required"}]}, "field required"),
    ],
)
def test_bodies_of_compatible_servers(body: Any, message: str) -> None:
    error = mapped(400, body)
    assert isinstance(error, InvalidRequestError)
    assert message in error.message


def test_html_and_empty_bodies() -> None:
    page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>" + "x" * 500
    error = mapped(502, None, text=page)
    assert type(error) is ProviderAPIError
    assert error.retryable
    assert error.message.startswith("HTTP 502 from openai: <html> <head><title>502 Bad Gateway")
    assert len(error.message) <= len("HTTP 502 from openai: ") + 200
    assert mapped(500, None, text="").message == "HTTP 500 from openai"


@pytest.mark.parametrize(
    ("type_", "code", "cls", "retryable"),
    [
        ("server_error", None, ProviderAPIError, True),
        ("tokens", "rate_limit_exceeded", ProviderRateLimitError, True),
        ("invalid_request_error", None, InvalidRequestError, False),
        ("invalid_request_error", "context_length_exceeded", ContextLengthExceededError, False),
        ("something_new", None, ProviderAPIError, True),
    ],
)
def test_stream_errors_are_classified_by_type(
    type_: str, code: str | None, cls: type[ProviderError], retryable: bool
) -> None:
    error = mapped(0, openai_error("mid-stream", type_, code))
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status_code is None


def test_stream_insufficient_quota() -> None:
    error = mapped(0, openai_error("quota", "insufficient_quota", "insufficient_quota"))
    assert isinstance(error, ProviderRateLimitError)
    assert not error.retryable
    assert error.status_code is None


# --------------------------------------------------------------------------- catalogue

CHAT = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini"]
CHAT += ["gpt-5", "gpt-5-mini"]


def test_catalogue_rows() -> None:
    models = known_models("openai", "my-openai")
    for model_id in CHAT:
        row = models[model_id]
        assert row.provider == "my-openai"
        assert row.qualified_id == f"my-openai:{model_id}"
        caps = row.capabilities
        assert caps.chat and caps.streaming and caps.tools and caps.vision and caps.json_output
        assert not caps.embeddings
        assert row.context_window and row.max_output_tokens
        assert row.input_price_per_million and row.output_price_per_million
    for model_id in ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"):
        assert models[model_id].capabilities.names() == ["embeddings"]
    for model_id in ("gpt-image-1", "dall-e-3", "dall-e-2"):
        assert models[model_id].capabilities.names() == ["images"]
    assert models["gpt-4o"].context_window == 128_000
    assert models["gpt-4.1"].context_window == 1_047_576
    assert "1536" in models["text-embedding-3-small"].description
    assert "3072" in models["text-embedding-3-large"].description


def test_catalogue_costs() -> None:
    models = known_models("openai")
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert models["gpt-4o-mini"].cost(usage) == pytest.approx(0.15 + 0.60)
    assert models["text-embedding-3-large"].cost(Usage(input_tokens=1_000_000)) == 0.13
    assert models["dall-e-3"].cost(usage) is None
