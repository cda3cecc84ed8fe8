"""The response cache layer: exact-match answers from a ``CacheBackend``.

Off unless turned on (silently cached model output surprises people): ``enabled(model)``
says what the configuration wants for a model, and the call's ``CacheControl`` (set by
the service from the caller's arguments) overrides it, and may skip the read, skip the
write or set its own ttl.

* ``complete`` and ``stream`` share one entry per request (see ``aiport._cache._keys``):
  a hit on a stream is replayed as stream events (text in word-sized deltas, tool-call
  deltas and tool calls, usage) ending with the same final response; a stream that
  misses is relayed as it comes and its final response stored.
* ``embed`` caches one entry per input text, so only the texts never seen go upstream,
  in one request, and the vectors come back in input order. Usage and cost are those of
  the request actually sent (zero for a call served entirely from the cache).
* ``generate_image`` is never cached: asking again is how one gets another image, the
  answers are large binaries that would crowd everything else out of a size-bounded
  cache, and URL results expire upstream (a cached URL would later point at nothing).

Errors are never cached (nor responses that finished with ``"error"``). A backend in
trouble never fails a call: a failed read is a miss, a failed write is skipped.

A hit is the stored response with ``latency`` set to the time the hit took; ``stats``
counts hits and misses (the shared types carry no cache flag), and each is logged at
DEBUG with the key (a digest: nothing of the request or the caller is in it).

Stored values are the response as JSON (``attempts`` left out: they describe the call
that produced it), behind a small header with the expiry time, checked with ``clock``,
so expiry is exact whatever the backend's own timer (and tests can move the clock).
"""

from __future__ import annotations

import logging
import struct
import sys
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from aiport._cache._keys import UncacheableRequestError, completion_key, embedding_keys
from aiport._cache._replay import replay_events
from aiport._context import HandingOnStream, current_call
from aiport._errors import MalformedResponseError
from aiport._provider import ModelProvider, ProviderLayer
from aiport._replace import replaced
from aiport._types import (
    ModelCompletionResponse,
    ModelEmbeddingResponse,
    StreamFinishEvent,
    Usage,
)

if TYPE_CHECKING:
    from aiport._cache._base import CacheBackend
    from aiport._types import ModelCompletionOptions, ModelEmbeddingOptions, StreamEvent

__all__ = ["CacheLayer", "CacheStats"]

logger = logging.getLogger("aiport")

#: Value header: a magic tag (format version) and the expiry time (seconds, ``clock``).
_HEADER = struct.Struct("<4sd")
_MAGIC = b"apc1"
#: Decoded responses remembered per layer, and the largest stored value remembered (a
#: bound on the memory they hold besides the backend's own: at most 16 MB).
_MAX_DECODED = 256
_MAX_DECODED_BYTES = 64 * 1024


@dataclass(slots=True)
class CacheStats:
    """What the cache did. An embedding counts one lookup per input text.

    Attributes:
        hits: lookups answered from the cache.
        misses: lookups that found nothing (or an expired or unreadable entry).
        writes: entries stored.
        skipped: calls that did not use the cache (disabled, or a request with no
            canonical form).
        errors: backend operations that failed (the call went on without them).
    """

    hits: int = 0
    misses: int = 0
    writes: int = 0
    skipped: int = 0
    errors: int = 0


@dataclass(frozen=True, slots=True)
class _Policy:
    read: bool
    write: bool
    ttl: float


class CacheLayer(ProviderLayer):
    """Answers repeated requests from a cache (see the module docs).

    Args:
        inner: the provider to cache (the service puts the cache outside the retries,
            so a hit costs no rate-limit token and no retry bookkeeping).
        backend: where entries live (``MemoryCache``, ``SQLiteCache``, ``RedisCache``).
        ttl: seconds an entry stays valid unless the call sets its own.
        enabled: whether the configuration caches a model (``model`` as sent to the
            provider); the call's ``CacheControl.enabled`` overrides it.
        scope: the caller's identity, already digested (``scope_digest(provider,
            api_key)``), or an async callable returning it (for a key resolved
            lazily). Hashed into every key, never stored.
        clock: wall-clock seconds for expiry (shared backends compare across processes).
        timer: a monotonic clock for the ``latency`` of hits.
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        backend: CacheBackend,
        ttl: float,
        enabled: Callable[[str], bool],
        scope: str | Callable[[], Awaitable[str]],
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(inner)
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl}")
        self.backend = backend
        self.ttl = ttl
        self.enabled = enabled
        self._scope = scope
        self.clock = clock
        self.timer = timer
        self.stats = CacheStats()
        self._warned = False
        # Per key: the stored value last decoded and its response, for backends whose
        # ``get`` returns the stored object itself (``shares_values``); a value written
        # since is another object, so a stale entry is never used.
        self._shares_values = bool(getattr(backend, "shares_values", False))
        self._decoded: dict[str, tuple[bytes, ModelCompletionResponse]] = {}
        # The policy of a call without a cache control of its own (the common case),
        # made once: it depends only on ``ttl``.
        self._default_policy = _Policy(True, True, ttl)

    def _remember(self, key: str, value: bytes, response: ModelCompletionResponse) -> None:
        if len(value) > _MAX_DECODED_BYTES:
            return  # large answers are rare; keeping them twice is not worth it
        decoded = self._decoded
        decoded.pop(key, None)
        if len(decoded) >= _MAX_DECODED:
            del decoded[next(iter(decoded))]  # the oldest remembered
        decoded[key] = (value, response)

    # ------------------------------------------------------------------ policy

    def _policy(self, model: str) -> _Policy | None:
        """How this call uses the cache; ``None``: not at all."""
        context = current_call()
        control = context.cache if context is not None else None
        if control is None:
            return self._default_policy if self.enabled(model) else None
        enabled = control.enabled if control.enabled is not None else self.enabled(model)
        ttl = control.ttl if control.ttl is not None else self.ttl
        write = control.write and ttl > 0
        if not enabled or not (control.read or write):
            return None
        return _Policy(control.read, write, ttl)

    async def _scope_value(self) -> str:
        return self._scope if isinstance(self._scope, str) else await self._scope()

    # ------------------------------------------------------------------ backend access

    def _failed(self, operation: str, exc: Exception) -> None:
        """A backend error: counted, logged (WARNING once, then DEBUG), never raised."""
        self.stats.errors += 1
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(
            level,
            "aiport cache: %s on %r failed (%s); the call goes on without the cache",
            operation,
            self.backend,
            type(exc).__name__,
        )

    def _open(self, value: bytes | None, *, copy: bool = True) -> bytes | None:
        """The payload of a stored value, or ``None`` when absent, expired or foreign
        (``copy=False``: only the check, an empty ``bytes`` when it passes)."""
        if value is None or len(value) < _HEADER.size:
            return None
        magic, expires = _HEADER.unpack_from(value)
        if magic != _MAGIC or expires <= self.clock():
            return None
        return value[_HEADER.size :] if copy else b""

    def _seal(self, payload: bytes, ttl: float) -> bytes:
        return _HEADER.pack(_MAGIC, self.clock() + ttl) + payload

    async def _write(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        sealed = [(key, self._seal(payload, ttl)) for key, payload in items]
        try:
            if len(sealed) == 1:
                await self.backend.set(sealed[0][0], sealed[0][1], ttl)
            else:
                await self.backend.set_many(sealed, ttl)
        except Exception as exc:
            self._failed("set", exc)
            return
        self.stats.writes += len(sealed)

    def _log(self, outcome: str, key: str, model: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("aiport cache %s: %s:%s %s", outcome, self.name, model, key)

    # ------------------------------------------------------------------ completions

    async def _completion_key(self, options: ModelCompletionOptions) -> str | None:
        try:
            return completion_key(options, await self._scope_value())
        except UncacheableRequestError as exc:
            self.stats.skipped += 1
            logger.debug("aiport cache: request not cached (%s)", exc)
            return None

    async def _lookup(self, key: str, model: str) -> ModelCompletionResponse | None:
        """The stored response for ``key``: a fresh top-level object the caller may change
        (its nested values are shared with the next hits of the same entry)."""
        try:
            value = await self.backend.get(key)
        except Exception as exc:
            self._failed("get", exc)
            value = None
        response: ModelCompletionResponse | None = None
        known = self._decoded.get(key) if value is not None else None
        if known is not None and known[0] is value:
            # The very bytes decoded last time (a backend that shares its values): if
            # still valid, the same response, without copying or validating the JSON.
            if self._open(value, copy=False) is not None:
                response = replaced(known[1], {})
        elif (payload := self._open(value)) is not None:
            try:
                decoded = ModelCompletionResponse.model_validate_json(payload)
            except ValidationError:  # written by another version: a miss, overwritten
                decoded = None
            if decoded is not None:
                response = replaced(decoded, {})
                if self._shares_values and value is not None:
                    self._remember(key, value, decoded)
        if response is None:
            self.stats.misses += 1
            self._log("miss", key, model)
        else:
            self.stats.hits += 1
            self._log("hit", key, model)
        return response

    async def _store(self, key: str, response: ModelCompletionResponse, ttl: float) -> None:
        if response.finish_reason == "error":
            return
        try:
            payload = replaced(response, {"attempts": []}).model_dump_json().encode()
        except ValueError as exc:  # something in ``raw`` with no JSON form: not cached
            logger.debug("aiport cache: response not stored (%s)", type(exc).__name__)
            return
        await self._write([(key, payload)], ttl)

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """A cached response when there is one, else the provider's (then stored)."""
        policy = self._policy(options.model)
        key = await self._completion_key(options) if policy is not None else None
        if policy is None or key is None:
            if policy is None:
                self.stats.skipped += 1
            return await self.inner.complete(options)
        start = self.timer()
        if policy.read:
            cached = await self._lookup(key, options.model)
            if cached is not None:
                # A fresh object nobody else holds: set its latency in place rather than
                # pay for a copy (a quarter of a memory hit's time).
                object.__setattr__(cached, "latency", self.timer() - start)
                return cached
        response = await self.inner.complete(options)
        if policy.write:
            await self._store(key, response, policy.ttl)
        return response

    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """A cached response replayed as events, or the provider's stream (then stored).

        The call's cache control is read at the first ``anext``, like every layer. When
        the call does not use the cache, the provider's own events are handed on: no
        generator of this layer sits between them and the caller.
        """
        return _CacheStream(self, options)

    async def _cached_stream(
        self, options: ModelCompletionOptions, policy: _Policy, key: str | None
    ) -> AsyncIterator[StreamEvent]:
        """The stream of a call that uses the cache (``key`` is None: no canonical form)."""
        start = self.timer()
        if key is not None and policy.read:
            cached = await self._lookup(key, options.model)
            if cached is not None:
                for replayed in replay_events(cached):
                    if isinstance(replayed, StreamFinishEvent):
                        final = replaced(cached, {"latency": self.timer() - start})
                        yield StreamFinishEvent(response=final)
                    else:
                        yield replayed
                return
        events = self.inner.stream(options)
        try:
            async for event in events:
                if key is not None and policy.write and isinstance(event, StreamFinishEvent):
                    # Stored before the caller sees the end: a caller that stops
                    # reading right after it still leaves the answer cached.
                    await self._store(key, event.response, policy.ttl)
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    # ------------------------------------------------------------------ embeddings

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Vectors from the cache where known; the other texts in one upstream request."""
        policy = self._policy(options.model)
        if policy is None:
            self.stats.skipped += 1
            return await self.inner.embed(options)
        try:
            keys = embedding_keys(options, await self._scope_value())
        except UncacheableRequestError:
            self.stats.skipped += 1
            return await self.inner.embed(options)
        start = self.timer()
        vectors: list[list[float] | None] = [None] * len(keys)
        if policy.read:
            try:
                stored = await self.backend.get_many(keys)
            except Exception as exc:
                self._failed("get_many", exc)
                stored = [None] * len(keys)
            vectors = [_unpack_vector(self._open(value)) for value in stored]
        # Texts to send, each once however often it occurs, with the positions it fills.
        wanted: dict[str, list[int]] = {}
        for index, (text, vector) in enumerate(zip(options.input, vectors, strict=True)):
            if vector is None:
                wanted.setdefault(text, []).append(index)
        missing = sum(len(positions) for positions in wanted.values())
        self.stats.hits += len(keys) - missing
        if policy.read:
            self.stats.misses += missing
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "aiport cache embed: %s:%s %d hit(s), %d miss(es)",
                self.name,
                options.model,
                len(keys) - missing,
                missing,
            )
        if not wanted:
            return self._embedding_from_cache(options, vectors, start)
        texts = list(wanted)
        request = options if texts == options.input else options.model_copy(update={"input": texts})
        response = await self.inner.embed(request)
        if len(response.embeddings) != len(texts):
            raise MalformedResponseError(
                f"{self.name} answered {len(response.embeddings)} vectors for {len(texts)} texts",
                provider=self.name,
                model=options.model,
                request_id=response.request_id,
            )
        fresh: list[tuple[str, bytes]] = []
        for text, vector in zip(texts, response.embeddings, strict=True):
            for index in wanted[text]:
                vectors[index] = vector
            if policy.write:
                fresh.append((keys[wanted[text][0]], _pack_vector(vector)))
        if fresh:
            await self._write(fresh, policy.ttl)
        if request is options:
            return response
        return response.model_copy(update={"embeddings": vectors, "latency": self.timer() - start})

    def _embedding_from_cache(
        self,
        options: ModelEmbeddingOptions,
        vectors: list[list[float] | None],
        start: float,
    ) -> ModelEmbeddingResponse:
        """A response made of cached vectors only: nothing was sent, nothing spent."""
        usage = Usage()
        row = self.models.get(options.model)
        return ModelEmbeddingResponse(
            model=options.model,
            provider=self.name,
            embeddings=[v for v in vectors if v is not None],
            usage=usage,
            latency=self.timer() - start,
            cost=row.cost(usage) if row is not None else None,
        )

    # generate_image: inherited pass-through (see the module docs for why).


class _CacheStream(HandingOnStream["StreamEvent"]):
    """What ``CacheLayer.stream`` returns: it decides at the first ``anext`` (when the
    call context is current) and then hands on the items of either the provider's stream
    (cache not used) or the caching generator (see ``HandingOnStream``)."""

    __slots__ = ("_events", "_layer", "_options")

    def __init__(self, layer: CacheLayer, options: ModelCompletionOptions) -> None:
        super().__init__()
        self._layer = layer
        self._options = options
        self._events: AsyncIterator[StreamEvent] | None = None

    async def _first(self) -> StreamEvent:
        layer, options = self._layer, self._options
        try:
            policy = layer._policy(options.model)
            if policy is None:
                layer.stats.skipped += 1
                events = layer.inner.stream(options)
            else:
                key = await layer._completion_key(options)
                events = layer._cached_stream(options, policy, key)
        except BaseException:
            self._next = _ended
            raise
        self._events = events
        self._next = events.__anext__
        return await events.__anext__()

    async def aclose(self) -> None:
        """Close the stream this one hands on (releasing its connection)."""
        self._next = _ended
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


async def _ended() -> StreamEvent:
    raise StopAsyncIteration


def _pack_vector(vector: Sequence[float]) -> bytes:
    """Float64, little-endian: exact (a float32 would change the vectors) and compact."""
    packed = array("d", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack_vector(payload: bytes | None) -> list[float] | None:
    if not payload or len(payload) % 8:
        return None
    vector = array("d")
    vector.frombytes(payload)
    if sys.byteorder == "big":
        vector.byteswap()
    return vector.tolist()
