"""Unified options -> Chat Completions request body (pure, no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from aiport._types import (
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
)
from aiport.providers.openai._convert import build_chat_request

PNG = b"\x89PNG\r\n\x1a\nfake"
HI = Message.user("Hi")


def build(compatible: bool = False, **options: Any) -> tuple[dict[str, Any], list[str]]:
    options.setdefault("model", "gpt-4o")
    options.setdefault("messages", "Hi")
    return build_chat_request(ModelCompletionOptions(**options), compatible=compatible)


def messages_of(*messages: Any, compatible: bool = False) -> list[dict[str, Any]]:
    body, _ = build(compatible=compatible, messages=list(messages))
    result: list[dict[str, Any]] = body["messages"]
    return result


# --------------------------------------------------------------------------- messages


def test_minimal_body_has_model_and_messages_only() -> None:
    body, warnings = build()
    assert body == {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    assert warnings == []


def test_system_and_developer_roles() -> None:
    system = Message.system("Be brief.")
    developer = Message(role="developer", content="Answer in French.")
    assert messages_of(system, developer, HI) == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
    ]


def test_developer_becomes_system_for_compatible_servers() -> None:
    developer = Message(role="developer", content="Answer in French.")
    assert messages_of(developer, HI, compatible=True)[0] == {
        "role": "system",
        "content": "Answer in French.",
    }


def test_user_parts_with_images_by_url_and_bytes() -> None:
    message = Message.user(
        "What is in these?",
        ImagePart(url="https://example.com/cat.png", detail="low"),
        ImagePart(data=PNG, media_type="image/png"),
    )
    [wire] = messages_of(message)
    assert wire["role"] == "user"
    assert wire["content"][0] == {"type": "text", "text": "What is in these?"}
    assert wire["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
    }
    url = wire["content"][2]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert "detail" not in wire["content"][2]["image_url"]


def test_text_only_parts_stay_parts_for_openai_and_join_for_compatible() -> None:
    message = Message.user("one ", "two")
    assert messages_of(message)[0]["content"] == [
        {"type": "text", "text": "one "},
        {"type": "text", "text": "two"},
    ]
    assert messages_of(message, compatible=True)[0]["content"] == "one two"


def test_assistant_text_and_tool_calls() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
    only_calls = Message.assistant(tool_calls=[call])
    with_text = Message.assistant("Let me check.", tool_calls=[call])
    wire_call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert messages_of(HI, only_calls)[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [wire_call],
    }
    assert messages_of(HI, with_text)[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [wire_call],
    }
    assert messages_of(HI, Message.assistant("Hello!"))[1] == {
        "role": "assistant",
        "content": "Hello!",
    }


def test_tool_results_become_one_tool_message_each() -> None:
    message = Message(
        role="tool",
        content=[
            ToolResultPart(tool_call_id="call_1", content="18C"),
            ToolResultPart(tool_call_id="call_2", content=[TextPart(text="rain")]),
        ],
    )
    body, warnings = build(messages=[HI, message])
    assert body["messages"][1:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
    ]
    assert warnings == []


def test_image_in_tool_result_sends_text_only_with_a_warning() -> None:
    result = Message.tool_result(
        "call_1", [TextPart(text="a chart"), ImagePart(data=PNG, media_type="image/png")]
    )
    body, warnings = build(messages=[HI, result])
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "call_1", "content": "a chart"}
    assert len(warnings) == 1
    assert "call_1" in warnings[0]
    assert "image" in warnings[0]


def test_error_tool_result_is_sent_with_a_warning() -> None:
    body, warnings = build(messages=[HI, Message.tool_result("c", "boom", is_error=True)])
    assert body["messages"][1] == {"role": "tool", "tool_call_id": "c", "content": "boom"}
    assert any("error flag" in w for w in warnings)


def test_tool_results_inside_a_user_message_come_first_as_tool_messages() -> None:
    message = Message(
        role="user",
        content=[
            ToolResultPart(tool_call_id="call_1", content="18C"),
            TextPart(text="And tomorrow?"),
        ],
    )
    only_results = Message(role="user", content=[ToolResultPart(tool_call_id="c2", content="x")])
    assert messages_of(message, only_results) == [
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
        {"role": "tool", "tool_call_id": "c2", "content": "x"},
    ]


def test_openai_style_dicts_round_trip() -> None:
    history = [
        {"role": "user", "content": "Weather?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert messages_of(*history) == [
        {"role": "user", "content": "Weather?", "name": "alice"},
        history[1],
        history[2],
    ]


def test_name_is_passed_through() -> None:
    wire = messages_of(Message(role="system", content="x", name="policy"), HI)
    assert wire[0] == {"role": "system", "content": "x", "name": "policy"}


# --------------------------------------------------------------------------- options


def test_sampling_fields() -> None:
    body, _ = build(temperature=0.2, top_p=0.9, seed=42, stop="END")
    assert body["temperature"] == 0.2
    assert body["top_p"] == 0.9
    assert body["seed"] == 42
    assert body["stop"] == ["END"]


def test_max_tokens_field_depends_on_the_server() -> None:
    openai, _ = build(max_tokens=50)
    compatible, _ = build(compatible=True, max_tokens=50)
    assert openai["max_completion_tokens"] == 50
    assert "max_tokens" not in openai
    assert compatible["max_tokens"] == 50
    assert "max_completion_tokens" not in compatible


def test_more_than_four_stop_sequences() -> None:
    stops = ["a", "b", "c", "d", "e", "f"]
    body, warnings = build(stop=stops)
    assert body["stop"] == stops[:4]
    assert len(warnings) == 1
    assert "2 were not sent" in warnings[0]
    compatible, compatible_warnings = build(compatible=True, stop=stops)
    assert compatible["stop"] == stops
    assert compatible_warnings == []


def get_weather(city: str, unit: str = "celsius") -> str:
    """Current weather in a city."""
    return f"{city} {unit}"


def test_tools_and_tool_choice() -> None:
    body, _ = build(tools=[get_weather, Tool(name="noop", strict=True)], tool_choice="required")
    assert body["tools"][0]["type"] == "function"
    function = body["tools"][0]["function"]
    assert function["name"] == "get_weather"
    assert function["description"] == "Current weather in a city."
    assert function["parameters"]["required"] == ["city"]
    assert "strict" not in function
    assert body["tools"][1] == {
        "type": "function",
        "function": {
            "name": "noop",
            "parameters": {"type": "object", "properties": {}},
            "strict": True,
        },
    }
    assert body["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_forms(choice: Any, wire: Any) -> None:
    body, _ = build(tools=[get_weather], tool_choice=choice, parallel_tool_calls=False)
    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is False


def test_tool_settings_without_tools_are_not_sent() -> None:
    body, _ = build(tool_choice="auto", parallel_tool_calls=True)
    assert "tool_choice" not in body
    assert "parallel_tool_calls" not in body


class Answer(BaseModel):
    """A structured answer."""

    city: str
    temperature: float


def test_response_formats() -> None:
    assert "response_format" not in build(response_format="text")[0]
    assert build(response_format="json")[0]["response_format"] == {"type": "json_object"}
    body, _ = build(response_format=Answer)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert fmt["json_schema"]["schema"]["required"] == ["city", "temperature"]
    described = JsonSchemaFormat(
        name="x", schema_={"type": "object"}, description="d", strict=False
    )
    body, _ = build(response_format=described)
    assert body["response_format"]["json_schema"] == {
        "name": "x",
        "schema": {"type": "object"},
        "strict": False,
        "description": "d",
    }


def test_metadata_and_stream_options() -> None:
    body, _ = build(metadata={"user": "u1"})
    assert body["metadata"] == {"user": "u1"}
    assert "stream" not in body
    streamed, _ = build_chat_request(
        ModelCompletionOptions(model="gpt-4o", messages="Hi"), compatible=False, stream=True
    )
    assert streamed["stream"] is True
    assert streamed["stream_options"] == {"include_usage": True}


def test_provider_options_are_merged_last_and_win() -> None:
    body, _ = build(
        temperature=0.5,
        max_tokens=10,
        provider_options={"temperature": 1.5, "logprobs": True, "max_tokens": 3},
    )
    assert body["temperature"] == 1.5
    assert body["logprobs"] is True
    assert body["max_tokens"] == 3
    assert body["max_completion_tokens"] == 10


def test_building_does_not_mutate_the_options() -> None:
    options = ModelCompletionOptions(
        model="gpt-4o", messages="Hi", provider_options={"n": 2}, metadata={"a": "b"}
    )
    before = options.model_dump()
    build_chat_request(options, compatible=False)
    assert options.model_dump() == before


# --------------------------------------------------------------------------- schema


def test_a_rich_request_validates_against_the_openapi_schema(
    schema_validator: Callable[[str], Draft202012Validator],
) -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
    body, _ = build(
        messages=[
            Message.system("sys"),
            Message(role="developer", content="dev"),
            Message.user("look", ImagePart(data=PNG, media_type="image/png", detail="high")),
            Message.assistant("checking", tool_calls=[call]),
            Message.tool_result("call_1", "18C"),
        ],
        temperature=0.3,
        top_p=0.5,
        max_tokens=100,
        stop=["x"],
        seed=7,
        tools=[get_weather],
        tool_choice="get_weather",
        parallel_tool_calls=True,
        response_format=Answer,
        metadata={"k": "v"},
    )
    schema_validator("CreateChatCompletionRequest").validate(body)


# --------------------------------------------------------------------------- property

_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
_names = st.from_regex(r"\A[A-Za-z0-9_-]{1,20}\Z")
_json_args = st.dictionaries(
    st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.booleans()), max_size=3
).map(json.dumps)
_images = st.one_of(
    st.builds(ImagePart, url=st.just("https://example.com/a.png")),
    st.builds(
        ImagePart,
        data=st.binary(min_size=1, max_size=8),
        media_type=st.just("image/jpeg"),
        detail=st.sampled_from(["auto", "low", "high", None]),
    ),
)
_text_parts = st.builds(TextPart, text=st.text(max_size=20))
_results = st.builds(
    ToolResultPart,
    tool_call_id=_ids,
    content=st.one_of(st.text(max_size=20), st.lists(st.one_of(_text_parts, _images), max_size=3)),
    is_error=st.booleans(),
)
_calls = st.builds(ToolCall, id=_ids, name=_names, arguments=_json_args)


@st.composite
def _messages(draw: st.DrawFn) -> Message:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    name = draw(st.one_of(st.none(), _names))
    if role in ("system", "developer"):
        return Message(role=role, content=draw(st.text(max_size=30)), name=name)
    if role == "user":
        content = draw(
            st.one_of(
                st.text(max_size=30),
                st.lists(st.one_of(_text_parts, _images, _results), max_size=4),
            )
        )
        return Message(role="user", content=content, name=name)
    if role == "assistant":
        text = draw(st.text(max_size=30))
        calls = draw(st.lists(_calls, max_size=3))
        return Message(role="assistant", content=[TextPart(text=text), *calls], name=name)
    return Message(role="tool", content=draw(st.lists(_results, min_size=1, max_size=3)))


_options = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o", "o3", "llama3"])},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 100_000),
        "stop": st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6),
        "seed": st.integers(-(2**63), 2**63 - 1),
        "response_format": st.sampled_from(["text", "json", Answer]),
        "metadata": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(_messages(), min_size=1, max_size=6),
    options=_options,
    with_tools=st.booleans(),
    compatible=st.booleans(),
)
def test_any_conversation_converts_to_a_schema_valid_request(
    schema_validator: Callable[[str], Draft202012Validator],
    messages: list[Message],
    options: dict[str, Any],
    with_tools: bool,
    compatible: bool,
) -> None:
    if with_tools:
        options = {**options, "tools": [get_weather], "tool_choice": "auto"}
    body, warnings = build_chat_request(
        ModelCompletionOptions(messages=messages, **options), compatible=compatible
    )
    if compatible and len(body.get("stop", ())) > 4:
        # Compatible servers get every stop sequence; OpenAI's schema allows only 4.
        body = {**body, "stop": body["stop"][:4]}
    schema_validator("CreateChatCompletionRequest").validate(body)
    assert all(isinstance(w, str) and w for w in warnings)
    # Every tool result became exactly one tool message, in order.
    results = [
        part.tool_call_id
        for message in messages
        for part in message.parts
        if isinstance(part, ToolResultPart)
    ]
    assert [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"] == results
