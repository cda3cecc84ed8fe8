"""Bulk online calls: many completions with bounded concurrency, results in input order.

``complete_many`` is for jobs of hundreds or thousands of independent requests (scoring a
data set, filling a column) that should finish as fast as the provider allows without
opening thousands of connections at once. Each request still goes through the whole
pipeline (routing, retries, rate limits, cache), so the configured limits hold; the
concurrency bound only caps how many calls are in flight from this job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, cast

from aiport._errors import AiportError, InvalidRequestError, ProviderAPIError, ProviderError
from aiport._types import ModelCompletionOptions, ModelCompletionResponse

__all__ = ["CompletionService", "ProgressCallback", "complete_many"]

logger = logging.getLogger("aiport")

#: Called with (calls finished, calls in all): once with 0 before the first call ends,
#: then after each call, success or failure.
ProgressCallback = Callable[[int, int], None]


class CompletionService(Protocol):
    """What ``complete_many`` needs: ``ProviderService.complete``, or any such method."""

    def complete(
        self,
        options: ModelCompletionOptions | Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> Awaitable[ModelCompletionResponse]:
        """Run one completion."""
        ...


async def complete_many(
    service: CompletionService,
    requests: Iterable[ModelCompletionOptions | Mapping[str, Any]],
    *,
    concurrency: int = 16,
    return_exceptions: bool = True,
    progress: ProgressCallback | None = None,
    **call_options: Any,
) -> list[ModelCompletionResponse | ProviderError]:
    """Run many completions, at most ``concurrency`` at a time; results in input order.

    Args:
        service: runs each call (a ``ProviderService``).
        requests: completion options, as objects or mappings (OpenAI-style messages
            accepted). Consumed at once, to know the total.
        concurrency: the most calls in flight at once.
        return_exceptions: ``True``: a failed call's place in the result holds its
            typed error and the other calls go on. ``False``: the first failure is
            raised and the calls still running are cancelled.
        progress: called with ``(finished, total)``: once with 0 at the start, then
            after each call ends, success or failure. An exception it raises is logged
            and ignored (watching a job must not break it).
        call_options: keyword arguments given to every ``service.complete`` call
            (``priority=-1`` lets interactive calls pass first in rate-limit queues;
            ``fallbacks``, ``cache``).

    Returns:
        One entry per request, in input order: its response, or (with
        ``return_exceptions``) its ``ProviderError``. A request that is not valid
        options fails with ``InvalidRequestError``; any other exception (a bug) is
        turned into a ``ProviderAPIError`` with reason ``internal_error`` and the
        original as ``__cause__`` (a ``ConfigError`` likewise, with reason
        ``config_error``).

    Example:
        >>> results = await complete_many(  # doctest: +SKIP
        ...     service,
        ...     [{"model": "openai:gpt-4o-mini", "messages": q} for q in questions],
        ...     concurrency=32,
        ... )
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    items = list(requests)
    total = len(items)
    results: list[ModelCompletionResponse | ProviderError | None] = [None] * total
    finished = 0
    _report(progress, 0, total)
    # One shared iterator of positions: each worker takes the next one when it is free,
    # so no more than ``concurrency`` tasks exist however long the job.
    positions = iter(range(total))

    async def worker() -> None:
        nonlocal finished
        for index in positions:
            try:
                results[index] = await _complete_one(service, items[index], call_options)
            except Exception as exc:
                if not return_exceptions:
                    raise
                results[index] = _as_provider_error(exc)
            finished += 1
            _report(progress, finished, total)

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, total))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        # The first failure (return_exceptions=False) or our own cancellation: stop the
        # calls still running rather than leave them behind.
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    # Every position was filled: each worker ran to the end of the shared iterator.
    return cast("list[ModelCompletionResponse | ProviderError]", results)


async def _complete_one(
    service: CompletionService,
    request: ModelCompletionOptions | Mapping[str, Any],
    call_options: Mapping[str, Any],
) -> ModelCompletionResponse:
    if not isinstance(request, ModelCompletionOptions | Mapping):
        raise InvalidRequestError(
            f"a request must be ModelCompletionOptions or a mapping, not {type(request).__name__}",
            reason="invalid_options",
        )
    return await service.complete(request, **call_options)


def _as_provider_error(exc: Exception) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, AiportError):  # a ConfigError met while building the provider
        error = ProviderAPIError(str(exc), reason=str(exc.code).lower())
    else:
        error = ProviderAPIError(
            f"unexpected {type(exc).__name__} while running a completion: {exc}",
            reason="internal_error",
        )
    error.__cause__ = exc
    return error


def _report(progress: ProgressCallback | None, finished: int, total: int) -> None:
    if progress is None:
        return
    try:
        progress(finished, total)
    except Exception:
        logger.warning("aiport complete_many: progress callback %r failed", progress, exc_info=True)
