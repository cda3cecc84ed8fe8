"""Micro-batching of embeddings: many small concurrent ``embed`` calls, one upstream request.

An application that embeds texts one at a time from many tasks (a web server, a crawler)
pays one round trip and one rate-limit request per text; the providers accept up to
thousands of texts per request. ``EmbeddingBatcher`` gathers the calls that arrive close
together and sends them as one request.

What shares a request
    Calls with the same model, ``dimensions``, ``timeout`` and ``provider_options`` (and
    the same per-call cache control), made on the same event loop. Anything else would
    change the answer, so it never shares. A call whose ``provider_options`` have no JSON
    form is passed through alone.

When a batch is sent
    ``window`` seconds after its first call arrived (a fixed window, not one that slides
    with every arrival, so no call waits longer than ``window``), or at once when it
    reaches ``max_inputs`` texts or ``max_tokens`` estimated tokens (the provider's limits
    per request). A call that would overflow the batch being filled sends that batch
    first and starts the next one.

Large calls
    A call with more texts (or estimated tokens) than one request may carry is cut into
    chunks, in order; the chunks join batches like any call, and their vectors are put
    back together in input order.

What each caller gets
    Its own vectors, in its input order, in a response of its own: the upstream
    ``model``, ``request_id`` and ``raw`` (without the vectors), ``latency`` as this caller
    saw it (window wait included), and a share of the usage and cost (see below).
    A text asked for more than once in a batch is sent once; each caller still gets a
    vector of its own.

Usage and cost
    Providers report one usage for the whole request, never per text. It is split in
    proportion to each caller's estimated tokens (about four characters a token, at
    least one per text, as the rate limiter estimates them), field by field with the
    largest-remainder method: the shares are whole numbers and add up exactly to the
    upstream usage. The cost is split in the same proportions.

Errors and cancellation
    When the merged request fails, every caller of that batch gets the typed error (a
    copy each, with the same ``__cause__``, so no caller's handling changes another's). A
    caller cancelled while its batch is still gathering takes its texts out of it; once
    the batch is sent, the request goes on for the others and the cancelled caller's
    vectors are dropped.

Layers below
    The merged request goes through the layers below as one call, so rate limits count
    one request with the batch's tokens and retries retry the batch once. It runs in a
    call context of its own: the highest priority of its callers, the latest of their
    deadlines (none if one has none), ``has_alternatives`` only when every caller has one,
    and each attempt it makes is recorded on every caller's context.

Everything else (completions, streams, images) passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from aiport._context import CacheControl, CallContext, call_scope, current_call
from aiport._errors import MalformedResponseError, ProviderAPIError
from aiport._limits._estimate import CHARS_PER_TOKEN
from aiport._provider import ModelProvider, ProviderLayer
from aiport._types import Usage

if TYPE_CHECKING:
    from aiport._types import Attempt, ModelEmbeddingOptions, ModelEmbeddingResponse

__all__ = ["BatchStats", "EmbeddingBatcher"]

#: OpenAI's limits per ``/embeddings`` request (2,048 texts, 300,000 tokens).
DEFAULT_MAX_INPUTS = 2048
DEFAULT_MAX_TOKENS = 300_000

#: What must be equal for two calls to share a request (see ``EmbeddingBatcher._key``).
_Key: TypeAlias = tuple[str, int | None, float | None, str, CacheControl | None]
_USAGE_FIELDS = tuple(Usage.model_fields)


def _estimate(text: str) -> int:
    """Estimated tokens of one text: about four characters a token, at least one."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(slots=True)
class BatchStats:
    """What the batcher did (counted without a lock: exact on one loop, close otherwise).

    Attributes:
        calls: ``embed`` calls received (passed-through ones included).
        requests: upstream requests sent (passed-through calls included).
        inputs: texts sent upstream.
    """

    calls: int = 0
    requests: int = 0
    inputs: int = 0


@dataclass(eq=False, slots=True)
class _Part:
    """The texts one call (or one chunk of a large call) puts into a batch."""

    texts: list[str]
    tokens: int
    future: asyncio.Future[ModelEmbeddingResponse]
    context: CallContext | None
    #: The batch still gathering with this part in it; ``None`` once it is sent.
    batch: _Batch | None = None


@dataclass(eq=False, slots=True)
class _Batch:
    """Calls gathering for one upstream request."""

    key: _Key
    #: The first call's options: the request is these with every part's texts as input.
    template: ModelEmbeddingOptions
    parts: list[_Part] = field(default_factory=list)
    inputs: int = 0
    tokens: int = 0
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False, slots=True)
class _LoopState:
    """The batches of one event loop (futures and timers belong to a loop).

    It holds no reference to its loop: it is the value of a weak mapping keyed by it.
    """

    pending: dict[_Key, _Batch] = field(default_factory=dict)
    sending: set[asyncio.Task[None]] = field(default_factory=set)


class EmbeddingBatcher(ProviderLayer):
    """Merges concurrent ``embed`` calls into one upstream request (see the module docs).

    Args:
        inner: the provider to batch for (the service puts this layer inside the cache,
            so cached texts never wait, and outside retries and rate limits, so a batch
            is retried and counted as one request).
        window: seconds a batch gathers calls after its first one arrived (``0``: only
            the calls made in the same event-loop turn).
        max_inputs: the most texts per upstream request, or a function of the model
            (providers differ: 2,048 for OpenAI, 96 for Cohere).
        max_tokens: the most estimated tokens per upstream request (``None``: no limit).
        clock: a monotonic clock for the ``latency`` each caller gets.

    Example:
        >>> batcher = EmbeddingBatcher(provider, window=0.005)  # doctest: +SKIP
        >>> await asyncio.gather(*(batcher.embed(o) for o in calls))  # doctest: +SKIP
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        window: float = 0.005,
        max_inputs: Callable[[str], int] | int = DEFAULT_MAX_INPUTS,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(inner)
        if not 0 <= window < math.inf:  # also rejects NaN
            raise ValueError(f"window must be a finite number of seconds >= 0, got {window}")
        if isinstance(max_inputs, int) and max_inputs < 1:
            raise ValueError(f"max_inputs must be >= 1, got {max_inputs}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
        self.window = window
        self.max_inputs = max_inputs
        self.max_tokens = max_tokens
        self.clock = clock
        self.stats = BatchStats()
        # One state per event loop: a service serves async callers on theirs and sync
        # callers on a background loop, in another thread.
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the call

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """The vectors of ``options.input``, sent upstream together with other calls."""
        self.stats.calls += 1
        context = current_call()
        key = self._key(options, context)
        if key is None:
            self.stats.requests += 1
            self.stats.inputs += len(options.input)
            return await self.inner.embed(options)
        start = self.clock()
        state = self._state()
        limit = self._limit(options.model)
        parts = [
            self._add(state, key, options, texts=t, tokens=n, context=context, limit=limit)
            for t, n in self._chunks(options.input, limit)
        ]
        try:
            results = [await part.future for part in parts]
        except BaseException:
            # Cancelled, or one chunk failed: the other chunks are not waited for.
            for part in parts:
                self._withdraw(state, part)
            raise
        response = results[0] if len(results) == 1 else _joined(results)
        # Every result is a fresh object handed to this caller only: set in place.
        object.__setattr__(response, "latency", self.clock() - start)
        return response

    def _key(self, options: ModelEmbeddingOptions, context: CallContext | None) -> _Key | None:
        """What must be equal to share a request; ``None``: this call goes alone."""
        extra = ""
        if options.provider_options:
            try:
                extra = json.dumps(options.provider_options, sort_keys=True, separators=(",", ":"))
            except (TypeError, ValueError):
                return None  # no canonical form: equality cannot be told, so no sharing
        cache = context.cache if context is not None else None
        return (options.model, options.dimensions, options.timeout, extra, cache)

    def _limit(self, model: str) -> int:
        limit = self.max_inputs if isinstance(self.max_inputs, int) else self.max_inputs(model)
        return max(1, limit)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            with self._lock:
                state = self._states.setdefault(loop, _LoopState())
        return state

    def _chunks(self, texts: list[str], limit: int) -> list[tuple[list[str], int]]:
        """``texts`` cut in order into chunks one request may carry, with their tokens."""
        estimates = [_estimate(text) for text in texts]
        total = sum(estimates)
        max_tokens = self.max_tokens
        if len(texts) <= limit and (max_tokens is None or total <= max_tokens):
            return [(texts, total)]
        chunks: list[tuple[list[str], int]] = []
        current: list[str] = []
        tokens = 0
        for text, estimate in zip(texts, estimates, strict=True):
            full = len(current) >= limit or (
                max_tokens is not None and tokens + estimate > max_tokens
            )
            if current and full:
                chunks.append((current, tokens))
                current, tokens = [], 0
            current.append(text)
            tokens += estimate
        chunks.append((current, tokens))
        return chunks

    # ------------------------------------------------------------------ gathering

    def _add(
        self,
        state: _LoopState,
        key: _Key,
        options: ModelEmbeddingOptions,
        *,
        texts: list[str],
        tokens: int,
        context: CallContext | None,
        limit: int,
    ) -> _Part:
        """Put ``texts`` into the batch gathering for ``key`` (starting one if needed)."""
        batch = state.pending.get(key)
        if batch is not None and self._would_overflow(batch, len(texts), tokens, limit):
            self._flush(state, batch)
            batch = None
        if batch is None:
            batch = _Batch(key, options)
            state.pending[key] = batch
            batch.timer = asyncio.get_running_loop().call_later(
                self.window, self._flush, state, batch
            )
        part = _Part(texts, tokens, asyncio.get_running_loop().create_future(), context, batch)
        batch.parts.append(part)
        batch.inputs += len(texts)
        batch.tokens += tokens
        if batch.inputs >= limit or (
            self.max_tokens is not None and batch.tokens >= self.max_tokens
        ):
            self._flush(state, batch)
        return part

    def _would_overflow(self, batch: _Batch, inputs: int, tokens: int, limit: int) -> bool:
        if batch.inputs + inputs > limit:
            return True
        return self.max_tokens is not None and batch.tokens + tokens > self.max_tokens

    def _withdraw(self, state: _LoopState, part: _Part) -> None:
        """Take a part its caller no longer waits for out of its batch, or out of reach."""
        batch = part.batch
        if batch is not None:
            part.batch = None
            batch.parts.remove(part)
            batch.inputs -= len(part.texts)
            batch.tokens -= part.tokens
            if not batch.parts:
                self._discard(state, batch)
        future = part.future
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # mark it retrieved: the caller raised another part's error

    def _discard(self, state: _LoopState, batch: _Batch) -> None:
        if state.pending.get(batch.key) is batch:
            del state.pending[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None

    def _flush(self, state: _LoopState, batch: _Batch) -> None:
        """Send ``batch`` now (from its timer, or when it is full)."""
        self._discard(state, batch)
        for part in batch.parts:
            part.batch = None
        task = asyncio.get_running_loop().create_task(
            self._send(batch), name="aiport-embedding-batch"
        )
        state.sending.add(task)
        task.add_done_callback(state.sending.discard)

    # ------------------------------------------------------------------ sending

    async def _send(self, batch: _Batch) -> None:
        """One upstream request for every part of ``batch``, its answer shared out."""
        parts = batch.parts
        try:
            live = [part for part in parts if not part.future.done()]
            if not live:
                return  # every caller went away between the flush and now
            texts = [text for part in parts for text in part.texts]
            # A text asked for by several callers (or twice by one) is sent once.
            distinct = list(dict.fromkeys(texts))
            template = batch.template
            if len(distinct) == len(texts) and len(parts) == 1 and parts[0].texts is template.input:
                request = template  # one whole call: sent as it came
            else:
                request = template.model_copy(update={"input": distinct})
            self.stats.requests += 1
            self.stats.inputs += len(distinct)
            try:
                response = await self._request(request, parts)
            except asyncio.CancelledError:
                _fail(parts, self._closed_error(request.model))
                raise
            except Exception as exc:
                _fail(parts, exc)
                return
            vectors = response.embeddings
            if len(distinct) < len(texts):
                vectors = _expand(texts, distinct, vectors)
            if len(parts) == 1:
                if vectors is not response.embeddings:
                    response = response.model_copy(update={"embeddings": vectors})
                _resolve(parts[0], response)
                return
            _share(response, vectors, parts)
        finally:
            # Never leave a caller waiting, whatever happened above (a bug included).
            if any(not part.future.done() for part in parts):
                _fail(parts, ProviderAPIError("the embedding batch ended without an answer"))

    async def _request(
        self, request: ModelEmbeddingOptions, parts: Sequence[_Part]
    ) -> ModelEmbeddingResponse:
        """Send ``request`` in a call context serving every part's caller."""
        with call_scope(_merged_context([part.context for part in parts])):
            response = await self.inner.embed(request)
        if len(response.embeddings) != len(request.input):
            raise MalformedResponseError(
                f"{self.name} answered {len(response.embeddings)} vectors "
                f"for {len(request.input)} texts",
                provider=self.name,
                model=request.model,
                request_id=response.request_id,
            )
        return response

    def _closed_error(self, model: str) -> ProviderAPIError:
        return ProviderAPIError(
            f"{self.name}: the embedding batch was stopped before its answer (provider closed)",
            provider=self.name,
            model=model,
            reason="closed",
        )

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Fail the calls still gathering or in flight on this loop, then close ``inner``.

        Calls on another loop (the sync API's) are stopped by that loop, told here.
        """
        with self._lock:
            states = list(self._states.items())
        running = asyncio.get_running_loop()
        for loop, state in states:
            if loop is running:
                self._stop(state)
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # that loop stopped meanwhile
                    loop.call_soon_threadsafe(self._stop, state)
        await self.inner.aclose()

    def _stop(self, state: _LoopState) -> None:
        for batch in list(state.pending.values()):
            self._discard(state, batch)
            for part in batch.parts:
                part.batch = None
            _fail(batch.parts, self._closed_error(batch.template.model))
        for task in list(state.sending):
            task.cancel()


# ---------------------------------------------------------------------- helpers


def _merged_context(contexts: Sequence[CallContext | None]) -> CallContext:
    """The call context of a merged request: one that serves every caller in it."""
    known = list({id(context): context for context in contexts if context is not None}.values())
    if not known:
        return CallContext()
    if len(known) == 1:
        return known[0]  # one caller (or one call's chunks): its own context serves
    deadlines = [context.deadline for context in known]
    # The latest deadline: the batch is still wanted as long as one caller waits for it.
    deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
    # A caller without another route needs the retries the others would skip.
    alternatives = all(context.has_alternatives for context in known)

    async def forward(attempt: Attempt) -> None:
        for context in known:
            await context.record(attempt)

    return CallContext(
        priority=max(context.priority for context in known),
        deadline=deadline,
        has_alternatives=alternatives,
        listeners=[forward],
        cache=known[0].cache,  # part of the batch key: the same for every caller
    )


def _fail(parts: Sequence[_Part], error: BaseException) -> None:
    """Give every part still waiting its own copy of ``error``."""
    for part in parts:
        if not part.future.done():
            part.future.set_exception(_copy_error(error))


def _copy_error(error: BaseException) -> BaseException:
    """A copy of ``error`` with the same cause and traceback.

    Each caller gets its own object: layers above write on errors (``attempts``) and
    every ``raise`` extends the traceback of the object raised.
    """
    try:
        clone = copy.copy(error)
    except Exception:
        return error  # an exception type that cannot be copied: shared, still typed
    clone.__cause__ = error.__cause__
    clone.__context__ = error.__context__
    clone.__suppress_context__ = error.__suppress_context__
    return clone.with_traceback(error.__traceback__)


def _resolve(part: _Part, response: ModelEmbeddingResponse) -> None:
    if not part.future.done():
        part.future.set_result(response)


def _expand(
    texts: Sequence[str], distinct: Sequence[str], vectors: Sequence[list[float]]
) -> list[list[float]]:
    """The vector of every text in ``texts`` from those of its ``distinct`` texts.

    A repeated text gets a copy: callers own their vectors and may change them in place.
    """
    position = {text: i for i, text in enumerate(distinct)}
    given: set[str] = set()
    out: list[list[float]] = []
    for text in texts:
        vector = vectors[position[text]]
        if text in given:
            vector = list(vector)
        else:
            given.add(text)
        out.append(vector)
    return out


def _share(
    response: ModelEmbeddingResponse, vectors: Sequence[list[float]], parts: Sequence[_Part]
) -> None:
    """Hand each part its ``vectors`` (in order) and its share of the usage and cost."""
    weights = [part.tokens for part in parts]
    usages = _split_usage(response.usage, weights)
    total = sum(weights)
    cost = response.cost
    offset = 0
    for part, usage, weight in zip(parts, usages, weights, strict=True):
        count = len(part.texts)
        mine = list(vectors[offset : offset + count])
        offset += count
        if part.future.done():
            continue  # its caller went away
        share = response.model_copy(
            update={
                "embeddings": mine,
                "usage": usage,
                "cost": None if cost is None else cost * weight / total,
                "attempts": list(response.attempts),
                "raw": dict(response.raw),
            }
        )
        part.future.set_result(share)


def _split_usage(usage: Usage, weights: Sequence[int]) -> list[Usage]:
    """``usage`` split in proportion to ``weights``, each field summing exactly to its total."""
    columns = {name: _largest_remainder(getattr(usage, name), weights) for name in _USAGE_FIELDS}
    return [
        Usage(**{name: columns[name][i] for name in _USAGE_FIELDS}) for i in range(len(weights))
    ]


def _largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Whole shares of ``total`` proportional to ``weights`` that add up to ``total``."""
    weight_sum = sum(weights)
    if not total or not weight_sum:
        return [0] * len(weights)
    exact = [total * weight / weight_sum for weight in weights]
    shares = [math.floor(value) for value in exact]
    left = total - sum(shares)
    # The largest fractional parts get the units left over; ties go to the earlier caller.
    order = sorted(range(len(weights)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def _joined(results: Sequence[ModelEmbeddingResponse]) -> ModelEmbeddingResponse:
    """One response from the responses to the chunks of a call, in order."""
    first = results[0]
    usage = Usage(**{name: sum(getattr(r.usage, name) for r in results) for name in _USAGE_FIELDS})
    costs = [r.cost for r in results]
    embeddings: list[list[float]] = []
    attempts: list[Any] = []
    for result in results:
        embeddings.extend(result.embeddings)
        attempts.extend(result.attempts)
    return first.model_copy(
        update={
            "embeddings": embeddings,
            "usage": usage,
            "cost": None if None in costs else sum(c for c in costs if c is not None),
            "attempts": attempts,
        }
    )
