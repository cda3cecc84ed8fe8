"""``CompletionStream``: what ``ProviderService.stream`` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    """

    __slots__ = ("_done", "_events", "_response", "_text")

    def __init__(self, events: AsyncIterator[StreamEvent]) -> None:
        self._events = events
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
        except BaseException:
            self._done = True
            await self.aclose()
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
        if close is not None:
            await close()

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
