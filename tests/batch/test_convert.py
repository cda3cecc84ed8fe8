"""The pure conversions: batch objects and result lines of both providers, ordering, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._batch import (
    BatchEntry,
    BatchItemResult,
    error_context,
    error_from_context,
    in_order,
    parse_jsonl,
    summarize_warnings,
)
from aiport._errors import (
    ContextLengthExceededError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimitError,
)
from aiport.providers.anthropic import _batch as anthropic_batch
from aiport.providers.openai import _batch as openai_batch


def jsonl(*lines: Any) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def keep(text: str) -> str:
    return text


@pytest.mark.parametrize(
    ("extra", "status", "ended"),
    [
        ({"status": "expired", "expired_at": 20}, "expired", 20),
        ({"status": "failed", "failed_at": 30}, "failed", 30),
        ({"status": "finalizing"}, "finalizing", None),
        ({"status": "brand_new_status"}, "in_progress", None),
    ],
)
def test_openai_batch_statuses(extra: dict[str, Any], status: str, ended: int | None) -> None:
    job = openai_batch.parse_batch({"id": "batch_1", "created_at": 10, **extra}, provider="oa")
    assert job.status == status
    assert (job.ended_at.timestamp() if job.ended_at else None) == ended
    assert job.counts.total == 0 and job.model is None


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"processing_status": "canceling"}, "cancelling"),
        (
            {"processing_status": "ended", "request_counts": {"expired": 2, "succeeded": 1}},
            "expired",
        ),
        (
            {"processing_status": "ended", "cancel_initiated_at": "2025-01-01T00:00:00Z"},
            "cancelled",
        ),
        ({"processing_status": "ended", "request_counts": {"errored": 1}}, "completed"),
    ],
)
def test_anthropic_batch_statuses(data: dict[str, Any], status: str) -> None:
    job = anthropic_batch.parse_batch({"id": "msgbatch_1", **data}, provider="an")
    assert job.status == status


def test_anthropic_counts_and_times() -> None:
    data = {
        "id": "msgbatch_1",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 3,
            "errored": 1,
            "canceled": 1,
            "expired": 0,
        },
        "created_at": "2024-09-24T18:37:24.100435123Z",
        "ended_at": "not a time",
    }
    job = anthropic_batch.parse_batch(data, provider="an")
    assert (job.counts.total, job.counts.succeeded, job.counts.failed) == (5, 3, 2)
    assert job.created_at is not None and job.created_at.microsecond == 100435
    assert job.ended_at is None


@pytest.mark.parametrize("module", [openai_batch, anthropic_batch])
def test_batch_objects_need_an_id(module: Any) -> None:
    with pytest.raises(MalformedResponseError):
        module.parse_batch({"status": "completed"}, provider="p")


def test_openai_result_lines() -> None:
    output = jsonl(
        {
            "custom_id": "aiport-1",
            "response": {
                "status_code": 200,
                "request_id": "req_1",
                "body": {
                    "id": "chatcmpl-1",
                    "model": "gpt-4o",
                    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 1000},
                },
            },
            "error": None,
        }
    )
    errors = jsonl(
        {
            "custom_id": "aiport-0",
            "response": {"status_code": 400, "request_id": "req_0", "body": _context_error()},
            "error": None,
        },
        {
            "custom_id": "aiport-2",
            "response": None,
            "error": {"code": "batch_expired", "message": "too late"},
        },
        {"custom_id": "aiport-3", "response": {"status_code": 200, "body": {"choices": []}}},
    )
    from aiport._catalogue import known_models

    entries = openai_batch.parse_result_files(
        output, errors, provider="openai", models=known_models("openai"), scrub=keep
    )
    results = in_order(entries, provider="openai", total=5, missing_reason="batch_expired")
    assert [r.custom_id for r in results] == [f"aiport-{i}" for i in range(5)]
    ok = results[1].unwrap()
    assert ok.text == "hello" and ok.request_id == "req_1"
    assert ok.cost == pytest.approx((1000 * 2.5 + 1000 * 10) / 1e6 / 2)  # half price
    assert isinstance(results[0].exception(), ContextLengthExceededError)
    assert results[0].error is not None and results[0].error["request_id"] == "req_0"
    expired = results[2].error
    assert expired is not None and (expired["reason"], expired["type"]) == (
        "batch_expired",
        "batch_expired",
    )
    assert results[3].error is not None and results[3].error["reason"] == "malformed_response"
    assert results[4].error is not None and results[4].error["reason"] == "batch_expired"


def _context_error() -> dict[str, Any]:
    message = "This model's maximum context length is 10 tokens."
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    }


def test_openai_line_without_response_or_error() -> None:
    with pytest.raises(MalformedResponseError):
        openai_batch.parse_result_files(
            jsonl({"custom_id": "a"}), b"", provider="openai", models={}, scrub=keep
        )


def test_openai_errors_are_scrubbed() -> None:
    body = {"error": {"message": "bad key sk-secret-123", "type": "invalid_request_error"}}
    line = {"custom_id": "a", "response": {"status_code": 401, "body": body}}
    entries = openai_batch.parse_result_files(
        b"",
        jsonl(line),
        provider="openai",
        models={},
        scrub=lambda t: t.replace("sk-secret-123", "***"),
    )
    assert entries[0].error is not None and entries[0].error["message"] == "bad key ***"
    assert entries[0].error["code"] == "PROVIDER_AUTH_ERROR"


def test_anthropic_result_lines() -> None:
    message = {
        "id": "msg_1",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 1},
    }
    content = jsonl(
        {"custom_id": "b", "result": {"type": "succeeded", "message": message}},
        {
            "custom_id": "a",
            "result": {"type": "errored", "error": {"type": "rate_limit_error", "message": "slow"}},
        },
        {"custom_id": "c", "result": {"type": "expired"}},
        {"custom_id": "d", "result": {"type": "succeeded", "message": {"content": None}}},
        {"custom_id": "e", "result": {"type": "succeeded"}},
    )
    entries = anthropic_batch.parse_results(content, provider="anthropic", models={}, scrub=keep)
    results = in_order(entries, provider="anthropic")
    assert [r.custom_id for r in results] == ["b", "a", "c", "d", "e"]  # the file's order
    assert results[0].unwrap().text == "hi"
    assert isinstance(results[1].exception(), ProviderRateLimitError)
    assert results[2].error is not None and results[2].error["reason"] == "batch_expired"
    assert all(r.error and r.error["reason"] == "malformed_response" for r in results[3:])


def test_anthropic_unknown_result_type() -> None:
    with pytest.raises(MalformedResponseError):
        anthropic_batch.parse_results(
            jsonl({"custom_id": "a", "result": {"type": "new"}}),
            provider="a",
            models={},
            scrub=keep,
        )


def test_jsonl_must_hold_objects() -> None:
    assert parse_jsonl(b'{"a": 1}\n\n{"b": 2}', provider="p") == [{"a": 1}, {"b": 2}]
    for bad in (b"[1]\n", b"{nope\n"):
        with pytest.raises(MalformedResponseError, match="line 1"):
            parse_jsonl(bad, provider="p")


def test_in_order_with_default_ids_fills_the_gaps() -> None:
    entries = [BatchEntry("aiport-2", None, None), BatchEntry("aiport-0", None, None)]
    results = in_order(entries, provider="p")
    assert [(r.index, r.custom_id) for r in results] == [
        (0, "aiport-0"),
        (1, "aiport-1"),
        (2, "aiport-2"),
    ]
    assert results[1].error is not None and results[1].error["reason"] == "batch_result_missing"


def test_error_contexts_round_trip() -> None:
    for error in (
        ProviderAuthError("no", status_code=401, error_type="authentication_error"),
        ProviderRateLimitError("slow", status_code=429),
        ContextLengthExceededError("long", status_code=400),
        ProviderAPIError("odd", reason="batch_cancelled", retryable=True),
    ):
        rebuilt = error_from_context(error_context(error))
        assert type(rebuilt) is type(error)
        assert error_context(rebuilt) == error_context(error)
    item = BatchItemResult(index=0, custom_id="a")
    assert item.exception() is None
    with pytest.raises(ProviderAPIError, match="no response"):
        item.unwrap()


def test_warning_summary() -> None:
    lines = summarize_warnings([("a", ["w1", "w2"]), ("b", ["w1"]), ("c", [])])
    assert lines == ["2 requests: w1", "request a: w2"]


def test_multipart_body() -> None:
    body, content_type = openai_batch.multipart_form(
        {"purpose": "batch"}, file_field="file", filename="x.jsonl", content=b"line\n"
    )
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.endswith(f"--{boundary}--\r\n".encode())
    assert b'name="purpose"\r\n\r\nbatch\r\n' in body
    assert b'filename="x.jsonl"' in body and b"\r\n\r\nline\n\r\n" in body
