"""Chat Completions answers, stream chunks, embeddings and images -> unified shapes."""

from __future__ import annotations

import base64
import struct
import sys
from typing import Any

import pytest

from aiport._catalogue import known_models
from aiport._errors import MalformedResponseError
from aiport._types import (
    ImageGenerationOptions,
    Message,
    ModelEmbeddingOptions,
    TextDeltaEvent,
    TextPart,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from aiport.providers.openai._convert import ChatStreamAssembler, parse_chat_response
from aiport.providers.openai._media import (
    build_embedding_request,
    build_image_request,
    decode_embedding,
    parse_embedding_response,
    parse_image_response,
)

MODELS = known_models("openai")


def parse(data: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("provider", "openai")
    kwargs.setdefault("latency", 0.5)
    kwargs.setdefault("request_id", "req_1")
    kwargs.setdefault("warnings", [])
    kwargs.setdefault("models", MODELS)
    return parse_chat_response(data, **kwargs)


def answer(message: dict[str, Any], finish: str | None = "stop", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 200,
    "total_tokens": 1200,
    "prompt_tokens_details": {"cached_tokens": 512, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0},
}


# --------------------------------------------------------------------------- complete


def test_text_answer_with_every_usage_field_and_cost() -> None:
    data = answer({"role": "assistant", "content": "Hello!", "refusal": None}, usage=USAGE)
    response = parse(data, warnings=["w"])
    assert response.id == "chatcmpl-1"
    assert response.model == "gpt-4o-2024-08-06"
    assert response.provider == "openai"
    assert response.message == Message(role="assistant", content="Hello!")
    assert response.text == "Hello!"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "stop"
    assert response.usage == Usage(
        input_tokens=1000,
        output_tokens=200,
        total_tokens=1200,
        cached_input_tokens=512,
        reasoning_tokens=64,
    )
    # gpt-4o: 488 uncached at $2.50, 512 cached at $1.25, 200 out at $10 (per million).
    assert response.cost == pytest.approx((488 * 2.5 + 512 * 1.25 + 200 * 10) / 1e6)
    assert response.latency == 0.5
    assert response.request_id == "req_1"
    assert response.warnings == ["w"]
    assert response.raw == data


def test_tool_calls_answer() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    response = parse(
        answer({"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls")
    )
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert response.tool_calls == [
        ToolCall(id="call_a", name="f", arguments='{"x":1}'),
        ToolCall(id="call_b", name="g", arguments="{}"),
    ]
    assert response.message == Message.assistant(tool_calls=response.tool_calls)


def test_text_and_tool_calls_together() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    response = parse(answer({"content": "Calling.", "tool_calls": calls}, "tool_calls"))
    assert response.message.content == [
        TextPart(text="Calling."),
        ToolCall(id="c", name="f", arguments="{}"),
    ]


def test_refusal_is_the_text_and_a_content_filter_finish() -> None:
    response = parse(answer({"content": None, "refusal": "I can't help with that."}))
    assert response.text == "I can't help with that."
    assert response.finish_reason == "content_filter"
    assert response.raw_finish_reason == "stop"


@pytest.mark.parametrize(
    ("wire", "unified"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("function_call", "tool_calls"),
        ("content_filter", "content_filter"),
        ("eos", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(wire: str | None, unified: str) -> None:
    response = parse(answer({"content": "x"}, wire))
    assert response.finish_reason == unified
    assert response.raw_finish_reason == wire


def test_missing_fields_from_compatible_servers() -> None:
    data = {"choices": [{"message": {"content": "hi"}}]}
    response = parse(data, models={}, requested_model="llama3")
    assert response.id == ""
    assert response.model == "llama3"
    assert response.text == "hi"
    assert response.usage == Usage()
    assert response.cost is None
    assert response.finish_reason == "stop"


def test_odd_shapes_from_compatible_servers() -> None:
    calls = [{"function": {"name": "f", "arguments": {"x": 1}}}]
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    response = parse(answer({"content": content, "tool_calls": calls}, "tool_calls"))
    assert response.text == "ab"
    assert response.tool_calls == [ToolCall(id="call_0", name="f", arguments='{"x": 1}')]


def test_multiple_choices_unify_the_first_and_keep_the_rest_in_raw() -> None:
    data = answer({"content": "one"})
    data["choices"].append({"index": 1, "message": {"content": "two"}, "finish_reason": "length"})
    response = parse(data)
    assert response.text == "one"
    assert response.finish_reason == "stop"
    assert response.raw["choices"][1]["message"]["content"] == "two"


@pytest.mark.parametrize("data", [{}, {"choices": []}, {"choices": "x"}, {"choices": [None]}])
def test_an_answer_without_choices_is_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse(data, requested_model="gpt-4o")
    assert info.value.request_id == "req_1"
    assert info.value.retryable


def test_cost_is_found_for_dated_snapshots_and_unknown_for_other_models() -> None:
    data = answer({"content": "x"}, usage=USAGE)
    data["model"] = "gpt-4.1-mini-2025-04-14"
    assert parse(data).cost == pytest.approx((488 * 0.4 + 512 * 0.1 + 200 * 1.6) / 1e6)
    data["model"] = "my-fine-tune"
    assert parse(data).cost is None
    assert parse(data, requested_model="gpt-4o").cost is not None


# --------------------------------------------------------------------------- streams


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def call_delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, **fields}]}


def test_text_stream_events_and_final_response() -> None:
    assembler = ChatStreamAssembler()
    assert assembler.feed(chunk({"role": "assistant", "content": ""})) == []
    assert assembler.feed(chunk({"content": "Hel"})) == [TextDeltaEvent(text="Hel")]
    assert assembler.feed(chunk({"content": "lo"})) == [TextDeltaEvent(text="lo")]
    assert assembler.text == "Hello"
    assert not assembler.finished
    assert assembler.feed(chunk({}, "stop")) == []
    assert assembler.finished
    usage_chunk = {**chunk({}), "choices": [], "usage": USAGE}
    [event] = assembler.feed(usage_chunk)
    assert isinstance(event, UsageEvent)
    assert event.usage.cached_input_tokens == 512
    response = assembler.finish(
        provider="openai", latency=0.5, request_id="req_1", warnings=[], models=MODELS
    )
    expected = parse(answer({"role": "assistant", "content": "Hello"}, usage=USAGE))
    assert response.model_dump(exclude={"raw"}) == expected.model_dump(exclude={"raw"})
    assert response.raw["choices"][0]["message"]["content"] == "Hello"
    assert response.raw["usage"] == USAGE


def test_tool_call_events_complete_when_the_next_call_starts_and_at_the_end() -> None:
    assembler = ChatStreamAssembler()
    assembler.feed(chunk({"role": "assistant", "content": None}))
    start = call_delta(0, id="call_a", type="function", function={"name": "f", "arguments": ""})
    assert assembler.feed(chunk(start)) == [
        ToolCallDeltaEvent(index=0, id="call_a", name="f", arguments_delta="")
    ]
    assert assembler.feed(chunk(call_delta(0, function={"arguments": '{"x"'}))) == [
        ToolCallDeltaEvent(index=0, arguments_delta='{"x"')
    ]
    assembler.feed(chunk(call_delta(0, function={"arguments": ":1}"})))
    second = call_delta(1, id="call_b", type="function", function={"name": "g", "arguments": "{}"})
    events = assembler.feed(chunk(second))
    assert events == [
        ToolCallEvent(index=0, tool_call=ToolCall(id="call_a", name="f", arguments='{"x":1}')),
        ToolCallDeltaEvent(index=1, id="call_b", name="g", arguments_delta="{}"),
    ]
    assert assembler.feed(chunk({}, "tool_calls")) == [
        ToolCallEvent(index=1, tool_call=ToolCall(id="call_b", name="g", arguments="{}"))
    ]
    response = assembler.finish(
        provider="openai", latency=0.0, request_id=None, warnings=[], models=MODELS
    )
    assert response.finish_reason == "tool_calls"
    assert [c.name for c in response.tool_calls] == ["f", "g"]
    assert response.raw["choices"][0]["message"]["content"] is None


def test_tool_calls_without_an_index_from_compatible_servers() -> None:
    assembler = ChatStreamAssembler()
    whole_a = {"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}]}
    whole_b = {"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}
    assembler.feed(chunk(whole_a))
    assembler.feed(chunk(whole_b))
    assembler.feed(chunk({}, "tool_calls"))
    response = assembler.finish(provider="p", latency=0.0, request_id=None, warnings=[], models={})
    assert [(c.id, c.name) for c in response.tool_calls] == [("a", "f"), ("b", "g")]


def test_other_choices_are_assembled_into_raw_only() -> None:
    assembler = ChatStreamAssembler()
    assert assembler.feed(chunk({"content": "first"})) == [TextDeltaEvent(text="first")]
    assert assembler.feed(chunk({"content": "second"}, index=1)) == []
    assembler.feed(chunk({}, "stop", index=1))
    assert not assembler.finished
    assembler.feed(chunk({}, "length"))
    response = assembler.finish(
        provider="p", latency=0.0, request_id=None, warnings=["w"], models={}
    )
    assert response.text == "first"
    assert response.finish_reason == "length"
    assert response.warnings == ["w"]
    assert [c["message"]["content"] for c in response.raw["choices"]] == ["first", "second"]


# --------------------------------------------------------------------------- embeddings


def test_embedding_request_for_openai_and_compatible_servers() -> None:
    options = ModelEmbeddingOptions(model="text-embedding-3-small", input="a", dimensions=8)
    assert build_embedding_request(options, compatible=False) == {
        "model": "text-embedding-3-small",
        "input": ["a"],
        "encoding_format": "base64",
        "dimensions": 8,
    }
    plain = ModelEmbeddingOptions(model="m", input=["a", "b"], provider_options={"user": "u"})
    assert build_embedding_request(plain, compatible=True) == {
        "model": "m",
        "input": ["a", "b"],
        "encoding_format": "float",
        "user": "u",
    }


def test_base64_embeddings_decode_to_the_same_floats() -> None:
    values = [0.5, -1.25, 3.0e-8, 1.0]
    wire = struct.pack("<4f", *values)
    assert decode_embedding(base64.b64encode(wire).decode()) == list(struct.unpack("<4f", wire))
    assert decode_embedding(base64.b64encode(wire).decode()) == pytest.approx(values, rel=1e-7)
    assert decode_embedding(values) is values


@pytest.mark.skipif(sys.byteorder != "little", reason="simulates big-endian on little-endian")
def test_base64_embeddings_are_byteswapped_on_big_endian_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire = struct.pack("<2f", 0.5, -1.25)
    monkeypatch.setattr(sys, "byteorder", "big")
    # On this (little-endian) host, "big" makes the decoder swap: the result is the wire
    # bytes read as big-endian, which is what a big-endian host needs to undo.
    swapped = list(struct.unpack(">2f", wire))
    assert decode_embedding(base64.b64encode(wire).decode()) == swapped


def test_embedding_response_in_input_order() -> None:
    data = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ],
        "usage": {"prompt_tokens": 1_000_000, "total_tokens": 1_000_000},
    }
    response = parse_embedding_response(
        data,
        provider="openai",
        model="text-embedding-3-small",
        latency=0.1,
        request_id="r",
        models=MODELS,
    )
    assert response.embeddings == [[1.0, 0.0], [0.0, 1.0]]
    assert response.usage.input_tokens == 1_000_000
    assert response.cost == pytest.approx(0.02)
    assert "data" not in response.raw


@pytest.mark.parametrize(
    "data",
    [{}, {"data": None}, {"data": [{"embedding": 5}]}, {"data": [{"embedding": "!!notbase64"}]}],
)
def test_unreadable_embeddings_are_malformed(data: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        parse_embedding_response(
            data, provider="p", model="m", latency=0.0, request_id=None, models={}
        )


# --------------------------------------------------------------------------- images


def test_image_requests() -> None:
    dalle = ImageGenerationOptions(model="dall-e-3", prompt="cat", size="1024x1024", style="vivid")
    assert build_image_request(dalle) == {
        "model": "dall-e-3",
        "prompt": "cat",
        "n": 1,
        "size": "1024x1024",
        "style": "vivid",
        "response_format": "b64_json",
    }
    url = ImageGenerationOptions(model="dall-e-2", prompt="cat", output="url", n=2)
    assert build_image_request(url)["response_format"] == "url"
    gpt = ImageGenerationOptions(model="gpt-image-1", prompt="cat", output="url", quality="high")
    body = build_image_request(gpt)
    assert "response_format" not in body
    assert body["quality"] == "high"


def test_image_response_bytes_media_type_and_usage() -> None:
    options = ImageGenerationOptions(
        model="gpt-image-1", prompt="cat", provider_options={"output_format": "webp"}
    )
    data = {
        "created": 1,
        "data": [{"b64_json": base64.b64encode(b"img").decode()}],
        "usage": {"input_tokens": 10, "output_tokens": 1000, "total_tokens": 1010},
    }
    response = parse_image_response(
        data, provider="openai", options=options, latency=0.0, request_id=None, models=MODELS
    )
    [image] = response.images
    assert image.data == b"img"
    assert image.url is None
    assert image.media_type == "image/webp"
    assert response.usage == Usage(input_tokens=10, output_tokens=1000, total_tokens=1010)
    assert response.cost == pytest.approx((10 * 5 + 1000 * 40) / 1e6)
    assert "data" not in response.raw
    # The answer's own output_format wins.
    data["output_format"] = "jpeg"
    response = parse_image_response(
        data, provider="openai", options=options, latency=0.0, request_id=None, models=MODELS
    )
    assert response.images[0].media_type == "image/jpeg"


def test_dalle_url_response() -> None:
    options = ImageGenerationOptions(model="dall-e-3", prompt="cat", output="url")
    data = {"created": 1, "data": [{"url": "https://x/y.png", "revised_prompt": "a cat"}]}
    response = parse_image_response(
        data, provider="openai", options=options, latency=0.0, request_id=None, models=MODELS
    )
    assert response.images[0].url == "https://x/y.png"
    assert response.images[0].data is None
    assert response.images[0].revised_prompt == "a cat"
    assert response.cost is None
