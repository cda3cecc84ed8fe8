"""Conformance: answers recorded from the real Gemini API through aiport's parsers.

The files live in ``shared/conformance-data/gemini/recorded`` (see its SOURCES.md); the
streams are re-framed as Google's SSE and fed through ``SSEDecoder`` and the assembler,
exactly as the provider reads them off the wire.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiport._errors import ContentFilterError, ProviderRateLimitError, StreamInterruptedError
from aiport._sse import SSEDecoder
from aiport._types import (
    ImageGenerationOptions,
    ModelCompletionResponse,
    StreamEvent,
    TextDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.gemini._convert import (
    build_predict_request,
    parse_generate_response,
    parse_predict_response,
    split_call_id,
)
from aiport.providers.gemini._errors import map_error
from aiport.providers.gemini._stream import GenerateStreamAssembler

from .conftest import recorded


def sse_bytes(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks)


def replay(name: str) -> tuple[list[StreamEvent], ModelCompletionResponse]:
    """Feed a recorded stream, framed as SSE and split at odd places, through the assembler."""
    data = sse_bytes(recorded(name))
    decoder = SSEDecoder()
    assembler = GenerateStreamAssembler(provider="gemini", model="gemini-3-pro-preview")
    events: list[StreamEvent] = []
    for start in range(0, len(data), 97):
        for sse in decoder.feed(data[start : start + 97]):
            events.extend(assembler.feed_sse(sse.data))
    for sse in decoder.flush():
        events.extend(assembler.feed_sse(sse.data))
    assert assembler.complete
    return events, assembler.finish()


def parse(data: dict[str, Any]) -> ModelCompletionResponse:
    return parse_generate_response(
        data,
        provider="gemini",
        latency=0.0,
        request_id=None,
        requested_model="gemini-3-pro-preview",
    )


def test_recorded_text_answer() -> None:
    response = parse(recorded("google-text.json"))
    assert response.text == (
        "There are **3** r's in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y."
    )
    assert response.finish_reason == "stop"
    assert response.id == "Un6LacrVMcjUxs0PmJfWoQc"
    assert response.model == "gemini-3-pro-preview"
    # 28 answer tokens + 244 thinking tokens are billed as output.
    assert response.usage == Usage(
        input_tokens=9, output_tokens=272, total_tokens=281, reasoning_tokens=244
    )


def test_recorded_tool_call_answer() -> None:
    response = parse(recorded("google-tool-call.json"))
    assert response.finish_reason == "tool_calls"
    assert response.raw_finish_reason == "STOP"
    [call] = response.tool_calls
    assert call.name == "weather"
    assert call.parse_arguments() == {"location": "San Francisco"}
    base, signature = split_call_id(call.id)
    assert base == "call_m36LaZGyCLz1xs0PtNSB-QU_0"
    assert signature and signature.startswith("EskgCsYgAb4")
    assert response.usage.reasoning_tokens == 893
    assert response.usage.output_tokens == 15 + 893


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("google-text.chunks.txt", 'There are **3** "r"s in strawberry.\n\nst**r**awbe**rr**y'),
        (
            "google-reasoning-gemini3.chunks.txt",
            'There are **3** "r"s in strawberry.\n\nSt**r**awbe**rr**y',
        ),
    ],
)
def test_recorded_text_streams(name: str, text: str) -> None:
    events, response = replay(name)
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == text
    assert response.text == text
    assert response.finish_reason == "stop"
    usages = [e.usage for e in events if isinstance(e, UsageEvent)]
    assert usages[-1] == response.usage
    assert response.usage.reasoning_tokens > 0
    # The signature of the empty last part is kept on the text, as in a plain answer.
    [part] = response.raw["candidates"][0]["content"]["parts"]
    assert part["text"] == text
    assert part["thoughtSignature"]


def test_recorded_tool_call_stream_ends_as_the_plain_answer() -> None:
    events, streamed = replay("google-tool-call.chunks.txt")
    finished = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert finished == streamed.tool_calls
    [call] = streamed.tool_calls
    assert call.name == "weather"
    assert call.parse_arguments() == {"location": "San Francisco"}
    assert streamed.finish_reason == "tool_calls"
    # The trailing empty text part is not kept: the parts are those of a plain answer.
    assert [list(p) for p in streamed.raw["candidates"][0]["content"]["parts"]] == [
        ["functionCall", "thoughtSignature"]
    ]


def test_a_stream_cut_before_its_last_chunk_is_incomplete() -> None:
    chunks = recorded("google-text.chunks.txt")
    assembler = GenerateStreamAssembler(provider="gemini", model="m")
    for chunk in chunks[:-1]:
        assembler.feed(chunk)
    assert not assembler.complete
    with pytest.raises(StreamInterruptedError, match="before the answer was complete") as info:
        assembler.finish()
    assert info.value.partial_text == 'There are **3** "r"s in strawberry.\n\nst**r**awbe**rr**y'


def test_recorded_prompt_block() -> None:
    data = recorded("issue-19758-prompt-block.json")
    with pytest.raises(ContentFilterError) as info:
        parse(data)
    assert info.value.error_type == "PROHIBITED_CONTENT"
    assembler = GenerateStreamAssembler(provider="gemini", model="m")
    with pytest.raises(ContentFilterError):
        assembler.feed(data)


def test_recorded_429_with_retry_info() -> None:
    body = recorded("google-429-retry-info.json")
    error = map_error("gemini", 429, {}, body, json.dumps(body), "gemini-2.5-flash")
    assert isinstance(error, ProviderRateLimitError)
    assert error.retry_after == pytest.approx(34.4)
    assert error.error_type == "RESOURCE_EXHAUSTED"
    assert error.message == "You exceeded your current quota, please check your plan."
    assert error.retryable


def test_recorded_imagen_request_and_answer() -> None:
    data = recorded("issue-10843-google-imagen-generate-image.json")
    body, notes = build_predict_request(
        ImageGenerationOptions(
            model="imagen-4.0-generate-001", prompt="a hamster in a hat", size="1024x768"
        )
    )
    assert body == data["request"]["body"]
    assert notes == []
    assert data["request"]["url"].endswith("/v1beta/models/imagen-4.0-generate-001:predict")
    # The recorded bytes were redacted upstream: put a real (tiny) image in their place.
    answer = json.loads(json.dumps(data["response"]["body"]))
    answer["predictions"][0]["bytesBase64Encoded"] = "iVBORw0KGgo="
    response = parse_predict_response(
        answer, provider="gemini", model="imagen-4.0-generate-001", latency=0.0, request_id=None
    )
    assert [(i.media_type, i.data) for i in response.images] == [
        ("image/png", b"\x89PNG\r\n\x1a\n")
    ]
