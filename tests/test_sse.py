"""The SSE decoder: WHATWG event-stream rules under any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aiport._sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.flush()


def test_named_events_multiline_data_comments_id_and_retry() -> None:
    stream = (
        b": keep-alive\n"
        b"event: message_start\n"
        b"id: 7\n"
        b"retry: 1500\n"
        b'data: {"a":\n'
        b"data: 1}\n"
        b"\n"
        b"data:no-space\n\n"
    )
    assert decode(stream) == [
        ServerSentEvent(event="message_start", data='{"a":\n1}', id="7", retry=1500),
        ServerSentEvent(event="message", data="no-space", id="7", retry=1500),
    ]


def test_every_line_ending_is_accepted() -> None:
    for ending in (b"\n", b"\r\n", b"\r"):
        stream = b"data: one" + ending + ending + b"data: two" + ending + ending
        assert [e.data for e in decode(stream)] == ["one", "two"]


def test_blocks_without_data_dispatch_nothing_and_reset_the_name() -> None:
    assert decode(b"event: ping\n\ndata: x\n\n") == [ServerSentEvent("message", "x")]


def test_unknown_fields_bad_retry_and_nul_ids_are_ignored() -> None:
    events = decode(b"foo: bar\nretry: soon\nid: a\x00b\ndata\n\n")
    assert events == [ServerSentEvent(event="message", data="")]


def test_final_event_without_blank_line_is_still_delivered() -> None:
    assert [e.data for e in decode(b"data: first\n\ndata: last")] == ["first", "last"]
    assert [e.data for e in decode(b"data: last\r")] == ["last"]


def test_utf8_split_inside_a_character() -> None:
    payload = "data: héllo ✓\n\n".encode()
    cut = payload.index("✓".encode()) + 1
    assert decode(payload[:cut], payload[cut:]) == [ServerSentEvent("message", "héllo ✓")]


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=20,
)


@given(
    events=st.lists(st.tuples(st.sampled_from(["", "delta", "message_stop"]), _text), max_size=8),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_chunking_gives_the_same_events(
    events: list[tuple[str, str]], ending: str, cuts: list[int]
) -> None:
    text = "".join(
        (f"event: {name}{ending}" if name else "") + f"data: {data}{ending}{ending}"
        for name, data in events
    )
    payload = text.encode()
    points = sorted({min(c, len(payload)) for c in cuts})
    chunks = [payload[a:b] for a, b in zip([0, *points], [*points, len(payload)], strict=True)]
    expected = [ServerSentEvent(event=name or "message", data=data) for name, data in events]
    assert decode(*chunks) == expected
    assert decode(payload) == expected
