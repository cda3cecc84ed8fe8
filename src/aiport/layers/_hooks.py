"""Event hooks and logging: the outermost layer.

Every call emits a ``RequestEvent`` when it starts, then a ``ResponseEvent`` or an
``ErrorEvent`` with its timings. Hooks may be plain functions or coroutines; a hook that
raises is logged and ignored, because observing a call must never break it.

Log lines and events carry metadata only (provider, model, timings, token counts,
error codes), never prompts, outputs or credentials. For a provider with several API keys
(``api_keys``) they name the key a call used by its fingerprint (``key#3f2a9c1e…wxyz``,
see :func:`aiport._credentials.key_fingerprint`), and a ``KeyEvent`` tells when a key is set
aside or rests.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from aiport._credentials import KeyUse, key_use_scope, recording_key_use
from aiport._errors import ProviderError
from aiport._provider import ModelProvider, ProviderLayer

if TYPE_CHECKING:
    from aiport._types import (
        Attempt,
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        StreamEvent,
        Usage,
    )

__all__ = [
    "AttemptEvent",
    "ErrorEvent",
    "Hook",
    "HookEvent",
    "Hooks",
    "HooksLayer",
    "KeyEvent",
    "RequestEvent",
    "ResponseEvent",
]

Operation: TypeAlias = Literal["complete", "stream", "embed", "generate_image"]


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """A call is starting."""

    call_id: int
    operation: Operation
    provider: str
    model: str
    started_at: float  # wall-clock time (time.time())


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """A call succeeded. ``time_to_first_event`` is set for streams."""

    call_id: int
    operation: Operation
    provider: str
    model: str
    latency: float
    usage: Usage | None = None
    finish_reason: str | None = None
    request_id: str | None = None
    time_to_first_event: float | None = None
    #: The fingerprint of the API key that served the call (providers with several keys).
    key: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A call failed with ``error`` (already typed and scrubbed)."""

    call_id: int
    operation: Operation
    provider: str
    model: str
    latency: float
    error: BaseException
    time_to_first_event: float | None = None
    #: The fingerprint of the API key of the last attempt (providers with several keys).
    key: str | None = None


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """An API key of a provider with several keys stopped being chosen for a while.

    ``state`` is ``"set_aside"`` (the provider refused the key: 401/403, an exhausted
    quota, or its reference did not resolve) or ``"resting"`` (a 429: until its
    Retry-After); ``seconds`` says for how long. ``key`` is the key's fingerprint
    (``key#3f2a9c1e…wxyz``), never the key. ``error_code``/``reason``/``status_code``
    describe the answer that caused it.
    """

    provider: str
    model: str
    key: str
    state: Literal["set_aside", "resting"]
    seconds: float
    error_code: str
    reason: str | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    """One attempt of a call ended (retries and fallbacks each make one).

    ``requested_model`` is the model id the caller asked for; ``attempt`` names the
    deployment that was tried, how it ended and how long it waited first.
    """

    requested_model: str
    attempt: Attempt


HookEvent: TypeAlias = RequestEvent | ResponseEvent | ErrorEvent | AttemptEvent | KeyEvent
Hook: TypeAlias = Callable[[Any], "Awaitable[None] | None"]
HookT = TypeVar("HookT", bound=Hook)
ResultT = TypeVar("ResultT")


@dataclass
class Hooks:
    """Callbacks for call events. Use the methods as decorators or call them directly.

    >>> hooks = Hooks()
    >>> @hooks.on_response
    ... def record(event: ResponseEvent) -> None: ...
    """

    request: list[Hook] = field(default_factory=list)
    response: list[Hook] = field(default_factory=list)
    error: list[Hook] = field(default_factory=list)
    attempt: list[Hook] = field(default_factory=list)
    key: list[Hook] = field(default_factory=list)

    def on_request(self, hook: HookT) -> HookT:
        """Call ``hook(RequestEvent)`` when a call starts."""
        self.request.append(hook)
        return hook

    def on_response(self, hook: HookT) -> HookT:
        """Call ``hook(ResponseEvent)`` when a call succeeds."""
        self.response.append(hook)
        return hook

    def on_error(self, hook: HookT) -> HookT:
        """Call ``hook(ErrorEvent)`` when a call fails."""
        self.error.append(hook)
        return hook

    def on_attempt(self, hook: HookT) -> HookT:
        """Call ``hook(AttemptEvent)`` after every attempt (deployment, outcome, wait)."""
        self.attempt.append(hook)
        return hook

    def on_key(self, hook: HookT) -> HookT:
        """Call ``hook(KeyEvent)`` when an API key is set aside or rests (several keys)."""
        self.key.append(hook)
        return hook

    def __bool__(self) -> bool:
        return bool(self.request or self.response or self.error or self.attempt or self.key)


class HooksLayer(ProviderLayer):
    """Emits hook events and log lines around every call of the wrapped provider.

    Args:
        inner: the provider to observe.
        hooks: the callbacks (shared by every provider of a service).
        logger: where log lines go (``logging.getLogger("aiport")`` by default).
        log_level: the level of request/response lines (errors log one level higher).
        clock: a monotonic clock.
        track_keys: the provider has several API keys: events and log lines name the key
            each call used (by fingerprint), as the rotation layer below records it.
    """

    def __init__(
        self,
        inner: ModelProvider,
        *,
        hooks: Hooks | None = None,
        logger: logging.Logger | None = None,
        log_level: int = logging.DEBUG,
        clock: Callable[[], float] = time.perf_counter,
        call_ids: itertools.count[int] | None = None,
        track_keys: bool = False,
    ) -> None:
        super().__init__(inner)
        self._track_keys = track_keys
        self.hooks = hooks if hooks is not None else Hooks()
        self._logger = logger or logging.getLogger("aiport")
        self._level = log_level
        self._error_level = min(log_level + 10, logging.CRITICAL)
        self._clock = clock
        self._call_ids = call_ids if call_ids is not None else itertools.count(1)

    async def _emit(self, hooks: list[Hook], event: HookEvent) -> None:
        for hook in hooks:
            try:
                result = hook(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self._logger.warning(
                    "aiport hook %r failed on %s", hook, type(event).__name__, exc_info=True
                )

    async def _start(self, operation: Operation, model: str) -> tuple[int, float]:
        call_id = next(self._call_ids)
        if self._logger.isEnabledFor(self._level):
            self._logger.log(
                self._level,
                "call %d start: %s %s:%s",
                call_id,
                operation,
                self.name,
                model,
            )
        if self.hooks.request:
            await self._emit(
                self.hooks.request,
                RequestEvent(call_id, operation, self.name, model, time.time()),
            )
        return call_id, self._clock()

    async def _succeeded(self, event: ResponseEvent) -> None:
        if self._logger.isEnabledFor(self._level):
            tokens = (
                f" tokens={event.usage.input_tokens}/{event.usage.output_tokens}"
                if event.usage is not None
                else ""
            )
            self._logger.log(
                self._level,
                "call %d done: %s %s:%s in %.3fs%s%s%s",
                event.call_id,
                event.operation,
                event.provider,
                event.model,
                event.latency,
                tokens,
                f" finish={event.finish_reason}" if event.finish_reason else "",
                f" key={event.key}" if event.key else "",
            )
        if self.hooks.response:
            await self._emit(self.hooks.response, event)

    async def _failed(self, event: ErrorEvent) -> None:
        if self._logger.isEnabledFor(self._error_level):
            error = event.error
            code = getattr(error, "code", type(error).__name__)
            # str(error) of a ProviderError is scrubbed by the adapter that raised it;
            # anything else is described by its type only.
            detail = str(error) if isinstance(error, ProviderError) else type(error).__name__
            self._logger.log(
                self._error_level,
                "call %d failed: %s %s:%s after %.3fs: %s %s%s",
                event.call_id,
                event.operation,
                event.provider,
                event.model,
                event.latency,
                code,
                detail,
                f" key={event.key}" if event.key else "",
            )
        if self.hooks.error:
            await self._emit(self.hooks.error, event)

    async def _observed(
        self,
        operation: Operation,
        model: str,
        call: Callable[[], Awaitable[ResultT]],
    ) -> ResultT:
        """Run ``call`` between a request event and a response or error event."""
        call_id, start = await self._start(operation, model)
        use = KeyUse() if self._track_keys else None
        try:
            if use is None:
                result = await call()
            else:
                with recording_key_use(use):
                    result = await call()
        except Exception as exc:
            await self._failed(
                ErrorEvent(
                    call_id,
                    operation,
                    self.name,
                    model,
                    self._clock() - start,
                    exc,
                    key=use.key if use is not None else None,
                )
            )
            raise
        await self._succeeded(
            ResponseEvent(
                call_id,
                operation,
                self.name,
                model,
                self._clock() - start,
                usage=getattr(result, "usage", None),
                finish_reason=getattr(result, "finish_reason", None),
                request_id=getattr(result, "request_id", None),
                key=use.key if use is not None else None,
            )
        )
        return result

    def _unobserved(self) -> bool:
        """Whether nothing would see this call: no hook that this layer calls, no key to
        name, and no log line (errors log one level higher than the rest, so if that level
        is off, every line is). Then the call goes straight through, at no cost."""
        hooks = self.hooks
        if self._track_keys or hooks.request or hooks.response or hooks.error:
            return False
        if self._logger.isEnabledFor(self._error_level):
            return False
        next(self._call_ids)  # ids still count every call
        return True

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        if self._unobserved():
            return await self.inner.complete(options)
        return await self._observed("complete", options.model, lambda: self.inner.complete(options))

    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        if self._unobserved():
            return self.inner.stream(options)
        return self._observed_stream(options)

    async def _observed_stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        call_id, start = await self._start("stream", options.model)
        first: float | None = None
        finish: StreamEvent | None = None
        use = KeyUse() if self._track_keys else None
        events = self.inner.stream(options)
        if use is not None:
            events = key_use_scope(use, events)
        try:
            async for event in events:
                if first is None:
                    first = self._clock() - start
                if event.type == "finish":
                    finish = event
                yield event
        except Exception as exc:
            await self._failed(
                ErrorEvent(
                    call_id,
                    "stream",
                    self.name,
                    options.model,
                    self._clock() - start,
                    exc,
                    time_to_first_event=first,
                    key=use.key if use is not None else None,
                )
            )
            raise
        response = finish.response if finish is not None and finish.type == "finish" else None
        await self._succeeded(
            ResponseEvent(
                call_id,
                "stream",
                self.name,
                options.model,
                self._clock() - start,
                usage=response.usage if response else None,
                finish_reason=response.finish_reason if response else None,
                request_id=response.request_id if response else None,
                time_to_first_event=first,
                key=use.key if use is not None else None,
            )
        )

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        if self._unobserved():
            return await self.inner.embed(options)
        return await self._observed("embed", options.model, lambda: self.inner.embed(options))

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        if self._unobserved():
            return await self.inner.generate_image(options)
        return await self._observed(
            "generate_image", options.model, lambda: self.inner.generate_image(options)
        )
