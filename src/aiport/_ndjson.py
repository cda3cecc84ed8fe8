"""An incremental newline-delimited JSON (NDJSON, ``application/x-ndjson``) line splitter.

Ollama streams one JSON object per line. Chunks from the network split anywhere (inside
a line, inside a UTF-8 character, between ``\\r`` and ``\\n``), so the decoder keeps the
unfinished tail of each chunk for the next one. It only cuts lines: parsing is left to the
caller, which decides what a malformed line means. ``_sse.SSEDecoder`` cuts lines too, but
inside SSE field parsing; the line rule here is simpler (``\\n`` ends a line, one ``\\r``
before it is dropped), so it is written out rather than shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

__all__ = ["NDJSONDecoder", "ndjson_lines"]


class NDJSONDecoder:
    """Feed it byte chunks; it returns the complete, non-blank lines they finish.

    Lines come back as bytes without their ``\\n`` (or ``\\r\\n``) ending, so a UTF-8
    character split between chunks is whole again before anyone decodes it
    (``json.loads`` takes bytes). Blank lines (keep-alives) are skipped.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``, in order."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\n" not in chunk:
            self._buffer = buffer
            return []
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        return [line.removesuffix(b"\r") for line in lines if line.strip()]

    def flush(self) -> list[bytes]:
        """End of stream: the last line, when the server did not end it with ``\\n``."""
        rest, self._buffer = self._buffer, b""
        rest = rest.removesuffix(b"\r")
        return [rest] if rest.strip() else []

    @property
    def pending(self) -> bytes:
        """Bytes received after the last complete line (an unfinished line)."""
        return self._buffer


async def ndjson_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of an NDJSON body given as an async iterator of byte chunks."""
    decoder = NDJSONDecoder()
    async for chunk in chunks:
        for line in decoder.feed(chunk):
            yield line
    for line in decoder.flush():
        yield line
