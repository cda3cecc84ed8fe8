"""Ollama conversions without a network: request bodies, answers, stream assembly, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from aiport._errors import (
    ConfigError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderRateLimitError,
)
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    ProviderModel,
    ReasoningDeltaEvent,
    TextDeltaEvent,
    Tool,
    ToolCall,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.ollama._convert import (
    ChatStreamAssembler,
    build_chat_request,
    build_embed_request,
    parse_chat_response,
)
from aiport.providers.ollama._errors import map_error
from aiport.providers.ollama._provider import base_url_from_host

TOOL = Tool(name="lookup", parameters={"type": "object", "properties": {"q": {"type": "string"}}})


def chat(**kwargs: Any) -> tuple[dict[str, Any], list[str]]:
    kwargs.setdefault("model", "llama3.2")
    return build_chat_request(ModelCompletionOptions(**kwargs), stream=False)


def parse(data: dict[str, Any], **kwargs: Any) -> Any:
    kwargs.setdefault("models", {})
    return parse_chat_response(
        data, provider="ollama", latency=0.1, request_id=None, warnings=[], **kwargs
    )


# --------------------------------------------------------------------------- requests


def test_roles_images_and_tool_history() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')
    body, warnings = chat(
        messages=[
            Message(role="developer", content="Rules."),
            Message.user("Look", ImagePart(data=b"\x01\x02", media_type="image/png")),
            Message.assistant("Checking.", [call]),
            Message.tool_result("call_1", "found"),
        ]
    )
    assert warnings == []
    assert body["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Look", "images": [base64.b64encode(b"\x01\x02").decode()]},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "lookup", "arguments": {"q": "x"}}}
            ],
        },
        {"role": "tool", "content": "found", "tool_name": "lookup", "tool_call_id": "call_1"},
    ]


def test_anthropic_style_results_in_a_user_message_become_tool_messages() -> None:
    call = ToolCall(id="toolu_1", name="lookup", arguments="{}")
    result = {"type": "tool_result", "tool_call_id": "toolu_1", "content": "r"}
    body, _ = chat(
        messages=[Message.assistant(tool_calls=[call]), Message(role="user", content=[result])]
    )
    assert body["messages"][1] == {
        "role": "tool",
        "content": "r",
        "tool_name": "lookup",
        "tool_call_id": "toolu_1",
    }
    assert len(body["messages"]) == 2  # no empty user message after it


def test_what_ollama_cannot_take_becomes_warnings() -> None:
    bad_call = ToolCall(id="c", name="lookup", arguments="[1, 2]")
    body, warnings = chat(
        messages=[
            Message(role="user", content="hi", name="ann"),
            Message.assistant(tool_calls=[bad_call]),
            Message.tool_result("c", "r", is_error=True),
            Message.user(ImagePart(url="https://example.com/a.png", detail="low")),
        ],
        metadata={"k": "v"},
        tools=[Tool(name="lookup", strict=True)],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == {}
    assert "images" not in body["messages"][3]
    assert "strict" not in body["tools"][0]["function"]
    expected = [
        "name of a user message",
        "arguments are not a JSON object",
        "no error flag",
        "image given by URL was not sent",
        "cannot force a tool call",
        "parallel tool calls",
        "'strict' has no Ollama equivalent",
        "metadata has no Ollama equivalent",
    ]
    assert len(warnings) == len(expected)
    for fragment, warning in zip(expected, warnings, strict=True):
        assert fragment in warning


def test_json_formats_and_provider_options() -> None:
    body, _ = chat(messages="hi", response_format="json", provider_options={"think": True})
    assert body["format"] == "json"
    assert body["think"] is True
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body, _ = chat(
        messages="hi",
        response_format={"name": "r", "schema": schema},
        max_tokens=5,
        provider_options={"options": {"num_ctx": 4096, "num_predict": 9}},
    )
    assert body["format"] == schema
    # provider_options win over the unified settings, key by key.
    assert body["options"] == {"num_predict": 9, "num_ctx": 4096}
    body, _ = chat(messages="hi", response_format="text")
    assert "format" not in body and "options" not in body


def test_embed_request() -> None:
    options = ModelEmbeddingOptions(
        model="nomic-embed-text",
        input="one",
        dimensions=32,
        provider_options={"truncate": False, "options": {"num_ctx": 512}},
    )
    assert build_embed_request(options) == {
        "model": "nomic-embed-text",
        "input": ["one"],
        "dimensions": 32,
        "truncate": False,
        "options": {"num_ctx": 512},
    }


# --------------------------------------------------------------------------- answers


def test_answer_without_tool_call_ids_and_with_a_length_stop() -> None:
    data = {
        "model": "llama3.2",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}},
                {"function": {"name": "b", "arguments": {}}},
            ],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 10,
        "eval_count": 3,
    }
    response = parse(data)
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        ("call_0", "a", '{"x":1}'),
        ("call_1", "b", "{}"),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage.total_tokens == 13
    cut = parse({"message": {"role": "assistant", "content": "ab"}, "done_reason": "length"})
    assert cut.finish_reason == "length"
    assert cut.usage.input_tokens == 0  # a fully cached prompt has no prompt_eval_count
    assert cut.model == ""


def test_cost_found_through_the_latest_tag() -> None:
    row = ProviderModel(
        id="llama3.2", provider="ollama", input_price_per_million=1.0, output_price_per_million=2.0
    )
    data = {"model": "llama3.2:latest", "message": {"content": "x"}, "eval_count": 1_000_000}
    assert parse(data, models={"llama3.2": row}).cost == pytest.approx(2.0)


def test_answer_without_message_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        parse({"model": "m", "done": True})


def test_stream_assembly_equals_the_plain_answer() -> None:
    assembler = ChatStreamAssembler()
    done = {"done": True, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 6}
    lines: list[dict[str, Any]] = [
        {"model": "q", "created_at": "t0", "message": {"content": "", "thinking": "Hm"}},
        {"model": "q", "created_at": "t1", "message": {"role": "assistant", "content": "Hi"}},
        {"message": {"tool_calls": [{"function": {"name": "a", "arguments": {}}}]}},
        {"message": {"tool_calls": [{"function": {"name": "b", "arguments": {"y": [1]}}}]}},
        {"model": "q", "created_at": "t9", "message": {"content": ""}, **done},
    ]
    events = [event for line in lines for event in assembler.feed(line)]
    assert [type(e) for e in events] == [
        ReasoningDeltaEvent,
        TextDeltaEvent,
        type(events[2]),
        ToolCallEvent,
        type(events[4]),
        ToolCallEvent,
        UsageEvent,
    ]
    assert assembler.finished
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    response = assembler.finish(
        provider="ollama", latency=0.1, request_id=None, warnings=[], models={}
    )
    assert calls == response.tool_calls
    # Calls without ids are numbered across the whole answer, not per line.
    assert [c.id for c in calls] == ["call_0", "call_1"]
    assert response.text == "Hi"
    assert response.raw["message"]["thinking"] == "Hm"
    assert response.raw["created_at"] == "t9"
    assert response == parse(response.raw)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (404, {"error": "model 'x' not found"}, InvalidRequestError, False),
        (400, {"error": "does not support tools"}, ProviderCapabilityError, False),
        (400, {"error": "exceeds the context length"}, ContextLengthExceededError, False),
        (400, {"error": "invalid format"}, InvalidRequestError, False),
        (401, {"error": "unauthorized"}, ProviderAuthError, False),
        (429, {"error": "too many requests"}, ProviderRateLimitError, True),
        (503, {"error": "server busy"}, ProviderAPIError, True),
        (500, None, ProviderAPIError, True),
    ],
)  # fmt: skip
def test_error_classes(status: int, body: Any, kind: type[Exception], retryable: bool) -> None:
    error = map_error("ollama", status, {"retry-after": "2"}, body, "<html>oops</html>", "m")
    assert type(error) is kind
    assert error.retryable is retryable
    assert error.status_code == status
    if body is None:
        assert error.message == f"HTTP {status} from ollama: <html>oops</html>"


def test_not_found_hint_names_the_model() -> None:
    error = map_error(
        "ollama", 404, {}, {"error": 'model "qwen3:14b" not found, try pulling it first'}, "", None
    )
    assert error.reason == "model_not_found"
    assert "`ollama pull qwen3:14b`" in error.message


def test_error_line_inside_a_stream() -> None:
    error = map_error("ollama", 0, {}, {"error": "boom"}, "", "m")
    assert type(error) is ProviderAPIError
    assert error.status_code is None
    assert error.retryable


# --------------------------------------------------------------------------- OLLAMA_HOST


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://localhost:11434"),
        ("", "http://localhost:11434"),
        ("0.0.0.0", "http://localhost:11434"),  # noqa: S104  (a value, not a bind)
        ("10.0.0.5", "http://10.0.0.5:11434"),
        (":9999", "http://localhost:9999"),
        ("gpu-box:8000", "http://gpu-box:8000"),
        ("http://gpu-box", "http://gpu-box:80"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("https://proxy.example.com:8443/ollama/", "https://proxy.example.com:8443/ollama"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("::", "http://localhost:11434"),
    ],
)
def test_ollama_host(host: str | None, url: str) -> None:
    assert base_url_from_host(host) == url


def test_unreadable_ollama_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        base_url_from_host("gpu-box:eleven")
    assert caught.value.problems[0].path == "OLLAMA_HOST"
