"""Unified options -> Anthropic Messages request bodies (pure conversion)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from aiport._catalogue import known_models
from aiport._types import (
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    TextPart,
    Tool,
    ToolCall,
)
from aiport.providers.anthropic._convert import (
    JSON_INSTRUCTION,
    build_messages_request,
    sends_sampling_params,
    uses_bearer_auth,
)

NEW = "2026-10-21"
OLD = "2023-06-01"
WEATHER = Tool(
    name="get_weather",
    description="Weather for a place",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}},
)


def build(
    api_version: str = NEW, max_tokens_default: int = 4096, **kwargs: Any
) -> tuple[dict[str, Any], list[str]]:
    kwargs.setdefault("model", "claude-sonnet-4-6")
    kwargs.setdefault("messages", "Hi")
    return build_messages_request(
        ModelCompletionOptions(**kwargs),
        api_version=api_version,
        max_tokens_default=max_tokens_default,
        models=known_models("anthropic"),
    )


def test_minimal_request() -> None:
    body, warnings = build()
    assert body == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert warnings == []


def test_version_rules() -> None:
    assert uses_bearer_auth(NEW) and not uses_bearer_auth(OLD)
    assert uses_bearer_auth("2027-01-01")
    assert sends_sampling_params(OLD) and not sends_sampling_params(NEW)


def test_system_and_developer_messages_become_top_level_system() -> None:
    body, _ = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]

    body, _ = build(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Use French."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
    ]


def test_consecutive_same_role_messages_are_merged() -> None:
    body, _ = build(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"},
            {"role": "user", "content": "five"},
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
        {"role": "user", "content": "five"},
    ]


def test_empty_messages_are_left_out() -> None:
    body, _ = build(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "again"},
        ]
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "again"}],
        }
    ]


def test_images_base64_and_url() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    body, warnings = build(
        messages=[
            Message.user(
                "What is this?",
                ImagePart(data=png, media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg"),
            )
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assert warnings == []


def test_data_url_image_and_detail_warning() -> None:
    body, warnings = build(
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/gif;base64,R0lG", "detail": "low"},
                    }
                ],
            }
        ]
    )
    source = body["messages"][0]["content"][0]["source"]
    assert source == {"type": "base64", "media_type": "image/gif", "data": "R0lG"}
    assert warnings == ["image detail is not supported by Anthropic and was not sent"]


def test_tool_round_trip_conversion() -> None:
    call_a = ToolCall(id="toolu_a", name="get_weather", arguments='{"location": "Paris"}')
    call_b = ToolCall(id="toolu_b", name="get_weather", arguments="")
    body, _ = build(
        messages=[
            Message.user("Weather in Paris and Rome?"),
            Message.assistant("Checking.", [call_a, call_b]),
            Message.tool_result("toolu_a", "18C"),
            Message.tool_result("toolu_b", [TextPart(text="21C")], is_error=True),
            Message.user("Thanks"),
        ],
        tools=[WEATHER],
    )
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "get_weather",
                    "input": {"location": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": [{"type": "text", "text": "21C"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a place",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]


def test_openai_style_tool_messages_and_results_first() -> None:
    body, _ = build(
        messages=[
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location":"Oslo"}'},
                    }
                ],
            },
            # A user note before the result: the API wants tool_result blocks first.
            {"role": "user", "content": "note"},
            {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
        ],
        tools=[WEATHER],
    )
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "cold"},
            {"type": "text", "text": "note"},
        ],
    }


def test_tool_result_with_image_and_empty_content() -> None:
    body, _ = build(
        messages=[
            Message.user("go"),
            Message.assistant("", [ToolCall(id="t1", name="shot", arguments="{}")]),
            Message.tool_result("t1", [ImagePart(url="https://x.test/a.png")]),
        ]
    )
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "shot", "input": {}}
    ]
    assert body["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
            ],
        }
    ]
    body, _ = build(
        messages=[
            Message.user("go"),
            Message.assistant("", [ToolCall(id="t1", name="shot", arguments="{}")]),
            Message.tool_result("t1", ""),
        ]
    )
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "t1"}]


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    with pytest.raises(ValueError, match="toolu_x"):
        build(
            messages=[
                Message.user("go"),
                Message.assistant("", [ToolCall(id="toolu_x", name="f", arguments=arguments)]),
            ]
        )


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ("get_weather", None, {"type": "tool", "name": "get_weather"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            "get_weather",
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        (None, True, None),
        (None, None, None),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body, warnings = build(tools=[WEATHER], tool_choice=choice, parallel_tool_calls=parallel)
    assert body.get("tool_choice") == expected
    assert warnings == []


def test_tool_choice_without_tools_is_a_warning() -> None:
    body, warnings = build(tool_choice="required")
    assert "tool_choice" not in body and "tools" not in body
    assert warnings == ["tool_choice/parallel_tool_calls were given without tools; not sent"]


def test_strict_tool_and_tool_from_function() -> None:
    def lookup(city: str, days: int = 1) -> str:
        """Look up the forecast."""
        return city

    body, _ = build(tools=[lookup, Tool(name="t", strict=True)])
    assert body["tools"][0]["name"] == "lookup"
    assert body["tools"][0]["description"] == "Look up the forecast."
    assert body["tools"][0]["input_schema"]["required"] == ["city"]
    assert body["tools"][1] == {
        "name": "t",
        "input_schema": {"type": "object", "properties": {}},
        "strict": True,
    }


def test_sampling_parameters_new_version_warns_and_does_not_send() -> None:
    body, warnings = build(api_version=NEW, temperature=0.2, top_p=0.9)
    assert "temperature" not in body and "top_p" not in body
    assert warnings == [
        "temperature is not supported by Anthropic API version 2026-10-21 and was not sent",
        "top_p is not supported by Anthropic API version 2026-10-21 and was not sent",
    ]


def test_sampling_parameters_legacy_version_are_sent() -> None:
    body, warnings = build(api_version=OLD, temperature=0.2, top_p=0.9)
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert warnings == []
    body, warnings = build(api_version=OLD, temperature=1.5)
    assert body["temperature"] == 1.0
    assert warnings == ["temperature 1.5 is above Anthropic's maximum of 1; sent as 1"]


def test_stop_seed_metadata_stream() -> None:
    body, warnings = build(stop="END", seed=7, metadata={"user_id": "u-1", "team": "x", "app": "y"})
    assert body["stop_sequences"] == ["END"]
    assert "seed" not in body
    assert body["metadata"] == {"user_id": "u-1"}
    assert warnings == [
        "seed is not supported by Anthropic and was not sent",
        "metadata keys other than user_id are not supported by Anthropic and were not sent: "
        "app, team",
    ]
    assert "stream" not in body
    body, _ = build_messages_request(
        ModelCompletionOptions(model="m", messages="Hi"),
        api_version=NEW,
        max_tokens_default=100,
        stream=True,
    )
    assert body["stream"] is True


def test_message_names_warn() -> None:
    body, warnings = build(messages=[{"role": "user", "content": "Hi", "name": "bob"}])
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert warnings == ["message names are not supported by Anthropic and were not sent"]


def test_max_tokens_rules() -> None:
    assert build(max_tokens=77)[0]["max_tokens"] == 77
    # The catalogue's output limit caps the default...
    models = {
        "small": known_models("anthropic")["claude-haiku-4-5"].model_copy(
            update={"id": "small", "max_output_tokens": 1000}
        )
    }
    body, _ = build_messages_request(
        ModelCompletionOptions(model="small", messages="Hi"),
        api_version=NEW,
        max_tokens_default=4096,
        models=models,
    )
    assert body["max_tokens"] == 1000
    # ...but never raises it above the default; unknown models get the default.
    assert build(model="claude-haiku-4-5")[0]["max_tokens"] == 4096
    assert build(model="claude-unknown", max_tokens_default=123)[0]["max_tokens"] == 123
    # A thinking budget needs max_tokens above it.
    thinking = {"type": "enabled", "budget_tokens": 8000}
    body, _ = build(provider_options={"thinking": thinking})
    assert body["max_tokens"] == 8000 + 4096
    assert body["thinking"] == thinking


def test_json_schema_output_uses_output_config() -> None:
    class City(BaseModel):
        name: str
        population: int

    body, warnings = build(response_format=City)
    schema = body["output_config"]["format"]["schema"]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert schema["required"] == ["name", "population"]
    assert schema["additionalProperties"] is False
    assert warnings == []
    fmt = JsonSchemaFormat(schema_={"type": "object"})
    body, _ = build(response_format=fmt, provider_options={"output_config": {"effort": "low"}})
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object"}},
        "effort": "low",
    }


def test_json_mode_adds_a_system_instruction() -> None:
    body, warnings = build(response_format="json")
    assert body["system"] == JSON_INSTRUCTION
    assert len(warnings) == 1 and "response_format 'json'" in warnings[0]
    body, _ = build(
        response_format={"type": "json_object"},
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
    )
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": JSON_INSTRUCTION},
    ]
    body, warnings = build(response_format="text")
    assert "system" not in body and warnings == []


def test_provider_options_are_merged_last_untouched() -> None:
    cache = {"type": "ephemeral"}
    body, _ = build(
        provider_options={
            "top_k": 5,
            "cache_control": cache,
            "max_tokens": 9,
            "service_tier": "auto",
        }
    )
    assert body["top_k"] == 5
    assert body["cache_control"] == cache
    assert body["max_tokens"] == 9
    assert body["service_tier"] == "auto"


def test_body_is_json_serialisable() -> None:
    body, _ = build(
        messages=[Message.user("x", ImagePart(data=b"\x00\x01", media_type="image/png"))],
        tools=[WEATHER],
    )
    json.dumps(body)
