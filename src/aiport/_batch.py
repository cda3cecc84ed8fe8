"""The providers' Batch APIs behind one interface.

OpenAI Batch (a JSONL file uploaded to ``/files``, then ``/batches``) and Anthropic
Message Batches (``/v1/messages/batches``) run many completions at half price within
24 hours. Adapters convert both to ``BatchJob`` and ``BatchItemResult``; the functions at
the bottom (``submit_batch``, ``get_batch``, ``wait_batch``, ``batch_results``,
``cancel_batch``, ``run_batch``) work on a ``ProviderService``.

Nothing here keeps state between calls: a batch id is all it takes to pick a batch up
again, from another service or process. Requests without caller ids get the custom ids
``aiport-0``, ``aiport-1``...; from those alone results come back in input order.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    ErrorCode,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderConnectionError,
    ProviderError,
    ProviderNotFoundError,
    ProviderRateLimitError,
    ProviderTimeoutError,
)
from aiport._routing import apply_defaults
from aiport._types import ModelCompletionOptions, ModelCompletionResponse

if TYPE_CHECKING:
    from aiport._http import HttpResponse
    from aiport._provider import ModelProvider
    from aiport._service import ProviderService
    from aiport.providers._base import HttpProvider

__all__ = [
    "BatchCounts",
    "BatchItemResult",
    "BatchJob",
    "BatchStatus",
    "batch_results",
    "cancel_batch",
    "get_batch",
    "run_batch",
    "submit_batch",
    "wait_batch",
]

BatchStatus: TypeAlias = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]
#: Statuses after which a batch never changes again.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})
#: Both providers bill batch requests at half the price of the same calls made one by one.
BATCH_PRICE_FACTOR = 0.5
_DEFAULT_ID = re.compile(r"aiport-(\d+)")
#: Polls that may fail in a row (retryable errors only) before ``wait_batch`` gives up.
_MAX_POLL_FAILURES = 5
_FROZEN = ConfigDict(frozen=True, extra="forbid")

Sleep: TypeAlias = Callable[[float], Awaitable[object]]


class BatchCounts(BaseModel):
    """How many requests a batch holds, and how many ended well or badly so far."""

    model_config = _FROZEN
    total: int = 0
    succeeded: int = 0
    failed: int = 0


class BatchJob(BaseModel):
    """A batch as the provider last described it.

    ``model`` is known when the batch was submitted by aiport or the provider reports it
    (OpenAI); ``warnings`` lists request settings the provider could not honour (only on
    the job ``submit_batch`` returns); ``raw`` is the provider's own batch object.
    """

    model_config = _FROZEN
    id: str
    provider: str
    model: str | None = None
    status: BatchStatus
    counts: BatchCounts = Field(default_factory=BatchCounts)
    created_at: datetime | None = None
    ended_at: datetime | None = None
    warnings: list[str] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def done(self) -> bool:
        """Whether the batch reached a final status (its results can be read)."""
        return self.status in TERMINAL_STATUSES


class BatchItemResult(BaseModel):
    """The outcome of one request of a batch: a response, or an error.

    ``error`` is the typed error's context: ``code``, ``reason``, ``message``, ``status``
    (the item's HTTP status where the provider reports one), ``type`` (the provider's
    error type), ``request_id`` and ``retryable``; ``exception()`` rebuilds the error.
    """

    model_config = _FROZEN
    index: int
    custom_id: str
    response: ModelCompletionResponse | None = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the request produced a response."""
        return self.response is not None

    def exception(self, provider: str | None = None) -> ProviderError | None:
        """The typed error of a failed request (``None`` for a success)."""
        if self.error is None:
            return None
        return error_from_context(self.error, provider=provider)

    def unwrap(self) -> ModelCompletionResponse:
        """The response, or raise the request's typed error."""
        if self.response is not None:
            return self.response
        raise error_from_context(self.error or {"message": "no response"})


class BatchEntry(NamedTuple):
    """One line of a provider's result file, before it is put in input order."""

    custom_id: str
    response: ModelCompletionResponse | None
    error: dict[str, Any] | None


# --------------------------------------------------------------------------- helpers for adapters

_REASON_CLASSES: dict[str, type[ProviderError]] = {
    "invalid_request": InvalidRequestError,
    "context_length_exceeded": ContextLengthExceededError,
    "content_filter": ContentFilterError,
    "timeout": ProviderTimeoutError,
    "connection": ProviderConnectionError,
    "malformed_response": MalformedResponseError,
    "unsupported_capability": ProviderCapabilityError,
}
_CODE_CLASSES: dict[str, type[ProviderError]] = {
    ErrorCode.PROVIDER_AUTH_ERROR: ProviderAuthError,
    ErrorCode.PROVIDER_RATE_LIMIT_ERROR: ProviderRateLimitError,
    ErrorCode.PROVIDER_NOT_FOUND: ProviderNotFoundError,
}


def error_context(error: ProviderError) -> dict[str, Any]:
    """The plain-dict form of a typed error that ``BatchItemResult.error`` holds."""
    return {
        "code": str(error.code),
        "reason": error.reason,
        "message": error.message,
        "status": error.status_code,
        "type": error.error_type,
        "request_id": error.request_id,
        "retryable": error.retryable,
    }


def error_from_context(context: Mapping[str, Any], provider: str | None = None) -> ProviderError:
    """The typed error a context dict describes (the class follows its code and reason)."""
    reason = context.get("reason")
    cls = _CODE_CLASSES.get(str(context.get("code")))
    if cls is None:
        cls = _REASON_CLASSES.get(reason or "", ProviderAPIError)
    return cls(
        str(context.get("message") or "batch request failed"),
        provider=provider,
        status_code=context.get("status"),
        error_type=context.get("type"),
        request_id=context.get("request_id"),
        retryable=context.get("retryable"),
        reason=reason,
    )


def item_error(
    message: str, *, provider: str, reason: str, error_type: str | None = None
) -> dict[str, Any]:
    """The error context of a request that never ran (cancelled, expired, missing)."""
    error = ProviderAPIError(
        message, provider=provider, error_type=error_type, reason=reason, retryable=True
    )
    return error_context(error)


def batch_priced(response: ModelCompletionResponse) -> ModelCompletionResponse:
    """``response`` with its cost at the batch discount."""
    if response.cost is None:
        return response
    return response.model_copy(update={"cost": response.cost * BATCH_PRICE_FACTOR})


def default_custom_ids(count: int) -> list[str]:
    """The custom ids aiport gives requests the caller did not name."""
    return [f"aiport-{i}" for i in range(count)]


def summarize_warnings(per_request: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """One line per distinct warning, naming the request or counting the requests."""
    seen: dict[str, list[str]] = {}
    for custom_id, warnings in per_request:
        for warning in warnings:
            seen.setdefault(warning, []).append(custom_id)
    return [
        f"request {ids[0]}: {text}" if len(ids) == 1 else f"{len(ids)} requests: {text}"
        for text, ids in seen.items()
    ]


def parse_jsonl(body: bytes, *, provider: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise MalformedResponseError(
                f"{provider}: line {number} of a batch result file is not a JSON object",
                provider=provider,
            )
        out.append(value)
    return out


def in_order(
    entries: Sequence[BatchEntry],
    *,
    provider: str,
    order: Sequence[str] | None = None,
    total: int = 0,
    missing_reason: str = "batch_result_missing",
) -> list[BatchItemResult]:
    """Results in input order, one per request, a typed error for those without a line.

    ``order`` lists the custom ids as submitted. Without it, ids of the form
    ``aiport-N`` give their own positions (``total`` requests in all); any other ids
    keep the provider's order.
    """
    if order is None:
        positions = [_default_index(entry.custom_id) for entry in entries]
        if all(p is not None for p in positions) and len(set(positions)) == len(positions):
            count = max([total, *(p + 1 for p in positions if p is not None)])
            order = default_custom_ids(count)
        else:
            order = [entry.custom_id for entry in entries]
    by_id = {entry.custom_id: entry for entry in entries}
    results: list[BatchItemResult] = []
    for index, custom_id in enumerate(order):
        entry = by_id.pop(custom_id, None)
        if entry is None:
            error = item_error(
                f"the batch has no result for request {custom_id!r}",
                provider=provider,
                reason=missing_reason,
            )
            results.append(BatchItemResult(index=index, custom_id=custom_id, error=error))
        else:
            results.append(
                BatchItemResult(
                    index=index, custom_id=custom_id, response=entry.response, error=entry.error
                )
            )
    # Lines for ids that were never submitted: kept (after the others), never dropped.
    for extra in by_id.values():
        results.append(
            BatchItemResult(
                index=len(results),
                custom_id=extra.custom_id,
                response=extra.response,
                error=extra.error,
            )
        )
    return results


def has_default_ids(custom_ids: Iterable[str]) -> bool:
    """Whether every id is one aiport gave (``aiport-N``): then they tell the order."""
    return all(_DEFAULT_ID.fullmatch(custom_id) for custom_id in custom_ids)


def _default_index(custom_id: str) -> int | None:
    match = _DEFAULT_ID.fullmatch(custom_id)
    return int(match.group(1)) if match else None


async def send_raw(
    provider: HttpProvider,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    model: str | None = None,
) -> HttpResponse:
    """Send a request whose body or answer is not JSON (uploads, JSONL downloads).

    The same plumbing as ``HttpProvider.post_json``: credentials in headers only, one
    retry with a fresh token after a 401, typed and scrubbed errors.
    """
    headers = {"Content-Type": content_type} if content_type else None
    return await provider.send_request(
        method, path, body, model=model, timeout=None, headers=headers
    )


# --------------------------------------------------------------------------- service helpers


def _provider(service: ProviderService, provider_or_model: str) -> ModelProvider:
    if provider_or_model in service.provider_names:
        return service.get_provider(provider_or_model)
    return service.get_provider(service.resolve_model(provider_or_model).provider)


def _prepare(
    service: ProviderService,
    model: str,
    requests: Sequence[ModelCompletionOptions | Mapping[str, Any]],
) -> list[ModelCompletionOptions]:
    """Every request validated, checked to target ``model``, with the model's defaults."""
    resolved = service.resolve_model(model)
    prepared: list[ModelCompletionOptions] = []
    for index, request in enumerate(requests):
        if isinstance(request, ModelCompletionOptions):
            options = request
        else:
            data = dict(request)
            data.setdefault("model", model)
            try:
                options = ModelCompletionOptions.model_validate(data)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)
                )
                raise InvalidRequestError(
                    f"batch request {index}: {problems}", model=model, reason="invalid_options"
                ) from None
        if options.model != model:
            other = service.resolve_model(options.model)
            if (other.provider, other.model) != (resolved.provider, resolved.model):
                raise InvalidRequestError(
                    f"batch request {index} is for {options.model!r}: every request of a "
                    f"batch goes to one model ({model!r})",
                    model=model,
                    reason="invalid_options",
                )
        prepared.append(apply_defaults(options, resolved))
    return prepared


async def submit_batch(
    service: ProviderService,
    model: str,
    requests: Sequence[ModelCompletionOptions | Mapping[str, Any]],
    *,
    custom_ids: Sequence[str] | None = None,
) -> BatchJob:
    """Submit ``requests`` (options objects or their dicts) as one batch to ``model``.

    A request without a ``model`` gets ``model``; one naming another model is refused.
    ``custom_ids`` name the requests (unique; default ``aiport-0``, ``aiport-1``...).
    """
    if not requests:
        raise InvalidRequestError("a batch needs at least one request", model=model)
    ids = list(custom_ids) if custom_ids is not None else default_custom_ids(len(requests))
    if len(ids) != len(requests):
        raise InvalidRequestError(
            f"{len(ids)} custom ids for {len(requests)} requests", model=model
        )
    if len(set(ids)) != len(ids):
        raise InvalidRequestError("custom ids must be unique within a batch", model=model)
    prepared = _prepare(service, model, requests)
    provider = service.get_provider(service.resolve_model(model).provider)
    return await provider.submit_batch(prepared, ids)


async def get_batch(service: ProviderService, provider_or_model: str, batch_id: str) -> BatchJob:
    """The batch's current state. ``provider_or_model``: a provider name or a model id."""
    return await _provider(service, provider_or_model).get_batch(batch_id)


async def cancel_batch(service: ProviderService, provider_or_model: str, batch_id: str) -> BatchJob:
    """Ask the provider to stop the batch; requests not yet run end as cancelled."""
    return await _provider(service, provider_or_model).cancel_batch(batch_id)


async def batch_results(
    service: ProviderService,
    provider_or_model: str,
    batch_id: str,
    *,
    custom_ids: Sequence[str] | None = None,
) -> list[BatchItemResult]:
    """The results of a finished batch, one per request, in input order.

    Give ``custom_ids`` (as submitted) when you named the requests yourself: Anthropic
    returns results in no particular order and keeps no list of the requests.
    """
    provider = _provider(service, provider_or_model)
    items = await provider.batch_results(batch_id)
    if custom_ids is None:
        return items
    entries = [BatchEntry(item.custom_id, item.response, item.error) for item in items]
    return in_order(entries, provider=provider.name, order=list(custom_ids))


async def wait_batch(
    service: ProviderService,
    provider_or_model: str,
    batch_id: str,
    *,
    poll_interval: float = 1.0,
    max_interval: float = 60.0,
    timeout: float | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> BatchJob:
    """Poll until the batch is done; return its final state.

    The wait between polls starts at ``poll_interval`` and doubles up to
    ``max_interval``, each wait jittered to between half and all of it (so many waiting
    processes spread out). A retryable error while polling is waited out like a busy
    batch (up to 5 in a row). ``timeout`` seconds without the batch finishing raise
    ``ProviderTimeoutError`` (reason ``batch_timeout``); the batch runs on, wait again.
    """
    if poll_interval <= 0 or max_interval < poll_interval:
        raise ValueError("need 0 < poll_interval <= max_interval")
    provider = _provider(service, provider_or_model)
    deadline = None if timeout is None else clock() + timeout
    interval = poll_interval
    failures = 0
    status = "unknown"
    while True:
        try:
            job = await provider.get_batch(batch_id)
        except ProviderError as exc:
            failures += 1
            if not exc.retryable or failures >= _MAX_POLL_FAILURES:
                raise
        else:
            failures = 0
            status = job.status
            if job.done:
                return job
        delay = interval * (0.5 + random.random() / 2)
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                raise ProviderTimeoutError(
                    f"batch {batch_id} did not finish within {timeout}s (status {status}); "
                    "it keeps running: wait for it again with the same id",
                    provider=provider.name,
                    reason="batch_timeout",
                )
            delay = min(delay, remaining)
        await sleep(delay)
        interval = min(interval * 2, max_interval)


async def run_batch(
    service: ProviderService,
    model: str,
    requests: Sequence[ModelCompletionOptions | Mapping[str, Any]] = (),
    *,
    custom_ids: Sequence[str] | None = None,
    batch_id: str | None = None,
    on_submit: Callable[[BatchJob], object] | None = None,
    poll_interval: float = 1.0,
    max_interval: float = 60.0,
    timeout: float | None = None,
    sleep: Sleep = asyncio.sleep,
) -> list[BatchItemResult]:
    """Submit ``requests``, wait for the batch, and return its results in input order.

    With ``batch_id`` the batch already exists (a run interrupted earlier): nothing is
    submitted, and ``requests`` are not needed. ``on_submit`` is called with the new job
    before waiting starts: store ``job.id`` there to resume after a crash.
    """
    if batch_id is None:
        ids = list(custom_ids) if custom_ids is not None else default_custom_ids(len(requests))
        job = await submit_batch(service, model, requests, custom_ids=ids)
        if on_submit is not None:
            on_submit(job)
        batch_id = job.id
        custom_ids = ids
    await wait_batch(
        service,
        model,
        batch_id,
        poll_interval=poll_interval,
        max_interval=max_interval,
        timeout=timeout,
        sleep=sleep,
    )
    return await batch_results(service, model, batch_id, custom_ids=custom_ids)
