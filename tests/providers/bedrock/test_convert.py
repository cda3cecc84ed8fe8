"""Unified options -> Converse JSON, and Converse answers -> unified responses (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    TextPart,
    Tool,
    ToolCall,
)
from aiport.providers.bedrock._convert import (
    PLAIN_JSON_TOOL,
    build_converse_request,
    find_known_model,
    parse_converse_response,
    usage_from,
)
from aiport.providers.bedrock._invoke import cohere_body, embedding_family, titan_body

PNG = b"\x89PNG\r\n\x1a\nfake"
WEATHER = Tool(
    name="get_weather",
    description="Weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def build(**kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", "Hi")
    return build_converse_request(ModelCompletionOptions(**kwargs))


def test_system_and_developer_messages_become_system_blocks() -> None:
    body, warnings = build(
        messages=[
            Message.system("Be brief."),
            {"role": "developer", "content": "Answer in French."},
            Message.user("Hello"),
        ]
    )
    assert body["system"] == [{"text": "Be brief."}, {"text": "Answer in French."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Hello"}]}]
    assert warnings == []


def test_inference_config_and_warnings_for_what_converse_lacks() -> None:
    body, warnings = build(
        temperature=1.5, top_p=0.5, max_tokens=42, stop=["END"], seed=7, metadata={"team": "x"}
    )
    assert body["inferenceConfig"] == {
        "maxTokens": 42,
        "temperature": 1.0,
        "topP": 0.5,
        "stopSequences": ["END"],
    }
    assert body["requestMetadata"] == {"team": "x"}
    assert any("temperature 1.5" in w for w in warnings)
    assert any("seed" in w for w in warnings)


def test_images_travel_as_base64_bytes_or_s3_locations() -> None:
    body, _ = build(
        messages=[
            Message.user(
                "What is this?",
                ImagePart(data=PNG, media_type="image/png", detail="high"),
                ImagePart(url="s3://bucket/photo.JPG"),
            )
        ]
    )
    content = body["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgpmYWtl"}}}
    assert content[2] == {
        "image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/photo.JPG"}}}
    }


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (ImagePart(url="https://example.com/cat.png"), "http"),
        (ImagePart(data=b"x", media_type="image/bmp"), "bmp"),
        (ImagePart(url="s3://bucket/no-extension"), "format"),
    ],
)
def test_images_bedrock_cannot_take_are_refused(image: ImagePart, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(messages=[Message.user("x", image)])


def test_a_tool_round_trip_alternates_turns_with_results_first() -> None:
    call = ToolCall(id="tooluse_1", name="get_weather", arguments='{"city":"Paris"}')
    body, _ = build(
        messages=[
            Message.user("Weather in Paris?"),
            Message.assistant("Checking.", tool_calls=[call]),
            Message.tool_result("tooluse_1", "18C and sunny"),
            Message(role="user", content=[TextPart(text="And tomorrow?")]),
            Message.tool_result("tooluse_1", "oops", is_error=True),
        ],
        tools=[WEATHER],
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
    ]
    results = body["messages"][2]["content"]
    assert results[0] == {
        "toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18C and sunny"}]}
    }
    assert results[1]["toolResult"]["status"] == "error"
    assert results[2] == {"text": "And tomorrow?"}
    assert body["toolConfig"]["tools"] == [
        {
            "toolSpec": {
                "name": "get_weather",
                "description": "Weather of a city",
                "inputSchema": {"json": WEATHER.parameters},
            }
        }
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ("get_weather", {"tool": {"name": "get_weather"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, wire: Any) -> None:
    body, _ = build(tools=[WEATHER], tool_choice=choice)
    assert body["toolConfig"].get("toolChoice") == wire


def test_tool_choice_none_sends_no_tools_unless_history_needs_them() -> None:
    body, warnings = build(tools=[WEATHER], tool_choice="none")
    assert "toolConfig" not in body and warnings == []
    call = ToolCall(id="t1", name="get_weather", arguments="{}")
    body, warnings = build(
        tools=[WEATHER],
        tool_choice="none",
        messages=[
            Message.user("x"),
            Message.assistant(tool_calls=[call]),
            Message.tool_result("t1", "r"),
        ],
    )
    assert body["toolConfig"]["tools"] and "toolChoice" not in body["toolConfig"]
    assert any("tool_choice 'none'" in w for w in warnings)


def test_a_named_choice_must_be_one_of_the_tools() -> None:
    with pytest.raises(ValueError, match="not among the tools"):
        build(tools=[WEATHER], tool_choice="other_tool")


def test_plain_json_output_is_a_forced_tool() -> None:
    body, warnings = build(response_format="json")
    (tool,) = body["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] == PLAIN_JSON_TOOL
    assert tool["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": PLAIN_JSON_TOOL}}
    assert warnings == []


class City(BaseModel):
    name: str
    population: int


def test_a_json_schema_is_a_forced_tool_named_after_it_beside_other_tools() -> None:
    body, _ = build(response_format=City)
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "City"}}
    schema = body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
    assert schema["required"] == ["name", "population"]
    body, _ = build(response_format=City, tools=[WEATHER])
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_weather", "City"]
    assert body["toolConfig"]["toolChoice"] == {"any": {}}


def test_provider_options_route_to_the_top_level_or_model_fields() -> None:
    body, _ = build(
        max_tokens=10,
        provider_options={
            "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"},
            "inferenceConfig": {"temperature": 0.2},
            "top_k": 5,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "additionalModelRequestFields": {"extra": 1},
        },
    )
    assert body["guardrailConfig"] == {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
    assert body["inferenceConfig"] == {"maxTokens": 10, "temperature": 0.2}
    assert body["additionalModelRequestFields"] == {
        "extra": 1,
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }


def answer(content: list[dict[str, Any]], stop: str = "end_turn", **extra: Any) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 100},
        **extra,
    }


def parse(data: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("provider", "bedrock")
    kwargs.setdefault("model", "m")
    return parse_converse_response(data, latency=0.5, request_id="rid", **kwargs)


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "error"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons(stop: str, finish: str) -> None:
    response = parse(answer([{"text": "Hi"}], stop))
    assert response.finish_reason == finish
    assert response.raw_finish_reason == stop
    assert response.text == "Hi"
    assert response.id == response.request_id == "rid"


def test_tool_use_blocks_become_tool_calls_and_reasoning_stays_in_raw() -> None:
    data = answer(
        [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig"}}},
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}},
        ],
        "tool_use",
    )
    response = parse(data)
    assert response.finish_reason == "tool_calls"
    assert response.text == "Let me check."
    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == ("t1", "get_weather", '{"city":"Paris"}')
    assert response.raw["output"]["message"]["content"][0]["reasoningContent"]


def test_the_json_tool_input_is_the_answer_text() -> None:
    data = answer(
        [
            {
                "toolUse": {
                    "toolUseId": "t1",
                    "name": "City",
                    "input": {"name": "Oslo", "population": 1},
                }
            }
        ],
        "tool_use",
    )
    response = parse(data, json_tool="City")
    assert response.finish_reason == "stop"
    assert response.tool_calls == []
    assert City.model_validate_json(response.text) == City(name="Oslo", population=1)
    assert response.warnings == []


def test_a_model_that_ignores_the_json_tool_gets_a_warning() -> None:
    response = parse(answer([{"text": "not json"}]), json_tool="City")
    assert response.text == "not json"
    assert any("JSON output tool" in w for w in response.warnings)


def test_usage_counts_cache_reads_and_writes_as_input() -> None:
    usage = usage_from(
        {
            "inputTokens": 10,
            "outputTokens": 5,
            "totalTokens": 65,
            "cacheReadInputTokens": 40,
            "cacheWriteInputTokens": 10,
        }
    )
    assert usage.input_tokens == 60
    assert usage.cached_input_tokens == 40
    assert usage.cache_creation_input_tokens == 10
    assert usage.total_tokens == 65


def test_inference_profiles_find_the_model_they_serve() -> None:
    from aiport._catalogue import known_models

    models = known_models("bedrock", "bedrock")
    base = "anthropic.claude-sonnet-4-20250514-v1:0"
    for profile in (base, "us." + base, "eu." + base, "global." + base):
        known = find_known_model(models, profile)
        assert known is not None and known.id == base
    assert find_known_model(models, "unknown.model-v1:0") is None
    response = parse(answer([{"text": "Hi"}]), model="us." + base, models=models)
    assert response.cost == pytest.approx((10 * 3.0 + 5 * 15.0) / 1_000_000)


def test_embedding_bodies() -> None:
    options = ModelEmbeddingOptions(
        model="x", input=["a", "b"], dimensions=256, provider_options={"normalize": False}
    )
    assert titan_body("a", options) == {"inputText": "a", "dimensions": 256, "normalize": False}
    cohere = ModelEmbeddingOptions(
        model="x", input=["a"], provider_options={"input_type": "search_query"}
    )
    assert cohere_body(["a", "b"], cohere) == {"texts": ["a", "b"], "input_type": "search_query"}
    assert embedding_family("amazon.titan-embed-text-v2:0") == "titan"
    assert embedding_family("us.cohere.embed-v4:0") == "cohere"
    assert embedding_family("anthropic.claude-3-haiku-20240307-v1:0") is None
    assert json.dumps(titan_body("a", ModelEmbeddingOptions(model="x", input="a"))) == (
        '{"inputText": "a"}'
    )
