"""Pure conversions for Anthropic Message Batches (``/v1/messages/batches``).

Each request is ``{"custom_id", "params"}`` with the body ``build_messages_request``
makes; a ``message_batch`` object becomes a ``BatchJob``; the results JSONL
(``{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired"}}``
per line, in no particular order) becomes ``BatchEntry`` values, messages parsed by
``parse_messages_response`` and errors typed by the adapter's error mapping. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from aiport._batch import (
    BatchCounts,
    BatchEntry,
    BatchJob,
    BatchStatus,
    batch_priced,
    error_context,
    item_error,
    parse_jsonl,
)
from aiport._errors import MalformedResponseError
from aiport._types import ProviderModel
from aiport.providers.anthropic._convert import parse_messages_response
from aiport.providers.anthropic._errors import map_stream_error

__all__ = ["BATCHES_PATH", "build_batch_request", "parse_batch", "parse_results"]

#: Where Message Batches live, under the API root.
BATCHES_PATH = "/v1/messages/batches"

#: Result types of requests that never ran -> (unified reason, message).
_NOT_RUN = {
    "canceled": ("batch_cancelled", "the request was cancelled before it ran"),
    "expired": ("batch_expired", "the batch expired before the request ran"),
}


def build_batch_request(
    bodies: Sequence[Mapping[str, Any]], custom_ids: Sequence[str]
) -> dict[str, Any]:
    """The ``POST /v1/messages/batches`` body: one ``{custom_id, params}`` per request."""
    return {
        "requests": [
            {"custom_id": custom_id, "params": dict(body)}
            for body, custom_id in zip(bodies, custom_ids, strict=True)
        ]
    }


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        # More than microsecond precision: keep six digits of the fraction.
        head, dot, rest = value.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        try:
            return datetime.fromisoformat(f"{head}{dot}{digits[:6]}{rest[len(digits) :]}")
        except ValueError:
            return None


def _status(data: Mapping[str, Any], counts: Mapping[str, int]) -> BatchStatus:
    processing = data.get("processing_status")
    if processing == "canceling":
        return "cancelling"
    if processing != "ended":
        return "in_progress"
    if data.get("cancel_initiated_at"):
        return "cancelled"
    if counts.get("expired"):
        return "expired"
    return "completed"


def parse_batch(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str | None = None,
    warnings: Sequence[str] = (),
) -> BatchJob:
    """An Anthropic ``message_batch`` object -> ``BatchJob``.

    ``ended`` becomes ``cancelled`` after a cancel request, ``expired`` when requests
    expired, else ``completed``; ``failed`` counts errored, cancelled and expired requests.
    """
    batch_id = data.get("id")
    if not isinstance(batch_id, str) or not batch_id:
        raise MalformedResponseError(
            f"{provider} answered with a message batch without an id", provider=provider
        )
    raw_counts = data.get("request_counts")
    counts = {
        name: value
        for name, value in (raw_counts.items() if isinstance(raw_counts, Mapping) else ())
        if isinstance(value, int)
    }
    return BatchJob(
        id=batch_id,
        provider=provider,
        model=model,
        status=_status(data, counts),
        counts=BatchCounts(
            total=sum(counts.values()),
            succeeded=counts.get("succeeded", 0),
            failed=sum(counts.get(k, 0) for k in ("errored", "canceled", "expired")),
        ),
        created_at=_time(data.get("created_at")),
        ended_at=_time(data.get("ended_at")),
        warnings=list(warnings),
        raw=dict(data),
    )


def parse_results(
    content: bytes,
    *,
    provider: str,
    models: Mapping[str, ProviderModel],
    scrub: Callable[[str], str],
) -> list[BatchEntry]:
    """The lines of a results file -> one ``BatchEntry`` per request (file order)."""
    entries: list[BatchEntry] = []
    for line in parse_jsonl(content, provider=provider):
        custom_id = str(line.get("custom_id"))
        result = line.get("result")
        kind = result.get("type") if isinstance(result, Mapping) else None
        if kind == "succeeded" and isinstance(result, Mapping):
            entries.append(_succeeded(custom_id, result, provider=provider, models=models))
        elif kind == "errored" and isinstance(result, Mapping):
            entries.append(_errored(custom_id, result, provider=provider, scrub=scrub))
        elif isinstance(kind, str) and kind in _NOT_RUN:
            reason, message = _NOT_RUN[kind]
            error = item_error(message, provider=provider, reason=reason, error_type=kind)
            entries.append(BatchEntry(custom_id, None, error))
        else:
            raise MalformedResponseError(
                f"{provider}: a batch result line has an unknown result type {kind!r}",
                provider=provider,
            )
    return entries


def _succeeded(
    custom_id: str,
    result: Mapping[str, Any],
    *,
    provider: str,
    models: Mapping[str, ProviderModel],
) -> BatchEntry:
    message = result.get("message")
    problem: str | None = "no message"
    if isinstance(message, dict):
        try:
            response = parse_messages_response(
                message, provider=provider, latency=0.0, request_id=None, models=models
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            problem = type(exc).__name__
        else:
            return BatchEntry(custom_id, batch_priced(response), None)
    error = MalformedResponseError(
        f"{provider}: a succeeded batch result holds no valid message ({problem})",
        provider=provider,
    )
    return BatchEntry(custom_id, None, error_context(error))


def _errored(
    custom_id: str,
    result: Mapping[str, Any],
    *,
    provider: str,
    scrub: Callable[[str], str],
) -> BatchEntry:
    # The SDK's shape is an error response ({"type": "error", "error": {...}}); older
    # answers put the error object directly.
    wrapper = result.get("error")
    wrapper = wrapper if isinstance(wrapper, Mapping) else {}
    inner = wrapper.get("error") if wrapper.get("type") == "error" else wrapper
    inner = dict(inner) if isinstance(inner, Mapping) else {}
    if isinstance(inner.get("message"), str):
        inner["message"] = scrub(inner["message"])
    request_id = wrapper.get("request_id")
    model = None
    error = map_stream_error(
        provider,
        {"type": "error", "error": inner},
        model,
        request_id if isinstance(request_id, str) else None,
    )
    return BatchEntry(custom_id, None, error_context(error))
