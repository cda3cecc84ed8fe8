"""An incremental Server-Sent Events decoder (WHATWG "event stream" rules).

Hand-written on purpose (see docs/decisions.md): the available SSE packages wrap a
particular HTTP client (httpx-sse) or own the connection (aiohttp-sse-client); we only
need to turn byte chunks into events, and doing it here keeps it a few microseconds per
event.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event: its ``event`` name (``"message"`` when unnamed) and ``data`` text."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed it byte chunks as they arrive; it returns the events they complete.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, and chunks may split anywhere,
    even inside a UTF-8 character or between ``\\r`` and ``\\n``.
    """

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_saw_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._saw_data = False
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode ``chunk``; return the events completed by it, in order."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # A trailing "\r" may be the first half of "\r\n": keep it for the next chunk.
            keep_cr = buffer.endswith(b"\r")
            if keep_cr:
                buffer = buffer[:-1]
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if keep_cr:
                buffer += b"\r"
        events: list[ServerSentEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            event = self._line(buffer[start:end].decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = end + 1
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: an event without its closing blank line is still returned.

        The standard says to drop it; providers that close right after the last
        ``data:`` line exist, and dropping their final event would lose the answer.
        """
        events: list[ServerSentEvent] = []
        if self._buffer:
            rest = self._buffer.rstrip(b"\r")
            self._buffer = b""
            if rest:
                event = self._line(rest.decode("utf-8", errors="replace"))
                if event is not None:
                    events.append(event)
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._saw_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._saw_data:
            self._event = ""
            return None
        event = ServerSentEvent(
            event=self._event or "message",
            data="\n".join(self._data),
            id=self._id,
            retry=self._retry,
        )
        self._event = ""
        self._data = []
        self._saw_data = False
        return event
