"""Anthropic answers -> unified responses, and the stream assembler (recorded streams too)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from aiport._catalogue import find_model, known_models
from aiport._errors import (
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimitError,
    StreamInterruptedError,
)
from aiport._redact import Redactor
from aiport._sse import SSEDecoder
from aiport._types import (
    ReasoningDeltaEvent,
    TextDeltaEvent,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.anthropic._convert import parse_messages_response
from aiport.providers.anthropic._stream import MessagesStreamAssembler

from .conftest import RECORDED

MODELS = known_models("anthropic")
SECRET = "secret-value-1234567890"


def parse(data: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("models", MODELS)
    return parse_messages_response(
        data, provider="anthropic", latency=0.5, request_id="req_1", **kwargs
    )


def message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


# --------------------------------------------------------------------------- responses


def test_text_response() -> None:
    data = message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " you"}])
    response = parse(data, warnings=["w"])
    assert response.text == "Hello you"
    assert response.message.content == "Hello you"
    assert response.tool_calls == []
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "end_turn"
    assert response.id == "msg_1" and response.model == "claude-sonnet-4-6"
    assert response.provider == "anthropic" and response.request_id == "req_1"
    assert response.latency == 0.5
    assert response.warnings == ["w"]
    assert response.raw == data
    assert response.usage == Usage(input_tokens=10, output_tokens=5)
    # Sonnet 4.6: $3 in, $15 out per million.
    assert response.cost == pytest.approx((10 * 3 + 5 * 15) / 1e6)


def test_tool_use_response() -> None:
    data = message(
        [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"location": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
        ],
        stop_reason="tool_use",
    )
    response = parse(data)
    assert response.finish_reason == "tool_calls"
    assert response.text == "Let me check."
    assert response.tool_calls == [
        ToolCall(id="toolu_1", name="get_weather", arguments='{"location":"Paris"}'),
        ToolCall(id="toolu_2", name="get_time", arguments="{}"),
    ]
    assert response.tool_calls[0].parse_arguments() == {"location": "Paris"}


def test_thinking_is_only_in_raw() -> None:
    thinking = {"type": "thinking", "thinking": "Let me think", "signature": "c2ln"}
    data = message(
        [thinking, {"type": "redacted_thinking", "data": "xx"}, {"type": "text", "text": "42"}],
        output_tokens_details={"thinking_tokens": 3},  # type: ignore[arg-type]
    )
    response = parse(data)
    assert response.text == "42"
    assert response.message.content == "42"
    assert response.raw["content"][0] == thinking
    assert response.usage.reasoning_tokens == 3


def test_usage_counts_cached_input() -> None:
    data = message(
        [{"type": "text", "text": "x"}],
        input_tokens=10,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=200,
        output_tokens=7,
    )
    response = parse(data)
    assert response.usage == Usage(
        input_tokens=1210,
        output_tokens=7,
        total_tokens=1217,
        cached_input_tokens=1000,
        cache_creation_input_tokens=200,
    )
    # Plain input, cache reads (0.1x) and cache writes (1.25x) each at their own rate.
    expected = (10 * 3 + 1000 * 0.3 + 200 * 3.75 + 7 * 15) / 1e6
    assert response.cost == pytest.approx(expected)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("some_future_reason", "stop"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    response = parse(message([], stop_reason=stop_reason))
    assert response.finish_reason == finish
    assert response.raw_finish_reason == stop_reason
    assert response.text == ""


def test_cost_lookup_by_snapshot_id_and_unknown_models() -> None:
    data = message([{"type": "text", "text": "x"}])
    data["model"] = "claude-haiku-4-5-20251001"
    assert parse(data).cost == pytest.approx((10 * 1 + 5 * 5) / 1e6)
    data["model"] = "claude-sonnet-4-5-20250929"
    assert parse(data).cost is not None
    data["model"] = "claude-new-model"
    assert parse(data).cost is None
    assert parse(data, models=None).cost is None
    assert find_model(MODELS, "claude-opus-4-1-20250805") is MODELS["claude-opus-4-1"]
    assert find_model(MODELS, "claude-nothing-20250101") is None


def test_catalogue_rows() -> None:
    assert {"claude-sonnet-4-6", "claude-opus-4-5", "claude-haiku-4-5", "claude-opus-4-1"} <= set(
        MODELS
    )
    for model in MODELS.values():
        assert model.provider == "anthropic"
        assert model.capabilities.names() == ["chat", "streaming", "tools", "vision", "json_output"]
    haiku = MODELS["claude-haiku-4-5"]
    assert (haiku.context_window, haiku.max_output_tokens) == (200_000, 64_000)
    assert (haiku.input_price_per_million, haiku.output_price_per_million) == (1.0, 5.0)
    assert known_models("anthropic", "other")["claude-haiku-4-5"].provider == "other"


def test_malformed_message_raises() -> None:
    with pytest.raises(KeyError):
        parse({"id": "x"})


# --------------------------------------------------------------------------- recorded streams


def run_stream(text: str, chunk: int = 0) -> tuple[list[Any], MessagesStreamAssembler]:
    """Decode ``text`` as SSE (in ``chunk``-byte pieces) through an assembler."""
    decoder = SSEDecoder()
    assembler = MessagesStreamAssembler(provider="anthropic", model="m", models=MODELS)
    raw = text.encode()
    pieces = [raw[i : i + chunk] for i in range(0, len(raw), chunk)] if chunk else [raw]
    events: list[Any] = []
    for piece in pieces:
        for sse in decoder.feed(piece):
            events.extend(assembler.feed_sse(sse.event, sse.data))
    for sse in decoder.flush():
        events.extend(assembler.feed_sse(sse.event, sse.data))
    return events, assembler


def recorded(name: str) -> str:
    path = RECORDED / f"{name}.sse"
    if not path.exists():
        pytest.skip(f"recorded stream {path} not available")
    return path.read_text()


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
def test_recorded_basic(chunk: int) -> None:
    events, assembler = run_stream(recorded("basic"), chunk)
    assert [e.text for e in events if isinstance(e, TextDeltaEvent)] == ["Hello", " there", "!"]
    assert [e.usage for e in events if isinstance(e, UsageEvent)] == [
        Usage(input_tokens=11, output_tokens=6)
    ]
    response = assembler.finish(latency=1.0, request_id="req_x")
    assert response.text == "Hello there!"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "end_turn"
    assert response.usage == Usage(input_tokens=11, output_tokens=6, total_tokens=17)
    assert response.id == "msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK"
    assert response.model == "claude-3-opus-latest"
    assert response.request_id == "req_x"
    assert response.warnings == []


@pytest.mark.parametrize("chunk", [0, 5])
def test_recorded_tool_use(chunk: int) -> None:
    events, assembler = run_stream(recorded("tool_use"), chunk)
    text = "I'll check the current weather in Paris for you."
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == text
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert deltas[0] == ToolCallDeltaEvent(
        index=0, id="toolu_01NRLabsLyVHZPKxbKvkfSMn", name="get_weather"
    )
    assert {d.index for d in deltas} == {0}  # counted among tool calls, not content blocks
    assert "".join(d.arguments_delta for d in deltas) == '{"location": "Paris"}'
    call = ToolCall(
        id="toolu_01NRLabsLyVHZPKxbKvkfSMn", name="get_weather", arguments='{"location":"Paris"}'
    )
    assert [e for e in events if isinstance(e, ToolCallEvent)] == [
        ToolCallEvent(index=0, tool_call=call)
    ]

    response = assembler.finish()
    assert response.text == text
    assert response.tool_calls == [call]
    assert response.tool_calls[0].parse_arguments() == {"location": "Paris"}
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(input_tokens=377, output_tokens=65, total_tokens=442)
    assert response.model == "claude-sonnet-4-20250514"
    # Sonnet 4 snapshot: $3/$15.
    assert response.cost == pytest.approx((377 * 3 + 65 * 15) / 1e6)

    # The same message, non-streamed, gives an equal response.
    whole = json.loads(json.dumps(response.raw))
    assert whole["content"][1]["input"] == {"location": "Paris"}
    expected = parse_messages_response(
        whole, provider="anthropic", latency=0.0, request_id=None, models=MODELS
    )
    assert response == expected


def test_recorded_refusal() -> None:
    events, assembler = run_stream(recorded("refusal"))
    assert not [e for e in events if isinstance(e, TextDeltaEvent)]
    response = assembler.finish()
    assert response.text == ""
    assert response.finish_reason == "content_filter"
    assert response.raw_finish_reason == "refusal"
    assert response.usage == Usage(input_tokens=20, output_tokens=0)
    assert response.raw["stop_details"]["category"] == "cyber"


def test_recorded_incomplete_partial_json() -> None:
    """max_tokens hit inside a tool call: the text stands, the half-made call does not.

    The stream is complete (message_delta carries stop_reason max_tokens), so it is not an
    interruption. The tool_use block never got its content_block_stop and its JSON is cut,
    so no ToolCallEvent is sent and the call is not in tool_calls: executing it would fail.
    A warning names it, and raw keeps its partial JSON.
    """
    events, assembler = run_stream(recorded("incomplete_partial_json"), 11)
    text = (
        "I'll create a comprehensive tax guide for someone with multiple W2s and save it in "
        "a file called taxes.txt. Let me do that for you now."
    )
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == text
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert deltas[0].name == "make_file" and deltas[0].index == 0
    assert "".join(d.arguments_delta for d in deltas).startswith('{"filename": "taxes.txt",')
    assert not [e for e in events if isinstance(e, ToolCallEvent)]

    response = assembler.finish()
    assert response.text == text
    assert response.tool_calls == []
    assert response.message.content == text
    assert response.finish_reason == "length"
    assert response.usage == Usage(input_tokens=450, output_tokens=124)
    assert len(response.warnings) == 1
    assert "make_file" in response.warnings[0] and "cut off" in response.warnings[0]
    block = response.raw["content"][1]
    assert block["type"] == "tool_use"
    assert block["partial_json"].endswith('\n"Filing taxes')


# --------------------------------------------------------------------------- assembler


def feed_all(assembler: MessagesStreamAssembler, events: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        out.extend(assembler.feed(event["type"], event))
    return out


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": 1},
    },
}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def end(reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": 9, **usage},
    }


def test_thinking_citations_and_two_tool_calls() -> None:
    assembler = MessagesStreamAssembler(
        provider="anthropic", model="claude-haiku-4-5", models=MODELS
    )
    events = feed_all(
        assembler,
        [
            START,
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            delta(0, type="thinking_delta", thinking="Hmm"),
            delta(0, type="signature_delta", signature="sig=="),
            stop(0),
            block_start(1, {"type": "text", "text": ""}),
            delta(1, type="text_delta", text="See"),
            delta(1, type="citations_delta", citation={"type": "char_location", "cited_text": "x"}),
            stop(1),
            block_start(2, {"type": "tool_use", "id": "t_a", "name": "a", "input": {}}),
            delta(2, type="input_json_delta", partial_json=""),
            stop(2),
            block_start(3, {"type": "tool_use", "id": "t_b", "name": "b", "input": {}}),
            delta(3, type="input_json_delta", partial_json='{"x": '),
            delta(3, type="input_json_delta", partial_json="[1, 2]}"),
            stop(3),
            {"type": "ping"},
            {"type": "some_future_event", "data": 1},
            end("tool_use", cache_creation_input_tokens=7),
        ],
    )
    assert events[0] == ReasoningDeltaEvent(text="Hmm")
    assert events[1] == TextDeltaEvent(text="See")
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.index, c.tool_call.arguments) for c in calls] == [(0, "{}"), (1, '{"x":[1,2]}')]
    starts = [e for e in events if isinstance(e, ToolCallDeltaEvent) and e.id]
    assert [(s.index, s.id) for s in starts] == [(0, "t_a"), (1, "t_b")]
    usage = Usage(
        input_tokens=112,
        output_tokens=9,
        total_tokens=121,
        cached_input_tokens=100,
        cache_creation_input_tokens=7,
    )
    assert events[-1] == UsageEvent(usage=usage)
    assert assembler.complete  # no message_stop needed

    response = assembler.finish()
    assert response.text == "See"
    assert [c.tool_call for c in calls] == response.tool_calls
    assert response.usage == usage
    assert response.raw["content"][0] == {
        "type": "thinking",
        "thinking": "Hmm",
        "signature": "sig==",
    }
    assert response.raw["content"][1]["citations"] == [{"type": "char_location", "cited_text": "x"}]
    assert response == parse_messages_response(
        json.loads(json.dumps(response.raw)),
        provider="anthropic",
        latency=0.0,
        request_id=None,
        models=MODELS,
    )


def test_invalid_tool_json_is_kept_verbatim_with_a_warning() -> None:
    assembler = MessagesStreamAssembler(provider="anthropic", model="m")
    events = feed_all(
        assembler,
        [
            START,
            block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
            delta(0, type="input_json_delta", partial_json='{"a": tru'),
            stop(0),
            end("tool_use"),
        ],
    )
    assert events[-2].tool_call.arguments == '{"a": tru'
    response = assembler.finish()
    assert response.tool_calls[0].arguments == '{"a": tru'
    assert response.warnings == ["the arguments of tool call 'f' are not valid JSON"]


def test_stream_without_stop_reason_is_interrupted() -> None:
    assembler = MessagesStreamAssembler(provider="anthropic", model="m", request_id="req_9")
    feed_all(
        assembler,
        [
            START,
            block_start(0, {"type": "text", "text": "Hel"}),
            delta(0, type="text_delta", text="lo"),
        ],
    )
    assert not assembler.complete
    with pytest.raises(StreamInterruptedError) as info:
        assembler.finish()
    assert info.value.partial_text == "Hello"
    assert info.value.retryable
    assert info.value.request_id == "req_9"
    assert info.value.provider == "anthropic" and info.value.model == "m"


def test_empty_stream_is_interrupted() -> None:
    with pytest.raises(StreamInterruptedError) as info:
        MessagesStreamAssembler(provider="anthropic", model="m").finish()
    assert info.value.partial_text == ""


def test_malformed_event_is_skipped_logged_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    assembler = MessagesStreamAssembler(provider="anthropic", model="m")
    assembler.feed_sse("message_start", json.dumps(START))
    assembler.feed_sse(
        "content_block_start", json.dumps(block_start(0, {"type": "text", "text": ""}))
    )
    with caplog.at_level(logging.WARNING, logger="aiport"):
        assert (
            assembler.feed_sse("content_block_delta", '{"type": "content_block_delta", SECRET-TEXT')
            == ()
        )
        assert assembler.feed_sse("content_block_delta", "[1, 2]") == ()
    assembler.feed_sse("content_block_delta", json.dumps(delta(0, type="text_delta", text="ok")))
    assembler.feed_sse("message_delta", json.dumps(end()))
    response = assembler.finish()
    assert response.text == "ok"
    assert len(response.warnings) == 2
    assert "malformed" in response.warnings[0]
    assert [r.name for r in caplog.records] == ["aiport", "aiport"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert "SECRET-TEXT" not in caplog.text


def test_events_of_the_wrong_shape_are_skipped_whole() -> None:
    assembler = MessagesStreamAssembler(provider="anthropic", model="m")
    events: list[Any] = []
    for event in [
        START,
        block_start(0, {"type": "text", "text": ""}),
        delta(0, type="text_delta", text=5),
        delta(0, type="text_delta", text="fine"),
        block_start(1, {"type": "tool_use", "id": 123, "name": "f", "input": {}}),
        block_start(1, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        delta(1, type="input_json_delta", partial_json=["x"]),
        delta(1, type="input_json_delta", partial_json="{}"),
        stop(1),
        end("tool_use"),
    ]:
        events.extend(assembler.feed_sse(event["type"], json.dumps(event)))
    assert [type(e).__name__ for e in events] == [
        "TextDeltaEvent",
        "ToolCallDeltaEvent",
        "ToolCallDeltaEvent",
        "ToolCallEvent",
        "UsageEvent",
    ]
    assert events[3].index == 0  # the skipped start did not count as a call
    response = assembler.finish()
    assert response.text == "fine"
    assert response.tool_calls == [ToolCall(id="t", name="f", arguments="{}")]
    assert len(response.warnings) == 3


@pytest.mark.parametrize(
    ("error_type", "cls", "reason", "retryable"),
    [
        ("overloaded_error", ProviderAPIError, "overloaded", True),
        ("api_error", ProviderAPIError, "server_error", True),
        ("rate_limit_error", ProviderRateLimitError, None, True),
        ("invalid_request_error", InvalidRequestError, "invalid_request", False),
        ("authentication_error", ProviderAuthError, None, False),
    ],
)
def test_error_event_raises_the_typed_error(
    error_type: str, cls: type[Exception], reason: str | None, retryable: bool
) -> None:
    assembler = MessagesStreamAssembler(
        provider="anthropic", model="m", request_id="req_e", redactor=Redactor([SECRET])
    )
    feed_all(assembler, [START])
    payload = {"type": "error", "error": {"type": error_type, "message": f"Nope {SECRET}"}}
    with pytest.raises(cls) as info:
        assembler.feed_sse("error", json.dumps(payload))
    error = info.value
    assert type(error) is cls
    assert error.error_type == error_type  # type: ignore[attr-defined]
    assert error.reason == reason  # type: ignore[attr-defined]
    assert error.retryable is retryable  # type: ignore[attr-defined]
    assert error.request_id == "req_e"  # type: ignore[attr-defined]
    assert error.status_code is None  # type: ignore[attr-defined]
    assert SECRET not in str(error) and "[REDACTED]" in str(error)
    assert SECRET not in repr(error.body)  # type: ignore[attr-defined]


def test_events_for_unknown_blocks_are_ignored() -> None:
    assembler = MessagesStreamAssembler(provider="anthropic", model="m")
    events = feed_all(
        assembler,
        [
            START,
            delta(5, type="text_delta", text="orphan"),
            stop(5),
            block_start(
                0, {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}
            ),
            delta(0, type="input_json_delta", partial_json='{"q": "x"}'),
            stop(0),
            block_start(1, {"type": "web_search_tool_result", "tool_use_id": "s", "content": []}),
            stop(1),
            end(),
        ],
    )
    assert events == [
        UsageEvent(usage=Usage(input_tokens=105, output_tokens=9, cached_input_tokens=100))
    ]
    response = assembler.finish()
    assert response.tool_calls == [] and response.text == ""
    assert response.raw["content"][0]["input"] == {"q": "x"}
