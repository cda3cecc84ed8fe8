"""Pure conversions for the OpenAI Batch API (``/files`` + ``/batches``).

Requests become lines of a JSONL input file (``{"custom_id", "method", "url", "body"}``,
the body built by ``build_chat_request``), uploaded as multipart form data; a batch
object becomes a ``BatchJob``; the output and error files (``{"id", "custom_id",
"response": {"status_code", "request_id", "body"}, "error"}`` per line) become
``BatchEntry`` values, parsed by ``parse_chat_response`` and ``map_error``. No I/O here.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from aiport._batch import (
    BatchCounts,
    BatchEntry,
    BatchJob,
    BatchStatus,
    batch_priced,
    error_context,
    item_error,
    parse_jsonl,
    summarize_warnings,
)
from aiport._errors import MalformedResponseError, ProviderError
from aiport._types import ModelCompletionOptions, ProviderModel
from aiport.providers._base import encode_json
from aiport.providers.openai._convert import build_chat_request, parse_chat_response
from aiport.providers.openai._errors import map_error

__all__ = [
    "ENDPOINT",
    "build_batch_create",
    "build_input_file",
    "input_order",
    "multipart_form",
    "parse_batch",
    "parse_result_files",
]

#: The endpoint every request of an aiport batch goes to.
ENDPOINT = "/v1/chat/completions"
#: The only completion window OpenAI offers.
COMPLETION_WINDOW = "24h"
#: Name of the uploaded input file (OpenAI wants the ``.jsonl`` extension).
INPUT_FILENAME = "aiport-batch.jsonl"

_STATUSES: frozenset[str] = frozenset(
    {
        "validating",
        "in_progress",
        "finalizing",
        "completed",
        "failed",
        "expired",
        "cancelling",
        "cancelled",
    }
)
#: ``error.code`` of result lines for requests that never ran -> the unified reason.
_LINE_REASONS = {"batch_expired": "batch_expired", "batch_cancelled": "batch_cancelled"}


def build_input_file(
    requests: Sequence[ModelCompletionOptions], custom_ids: Sequence[str], *, compatible: bool
) -> tuple[bytes, list[str]]:
    """The JSONL input file for ``requests``, and the warnings of their conversion."""
    lines: list[bytes] = []
    notes: list[tuple[str, list[str]]] = []
    for options, custom_id in zip(requests, custom_ids, strict=True):
        body, warnings = build_chat_request(options, compatible=compatible)
        notes.append((custom_id, warnings))
        line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
        lines.append(encode_json(line))
    return b"\n".join(lines) + b"\n", summarize_warnings(notes)


def multipart_form(
    fields: Mapping[str, str], *, file_field: str, filename: str, content: bytes
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with text ``fields`` and one file; its content type."""
    boundary = "aiport" + secrets.token_hex(16)
    while boundary.encode() in content:  # practically never: 128 random bits
        boundary = "aiport" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    parts.append(
        (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{file_field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def build_batch_create(input_file_id: str) -> dict[str, Any]:
    """The ``POST /batches`` body for an uploaded input file."""
    return {
        "input_file_id": input_file_id,
        "endpoint": ENDPOINT,
        "completion_window": COMPLETION_WINDOW,
    }


def _time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _count(counts: Mapping[str, Any], name: str) -> int:
    value = counts.get(name)
    return value if isinstance(value, int) else 0


def parse_batch(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str | None = None,
    warnings: Sequence[str] = (),
) -> BatchJob:
    """An OpenAI ``batch`` object -> ``BatchJob``."""
    batch_id = data.get("id")
    if not isinstance(batch_id, str) or not batch_id:
        raise MalformedResponseError(
            f"{provider} answered with a batch object without an id", provider=provider
        )
    raw_status = data.get("status")
    # An unknown (newer) status is treated as still running: polling continues.
    status = raw_status if raw_status in _STATUSES else "in_progress"
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, Mapping) else {}
    ended = next(
        (
            _time(data.get(name))
            for name in ("completed_at", "failed_at", "expired_at", "cancelled_at")
            if _time(data.get(name)) is not None
        ),
        None,
    )
    reported = data.get("model")
    return BatchJob(
        id=batch_id,
        provider=provider,
        model=reported if isinstance(reported, str) and reported else model,
        status=cast("BatchStatus", status),
        counts=BatchCounts(
            total=_count(counts, "total"),
            succeeded=_count(counts, "completed"),
            failed=_count(counts, "failed"),
        ),
        created_at=_time(data.get("created_at")),
        ended_at=ended,
        warnings=list(warnings),
        raw=dict(data),
    )


def batch_errors(data: Mapping[str, Any]) -> str:
    """The validation errors of a failed batch, as one line."""
    errors = data.get("errors")
    items = errors.get("data") if isinstance(errors, Mapping) else None
    texts = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            line = item.get("line")
            where = f"line {line}: " if isinstance(line, int) else ""
            texts.append(f"{where}{item.get('message') or item.get('code')}")
    return "; ".join(texts) or "no details given"


def input_order(content: bytes, *, provider: str) -> list[str]:
    """The custom ids of an input file, in file order."""
    return [str(line.get("custom_id")) for line in parse_jsonl(content, provider=provider)]


def parse_result_files(
    output: bytes,
    errors: bytes,
    *,
    provider: str,
    models: Mapping[str, ProviderModel],
    scrub: Callable[[str], str],
) -> list[BatchEntry]:
    """The lines of the output and error files -> one ``BatchEntry`` per request."""
    entries: list[BatchEntry] = []
    for line in parse_jsonl(output, provider=provider) + parse_jsonl(errors, provider=provider):
        custom_id = str(line.get("custom_id"))
        response = line.get("response")
        failure = line.get("error")
        if isinstance(failure, Mapping) and failure:
            code = str(failure.get("code") or "batch_request_failed")
            message = scrub(str(failure.get("message") or code))
            reason = _LINE_REASONS.get(code, "batch_request_failed")
            error = item_error(message, provider=provider, reason=reason, error_type=code)
            entries.append(BatchEntry(custom_id, None, error))
            continue
        if not isinstance(response, Mapping):
            raise MalformedResponseError(
                f"{provider}: a batch result line has neither a response nor an error",
                provider=provider,
            )
        entries.append(_entry(custom_id, response, provider=provider, models=models, scrub=scrub))
    return entries


def _entry(
    custom_id: str,
    response: Mapping[str, Any],
    *,
    provider: str,
    models: Mapping[str, ProviderModel],
    scrub: Callable[[str], str],
) -> BatchEntry:
    status = response.get("status_code")
    status = status if isinstance(status, int) else 500
    request_id = response.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    body = response.get("body")
    if status < 300 and isinstance(body, dict):
        try:
            parsed = parse_chat_response(
                body,
                provider=provider,
                latency=0.0,
                request_id=request_id,
                warnings=[],
                models=models,
            )
        except ProviderError as exc:
            return BatchEntry(custom_id, None, error_context(exc))
        return BatchEntry(custom_id, batch_priced(parsed), None)
    headers = {"x-request-id": request_id} if request_id else {}
    text = scrub(json.dumps(body))
    model = body.get("model") if isinstance(body, Mapping) else None
    error = map_error(provider, status, headers, body, text, model)
    error.message = scrub(error.message)
    return BatchEntry(custom_id, None, error_context(error))
