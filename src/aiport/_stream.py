"""``CompletionStream``: what ``ProviderService.stream`` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from aiport._types import ModelCompletionResponse, StreamEvent

__all__ = ["CompletionStream"]


class CompletionStream:
    """An async iterator of ``StreamEvent`` that also closes cleanly.

    Use ``async for event in stream`` directly, or ``async with stream:`` to make sure
    the connection is released when you stop early. After the last event,
    ``response`` holds the complete response; ``text`` is the text received so far.

    ``guard`` (the service passes one) turns an exception escaping the events into the
    error it should be, as its ``__exit__`` would in a ``with`` block around them; it is
    applied here, on the way out, rather than by a generator around the events.
    """

    __slots__ = ("_done", "_events", "_guard", "_response", "_text")

    def __init__(
        self,
        events: AsyncIterator[StreamEvent],
        *,
        guard: AbstractContextManager[None] | None = None,
    ) -> None:
        self._events = events
        self._guard = guard
        self._response: ModelCompletionResponse | None = None
        self._text: list[str] = []
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._done:
            raise StopAsyncIteration
        try:
            event = await anext(self._events)
        except BaseException as exc:
            self._done = True
            await self.aclose()
            if self._guard is not None and not isinstance(exc, StopAsyncIteration):
                self._guard.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if event.type == "text-delta":
            self._text.append(event.text)
        elif event.type == "finish":
            self._response = event.response
        return event

    async def aclose(self) -> None:
        """Stop the stream and release its connection."""
        self._done = True
        close = getattr(self._events, "aclose", None)
        if close is None:
            return
        try:
            await close()
        except BaseException as exc:
            if self._guard is not None:
                self._guard.__exit__(type(exc), exc, exc.__traceback__)
            raise

    async def until_done(self) -> ModelCompletionResponse:
        """Read the rest of the stream and return the complete response."""
        async for _ in self:
            pass
        return self.response

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._text)

    @property
    def response(self) -> ModelCompletionResponse:
        """The complete response (once the stream has finished)."""
        if self._response is None:
            raise RuntimeError("the stream has not finished yet")
        return self._response

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
