"""The NDJSON line splitter: any chunking of a stream gives the same lines."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from aiport._ndjson import NDJSONDecoder, ndjson_lines

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
# Objects, as Ollama sends; the text may hold any character, multi-byte ones included.
_objects = st.lists(st.dictionaries(st.text(min_size=1), _json, min_size=1), max_size=8)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def _decode(chunks: list[bytes]) -> list[Any]:
    decoder = NDJSONDecoder()
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    lines += decoder.flush()
    return [json.loads(line) for line in lines]


@given(
    objects=_objects,
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    blank=st.booleans(),
)
def test_any_chunking_gives_the_same_objects(
    objects: list[dict[str, Any]], cuts: list[int], crlf: bool, final_newline: bool, blank: bool
) -> None:
    ending = "\r\n" if crlf else "\n"
    lines = [json.dumps(o, ensure_ascii=False) for o in objects]
    if blank:
        lines = [part for line in lines for part in ("", line)]  # keep-alive blank lines
    text = ending.join(lines) + (ending if final_newline and lines else "")
    assert _decode(_split(text.encode(), cuts)) == objects


def test_byte_by_byte_with_multibyte_characters() -> None:
    data = '{"a": "héllo ☃"}\n{"b": 2}\r\n'.encode()
    assert _decode([data[i : i + 1] for i in range(len(data))]) == [{"a": "héllo ☃"}, {"b": 2}]


def test_unfinished_line_is_pending_until_flush() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert decoder.pending == b'{"b"'
    assert decoder.feed(b": 2}") == []
    assert decoder.flush() == [b'{"b": 2}']
    assert decoder.flush() == []


async def test_async_lines_of_a_chunked_body() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for piece in (b'{"x"', b": 1}\n\n", b'{"y": 2}'):
            yield piece

    assert [json.loads(line) async for line in ndjson_lines(chunks())] == [{"x": 1}, {"y": 2}]
