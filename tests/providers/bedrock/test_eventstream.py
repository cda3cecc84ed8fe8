"""The event-stream decoder: any split of the bytes decodes the same, damage is detected."""

from __future__ import annotations

import datetime
import itertools
import json
import struct
import uuid
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiport.providers.bedrock._eventstream import (
    DamagedMessage,
    EventMessage,
    EventStreamDecoder,
    FramingError,
)
from aiport.testing._bedrock import AwsEvent, encode_message


def frame(headers: bytes, payload: bytes) -> bytes:
    """A message from raw header bytes (any header types), written from the spec."""
    total = 16 + len(headers) + len(payload)
    prelude = struct.pack(">II", total, len(headers))
    head = prelude + struct.pack(">I", crc32(prelude))
    body = head + headers + payload
    return body + struct.pack(">I", crc32(body))


def header(name: str, kind: int, value: bytes) -> bytes:
    raw = name.encode()
    return struct.pack(">B", len(raw)) + raw + struct.pack(">B", kind) + value


def event(kind: str, payload: dict[str, object]) -> bytes:
    return AwsEvent(kind, payload).render()


STREAM = b"".join(
    [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " wörld ✓"}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}),
    ]
)


def decode(chunks: list[bytes]) -> tuple[list[EventMessage | DamagedMessage], int]:
    decoder = EventStreamDecoder()
    out: list[EventMessage | DamagedMessage] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out, decoder.pending


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_whole_stream_decodes_to_its_events() -> None:
    messages, pending = decode([STREAM])
    assert pending == 0
    assert all(isinstance(m, EventMessage) for m in messages)
    kinds = [m.header(":event-type") for m in messages if isinstance(m, EventMessage)]
    assert kinds == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    second = messages[2]
    assert isinstance(second, EventMessage)
    assert second.header(":message-type") == "event"
    assert json.loads(second.payload)["delta"]["text"] == " wörld ✓"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_split_of_the_bytes_decodes_identically(cuts: list[int]) -> None:
    whole, _ = decode([STREAM])
    pieces, pending = decode(split(STREAM, cuts))
    assert pieces == whole
    assert pending == 0


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=len(STREAM) - 1))
def test_a_stream_cut_anywhere_leaves_bytes_pending(cut: int) -> None:
    messages, pending = decode([STREAM[:cut]])
    complete = b"".join(
        encode_message(
            [
                (":event-type", m.header(":event-type") or ""),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            m.payload,
        )
        for m in messages
        if isinstance(m, EventMessage)
    )
    # What was decoded is exactly a prefix of the stream; the rest is pending.
    assert STREAM.startswith(complete)
    assert len(complete) + pending == cut


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=12, max_value=10_000),
    st.integers(min_value=1, max_value=255),
    st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=10),
)
def test_a_corrupted_body_is_detected_and_skipped(
    which: int, offset: int, flip: int, cuts: list[int]
) -> None:
    """A byte changed after a message's prelude fails its CRC; the others still decode."""
    whole, _ = decode([STREAM])
    starts = [0]
    for message in whole[:-1]:
        assert isinstance(message, EventMessage)
        starts.append(starts[-1] + len(message.payload) + _headers_size(message) + 16)
    start = starts[which]
    end = starts[which + 1] if which + 1 < len(starts) else len(STREAM)
    position = start + 12 + offset % (end - start - 12)
    damaged = bytearray(STREAM)
    damaged[position] ^= flip
    messages, pending = decode(split(bytes(damaged), cuts))
    assert pending == 0
    assert isinstance(messages[which], DamagedMessage)
    assert messages[:which] + messages[which + 1 :] == whole[:which] + whole[which + 1 :]


def _headers_size(message: EventMessage) -> int:
    return sum(
        1 + len(name.encode()) + 1 + 2 + len(str(value).encode())
        for name, value in message.headers.items()
    )


@pytest.mark.parametrize("position", range(8))
def test_a_corrupted_prelude_stops_the_stream(position: int) -> None:
    damaged = bytearray(STREAM)
    damaged[position] ^= 0x01
    with pytest.raises(FramingError):
        decode([bytes(damaged)])


def test_a_prelude_crc_that_matches_impossible_lengths_is_refused() -> None:
    prelude = struct.pack(">II", 10, 20)  # headers longer than the whole message
    with pytest.raises(FramingError, match="impossible"):
        decode([prelude + struct.pack(">I", crc32(prelude))])


def test_every_header_type_decodes() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=datetime.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = b"".join(
        [
            header("t", 0, b""),
            header("f", 1, b""),
            header("byte", 2, struct.pack(">b", -5)),
            header("short", 3, struct.pack(">h", -300)),
            header("int", 4, struct.pack(">i", 70000)),
            header("long", 5, struct.pack(">q", 2**40)),
            header("bytes", 6, struct.pack(">H", 3) + b"\x00\x01\x02"),
            header("str", 7, struct.pack(">H", 5) + b"hello"),
            header("when", 8, struct.pack(">q", int(when.timestamp() * 1000))),
            header("id", 9, ident.bytes),
        ]
    )
    (message,), pending = decode([frame(headers, b"{}")])
    assert pending == 0
    assert isinstance(message, EventMessage)
    assert dict(message.headers) == {
        "t": True,
        "f": False,
        "byte": -5,
        "short": -300,
        "int": 70000,
        "long": 2**40,
        "bytes": b"\x00\x01\x02",
        "str": "hello",
        "when": when,
        "id": ident,
    }
    assert message.header("int") is None  # not a string header


@pytest.mark.parametrize(
    "headers",
    [
        header("x", 42, b""),  # unknown type
        header("s", 7, struct.pack(">H", 50) + b"short"),  # runs past the section
        b"\x05ab",  # a name cut short
        header("i", 4, b"\x00\x01"),  # a fixed-size value cut short
        header("", 0, b""),  # an empty name
    ],
)
def test_unreadable_headers_make_a_damaged_message_not_a_crash(headers: bytes) -> None:
    good = event("messageStop", {"stopReason": "end_turn"})
    messages, pending = decode([frame(headers, b"{}") + good])
    assert pending == 0
    assert isinstance(messages[0], DamagedMessage)
    assert "headers" in messages[0].reason
    assert isinstance(messages[1], EventMessage)


def test_the_emulators_broken_event_fails_only_its_crc() -> None:
    broken = AwsEvent("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
    messages, _ = decode([broken.broken() + STREAM])
    assert isinstance(messages[0], DamagedMessage)
    assert messages[0].reason == "message checksum mismatch"
    assert len(messages) == 7


def test_botocore_reads_the_same_messages() -> None:
    """botocore's own event-stream parser (the reference) agrees with this decoder."""
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    buffer.add_data(STREAM)
    reference = [(dict(m.headers), m.payload) for m in buffer]
    ours, _ = decode([STREAM])
    assert [(dict(m.headers), m.payload) for m in ours if isinstance(m, EventMessage)] == reference


def test_messages_before_a_corrupt_prelude_are_returned_then_the_error() -> None:
    decoder = EventStreamDecoder()
    bad = b"\x00\x00\x01\x00\x00\x00\x00\x10\xde\xad\xbe\xef"
    messages = decoder.feed(STREAM + bad)
    assert len(messages) == 6 and all(isinstance(m, EventMessage) for m in messages)
    with pytest.raises(FramingError, match="prelude"):
        decoder.finish()
    with pytest.raises(FramingError):
        decoder.feed(b"more")
