"""The context of one call, shared by the layers that serve it.

Options describe *what* to ask the model; the call context carries *how* the service
runs the call: its priority in rate-limit queues, its deadline, whether another
deployment could take over (then a silent route is not waited on twice), and the record
of every attempt made. The service opens a context per call; layers read it with
``current_call()``. A ``ContextVar`` (not module state): each task sees its own call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aiport._types import Attempt

T = TypeVar("T")

__all__ = [
    "CacheControl",
    "CallContext",
    "HandingOnStream",
    "call_scope",
    "continuation",
    "current_call",
    "scoped_stream",
]


@dataclass(frozen=True, slots=True)
class CacheControl:
    """Per-call control of the response cache.

    Attributes:
        enabled: use the cache for this call (``None``: as configured).
        read: look for a cached answer.
        write: store the answer.
        ttl: seconds the stored answer stays valid (``None``: the configured ttl).
    """

    enabled: bool | None = None
    read: bool = True
    write: bool = True
    ttl: float | None = None


@dataclass(slots=True)
class CallContext:
    """How the service runs one call.

    Attributes:
        priority: higher is served first by rate-limit queues (FIFO within a priority).
        deadline: ``time.monotonic()`` value after which no new attempt starts.
        has_alternatives: another deployment or fallback can take over after a failure.
        attempts: every attempt made so far, in order.
        listeners: called with each attempt as it is recorded (hooks, circuit breakers).
        cache: the caller's cache control for this call, if any.
        preflight: run the catalogue's preflight checks for this call (``None``: as
            configured).
    """

    priority: int = 0
    deadline: float | None = None
    has_alternatives: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    listeners: list[Callable[[Attempt], Awaitable[None] | None]] = field(default_factory=list)
    cache: CacheControl | None = None
    preflight: bool | None = None

    async def record(self, attempt: Attempt) -> None:
        """Add ``attempt`` to the record and tell the listeners (plain or async)."""
        self.attempts.append(attempt)
        for listener in self.listeners:
            result = listener(attempt)
            if inspect.isawaitable(result):
                await result


_CURRENT: ContextVar[CallContext | None] = ContextVar("aiport_call", default=None)


def current_call() -> CallContext | None:
    """The context of the call being served, if any."""
    return _CURRENT.get()


class _CallScope:
    """What ``call_scope`` returns: a plain context manager (every call enters one, and a
    class costs a fraction of a ``contextlib.contextmanager`` generator)."""

    __slots__ = ("_context", "_token")

    def __init__(self, context: CallContext) -> None:
        self._context = context
        self._token: Token[CallContext | None] | None = None

    def __enter__(self) -> CallContext:
        self._token = _CURRENT.set(self._context)
        return self._context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


def call_scope(context: CallContext) -> AbstractContextManager[CallContext]:
    """Make ``context`` current for the code inside the ``with`` block."""
    return _CallScope(context)


class HandingOnStream(AsyncIterator[T]):
    """A stream that makes its first item itself and then only hands on another stream's.

    ``_first`` (a subclass's) produces the first item and sets ``_next`` to the other
    stream's ``__anext__``; from then on ``__anext__`` returns those awaitables as they
    are: no generator of its own between an item and the caller (each generator on the
    way costs a resumption per item, and a stream event passes through every layer).
    ``continuation`` lets a consumer skip such a stream altogether after its first item.
    """

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next: Callable[[], Awaitable[T]] | None = None

    def __aiter__(self) -> HandingOnStream[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        following = self._next
        if following is not None:
            return following()
        return self._first()

    async def _first(self) -> T:
        raise NotImplementedError


def continuation(events: AsyncIterator[T]) -> Callable[[], Awaitable[T]]:
    """What gives the items of ``events`` after its first: ``events.__anext__``, or, past
    every ``HandingOnStream`` that only hands on another stream's items, that stream's
    (one Python call less per item for each). Call it once the first item was taken; the
    consumer still closes ``events`` itself (closing is never skipped)."""
    following: Callable[[], Awaitable[T]] = events.__anext__
    current: object = events
    while isinstance(current, HandingOnStream):
        handed = current._next
        if handed is None:
            break
        following = handed
        current = getattr(handed, "__self__", None)
    return following


class ScopedStream(HandingOnStream[T]):
    """What ``scoped_stream`` returns: ``events`` with a context current for its first item,
    then ``events``' own items handed on (see ``HandingOnStream``)."""

    __slots__ = ("_context", "_events")

    def __init__(self, context: CallContext, events: AsyncIterator[T]) -> None:
        super().__init__()
        self._context = context
        self._events = events

    async def _first(self) -> T:
        with call_scope(self._context):
            item = await anext(self._events)
        self._next = self._events.__anext__
        return item

    async def aclose(self) -> None:
        """Close ``events`` (when it can be closed: async generators can)."""
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()


def scoped_stream(context: CallContext, events: AsyncIterator[T]) -> ScopedStream[T]:
    """Iterate ``events`` with ``context`` current while its first item is produced.

    A stream's layers read ``current_call()`` when they start, that is during the first
    ``anext``; keeping the variable set across a ``yield`` would leak it into the
    consumer's context (and fail to reset when the consumer iterates from several tasks,
    as the sync API does).
    """
    return ScopedStream(context, events)
