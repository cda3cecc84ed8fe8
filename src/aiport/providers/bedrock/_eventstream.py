"""The AWS event-stream framing (``application/vnd.amazon.eventstream``), decoded as it arrives.

Each message on the wire is::

    total length (uint32) | headers length (uint32) | prelude CRC32 (uint32)
    headers (name length uint8, name, type uint8, value...) | payload | message CRC32 (uint32)

all big-endian; the prelude CRC covers the first 8 bytes and the message CRC every byte
before it. ``EventStreamDecoder`` is pure: it is fed bytes split anywhere and gives the
whole messages they complete.

A message whose prelude checks out but whose body does not (message CRC mismatch,
unreadable headers) is reported as a ``DamagedMessage`` and skipped: its length is known,
so the messages after it still decode. A prelude that fails its CRC, or declares
impossible lengths, leaves no way to find the next message: ``FramingError``.

Why not ``botocore.eventstream.EventStreamBuffer``: it raises on a damaged message
without moving past it (so one bad message ends the stream), and it appends every chunk
to an immutable ``bytes`` (quadratic in the chunks buffered while a large message
arrives). This decoder keeps a ``bytearray`` and skips damaged messages by their length.
"""

from __future__ import annotations

import datetime
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from zlib import crc32

__all__ = [
    "MAX_HEADERS_LENGTH",
    "MAX_PAYLOAD_LENGTH",
    "DamagedMessage",
    "EventMessage",
    "EventStreamDecoder",
    "FramingError",
    "HeaderValue",
]

_PRELUDE = 12  # total length, headers length, prelude CRC
_OVERHEAD = 16  # the prelude and the message CRC
#: The largest headers section and payload the format allows (what AWS SDKs enforce).
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024

HeaderValue = bool | int | bytes | str | datetime.datetime | uuid.UUID

#: Fixed-size header value types: type byte -> struct format.
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q"}


class FramingError(ValueError):
    """The byte stream no longer splits into messages (a prelude is corrupt)."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded message: its headers and its payload bytes."""

    headers: Mapping[str, HeaderValue]
    payload: bytes

    def header(self, name: str) -> str | None:
        """A string header (``:event-type``, ``:message-type``...), or ``None``."""
        value = self.headers.get(name)
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class DamagedMessage:
    """A message that arrived whole but cannot be trusted; it was skipped."""

    reason: str
    length: int


class EventStreamDecoder:
    """Turns bytes, fed in pieces of any size, into event-stream messages.

    ``feed`` returns the messages (and damaged messages) the new bytes completed, in
    order; ``pending`` is how many bytes wait for the rest of their message, so a
    stream that ends with ``pending > 0`` was cut mid-message. A corrupt prelude raises
    ``FramingError``: at once when nothing came before it in the same bytes, else on the
    next ``feed`` or ``finish`` (the whole messages before it are returned first).
    """

    __slots__ = ("_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken: FramingError | None = None

    @property
    def pending(self) -> int:
        """Bytes received that do not form a whole message yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[EventMessage | DamagedMessage]:
        """Add ``data``; return every message it completed.

        Raises ``FramingError`` when a prelude is corrupt (the stream cannot go on).
        """
        if self._broken is not None:
            raise self._broken
        buffer = self._buffer
        buffer += data
        out: list[EventMessage | DamagedMessage] = []
        start = 0
        size = len(buffer)
        while size - start >= _PRELUDE:
            total, headers_length, prelude_crc = struct.unpack_from(">III", buffer, start)
            problem = _prelude_problem(
                buffer[start : start + 8], prelude_crc, total, headers_length
            )
            if problem is not None:
                self._broken = FramingError(problem)
                break
            if size - start < total:
                break
            end = start + total
            (message_crc,) = struct.unpack_from(">I", buffer, end - 4)
            body = bytes(buffer[start : end - 4])
            if crc32(body) != message_crc:
                out.append(DamagedMessage("message checksum mismatch", total))
            else:
                headers_end = _PRELUDE + headers_length
                try:
                    headers = _parse_headers(body[_PRELUDE:headers_end])
                except ValueError as exc:
                    out.append(DamagedMessage(f"unreadable headers ({exc})", total))
                else:
                    out.append(EventMessage(headers, body[headers_end:]))
            start = end
        del buffer[:start]
        if self._broken is not None and not out:
            raise self._broken
        return out

    def finish(self) -> None:
        """At the end of the bytes: raise the ``FramingError`` met after the last messages
        ``feed`` returned, if there was one."""
        if self._broken is not None:
            raise self._broken


def _prelude_problem(
    prelude: bytearray, prelude_crc: int, total: int, headers_length: int
) -> str | None:
    if crc32(prelude) != prelude_crc:
        return "event-stream prelude checksum mismatch"
    payload_length = total - headers_length - _OVERHEAD
    if (
        payload_length < 0
        or headers_length > MAX_HEADERS_LENGTH
        or payload_length > MAX_PAYLOAD_LENGTH
    ):
        return (
            f"event-stream message declares impossible lengths "
            f"(total {total}, headers {headers_length})"
        )
    return None


def _parse_headers(data: bytes) -> dict[str, HeaderValue]:
    """The headers section of one message; ``ValueError`` if it is not well formed."""
    headers: dict[str, HeaderValue] = {}
    pos = 0
    size = len(data)
    try:
        while pos < size:
            name_length = data[pos]
            pos += 1
            name = data[pos : pos + name_length].decode("utf-8")
            pos += name_length
            kind = data[pos]
            pos += 1
            value: HeaderValue
            if kind in (0, 1):
                value = kind == 0
            elif kind in _FIXED:
                fmt = _FIXED[kind]
                (value,) = struct.unpack_from(fmt, data, pos)
                pos += struct.calcsize(fmt)
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, pos)
                pos += 2
                raw = data[pos : pos + length]
                if len(raw) != length:
                    raise ValueError("a header value runs past the headers section")
                pos += length
                value = raw.decode("utf-8") if kind == 7 else bytes(raw)
            elif kind == 8:
                (millis,) = struct.unpack_from(">q", data, pos)
                pos += 8
                value = datetime.datetime.fromtimestamp(millis / 1000, tz=datetime.UTC)
            elif kind == 9:
                raw = data[pos : pos + 16]
                if len(raw) != 16:
                    raise ValueError("a UUID header runs past the headers section")
                pos += 16
                value = uuid.UUID(bytes=bytes(raw))
            else:
                raise ValueError(f"unknown header value type {kind}")
            if not name or pos > size:
                raise ValueError("a header runs past the headers section")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"malformed header ({type(exc).__name__})") from None
    return headers
