"""Several API keys of one provider: which key each attempt uses, and another one at once.

``KeyRotationLayer`` sits between the retry layer and the rate-limit layer of a provider
whose ``api_keys`` hold two keys or more (a :class:`~aiport._credentials.KeyPool`). For
every attempt the retry layer makes, it:

1. asks the pool for the keys to prefer, in order (round-robin: the next turn; failover:
   configured order), leaving out keys set aside or resting;
2. makes them current as a :class:`~aiport._credentials.KeySelection`: the rate-limit
   layer takes the first with room in its buckets, and the adapter's credential (the pool)
   hands out the key chosen;
3. when the provider refuses the key (``ProviderAuthError``: 401/403) or rate-limits it
   (``ProviderRateLimitError`` from a 429), sets the key aside (for
   :data:`~aiport._credentials.SET_ASIDE_SECONDS`) or lets it rest (until its Retry-After),
   and sends the request again at once with the next usable key. Only when no key is left
   does the error reach the retry layer, which then applies the ordinary policy: a
   ``ProviderRateLimitError`` carries ``retry_after`` = the soonest a key is usable again,
   and its message lists the keys tried, by fingerprint.

Errors aiport's own limiter raises (``local_rate_limit``, ``limiter_unavailable``) and
every other failure pass through unchanged: another key would not change them. A rate
limit that waiting does not fix (``retryable=False``, e.g. an exhausted quota) sets the
key aside like a refusal. Streams switch keys only before their first event.

Each change of a key's state is logged (WARNING for a key set aside, INFO for a rest) and
sent to the ``Hooks.on_key`` hooks as a :class:`~aiport.layers._hooks.KeyEvent`; the key
a call used is recorded for the hooks layer (``ResponseEvent.key``, ``ErrorEvent.key``).
Keys appear only as fingerprints (:func:`~aiport._credentials.key_fingerprint`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from aiport._credentials import (
    KeyPool,
    KeySelection,
    PooledKey,
    current_key_use,
    selecting,
)
from aiport._errors import ProviderAuthError, ProviderError, ProviderRateLimitError
from aiport._provider import ModelProvider, ProviderLayer
from aiport.layers._hooks import Hooks, KeyEvent

if TYPE_CHECKING:
    from aiport._types import (
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        StreamEvent,
    )

__all__ = ["ALL_KEYS_RESTING", "KeyRotationLayer"]

#: ``reason`` of the ``ProviderRateLimitError`` raised, without sending anything, when
#: every key of the provider is resting after a 429.
ALL_KEYS_RESTING = "api_keys_resting"
#: Reasons of rate-limit errors made by aiport itself: another key changes nothing.
_LOCAL_REASONS = frozenset({"local_rate_limit", "limiter_unavailable"})
#: A token provider failing is not about a key.
_NOT_ABOUT_THE_KEY = frozenset({"token_refresh_failed"})

_T = TypeVar("_T")


class _Call:
    """The keys one call tried, and how each failed."""

    __slots__ = ("failures", "order", "tried")

    def __init__(self, pool: KeyPool) -> None:
        self.order = pool.order()
        self.tried: set[PooledKey] = set()
        self.failures: list[tuple[PooledKey, ProviderError]] = []


async def _aclose(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class KeyRotationLayer(ProviderLayer):
    """Uses the keys of ``pool`` in turn, and another one at once after a refusal.

    Args:
        inner: the provider below (the rate-limit layer, built with ``per_key=True``).
        pool: the provider's keys (the same object the adapter was given as credential).
        hooks: where ``KeyEvent``s go (the service's hooks).
        logger: where key changes are logged (``logging.getLogger("aiport")``).
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        pool: KeyPool,
        hooks: Hooks | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(inner)
        self.pool = pool
        self.hooks = hooks if hooks is not None else Hooks()
        self._logger = logger or logging.getLogger("aiport")

    # ------------------------------------------------------------------ choosing

    async def _select(self, call: _Call, model: str) -> KeySelection:
        """The keys of the next attempt; raises when none is left."""
        selection = self.pool.select(call.order, call.tried)
        if selection is None:
            raise self._exhausted(call, model)
        if selection.last_resort:
            await selection.narrow_to_replaced()
        return selection

    async def _failed(
        self, call: _Call, selection: KeySelection, model: str, error: ProviderError
    ) -> bool:
        """Mark the key of a failed attempt; whether another key should be tried now."""
        await self._report_unresolved(selection, model)
        key = selection.chosen
        if key is None:
            # No candidate resolved (each is set aside now): try the others, if any.
            if not isinstance(error, ProviderAuthError):
                return False
            call.tried.update(selection.candidates)
            call.failures.extend(selection.unresolved)
            return True
        self._record_use(key)
        if isinstance(error, ProviderAuthError):
            if error.reason in _NOT_ABOUT_THE_KEY:
                return False
            await self._changed(key, model, "set_aside", self.pool.set_aside(key), error)
        elif isinstance(error, ProviderRateLimitError):
            if error.reason in _LOCAL_REASONS:
                return False
            if error.retryable:
                rest = self.pool.rest(key, error.retry_after)
                await self._changed(key, model, "resting", rest, error)
            else:  # waiting will not help (an exhausted quota): like a refusal
                await self._changed(key, model, "set_aside", self.pool.set_aside(key), error)
        else:
            return False
        call.tried.add(key)
        call.failures.append((key, error))
        return True

    async def _served(self, selection: KeySelection, model: str) -> None:
        await self._report_unresolved(selection, model)
        key = selection.chosen
        if key is not None:
            self.pool.served(key)
            self._record_use(key)

    async def _report_unresolved(self, selection: KeySelection, model: str) -> None:
        """Tell of the candidates set aside because their reference did not resolve."""
        for key, problem in selection.unresolved:
            await self._changed(key, model, "set_aside", self.pool.set_aside_seconds, problem)

    @staticmethod
    def _record_use(key: PooledKey) -> None:
        use = current_key_use()
        if use is not None:
            use.key = key.label

    def _exhausted(self, call: _Call, model: str) -> ProviderError:
        """The error of a call no key is left for.

        The last failure, unless a key rests: then a rate-limit error (the last 429, or a
        new one when nothing was sent) with ``retry_after`` = the soonest rest, so the
        retry layer can wait for it. The message lists the keys tried.
        """
        soonest = self.pool.soonest_rest()
        error: ProviderError | None = call.failures[-1][1] if call.failures else None
        if soonest is not None:
            limited = [
                e for _, e in call.failures if isinstance(e, ProviderRateLimitError) and e.retryable
            ]
            if limited:
                error = limited[-1]
            else:
                error = ProviderRateLimitError(
                    f"{self.name}: every API key is resting after a rate limit; the first "
                    f"is usable again in {soonest:.2f}s",
                    provider=self.name,
                    model=model,
                    reason=ALL_KEYS_RESTING,
                    retryable=True,
                )
            error.retry_after = soonest
        if error is None:  # pragma: no cover - select() gives a key to a fresh call
            return ProviderAuthError(
                f"provider {self.name!r} has no usable API key", provider=self.name, model=model
            )
        if call.failures:
            tried = ", ".join(f"{key.label} ({_outcome(e)})" for key, e in call.failures)
            others = len(self.pool.keys) - len(call.tried)
            rest = f"; {others} other key{'s' if others != 1 else ''} set aside or resting"
            error.message = f"{error.message} [API keys tried: {tried}{rest if others else ''}]"
            error.args = (error.message,)
        return error

    async def _changed(
        self,
        key: PooledKey,
        model: str,
        state: Literal["set_aside", "resting"],
        seconds: float,
        error: ProviderError,
    ) -> None:
        """Log a key's new state and tell the key hooks."""
        status = f"HTTP {error.status_code}" if error.status_code else error.reason or error.code
        if state == "set_aside":
            self._logger.warning(
                "provider %r: API key %s was refused (%s); set aside for %.0fs",
                self.name,
                key.label,
                status,
                seconds,
            )
        else:
            self._logger.info(
                "provider %r: API key %s was rate-limited (%s); resting %.2fs",
                self.name,
                key.label,
                status,
                seconds,
            )
        if not self.hooks.key:
            return
        event = KeyEvent(
            provider=self.name,
            model=model,
            key=key.label,
            state=state,
            seconds=seconds,
            error_code=str(error.code),
            reason=error.reason,
            status_code=error.status_code,
        )
        for hook in self.hooks.key:
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._logger.warning("aiport hook %r failed on KeyEvent", hook, exc_info=True)

    # ------------------------------------------------------------------ operations

    async def _run(self, model: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        call = _Call(self.pool)
        while True:
            selection = await self._select(call, model)
            try:
                with selecting(selection):
                    result = await operation()
            except ProviderError as error:
                if not await self._failed(call, selection, model, error):
                    raise
                continue
            await self._served(selection, model)
            return result

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        return await self._run(options.model, lambda: self.inner.complete(options))

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        return await self._run(options.model, lambda: self.inner.embed(options))

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        return await self._run(options.model, lambda: self.inner.generate_image(options))

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Stream with one key; before the first event, another key after a refusal."""
        call = _Call(self.pool)
        while True:
            selection = await self._select(call, options.model)
            events = self.inner.stream(options)
            try:
                # Current only while the request is made (the first event), never across
                # a yield: the variable would leak into the consumer's context.
                with selecting(selection):
                    first = await anext(events)
            except StopAsyncIteration:
                await self._served(selection, options.model)
                await _aclose(events)
                return
            except ProviderError as error:
                await _aclose(events)
                if not await self._failed(call, selection, options.model, error):
                    raise
                continue
            except BaseException:
                await _aclose(events)
                raise
            break
        await self._served(selection, options.model)
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await _aclose(events)


def _outcome(error: ProviderError) -> str:
    """How an attempt with a key ended, in a few words (no secret in it)."""
    if error.reason == "credentials_unresolved":
        return "does not resolve"
    what = f"HTTP {error.status_code}" if error.status_code else error.reason or str(error.code)
    if isinstance(error, ProviderRateLimitError) and error.retryable:
        return f"{what}, rate-limited"
    return f"{what}, refused"
