"""The context of one call, shared by the layers that serve it.

Options describe *what* to ask the model; the call context carries *how* the service
runs the call: its priority in rate-limit queues, its deadline, whether another
deployment could take over (then a silent route is not waited on twice), and the record
of every attempt made. The service opens a context per call; layers read it with
``current_call()``. A ``ContextVar`` (not module state): each task sees its own call.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from aiport._types import Attempt

T = TypeVar("T")

__all__ = ["CacheControl", "CallContext", "call_scope", "current_call", "scoped_stream"]


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
    """

    priority: int = 0
    deadline: float | None = None
    has_alternatives: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    listeners: list[Callable[[Attempt], Awaitable[None] | None]] = field(default_factory=list)
    cache: CacheControl | None = None

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


@contextlib.contextmanager
def call_scope(context: CallContext) -> Iterator[CallContext]:
    """Make ``context`` current for the code inside the ``with`` block."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


async def scoped_stream(context: CallContext, events: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """Iterate ``events`` with ``context`` current while its first item is produced.

    A stream's layers read ``current_call()`` when they start, that is during the first
    ``anext``; keeping the variable set across a ``yield`` would leak it into the
    consumer's context (and fail to reset when the consumer iterates from several tasks,
    as the sync API does).
    """
    with call_scope(context):
        try:
            first = await anext(events)
        except StopAsyncIteration:
            return
    yield first
    async for item in events:
        yield item
