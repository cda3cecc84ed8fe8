"""An incremental Server-Sent Events decoder (WHATWG "event stream" rules).

Hand-written on purpose (see docs/decisions.md): the available SSE packages wrap a
particular HTTP client (httpx-sse) or own the connection (aiohttp-sse-client); we only
need to turn byte chunks into events, and doing it here keeps it about a microsecond per
event: each chunk's complete lines are decoded in one go and split once, ``data:`` lines
(nearly all of them) are handled inline, and an event is a named tuple (a frozen
dataclass cost three times as much to build).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEDecoder", "ServerSentEvent"]


class ServerSentEvent(NamedTuple):
    """One event: its ``event`` name (``"message"`` when unnamed) and ``data`` text."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


#: Builds a ``ServerSentEvent`` from its four fields without the generated ``__new__``
#: (a Python function): one per event, so the direct tuple construction is worth it.
_event_of = tuple.__new__


class SSEDecoder:
    """Feed it byte chunks as they arrive; it returns the events they complete.

    Lines may end in ``\\n``, ``\\r\\n`` or ``\\r``, and chunks may split anywhere,
    even inside a UTF-8 character or between ``\\r`` and ``\\n``.
    """

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        # The data lines of the event being read; None until its first data line.
        self._data: list[str] | None = None
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
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[end + 1 :]
        # "\n" never occurs inside a UTF-8 sequence, so decoding the complete lines at
        # once gives what decoding them one by one would.
        return self._lines(buffer[:end].decode("utf-8", errors="replace").split("\n"))

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: an event without its closing blank line is still returned.

        The standard says to drop it; providers that close right after the last
        ``data:`` line exist, and dropping their final event would lose the answer.
        """
        lines = [""]
        if self._buffer:
            rest = self._buffer.rstrip(b"\r")
            self._buffer = b""
            if rest:
                lines.insert(0, rest.decode("utf-8", errors="replace"))
        return self._lines(lines)

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if not line:
                # A blank line ends the event; one without data lines dispatches nothing.
                if data is not None:
                    events.append(
                        _event_of(
                            ServerSentEvent,
                            (self._event or "message", "\n".join(data), self._id, self._retry),
                        )
                    )
                    data = None
                self._event = ""
            elif line.startswith("data:"):
                value = line[6:] if line[5:6] == " " else line[5:]
                if data is None:
                    data = [value]
                else:
                    data.append(value)
            elif line == "data":
                if data is None:
                    data = [""]
                else:
                    data.append("")
            else:
                self._field(line)
        self._data = data
        return events

    def _field(self, line: str) -> None:
        """A line that is neither blank nor a data line: a comment or another field."""
        if line[0] == ":":
            return  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
