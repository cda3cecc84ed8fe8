"""Conformance: real recorded OpenAI streams through SSEDecoder + ChatStreamAssembler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._catalogue import known_models
from aiport._types import (
    ModelCompletionResponse,
    TextDeltaEvent,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.openai._convert import ChatStreamAssembler, parse_chat_response

from .conftest import STREAMS, read_stream

pytestmark = pytest.mark.skipif(not STREAMS.exists(), reason="recorded streams not available")

MODELS = known_models("openai")


def run(name: str) -> tuple[list[Any], ModelCompletionResponse]:
    """Feed a recording; return the events and the final response."""
    assembler = ChatStreamAssembler()
    events: list[Any] = []
    saw_done = False
    for item in read_stream(name):
        if item == "[DONE]":
            saw_done = True
            break
        assert isinstance(item, dict)
        events.extend(assembler.feed(item))
    assert saw_done
    assert assembler.finished
    response = assembler.finish(
        provider="openai", latency=0.0, request_id=None, warnings=[], models=MODELS
    )
    return events, response


def recordings() -> list[str]:
    return sorted(p.name for p in STREAMS.glob("*.sse")) if STREAMS.exists() else []


@pytest.mark.parametrize("name", recordings())
def test_every_recording_assembles_consistently(name: str) -> None:
    events, response = run(name)
    # The deltas add up to the final text, and the finished calls to its tool calls.
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == response.text
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert finished == response.tool_calls
    for call in response.tool_calls:
        assert isinstance(call.parse_arguments(), dict)
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert usages == [response.usage]
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.id.startswith("chatcmpl-")
    assert response.model == "gpt-4o-2024-08-06"
    assert response.cost is not None  # priced through the gpt-4o row
    # The stream's final response equals what parsing the assembled answer gives.
    again = parse_chat_response(
        json.loads(json.dumps(response.raw)),
        provider="openai",
        latency=0.0,
        request_id=None,
        warnings=[],
        models=MODELS,
    )
    assert again == response


def test_text() -> None:
    events, response = run("text.sse")
    assert response.text == (
        "I'm unable to provide real-time weather updates. To get the current weather in "
        "San Francisco, I recommend checking a reliable weather website or a weather app."
    )
    assert response.finish_reason == "stop"
    assert response.usage == Usage(input_tokens=14, output_tokens=30, total_tokens=44)
    assert response.id == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
    assert isinstance(events[-1], UsageEvent)


def test_max_tokens_finishes_with_length() -> None:
    _, response = run("max-tokens.sse")
    assert response.finish_reason == "length"
    assert response.text == '{"'
    assert response.usage.output_tokens == 1


def test_refusal_is_a_content_filter_with_the_refusal_text() -> None:
    _, response = run("refusal.sse")
    assert response.finish_reason == "content_filter"
    assert response.raw_finish_reason == "stop"
    assert response.text == "I'm sorry, I can't assist with that request."
    assert response.usage.output_tokens == 11


def test_multiple_tool_calls() -> None:
    events, response = run("multiple-tool-calls.sse")
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert [c.name for c in response.tool_calls] == ["GetWeatherArgs", "get_stock_price"]
    assert response.tool_calls[0].id == "call_JMW1whyEaYG438VE1OIflxA2"
    assert response.tool_calls[0].parse_arguments() == {
        "city": "Edinburgh",
        "country": "GB",
        "units": "c",
    }
    assert response.tool_calls[1].parse_arguments() == {"ticker": "AAPL", "exchange": "NASDAQ"}
    # The first call is complete as soon as the second starts.
    kinds = [(type(e).__name__, getattr(e, "index", None)) for e in events]
    first_done = kinds.index(("ToolCallEvent", 0))
    second_start = kinds.index(("ToolCallDeltaEvent", 1))
    assert first_done == second_start - 1
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent) and e.index == 1]
    assert deltas[0].id and deltas[0].name == "get_stock_price"
    assert response.usage == Usage(input_tokens=149, output_tokens=60, total_tokens=209)


def test_multiple_choices_unify_the_first() -> None:
    _, response = run("multiple-choices.sse")
    choices = response.raw["choices"]
    assert len(choices) == 3
    assert response.text == choices[0]["message"]["content"]
    assert all(c["finish_reason"] == "stop" for c in choices)
    assert len({c["message"]["content"] for c in choices}) >= 1


def test_logprobs_are_kept_in_raw() -> None:
    _, response = run("content-logprobs.sse")
    tokens = [t["token"] for t in response.raw["choices"][0]["logprobs"]["content"]]
    assert "".join(tokens) == response.text


def test_json_content_parses() -> None:
    for name in ("json-object-content.sse", "json-schema-content.sse"):
        _, response = run(name)
        assert isinstance(json.loads(response.text), dict)
