"""Pure conversions: unified options -> generateContent bodies, answers -> responses."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiport._catalogue import known_models
from aiport._errors import ContentFilterError, MalformedResponseError
from aiport._types import (
    ImageGenerationOptions,
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from aiport.providers.gemini._convert import (
    THOUGHT_SEPARATOR,
    build_embed_request,
    build_generate_request,
    build_image_request,
    build_predict_request,
    model_path,
    parse_generate_response,
    parse_image_response,
    parse_predict_response,
    parse_usage,
    split_call_id,
)

from .conftest import validate_with_sdk

MODELS = known_models("gemini")
WEATHER = Tool(
    name="get_weather",
    description="Weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def build(**kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    kwargs.setdefault("model", "gemini-2.5-flash")
    kwargs.setdefault("messages", "Hi")
    return build_generate_request(ModelCompletionOptions(**kwargs))


def answer(
    parts: list[dict[str, Any]], finish: str | None = "STOP", **extra: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "responseId": "rid",
        "modelVersion": "gemini-2.5-flash",
        **extra,
    }


def parse(data: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("models", MODELS)
    kwargs.setdefault("requested_model", "gemini-2.5-flash")
    return parse_generate_response(data, provider="gemini", latency=0.0, request_id=None, **kwargs)


# --------------------------------------------------------------------------- requests


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    body, warnings = build(
        messages=[
            Message.system("One"),
            Message.user("Hi"),
            Message(role="developer", content="Two"),
            Message.assistant("Hello"),
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "One"}, {"text": "Two"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
    ]
    assert warnings == []


def test_consecutive_turns_of_one_role_merge_and_empty_ones_vanish() -> None:
    body, _ = build(
        messages=[Message.user("a"), Message.user("b"), Message.assistant(""), Message.user("c")]
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}
    ]


def test_only_system_messages_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one user or assistant message"):
        build(messages=[Message.system("Only rules")])


def test_image_parts() -> None:
    data = b"\x89PNG-bytes"
    body, _ = build(
        messages=[
            Message.user(
                "Look",
                ImagePart(data=data, media_type="image/png", detail="high"),
                ImagePart(url="gs://bucket/cat.jpg"),
                ImagePart(url="https://www.youtube.com/watch?v=abc"),
            )
        ]
    )
    parts = body["contents"][0]["parts"]
    assert parts[1] == {
        "inlineData": {"mimeType": "image/png", "data": base64.b64encode(data).decode()}
    }
    assert parts[2] == {"fileData": {"fileUri": "gs://bucket/cat.jpg", "mimeType": "image/jpeg"}}
    assert parts[3] == {"fileData": {"fileUri": "https://www.youtube.com/watch?v=abc"}}
    validate_with_sdk(body)


@pytest.mark.parametrize(
    "url", ["https://example.com/cat.png", "http://generativelanguage.googleapis.com/x"]
)
def test_image_urls_gemini_cannot_fetch(url: str) -> None:
    with pytest.raises(ValueError, match="cannot fetch images"):
        build(messages=[Message.user("Look", ImagePart(url=url))])


def test_tools_choice_and_settings_without_equivalent() -> None:
    body, warnings = build(
        messages=[Message(role="user", content="Hi", name="alice")],
        tools=[WEATHER.model_copy(update={"strict": True})],
        tool_choice="get_weather",
        parallel_tool_calls=False,
        metadata={"user": "u1"},
        stop=["a", "b", "c", "d", "e", "f"],
    )
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["generationConfig"]["stopSequences"] == ["a", "b", "c", "d", "e"]
    assert len(warnings) == 5
    for needle in ("message names", "parallel_tool_calls", "strict", "metadata", "stop sequences"):
        assert any(needle in w for w in warnings), needle
    validate_with_sdk(body)


def test_tool_choice_without_tools_is_a_warning() -> None:
    body, warnings = build(tool_choice="auto")
    assert "toolConfig" not in body
    assert warnings == ["tool_choice was given without tools; not sent"]


def test_dropped_schema_keywords_are_warnings() -> None:
    tool = Tool(
        name="count",
        parameters={"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 2}}},
    )
    _, warnings = build(tools=[tool])
    assert warnings == [
        "JSON schema keywords Gemini does not support were removed from the parameters of "
        "tool 'count': multipleOf"
    ]


def test_free_form_parameters_go_as_json_schema() -> None:
    tool = Tool(
        name="store",
        parameters={"type": "object", "properties": {"data": {"type": "object"}}},
    )
    body, warnings = build(tools=[tool])
    declaration = body["tools"][0]["functionDeclarations"][0]
    assert declaration == {"name": "store", "parametersJsonSchema": tool.parameters}
    assert warnings == []


def test_tool_history_with_signatures_and_results() -> None:
    signature = "c2lnbmF0dXJl"
    call = ToolCall(
        id=f"call_r_0{THOUGHT_SEPARATOR}{signature}",
        name="get_weather",
        arguments='{"city":"Paris"}',
    )
    body, _ = build(
        messages=[
            Message.user("Weather?"),
            Message.assistant("Let me look.", tool_calls=[call]),
            Message(
                role="user",
                content=[
                    TextPart(text="and also"),
                    *Message.tool_result(call.id, "sunny").parts,
                ],
            ),
        ],
        tools=[WEATHER],
    )
    model_turn, user_turn = body["contents"][1:]
    assert model_turn["parts"] == [
        {"text": "Let me look."},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": signature,
        },
    ]
    # Function responses come first in their turn.
    assert user_turn["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
        {"text": "and also"},
    ]
    validate_with_sdk(body)


def test_tool_result_images_follow_the_response() -> None:
    call = ToolCall(id="c1", name="get_weather", arguments="{}")
    image = ImagePart(data=b"img", media_type="image/png")
    body, _ = build(
        messages=[
            Message.user("Chart?"),
            Message.assistant(tool_calls=[call]),
            Message.tool_result("c1", [TextPart(text="here"), image]),
        ]
    )
    parts = body["contents"][2]["parts"]
    assert parts[0] == {"functionResponse": {"name": "get_weather", "response": {"output": "here"}}}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "aW1n"}}


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ([Message.tool_result("nobody", "x")], "answers no tool call"),
        (
            [Message.assistant(tool_calls=[ToolCall(id="c", name="f", arguments="[1]")])],
            "not a JSON object",
        ),
        (
            [Message.assistant(tool_calls=[ToolCall(id="c", name="f", arguments="{")])],
            "not valid JSON",
        ),
    ],
)
def test_histories_gemini_cannot_take(history: list[Message], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(messages=[Message.user("Hi"), *history])


def test_provider_options_merge_into_nested_objects() -> None:
    body, _ = build(
        temperature=0.3,
        response_format="json",
        provider_options={
            "generationConfig": {"topK": 3, "thinkingConfig": {"thinkingBudget": 0}},
            "cachedContent": "cachedContents/x",
        },
    )
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "responseMimeType": "application/json",
        "topK": 3,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["cachedContent"] == "cachedContents/x"


def test_model_paths() -> None:
    assert model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert model_path("models/gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert model_path("tunedModels/mine") == "tunedModels/mine"


_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)
_message = st.one_of(
    st.builds(Message.user, _text),
    st.builds(Message.system, _text),
    st.builds(Message.assistant, _text),
    st.builds(
        lambda text, data: Message.user(text, ImagePart(data=data, media_type="image/webp")),
        _text,
        st.binary(min_size=1, max_size=8),
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_message, min_size=1, max_size=6).filter(
        lambda ms: any(m.role != "system" for m in ms)
    )
)
def test_any_conversation_gives_a_body_the_sdk_accepts(messages: list[Message]) -> None:
    body, warnings = build(messages=messages, tools=[WEATHER], response_format="json", max_tokens=5)
    validate_with_sdk(body)
    assert warnings == []
    roles = [c["role"] for c in body["contents"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # alternating turns
    texts = [p["text"] for c in body["contents"] for p in c["parts"] if "text" in p]
    expected = [m.text for m in messages if m.role not in ("system",) and m.text]
    assert texts == expected


# --------------------------------------------------------------------------- responses


def test_usage_counts_thoughts_as_output_and_tool_prompts_as_input() -> None:
    usage = parse_usage(
        {
            "promptTokenCount": 100,
            "toolUsePromptTokenCount": 10,
            "cachedContentTokenCount": 64,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 160,
        }
    )
    assert usage == Usage(
        input_tokens=110,
        output_tokens=50,
        total_tokens=160,
        cached_input_tokens=64,
        reasoning_tokens=30,
    )
    assert parse_usage(None) == Usage()
    assert parse_usage({"promptTokenCount": 9}) == Usage(input_tokens=9, total_tokens=9)


def test_thoughts_are_not_answer_text() -> None:
    response = parse(
        answer(
            [{"text": "pondering", "thought": True}, {"text": "Answer", "thoughtSignature": "s"}]
        )
    )
    assert response.text == "Answer"
    assert response.id == "rid"
    assert response.model == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("OTHER", "error"),
        ("SOMETHING_NEW", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(finish: str | None, expected: str) -> None:
    response = parse(answer([{"text": "x"}], finish))
    assert response.finish_reason == expected
    assert response.raw_finish_reason == finish


def test_function_calls_become_tool_calls_with_stable_ids() -> None:
    response = parse(
        answer(
            [
                {"text": "Calling."},
                {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "sig"},
                {"functionCall": {"name": "b"}},
                {"functionCall": {"name": "c", "args": {}, "id": "own-id"}},
            ]
        )
    )
    assert response.finish_reason == "tool_calls"
    assert response.text == "Calling."
    first, second, third = response.tool_calls
    assert first.id == f"call_rid_0{THOUGHT_SEPARATOR}sig"
    assert split_call_id(first.id) == ("call_rid_0", "sig")
    assert first.arguments == '{"x":1}'
    assert (second.id, second.arguments) == ("call_rid_1", "{}")
    assert split_call_id(second.id) == ("call_rid_1", None)
    assert third.id == "own-id"


def test_blocked_prompt_raises_content_filter() -> None:
    data = {"promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "nope"}}
    with pytest.raises(ContentFilterError, match=r"\(blockReason OTHER\): nope") as info:
        parse(data)
    assert info.value.error_type == "OTHER"


def test_no_candidates_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        parse({"usageMetadata": {"promptTokenCount": 1}})


def test_cost_uses_the_catalogue_row_of_the_reported_or_requested_model() -> None:
    data = answer(
        [{"text": "x"}], usageMetadata={"promptTokenCount": 1000, "candidatesTokenCount": 100}
    )
    data["modelVersion"] = "gemini-2.0-flash-001"  # an alias of gemini-2.0-flash
    response = parse(data, requested_model="models/gemini-2.0-flash")
    assert response.cost == pytest.approx((1000 * 0.10 + 100 * 0.40) / 1e6)
    unknown = parse({**data, "modelVersion": "mystery"}, requested_model="mystery")
    assert unknown.cost is None


# --------------------------------------------------------------------------- embeddings & images


def test_embed_requests() -> None:
    one = ModelEmbeddingOptions(model="gemini-embedding-001", input="a", dimensions=4)
    assert build_embed_request(one) == (
        "embedContent",
        {"content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
    )
    many = ModelEmbeddingOptions(
        model="text-embedding-004", input=["a", "b"], provider_options={"taskType": "CLUSTERING"}
    )
    method, body = build_embed_request(many)
    assert method == "batchEmbedContents"
    assert body["requests"][0] == {
        "model": "models/text-embedding-004",
        "content": {"parts": [{"text": "a"}]},
        "taskType": "CLUSTERING",
    }


def test_image_requests_and_notes() -> None:
    options = ImageGenerationOptions(
        model="imagen-4.0-generate-001",
        prompt="p",
        size="1792x1024",
        quality="hd",
        output="url",
        provider_options={"personGeneration": "dont_allow"},
    )
    body, notes = build_predict_request(options)
    assert body == {
        "instances": [{"prompt": "p"}],
        "parameters": {"sampleCount": 1, "aspectRatio": "16:9", "personGeneration": "dont_allow"},
    }
    assert len(notes) == 3
    assert any("1792x1024" in note and "16:9" in note for note in notes)
    body, _ = build_image_request(
        options.model_copy(update={"model": "gemini-2.5-flash-image", "n": 2})
    )
    assert body["generationConfig"]["candidateCount"] == 2


def test_image_answers() -> None:
    png = base64.b64encode(b"\x89PNG...").decode()
    response = parse_predict_response(
        {
            "predictions": [
                {"mimeType": "image/png", "bytesBase64Encoded": png},
                {"raiFilteredReason": "x"},
            ]
        },
        provider="gemini",
        model="imagen-4.0-generate-001",
        latency=0.0,
        request_id=None,
    )
    assert [image.data for image in response.images] == [b"\x89PNG..."]
    assert response.raw == {"predictions": [{"mimeType": "image/png"}, {"raiFilteredReason": "x"}]}
    with pytest.raises(ContentFilterError):
        parse_predict_response({}, provider="gemini", model="m", latency=0.0, request_id=None)
    with pytest.raises(ContentFilterError):
        parse_image_response(
            answer([], "IMAGE_SAFETY"),
            provider="gemini",
            model="m",
            latency=0.0,
            request_id=None,
            models=None,
        )
    with pytest.raises(MalformedResponseError):
        parse_image_response(
            answer([{"text": "no"}]),
            provider="gemini",
            model="m",
            latency=0.0,
            request_id=None,
            models=None,
        )


@pytest.mark.parametrize(
    ("model", "required"),
    [
        ("gemini-3-pro-preview", True),
        ("models/gemini-3.5-flash", True),
        ("gemini-10-ultra", True),
        ("gemini-2.5-pro", False),
        ("gemini-embedding-001", False),
        ("tunedModels/mine", False),
    ],
)
def test_placeholder_signatures_only_where_required(model: str, required: bool) -> None:
    calls = [ToolCall(id=f"c{i}", name="get_weather", arguments="{}") for i in range(2)]
    body, warnings = build(
        model=model,
        messages=[Message.user("Hi"), Message.assistant(tool_calls=calls)],
    )
    first, second = body["contents"][1]["parts"]
    assert ("thoughtSignature" in first) is required
    assert "thoughtSignature" not in second  # only the first call of a turn carries one
    assert bool(warnings) is required
