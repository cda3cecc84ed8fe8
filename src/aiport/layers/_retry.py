"""Retries: the one place in aiport where a failed attempt is sent again.

Adapters never retry (and no provider SDK with its own retries sits underneath), so the
attempts a provider sees are exactly the attempts this layer makes: ``max_attempts=4``
means four requests, not four times the SDK's three (gateways research, failure mode F4).

What is retried
    Errors with ``retryable=True`` (429, 408, 409, 5xx, timeouts, broken connections,
    malformed answers), except:

    * ``reason == "local_rate_limit"``: aiport's own limiter (a layer inside this one)
      already made the call wait in its queue; waiting again here would double the wait.
    * ``ProviderTimeoutError`` and ``ProviderConnectionError`` when the call context says
      ``has_alternatives``: a route that went silent or broke is not waited on a second
      time while another deployment could answer; the router moves on instead (F6).

How long to wait before retry ``n`` (``n = 1`` for the first retry)
    * The provider said when (``Retry-After`` seconds or HTTP date, ``retry-after-ms``):
      exactly that, never less (F3: retrying early only earns another 429). When it asks
      for more than ``max_retry_after``, the call fails at once with ``retry_after`` kept
      on the error, so the caller can decide.
    * Otherwise full jitter: ``uniform(0, min(max_backoff, initial_backoff * 2**(n-1)))``,
      so callers that failed together do not come back together (F5).

When to stop
    After ``max_attempts`` attempts; when the wait would end past the call's deadline
    (the earlier of ``first attempt + deadline`` and the call context's deadline); or when
    the provider's :class:`RetryBudget` is spent. The error raised is the last attempt's,
    with ``attempts`` set to the number of attempts made. The deadline decides whether
    another attempt may start; an attempt under way is bounded by the provider's own
    timeouts, and the first attempt is always made.

Streams
    A failure before the first event reached the caller is retried like any other; after
    that, errors pass through unchanged (the caller already holds part of the answer; the
    service decides whether to recover the stream).

Every attempt is recorded on the call context (``current_call()``), with the time waited
before it, so hooks and circuit breakers see each one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from aiport._context import CallContext, continuation, current_call
from aiport._errors import ProviderConnectionError, ProviderError, ProviderTimeoutError
from aiport._provider import ModelProvider, ProviderLayer
from aiport._replace import trusted
from aiport._types import Attempt

if TYPE_CHECKING:
    from aiport._config import RetryConfig
    from aiport._types import (
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        StreamEvent,
    )

__all__ = ["LOCAL_RATE_LIMIT", "RetryBudget", "RetryLayer", "retry_delay"]

logger = logging.getLogger("aiport")

#: The ``reason`` of the errors aiport's own rate limiter raises; never retried here.
LOCAL_RATE_LIMIT = "local_rate_limit"

#: The budget window is counted in this many slices (memory stays constant under load).
_SLICES = 10
#: Past this exponent the backoff is capped anyway; avoids float overflow on huge counts.
_MAX_EXPONENT = 64
#: Retry policies remembered per layer (one per model id seen).
_MAX_POLICIES = 1024

_T = TypeVar("_T")
_ATTEMPT_FIELDS = frozenset(Attempt.model_fields)


class RetryBudget:
    """Retries allowed as a share of first attempts over a sliding window (plus a floor),
    shared by every call of one provider, so an outage cannot become a retry storm.

    A retry may start while ``retries < min_retries + ratio * first_attempts``, both
    counted over the last ``window`` seconds. With ``ratio=0.2`` an outage adds at most
    20% to the load the callers make anyway; ``min_retries`` lets a quiet service still
    retry its occasional failure.

    Counts are kept in tenths of the window, so an entry stops counting between 0.9 and
    1.0 ``window`` after it was made. Thread-safe: a service may run calls on several
    event loops.

    Args:
        ratio: retries allowed per first attempt (``0.2``: one retry per five calls).
        window: seconds of history counted.
        min_retries: retries always allowed per window.
        clock: a monotonic clock.
    """

    def __init__(
        self,
        *,
        ratio: float,
        window: float,
        min_retries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ratio >= 0:  # also rejects NaN
            raise ValueError(f"ratio must be >= 0, got {ratio}")
        if not window > 0 or math.isinf(window):
            raise ValueError(f"window must be a positive number of seconds, got {window}")
        if min_retries < 0:
            raise ValueError(f"min_retries must be >= 0, got {min_retries}")
        self.ratio = ratio
        self.window = window
        self.min_retries = min_retries
        self._clock = clock
        self._width = window / _SLICES
        # [slice index, first attempts, retries], oldest first; only slices that saw use.
        self._slices: deque[list[int]] = deque()
        self._lock = threading.Lock()

    @classmethod
    def from_config(
        cls, config: RetryConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> RetryBudget:
        """The budget described by ``config`` (``budget_ratio``, ``budget_window``,
        ``budget_min_retries``)."""
        return cls(
            ratio=config.budget_ratio,
            window=config.budget_window,
            min_retries=config.budget_min_retries,
            clock=clock,
        )

    def _current(self) -> list[int]:
        """The current slice, after dropping those that left the window."""
        index = math.floor(self._clock() / self._width)
        slices = self._slices
        while slices and slices[0][0] <= index - _SLICES:
            slices.popleft()
        if not slices or slices[-1][0] != index:
            slices.append([index, 0, 0])
        return slices[-1]

    def record_first_attempt(self) -> None:
        """Count a call's first attempt (each one earns ``ratio`` of a retry)."""
        with self._lock:
            self._current()[1] += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; ``False`` (and nothing taken) when it is spent."""
        with self._lock:
            current = self._current()
            firsts = sum(s[1] for s in self._slices)
            retries = sum(s[2] for s in self._slices)
            if retries < self.min_retries + self.ratio * firsts:
                current[2] += 1
                return True
            return False

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, window={self.window}, min_retries={self.min_retries})"
        )


def retry_delay(
    retry: int, config: RetryConfig, retry_after: float | None, rng: random.Random
) -> float | None:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    ``retry_after`` (what the provider asked for) wins and is returned as is; ``None``
    when it exceeds ``config.max_retry_after`` (do not retry). Without it: full jitter
    over ``[0, min(max_backoff, initial_backoff * 2**(retry-1))]``.
    """
    if retry_after is not None:
        return retry_after if retry_after <= config.max_retry_after else None
    exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
    ceiling = min(config.max_backoff, config.initial_backoff * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


class _CallRetries:
    """The retry state of one call: its policy, attempt number, waits and deadline."""

    __slots__ = ("context", "deadline", "layer", "model", "number", "policy", "waited")

    def __init__(self, layer: RetryLayer, model: str) -> None:
        self.layer = layer
        self.model = model
        self.policy = policy = layer.policy_for(model)
        self.context: CallContext | None = current_call()
        self.number = 1
        self.waited = 0.0
        deadline = None if policy.deadline is None else layer.clock() + policy.deadline
        context_deadline = self.context.deadline if self.context is not None else None
        if context_deadline is not None and (deadline is None or context_deadline < deadline):
            deadline = context_deadline
        self.deadline = deadline
        layer.budget.record_first_attempt()

    async def record(
        self, outcome: Literal["ok", "error"], started: float, error: BaseException | None
    ) -> None:
        """Put the attempt that began at ``started`` on the call context, if any."""
        context = self.context
        if context is None:
            return
        provider_error = error if isinstance(error, ProviderError) else None
        # Every value is ours and of its field's type (names, counters, clock readings,
        # a ProviderError's typed attributes): built without validation, one per attempt
        # (aiport._replace.trusted; tests/test_trusted_models.py).
        attempt = trusted(
            Attempt,
            {
                "provider": self.layer.name,
                "model": self.model,
                "number": self.number,
                "outcome": outcome,
                "error_code": str(provider_error.code) if provider_error is not None else None,
                "reason": provider_error.reason if provider_error is not None else None,
                "status_code": (provider_error.status_code if provider_error is not None else None),
                "latency": float(max(0.0, self.layer.clock() - started)),
                "waited": float(self.waited),
            },
            set(_ATTEMPT_FIELDS),
        )
        if context.listeners:
            await context.record(attempt)
        else:  # what ``record`` does when nobody listens, without its coroutine
            context.attempts.append(attempt)

    async def failed(self, error: ProviderError, started: float) -> float | None:
        """Record a failed attempt; the wait before the next one, or ``None`` to give up.

        Sets ``error.attempts`` either way: the error may be the one finally raised.
        """
        await self.record("error", started, error)
        error.attempts = self.number
        return self._delay(error)

    def _delay(self, error: ProviderError) -> float | None:
        policy = self.policy
        if self.number >= policy.max_attempts:
            return None
        if not error.retryable or error.reason == LOCAL_RATE_LIMIT:
            return None
        if (
            self.context is not None
            and self.context.has_alternatives
            and isinstance(error, ProviderTimeoutError | ProviderConnectionError)
        ):
            return None
        delay = retry_delay(self.number, policy, error.retry_after, self.layer.rng)
        if delay is None:
            logger.debug(
                "not retrying %s:%s: asked to wait %.3fs, more than max_retry_after %.3fs",
                self.layer.name,
                self.model,
                error.retry_after,
                policy.max_retry_after,
            )
            return None
        if self.deadline is not None and self.layer.clock() + delay > self.deadline:
            return None
        # Spent last, so that a retry refused for another reason costs no budget.
        if not self.layer.budget.try_spend():
            logger.debug(
                "not retrying %s:%s after attempt %d: retry budget spent (%r)",
                self.layer.name,
                self.model,
                self.number,
                self.layer.budget,
            )
            return None
        return delay

    async def wait(self, delay: float, error: ProviderError) -> None:
        """Sleep ``delay`` seconds before the next attempt."""
        logger.debug(
            "retrying %s:%s in %.3fs after %s (attempt %d of %d next)",
            self.layer.name,
            self.model,
            delay,
            error.reason or error.code,
            self.number + 1,
            self.policy.max_attempts,
        )
        self.number += 1
        self.waited = delay
        await self.layer.sleep(delay)


async def _aclose(iterator: AsyncIterator[object]) -> None:
    """Close ``iterator`` if it can be closed (async generators can)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class RetryLayer(ProviderLayer):
    """Retries failed attempts of the wrapped provider (see the module docs for the rules).

    Args:
        inner: the provider to retry (usually the rate limiter around the adapter).
        policy: the effective ``RetryConfig`` for a model id; the service passes
            ``lambda m: config.effective_retry(provider_name, m)``.
        budget: the provider's retry budget, shared by all its calls.
        clock: a monotonic clock (``time.monotonic``: call-context deadlines use it).
        sleep: how to wait (tests pass a recording fake).
        rng: the source of jitter.
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        policy: Callable[[str], RetryConfig],
        budget: RetryBudget,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(inner)
        self.policy = policy
        self.budget = budget
        self.clock = clock
        self.sleep = sleep
        self.rng = rng if rng is not None else random.Random()
        self._policies: dict[str, RetryConfig] = {}

    def policy_for(self, model: str) -> RetryConfig:
        """``policy(model)``, asked once per model and remembered (merging the config's
        tables per call cost more than the rest of this layer); build a new layer when
        the configuration changes, as for the rate limiter."""
        found = self._policies.get(model)
        if found is None:
            found = self.policy(model)
            if len(self._policies) >= _MAX_POLICIES:
                self._policies.clear()  # any model id passes through: keep it bounded
            self._policies[model] = found
        return found

    async def _run(self, model: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        call = _CallRetries(self, model)
        while True:
            started = self.clock()
            try:
                result = await operation()
            except ProviderError as error:
                delay = await call.failed(error, started)
                if delay is None:
                    raise
                last = error
            except Exception as exc:
                # Not a provider error (a bug, most likely): record it, never retry it.
                await call.record("error", started, exc)
                raise
            else:
                await call.record("ok", started, None)
                return result
            # Wait outside the ``except`` block, so the next attempt's error does not
            # chain onto this one.
            await call.wait(delay, last)

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        return await self._run(options.model, lambda: self.inner.complete(options))

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        return await self._run(options.model, lambda: self.inner.embed(options))

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        return await self._run(options.model, lambda: self.inner.generate_image(options))

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Stream, retrying failures that happen before the first event is delivered."""
        call = _CallRetries(self, options.model)
        while True:
            started = self.clock()
            events = self.inner.stream(options)
            try:
                try:
                    first = await anext(events)
                except StopAsyncIteration:
                    await call.record("ok", started, None)
                    return
                except ProviderError as error:
                    delay = await call.failed(error, started)
                    if delay is None:
                        raise
                    last = error
                except Exception as exc:
                    await call.record("error", started, exc)
                    raise
                else:
                    # Past the first event: no retry any more, errors pass through.
                    recorded = False
                    event = first
                    following = continuation(events)
                    try:
                        while True:
                            if event.type == "finish":
                                # Record before the caller sees the end, as ``complete``
                                # does before returning: the attempt is on the context
                                # by the time the caller reads it.
                                await call.record("ok", started, None)
                                recorded = True
                            yield event
                            try:
                                event = await following()
                            except StopAsyncIteration:
                                break
                    except ProviderError as error:
                        await call.record("error", started, error)
                        error.attempts = call.number
                        raise
                    except GeneratorExit:
                        # The caller stopped reading; the provider had not failed.
                        if not recorded:
                            await call.record("ok", started, None)
                        raise
                    except Exception as exc:
                        await call.record("error", started, exc)
                        raise
                    if not recorded:
                        await call.record("ok", started, None)
                    return
            finally:
                # Release the attempt's connection whether it failed, finished, or the
                # caller stopped reading early (our own aclose runs this too).
                await _aclose(events)
            await call.wait(delay, last)
