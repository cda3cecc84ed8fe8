"""Client-side rate limiting: the layer in front of one provider (one API key).

Every call takes, before it is sent, one request, its estimated tokens and a
concurrency slot from two buckets: the provider bucket (every call made with this key)
and the bucket of its model. Calls over a limit wait in the limiter's queue (higher
``CallContext.priority`` first, FIFO within a priority) up to ``max_queue_wait`` and
never past the call's deadline, then fail with ``ProviderRateLimitError`` (reason
``"local_rate_limit"``, ``retry_after`` = seconds until room appears). When the call
ends, its token reservation is corrected to the usage the provider reported; a stream
holds its slot until it ends or is closed.

Learning from the provider (``learn_from_headers``): both OpenAI and Anthropic report
limits per key *and model*, so what their headers say applies to the model's bucket. A
reported limit lower than the configured one tightens the bucket; a limit with nothing
remaining pauses the bucket until its reset; a 429 pauses it until its ``Retry-After``
(1 s when absent), so the calls queued behind it wait instead of stampeding the
provider. With a shared limiter (Redis) the pause reaches every process.

Several keys (``per_key=True``, for a provider with ``api_keys``): every key has its own
buckets, named by its own scope (a hash of the key, never the key), and what headers teach
is learned per key. The rotation layer above names the keys an attempt may use, best first
(a :class:`~aiport._credentials.KeySelection`); the call takes the first of them with room
now, without waiting, and waits in the queue of the key with the soonest room only when
none has any. So two keys limited to N requests a minute each serve 2N calls a minute
without queueing, and a failover provider spills to its next key instead of waiting.

Nothing to count, nothing taken: a call whose provider and model have no configured limit
(so no bucket of it counts anything; learned limits only tighten configured ones) goes
straight to the provider, with no token estimate, lease or queue, unless a pause stops
its buckets; then it waits in the queue as any call would. That needs every pause to be
known in this process (``MemoryLimiter``): with a shared limiter (Redis) another process's
pause is only seen by asking the store, so every call still asks. The answers of such
calls are only searched for what can pause a bucket (a 429, a "remaining: 0" header).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiport._config import RateLimitConfig
from aiport._context import HandingOnStream, current_call
from aiport._credentials import current_key_selection
from aiport._errors import ProviderRateLimitError
from aiport._limits import (
    DEFAULT_OUTPUT_TOKENS,
    Bucket,
    Lease,
    Limiter,
    LimiterUnavailableError,
    LimitExceededError,
    estimate_completion,
    estimate_embedding,
    estimate_image,
    may_pause,
    parse_rate_limit_headers,
)
from aiport._limits._queue import QueuedLimiter
from aiport._provider import ModelProvider, ProviderLayer

if TYPE_CHECKING:
    from aiport._credentials import KeySelection
    from aiport._types import (
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        StreamEvent,
        Usage,
    )

__all__ = ["LimitsSource", "RateLimitLayer"]

#: ``limits(None)``: the provider's table (top level merged with the provider's);
#: ``limits(model)``: that model's effective table when the model has a ``rate_limit``
#: table of its own, else ``None``. ``None`` for the provider means "no limits".
LimitsSource = Callable[[str | None], RateLimitConfig | None]

#: How long a 429 without Retry-After pauses its bucket.
DEFAULT_429_PAUSE = 1.0
_NO_LIMITS = RateLimitConfig()
_MAX_CACHED_TABLES = 1024

logger = logging.getLogger("aiport")


@dataclass(frozen=True, slots=True)
class _Learned:
    requests: int | None = None
    tokens: int | None = None


class _Used:
    """Tokens a call turned out to use, once the provider said (None: not reported)."""

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens: int | None = None

    def report(self, usage: Usage | None) -> None:
        if usage is not None and (usage.input_tokens or usage.output_tokens):
            self.tokens = usage.input_tokens + usage.output_tokens


def _sets_a_limit(table: RateLimitConfig | None) -> bool:
    return table is not None and (
        table.requests_per_minute is not None
        or table.tokens_per_minute is not None
        or table.max_concurrency is not None
    )


def _tightened(
    model_limit: int | None, provider_limit: int | None, learned: int | None, learning: bool
) -> int | None:
    """The model bucket's limit: its own, or a lower one the provider reported.

    A reported limit only tightens a configured one (the model's, else the provider's);
    it never creates a limit the configuration does not ask for. While learning, the
    model bucket counts against the provider's limit too (harmless: the provider bucket
    is at least as strict), so a limit learned later also covers the calls already made.
    """
    if not learning:
        return model_limit
    reference = model_limit if model_limit is not None else provider_limit
    if learned is not None and reference is not None and learned < reference:
        return learned
    return reference


class RateLimitLayer(ProviderLayer):
    """Client-side limits in front of ``inner``, with a waiting queue.

    Args:
        inner: the provider to limit (an adapter, or layers around one).
        limits: where the limits come from (see ``LimitsSource``); called once per
            model and cached, so build a new layer when the configuration changes.
            For a service: ``lambda m: config.effective_rate_limit(name)`` for ``None``
            and ``config.effective_rate_limit(name, m)`` for a model with its own
            ``rate_limit`` table, ``None`` for other models.
        limiter: where the counters live (``MemoryLimiter``, ``RedisLimiter``); may be
            shared by several layers.
        scope: names this provider's buckets, e.g. ``limit_scope(name, api_key)``;
            must not contain a secret (it appears in Redis keys).
        clock: the monotonic clock of ``CallContext.deadline``.
        close_limiter: close ``limiter`` in ``aclose`` (when this layer owns it).
        default_output_tokens: output tokens reserved for a completion without
            ``max_tokens``.
        max_pause: the longest pause a header or a 429 may impose, in seconds.
        per_key: the provider has several API keys: buckets and learned limits are per
            key, the key being the one the current ``KeySelection`` names (``scope`` is
            used when there is none).
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        limits: LimitsSource,
        limiter: Limiter,
        scope: str,
        clock: Callable[[], float] = time.monotonic,
        close_limiter: bool = False,
        default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        max_pause: float = 300.0,
        per_key: bool = False,
    ) -> None:
        super().__init__(inner)
        self._limits = limits
        self.limiter = limiter
        self.scope = scope
        self._clock = clock
        self._close_limiter = close_limiter
        self._default_output = default_output_tokens
        self._max_pause = max_pause
        self._tables: dict[str | None, RateLimitConfig | None] = {}
        self._learned: dict[str | None, _Learned] = {}
        self._per_key = per_key
        # Per key scope (several keys): what each key's headers taught.
        self._learned_by_scope: dict[str, dict[str | None, _Learned]] = {}
        # By model: whether neither the provider nor the model has a configured limit.
        self._unlimited_by_model: dict[str, bool] = {}
        # The limiter, when it knows every pause in this process (then calls with nothing
        # to count skip it; see the module's docstring).
        self._local_pauses: QueuedLimiter | None = (
            limiter if isinstance(limiter, QueuedLimiter) and limiter.pauses_known_locally else None
        )
        adapter = self.unwrap()
        listeners = getattr(adapter, "response_listeners", None)
        self._listeners: list[Any] | None = listeners if isinstance(listeners, list) else None
        if self._listeners is not None:
            self._listeners.append(self._on_response)

    # ------------------------------------------------------------------ limits

    def _table(self, model: str | None) -> RateLimitConfig | None:
        try:
            return self._tables[model]
        except KeyError:
            pass
        table = self._limits(model)
        if len(self._tables) >= _MAX_CACHED_TABLES:
            self._tables.clear()  # any model id passes through: keep the cache bounded
        self._tables[model] = table
        return table

    def _unlimited(self, model: str) -> bool:
        """Whether neither the provider nor ``model`` has a configured limit: then none of
        the call's buckets counts anything, since a limit learned from headers only
        tightens a configured one (``_tightened``); only a pause can stop the call."""
        try:
            return self._unlimited_by_model[model]
        except KeyError:
            pass
        unlimited = not _sets_a_limit(self._table(None)) and not _sets_a_limit(self._table(model))
        if len(self._unlimited_by_model) >= _MAX_CACHED_TABLES:
            self._unlimited_by_model.clear()
        self._unlimited_by_model[model] = unlimited
        return unlimited

    def settings(self, model: str | None) -> RateLimitConfig:
        """The table whose ``max_queue_wait``, ``learn_from_headers`` and
        ``on_backend_failure`` apply to calls of ``model``."""
        if model is not None:
            table = self._table(model)
            if table is not None:
                return table
        return self._table(None) or _NO_LIMITS

    def _learned_in(self, scope: str) -> dict[str | None, _Learned]:
        """What the headers of the key behind ``scope`` taught, by model."""
        if scope == self.scope:
            return self._learned
        learned = self._learned_by_scope.get(scope)
        if learned is None:
            if len(self._learned_by_scope) >= _MAX_CACHED_TABLES:
                self._learned_by_scope.clear()
            learned = self._learned_by_scope[scope] = {}
        return learned

    def _current_scope(self) -> str:
        """The scope of the key the current attempt uses (``scope`` for a single key)."""
        if self._per_key:
            selection = current_key_selection()
            if selection is not None and selection.chosen is not None:
                return selection.chosen.scope
        return self.scope

    def buckets(self, model: str, scope: str | None = None) -> tuple[Bucket, Bucket]:
        """The provider bucket and the bucket of ``model``, with their current limits.

        ``scope`` names the key's buckets (default: this layer's ``scope``).
        """
        scope = self.scope if scope is None else scope
        provider = self._table(None) or _NO_LIMITS
        own = self._table(model)
        learning = (own or provider).learn_from_headers
        learned = self._learned_in(scope).get(model, _Learned())
        return (
            Bucket(
                scope,
                None,
                provider.requests_per_minute,
                provider.tokens_per_minute,
                provider.max_concurrency,
            ),
            Bucket(
                scope,
                model,
                _tightened(
                    own.requests_per_minute if own else None,
                    provider.requests_per_minute,
                    learned.requests,
                    learning,
                ),
                _tightened(
                    own.tokens_per_minute if own else None,
                    provider.tokens_per_minute,
                    learned.tokens,
                    learning,
                ),
                own.max_concurrency if own else None,
            ),
        )

    # ------------------------------------------------------------------ learning

    def _on_response(self, status: int, headers: Mapping[str, str], model: str | None) -> None:
        try:
            self.observe(status, headers, model)
        except Exception:  # learning must never break the call that taught us
            logger.debug("aiport rate limiter: could not read rate-limit headers", exc_info=True)

    def observe(self, status: int, headers: Mapping[str, str], model: str | None) -> None:
        """Learn from one HTTP answer (what the adapter's response listener calls)."""
        if not self.settings(model).learn_from_headers:
            return
        if (
            status != 429
            and model is not None
            and self._unlimited(model)
            and not may_pause(headers)
        ):
            # What a limit would teach cannot matter (nothing configured to tighten): only
            # a pause can, and without a "remaining: 0" header there is none.
            return
        scope = self._current_scope()
        info = parse_rate_limit_headers(headers)
        if info.request_limit is not None or info.token_limit is not None:
            learned = self._learned_in(scope)
            if model not in learned and len(learned) >= _MAX_CACHED_TABLES:
                learned.clear()  # bounded, like the tables
            learned[model] = _Learned(info.request_limit, info.token_limit)
        pause = info.pause
        if status == 429:
            asked = info.retry_after if info.retry_after is not None else DEFAULT_429_PAUSE
            pause = max(pause or 0.0, asked)
        if pause:
            self.limiter.pause(Bucket(scope, model), min(pause, self._max_pause))

    # ------------------------------------------------------------------ admission

    async def _acquire_a_key(
        self, selection: KeySelection, model: str, tokens: int, start: int = 0
    ) -> Lease:
        """Admit the call with the first candidate key that has room now, else wait for the
        key with the soonest room; ``selection.chosen`` tells which.

        ``start``: the candidates before it were found not to resolve already.
        """
        candidates = selection.candidates
        soonest: tuple[float, str] | None = None
        for index, key in enumerate(candidates):
            if index < start:
                continue
            if not await selection.resolves(key):
                continue
            if index == len(candidates) - 1 and soonest is None:
                # The only key left to try: wait for it as a single key would.
                selection.chosen = key
                return await self._acquire_in(key.scope, model, tokens)
            try:
                lease = await self._acquire_in(key.scope, model, tokens, probe=True)
            except LimitExceededError as exc:
                if soonest is None or exc.retry_after < soonest[0]:
                    soonest = (exc.retry_after, key.scope)
                    selection.chosen = key
                continue
            selection.chosen = key
            return lease
        if soonest is None:
            raise selection.unusable()
        return await self._acquire_in(soonest[1], model, tokens)

    async def _acquire_in(
        self, scope: str, model: str, tokens: int, *, probe: bool = False
    ) -> Lease:
        """Take a lease in the buckets of ``scope``.

        ``probe``: do not wait, and raise the limiter's ``LimitExceededError`` as it is.
        """
        settings = self.settings(model)
        context = current_call()
        wait = settings.max_queue_wait
        if probe:
            wait = 0.0
        elif context is not None and context.deadline is not None:
            wait = min(wait, context.deadline - self._clock())
        try:
            return await self.limiter.acquire(
                self.buckets(model, scope),
                tokens=tokens,
                priority=context.priority if context is not None else 0,
                max_wait=max(0.0, wait),
                on_failure=settings.on_backend_failure,
            )
        except LimitExceededError as exc:
            if probe:
                raise
            raise ProviderRateLimitError(
                f"{self.name}: local rate limit reached ({exc.reason}); room in "
                f"{exc.retry_after:.2f}s",
                provider=self.name,
                model=model,
                retry_after=exc.retry_after,
                reason="local_rate_limit",
            ) from None
        except LimiterUnavailableError as exc:
            raise ProviderRateLimitError(
                f"{self.name}: {exc} (rate limits fail closed)",
                provider=self.name,
                model=model,
                retry_after=exc.retry_after,
                reason="limiter_unavailable",
            ) from None

    async def _unleased_scope(self, model: str) -> tuple[str | None, int]:
        """For a call of an unlimited ``model`` (``_unlimited``) and a limiter that knows
        every pause: the scope of the key to send it with at once, without a lease, or
        ``None`` when a pause stops it (then it goes through the queue).

        With several keys this picks what ``_acquire_a_key`` would: the first candidate
        that resolves and whose buckets are not paused (made ``selection.chosen``). The
        second value is where the queue takes over in the candidates, past those already
        found not to resolve (so none is resolved and set aside twice).
        """
        pauses = self._local_pauses
        assert pauses is not None
        selection = current_key_selection() if self._per_key else None
        if selection is None:
            return (None if pauses.paused_now(self.scope, model) else self.scope), 0
        for index, key in enumerate(selection.candidates):
            if not await selection.resolves(key):
                continue
            if pauses.paused_now(key.scope, model):
                return None, index
            selection.chosen = key
            return key.scope, 0
        raise selection.unusable()

    def _learn_from_error(self, exc: ProviderRateLimitError, scope: str, model: str) -> None:
        """Pause the bucket for the retry-after of a 429 error: for a provider without a
        response listener (not an HTTP adapter) as its headers would have, and for an HTTP
        adapter too, because some providers say how long to wait in the error body, not in
        a header (Gemini's ``RetryInfo``); pauses only ever extend, so a header pause
        already taken is not shortened. Calls without a lease learn here too."""
        if exc.status_code == 429:
            if exc.retry_after is not None:
                wait = exc.retry_after
            elif self._listeners is None:
                wait = DEFAULT_429_PAUSE
            else:
                return  # the response listener already paused for the headers' default
            if wait > 0 and self.settings(model).learn_from_headers:
                self.limiter.pause(Bucket(scope, model), min(wait, self._max_pause))

    @contextlib.asynccontextmanager
    async def _admitted(
        self, model: str, tokens: int, prompt: int, start: int = 0
    ) -> AsyncIterator[_Used]:
        """Hold a lease while the body runs; correct its tokens when it ends.

        ``start``: see ``_acquire_a_key``.
        """
        selection = current_key_selection() if self._per_key else None
        if selection is None:
            lease = await self._acquire_in(self.scope, model, tokens)
        else:
            lease = await self._acquire_a_key(selection, model, tokens, start)
        used = _Used()
        failed = True
        try:
            yield used
            failed = False
        except ProviderRateLimitError as exc:
            self._learn_from_error(
                exc, lease.buckets[0].scope if lease.buckets else self.scope, model
            )
            raise
        finally:
            # A failed call may still have cost its prompt; the estimated output was not used.
            tokens_used = used.tokens if used.tokens is not None else (prompt if failed else None)
            await self.limiter.release(lease, tokens=tokens_used)

    # ------------------------------------------------------------------ operations

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        model = options.model
        start = 0
        if self._local_pauses is not None and self._unlimited(model):
            scope, start = await self._unleased_scope(model)
            if scope is not None:
                try:
                    return await self.inner.complete(options)
                except ProviderRateLimitError as exc:
                    self._learn_from_error(exc, scope, model)
                    raise
        prompt, total = estimate_completion(options, default_output=self._default_output)
        async with self._admitted(model, total, prompt, start) as used:
            response = await self.inner.complete(options)
            used.report(response.usage)
            return response

    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        if self._local_pauses is not None and self._listeners is not None:
            # Decided at the first event (the call context and key selection are current
            # then): straight through when nothing is counted, else the limited stream.
            return _UnleasedStream(self, options)
        return self._limited_stream(options)

    async def _limited_stream(
        self, options: ModelCompletionOptions, start: int = 0
    ) -> AsyncIterator[StreamEvent]:
        prompt, total = estimate_completion(options, default_output=self._default_output)
        async with self._admitted(options.model, total, prompt, start) as used:
            events = self.inner.stream(options)
            try:
                async for event in events:
                    if event.type == "finish":
                        used.report(event.response.usage)
                    elif event.type == "usage":
                        used.report(event.usage)
                    yield event
            finally:
                # Closing the stream early must close the provider's stream too, before
                # the slot is given back.
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        model = options.model
        start = 0
        if self._local_pauses is not None and self._unlimited(model):
            scope, start = await self._unleased_scope(model)
            if scope is not None:
                try:
                    return await self.inner.embed(options)
                except ProviderRateLimitError as exc:
                    self._learn_from_error(exc, scope, model)
                    raise
        tokens = estimate_embedding(options)
        async with self._admitted(model, tokens, tokens, start) as used:
            response = await self.inner.embed(options)
            used.report(response.usage)
            return response

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        model = options.model
        start = 0
        if self._local_pauses is not None and self._unlimited(model):
            scope, start = await self._unleased_scope(model)
            if scope is not None:
                try:
                    return await self.inner.generate_image(options)
                except ProviderRateLimitError as exc:
                    self._learn_from_error(exc, scope, model)
                    raise
        tokens = estimate_image(options)
        async with self._admitted(model, tokens, tokens, start) as used:
            response = await self.inner.generate_image(options)
            used.report(response.usage)
            return response

    async def aclose(self) -> None:
        """Stop listening to the adapter, close the inner provider (and an owned limiter)."""
        if self._listeners is not None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(self._on_response)
            self._listeners = None
        try:
            await self.inner.aclose()
        finally:
            if self._close_limiter:
                await self.limiter.aclose()


class _UnleasedStream(HandingOnStream["StreamEvent"]):
    """``RateLimitLayer.stream`` for an adapter with a response listener (which sees its
    429s) and a limiter that knows every pause.

    At the first ``anext`` it decides, as ``complete`` does, between the provider's stream
    as it is (nothing to count and no pause) and the limited stream, then hands on that
    stream's items: no generator of this layer between an event and the caller.
    """

    __slots__ = ("_events", "_layer", "_options")

    def __init__(self, layer: RateLimitLayer, options: ModelCompletionOptions) -> None:
        super().__init__()
        self._layer = layer
        self._options = options
        self._events: AsyncIterator[StreamEvent] | None = None

    async def _first(self) -> StreamEvent:
        layer, options = self._layer, self._options
        try:
            scope: str | None = None
            start = 0
            if layer._unlimited(options.model):
                scope, start = await layer._unleased_scope(options.model)
            if scope is not None:
                events = layer.inner.stream(options)
            else:
                events = layer._limited_stream(options, start)
        except BaseException:
            self._next = _ended  # failed before it began: over, as a generator would be
            raise
        self._events = events
        self._next = events.__anext__
        return await events.__anext__()

    async def aclose(self) -> None:
        """Close the stream it handed out (if it started one); it ends either way."""
        self._next = _ended
        events = self._events
        if events is not None:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()


async def _ended() -> StreamEvent:
    raise StopAsyncIteration
