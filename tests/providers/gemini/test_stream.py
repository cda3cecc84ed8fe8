"""The stream assembler: however Gemini splits an answer into chunks, the events add up to
it and the final response equals the parse of the whole answer."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiport._errors import ProviderAPIError, ProviderAuthError, StreamInterruptedError
from aiport._redact import Redactor
from aiport._types import (
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.gemini._convert import parse_generate_response
from aiport.providers.gemini._stream import GenerateStreamAssembler

HEAD = {"modelVersion": "gemini-2.5-flash", "responseId": "r1"}


def assembler(**kwargs: Any) -> GenerateStreamAssembler:
    return GenerateStreamAssembler(provider="gemini", model="gemini-2.5-flash", **kwargs)


def chunk(
    parts: list[dict[str, Any]], *, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    data: dict[str, Any] = {"candidates": [candidate], **HEAD}
    if usage is not None:
        data["usageMetadata"] = usage
    return data


_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30
)
_call = st.builds(
    lambda name, args: {"functionCall": {"name": name, "args": args}},
    st.sampled_from(["alpha", "beta"]),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(), max_size=2),
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, str, list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """(thought, text, calls) of an answer and the parts of each chunk it is streamed in."""
    thought = draw(st.one_of(st.just(""), _text))
    text = draw(_text)
    calls = draw(st.lists(_call, max_size=3))

    def split(value: str) -> list[str]:
        cuts = sorted(draw(st.sets(st.integers(1, max(len(value) - 1, 1)), max_size=4)))
        edges = [0, *[c for c in cuts if c < len(value)], len(value)]
        return [value[a:b] for a, b in itertools.pairwise(edges) if value[a:b]]

    pieces: list[dict[str, Any]] = (
        [{"text": t, "thought": True} for t in split(thought)] if thought else []
    )
    pieces += [{"text": t} for t in split(text)]
    pieces += calls
    # Some chunks carry several parts, some an empty keep-alive text.
    chunks: list[list[dict[str, Any]]] = []
    for piece in pieces:
        together: bool = draw(st.booleans())
        if chunks and together:
            chunks[-1].append(piece)
        else:
            chunks.append([piece])
        if draw(st.integers(0, 5)) == 0:
            chunks.append([{"text": ""}])
    return thought, text, calls, chunks


@settings(max_examples=150, deadline=None)
@given(answers())
def test_events_add_up_to_the_final_response(
    answer: tuple[str, str, list[dict[str, Any]], list[list[dict[str, Any]]]],
) -> None:
    thought, text, calls, chunks = answer
    stream = assembler()
    events: list[StreamEvent] = []
    for i, parts in enumerate(chunks):
        last = i == len(chunks) - 1
        usage = {"promptTokenCount": 3, "candidatesTokenCount": i + 1, "thoughtsTokenCount": 2}
        events.extend(stream.feed(chunk(parts, finish="STOP" if last else None, usage=usage)))
    response = stream.finish()
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == text
    assert "".join(e.text for e in events if isinstance(e, ReasoningDeltaEvent)) == thought
    assert response.text == text
    assert [e.tool_call for e in events if isinstance(e, ToolCallEvent)] == response.tool_calls
    assert [c.name for c in response.tool_calls] == [c["functionCall"]["name"] for c in calls]
    assert response.finish_reason == ("tool_calls" if calls else "stop")
    # The stream ends exactly as the plain answer made of the same parts would parse.
    whole = [{"text": thought, "thought": True}] if thought else []
    whole += [{"text": text}, *calls]
    plain = parse_generate_response(
        chunk(whole, finish="STOP", usage=stream.assembled()["usageMetadata"]),
        provider="gemini",
        latency=0.0,
        request_id=None,
        requested_model="gemini-2.5-flash",
    )
    assert response.model_dump(exclude={"raw"}) == plain.model_dump(exclude={"raw"})
    assert response.raw["candidates"][0]["content"]["parts"] == whole


def test_a_function_call_gives_its_delta_then_the_finished_call() -> None:
    stream = assembler()
    events = stream.feed(chunk([{"functionCall": {"name": "f", "args": {"a": 1}}}]))
    assert isinstance(events[0], ToolCallDeltaEvent)
    assert (events[0].index, events[0].name, events[0].arguments_delta) == (0, "f", '{"a":1}')
    assert isinstance(events[1], ToolCallEvent)
    assert events[1].tool_call.id == events[0].id == "call_r1_0"


def test_usage_events_only_when_usage_changes() -> None:
    stream = assembler()
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 1}
    first = stream.feed(chunk([{"text": "a"}], usage=usage))
    again = stream.feed(chunk([{"text": "b"}], usage=dict(usage)))
    assert [type(e) for e in first] == [TextDeltaEvent, UsageEvent]
    assert [type(e) for e in again] == [TextDeltaEvent]


def test_no_finish_reason_means_interrupted() -> None:
    stream = assembler()
    stream.feed(chunk([{"text": "partial"}]))
    with pytest.raises(StreamInterruptedError) as info:
        stream.finish()
    assert info.value.partial_text == "partial"


def test_error_event_raises_the_typed_error_scrubbed() -> None:
    redactor = Redactor(["AIza-secret-key-123"])
    stream = assembler(redactor=redactor)
    stream.feed(chunk([{"text": "a"}]))
    error = {
        "error": {
            "code": 403,
            "message": "key AIza-secret-key-123 denied",
            "status": "PERMISSION_DENIED",
        }
    }
    with pytest.raises(ProviderAuthError) as info:
        stream.feed_sse(json.dumps(error))
    assert "AIza-secret-key-123" not in info.value.message
    assert info.value.status_code is None
    with pytest.raises(ProviderAPIError) as server:
        stream.feed({"error": {"code": 500, "message": "boom", "status": "INTERNAL"}})
    assert server.value.retryable


@pytest.mark.parametrize(
    "data",
    [
        "{not json",
        '{"candidates": "nope"}',
        '{"candidates": [{"content": {"parts": ["text"]}}]}',
        '{"candidates": [{"index": "zero"}]}',
    ],
)
def test_malformed_events_are_skipped_logged_and_named(
    data: str, caplog: pytest.LogCaptureFixture
) -> None:
    stream = assembler()
    stream.feed(chunk([{"text": "kept"}]))
    with caplog.at_level(logging.WARNING, logger="aiport"):
        assert stream.feed_sse(data) == ()
    stream.feed(chunk([{"text": " too"}], finish="STOP"))
    response = stream.finish()
    assert response.text == "kept too"
    assert response.warnings == ["skipped a malformed stream event"]
    assert "skipped a malformed stream event" in caplog.text


def test_empty_data_is_ignored() -> None:
    stream = assembler()
    assert stream.feed_sse("  ") == ()
    assert stream.warnings == []
