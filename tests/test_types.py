"""The unified shapes: what users build by hand and what they read back."""

from __future__ import annotations

import pickle

import pytest
from pydantic import BaseModel, ValidationError

from aiport import (
    ConfigError,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCapabilities,
    ModelCompletionOptions,
    ModelCompletionResponse,
    NamedToolChoice,
    ProviderModel,
    ProviderRateLimitError,
    StreamInterruptedError,
    TextPart,
    Tool,
    ToolCall,
    ToolResultPart,
    Usage,
)
from aiport._errors import ConfigProblem


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    celsius: float


def get_weather(city: str, unit: str = "c") -> str:
    """Look up the weather."""
    return f"{city}:{unit}"


def test_openai_style_messages_become_parts() -> None:
    assistant = Message.model_validate(
        {
            "role": "assistant",
            "content": "Checking",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    )
    assert assistant.text == "Checking"
    assert assistant.tool_calls == [ToolCall(id="c1", name="f", arguments="{}")]
    tool = Message.model_validate({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
    result = tool.parts[0]
    assert isinstance(result, ToolResultPart)
    assert (result.tool_call_id, result.text()) == ("c1", "sunny")
    user = Message.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "image_url", "image_url": "https://example.com/a.png"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"},
                },
            ],
        }
    )
    text, url_image, inline_image = user.parts
    assert isinstance(text, TextPart)
    assert isinstance(url_image, ImagePart) and url_image.url == "https://example.com/a.png"
    assert isinstance(inline_image, ImagePart)
    assert inline_image.media_type == "image/png"
    assert inline_image.detail == "low"
    assert inline_image.data_url().startswith("data:image/png;base64,")


def test_invalid_messages_are_refused() -> None:
    with pytest.raises(ValidationError, match="only valid on messages with role 'tool'"):
        Message.model_validate({"role": "user", "tool_call_id": "x", "content": "y"})
    with pytest.raises(ValidationError, match="needs a tool result"):
        Message(role="tool", content="orphan")
    with pytest.raises(ValidationError, match="only appear in assistant"):
        Message(role="user", content=[ToolCall(id="1", name="f")])
    with pytest.raises(ValidationError, match="not allowed in system"):
        Message(role="system", content=[ImagePart(url="https://x")])
    with pytest.raises(ValidationError, match="tool results may only"):
        Message(role="assistant", content=[ToolResultPart(tool_call_id="1", content="x")])


def test_image_parts_need_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ImagePart()
    with pytest.raises(ValidationError, match="media_type"):
        ImagePart(data=b"x")
    with pytest.raises(ValidationError, match="base64"):
        ImagePart(url="data:image/png,plain")
    with pytest.raises(ValidationError, match="invalid base64"):
        ImagePart(url="data:image/png;base64,@@@")
    image = ImagePart(data=b"\x89PNG", media_type="image/png")
    assert image.base64_data() == "iVBORw=="
    with pytest.raises(ValueError, match="URL"):
        ImagePart(url="https://x").base64_data()


def test_message_constructors() -> None:
    assert Message.system("be brief").role == "system"
    assert Message.user("hi").content == "hi"
    mixed = Message.user("look", ImagePart(url="https://x"))
    assert len(mixed.parts) == 2
    call = ToolCall(id="1", name="f", arguments={"a": 1})
    assert call.arguments == '{"a":1}'
    assert call.parse_arguments() == {"a": 1}
    assert ToolCall(id="2", name="g", arguments=" ").parse_arguments() == {}
    replay = Message.assistant("ok", [call])
    assert replay.tool_calls == [call]
    assert Message.assistant("plain").content == "plain"
    assert Message.tool_result("1", "done").parts[0] == ToolResultPart(
        tool_call_id="1", content="done"
    )
    assert Message(role="user", content="").parts == []
    assert Message(role="user", content="").tool_calls == []


def test_tools_from_functions_and_models() -> None:
    tool = Tool.from_function(get_weather)
    assert tool.name == "get_weather"
    assert tool.description == "Look up the weather."
    assert tool.parameters["required"] == ["city"]
    assert "title" not in tool.parameters
    model_tool = Tool.from_model(Weather, name="weather", strict=True)
    assert model_tool.parameters["properties"]["celsius"]["type"] == "number"
    assert model_tool.strict is True

    def variadic(*args: int) -> None: ...

    with pytest.raises(TypeError, match=r"\*args"):
        Tool.from_function(variadic)
    wire = Tool.model_validate(
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    )
    assert wire.name == "f"


def test_completion_options_accept_the_shortcuts() -> None:
    options = ModelCompletionOptions(
        model="m",
        messages="hello",
        stop="END",
        tools=[get_weather, Weather],
        tool_choice="get_weather",
        response_format=Weather,
    )
    assert options.messages == [Message(role="user", content="hello")]
    assert options.stop == ["END"]
    assert [t.name for t in options.tools or []] == ["get_weather", "Weather"]
    assert options.tool_choice == NamedToolChoice(name="get_weather")
    assert isinstance(options.response_format, JsonSchemaFormat)
    schema = options.response_format.schema_
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "celsius"]
    wire_forms = [
        ({"type": "json_object"}, "json"),
        ({"type": "text"}, "text"),
    ]
    for given, expected in wire_forms:
        assert (
            ModelCompletionOptions(model="m", messages="x", response_format=given).response_format
            == expected
        )
    named = ModelCompletionOptions(
        model="m",
        messages="x",
        tool_choice={"type": "function", "function": {"name": "f"}},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
    )
    assert named.tool_choice == NamedToolChoice(name="f")
    assert NamedToolChoice.model_validate({"type": "tool", "name": "t"}).name == "t"
    with pytest.raises(ValidationError):
        ModelCompletionOptions(model="m", messages=[])


def test_response_helpers() -> None:
    response = ModelCompletionResponse(
        id="1",
        model="m",
        provider="p",
        message=Message(role="assistant", content='{"city": "Paris", "celsius": 21.5}'),
        finish_reason="stop",
        usage=Usage(input_tokens=3, output_tokens=4),
    )
    assert response.usage.total_tokens == 7
    assert response.parse(Weather) == Weather(city="Paris", celsius=21.5)
    assert response.tool_calls == []


def test_costs() -> None:
    model = ProviderModel(
        id="m",
        provider="p",
        input_price_per_million=2.0,
        output_price_per_million=8.0,
        cached_input_price_per_million=0.5,
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_input_tokens=500_000)
    assert model.cost(usage) == pytest.approx(0.5 * 2 + 0.5 * 0.5 + 8)
    assert ProviderModel(id="x", provider="p").cost(usage) is None
    embedding = ProviderModel(id="e", provider="p", input_price_per_million=0.02)
    assert embedding.cost(Usage(input_tokens=1_000_000)) == pytest.approx(0.02)
    assert embedding.cost(Usage(output_tokens=1)) is None
    assert model.qualified_id == "p:m"
    assert ModelCapabilities(chat=True, tools=True).names() == ["chat", "tools"]


def test_errors_keep_context_through_pickling() -> None:
    error = ProviderRateLimitError(
        "slow down",
        provider="openai",
        model="gpt-4o",
        status_code=429,
        retry_after=2.0,
        request_id="req_1",
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ProviderRateLimitError
    assert copy.context() == error.context()
    assert str(copy) == str(error)
    assert "retry_after=2.0" in repr(copy)
    interrupted = StreamInterruptedError("cut", partial_text="Hel", provider="anthropic")
    assert pickle.loads(pickle.dumps(interrupted)).partial_text == "Hel"


def test_config_error_lists_every_problem() -> None:
    error = ConfigError([ConfigProblem("a.b", "bad", "aiport.toml"), ConfigProblem("", "worse")])
    assert str(error).splitlines() == [
        "invalid configuration (2 problems)",
        "  - aiport.toml: a.b: bad",
        "  - <root>: worse",
    ]
    assert "ConfigProblem" in repr(error)
    assert ConfigError("one").problems[0].message == "one"
