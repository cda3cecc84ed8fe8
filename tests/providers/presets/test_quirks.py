"""apply_chat_quirks: what a compatible server refuses is taken out, and said."""

from __future__ import annotations

from typing import Any

from aiport._types import ImagePart, Message, ModelCompletionOptions
from aiport.providers.openai._convert import build_chat_request
from aiport.providers.openai._quirks import ServerQuirks, apply_chat_quirks

PNG = b"\x89PNG\r\n\x1a\n"


def body_for(
    quirks: ServerQuirks, stream: bool = False, **kwargs: Any
) -> tuple[dict[str, Any], list[str]]:
    kwargs.setdefault("model", "m")
    kwargs.setdefault("messages", "hi")
    body, warnings = build_chat_request(
        ModelCompletionOptions(**kwargs), compatible=True, stream=stream
    )
    apply_chat_quirks(body, warnings, quirks, "srv", stream=stream)
    return body, warnings


def test_no_quirks_change_nothing() -> None:
    options = ModelCompletionOptions(model="m", messages="hi", max_tokens=3, tool_choice="auto")
    plain, _ = build_chat_request(options, compatible=True, stream=True)
    adapted, warnings = body_for(ServerQuirks(), stream=True, max_tokens=3, tool_choice="auto")
    assert adapted == plain
    assert warnings == []


def test_max_tokens_field() -> None:
    body, warnings = body_for(ServerQuirks(max_tokens_field="max_completion_tokens"), max_tokens=9)
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    assert warnings == []
    body, _ = body_for(ServerQuirks(), provider_options={"max_completion_tokens": 4})
    assert body["max_tokens"] == 4 and "max_completion_tokens" not in body


def test_unsupported_fields_become_warnings() -> None:
    quirks = ServerQuirks(unsupported=frozenset({"n", "seed", "logprobs"}))
    body, warnings = body_for(quirks, seed=1, provider_options={"n": 2, "top_k": 5})
    assert "n" not in body and "seed" not in body
    assert body["top_k"] == 5  # not listed: sent
    assert warnings == [
        "srv does not support 'n'; it was not sent",
        "srv does not support 'seed'; it was not sent",
    ]


def test_stream_usage_option() -> None:
    body, warnings = body_for(ServerQuirks(stream_usage=False), stream=True)
    assert body["stream"] is True and "stream_options" not in body
    assert warnings == []


def test_tool_choice_kinds() -> None:
    quirks = ServerQuirks(tool_choice=frozenset({"auto", "none"}))
    tools = [{"name": "a"}, {"name": "b"}]
    body, warnings = body_for(quirks, tools=tools, tool_choice="auto")
    assert body["tool_choice"] == "auto" and warnings == []
    body, warnings = body_for(quirks, tools=tools, tool_choice="b")
    assert "tool_choice" not in body
    assert warnings == [
        "srv does not support tool_choice 'named'; it was not sent (the model decides "
        "whether to call a tool)"
    ]


def test_response_formats() -> None:
    schema = {"name": "r", "schema": {"type": "object"}}
    only_object = ServerQuirks(response_format=frozenset({"json_object"}))
    body, warnings = body_for(only_object, response_format=schema)
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON schema output" in warnings[0]
    only_schema = ServerQuirks(response_format=frozenset({"json_schema"}))
    body, warnings = body_for(only_schema, response_format="json")
    assert "response_format" not in body
    assert warnings == ["srv does not support response_format 'json_object'; it was not sent"]
    body, warnings = body_for(only_schema, response_format=schema)
    assert body["response_format"]["type"] == "json_schema" and warnings == []


def test_message_names_and_images() -> None:
    messages = [
        Message(role="user", content="a", name="ann"),
        Message.user(
            "b",
            ImagePart(data=PNG, media_type="image/png"),
            ImagePart(url="https://example.com/x.png"),
        ),
    ]
    body, warnings = body_for(
        ServerQuirks(message_names=False, image_urls=False), messages=messages
    )
    assert "name" not in body["messages"][0]
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert warnings == [
        "srv does not support message names; 1 were not sent",
        "srv takes only inline images (base64), not image URLs: 1 image(s) were not sent",
    ]
    body, warnings = body_for(ServerQuirks(image_input=False), messages=messages)
    assert body["messages"][1]["content"] == "b"  # text alone goes as a string
    assert warnings == ["srv does not take image input: 2 image(s) were not sent"]
