"""The pure Mistral conversions: request translation, answer parsing, stream assembly,
error bodies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport._catalogue import known_models
from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
)
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ReasoningDeltaEvent,
    TextDeltaEvent,
    TextPart,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    UsageEvent,
)
from aiport.providers.mistral._convert import (
    MistralStreamAssembler,
    build_chat_request,
    mistral_tool_call_id,
    parse_chat_response,
)
from aiport.providers.mistral._errors import map_error

MODELS = known_models("mistral")


def options(**kwargs: Any) -> ModelCompletionOptions:
    kwargs.setdefault("model", "mistral-small-latest")
    kwargs.setdefault("messages", "Hi")
    return ModelCompletionOptions(**kwargs)


def parse(data: dict[str, Any], prefix: str | None = None) -> Any:
    return parse_chat_response(
        data,
        provider="mistral",
        latency=0.1,
        request_id=None,
        warnings=[],
        models=MODELS,
        requested_model="mistral-small-latest",
        prefix=prefix,
    )


def answer(content: Any, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "a" * 32,
        "object": "chat.completion",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "b" * 32,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


# --------------------------------------------------------------------------- requests


@given(st.text(min_size=1, max_size=80))
def test_tool_call_ids_become_nine_letters_or_digits(call_id: str) -> None:
    mapped = mistral_tool_call_id(call_id)
    assert re.fullmatch(r"[A-Za-z0-9]{9}", mapped)
    assert mistral_tool_call_id(call_id) == mapped  # the same id maps the same way
    assert mistral_tool_call_id(mapped) == mapped  # a Mistral id is kept as it is


def test_distinct_foreign_ids_map_to_distinct_ids() -> None:
    ids = {mistral_tool_call_id(f"call_{i}") for i in range(1000)}
    assert len(ids) == 1000


def test_the_request_uses_mistral_names() -> None:
    body, warnings, prefix = build_chat_request(
        options(
            seed=1,
            max_tokens=9,
            stop=["x"],
            tools=[{"name": "f", "parameters": {"type": "object"}, "strict": True}],
            tool_choice="required",
            parallel_tool_calls=True,
        ),
        stream=True,
    )
    assert body == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 9,
        "stop": ["x"],
        "random_seed": 1,
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}, "strict": True},
            }
        ],
        "tool_choice": "any",
        "parallel_tool_calls": True,
        "stream": True,
    }
    assert warnings == []
    assert prefix is None


def test_tool_results_keep_their_function_name_and_warn_about_what_is_lost() -> None:
    call = ToolCall(id="toolu_01ABC", name="lookup", arguments="{}")
    body, warnings, _ = build_chat_request(
        options(
            messages=[
                Message.user("q"),
                Message.assistant(tool_calls=[call]),
                Message.tool_result(
                    "toolu_01ABC",
                    [TextPart(text="not found"), ImagePart(url="https://example.com/a.png")],
                    is_error=True,
                ),
            ]
        )
    )
    mapped = mistral_tool_call_id("toolu_01ABC")
    assert body["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": mapped, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "tool_call_id": mapped,
        "content": "not found",
        "name": "lookup",
    }
    assert len(warnings) == 2
    assert "images were not sent" in warnings[0]
    assert "no error flag" in warnings[1]


def test_anthropic_style_results_in_a_user_message_become_tool_messages() -> None:
    message = Message(
        role="user",
        content=[
            {"type": "tool_result", "tool_call_id": "abcdefghi", "content": "42"},
            {"type": "text", "text": "and now?"},
        ],
    )
    body, _, _ = build_chat_request(options(messages=[message]))
    assert body["messages"] == [
        {"role": "tool", "tool_call_id": "abcdefghi", "content": "42"},
        {"role": "user", "content": "and now?"},
    ]


def test_a_final_assistant_text_is_a_prefix() -> None:
    body, _, prefix = build_chat_request(
        options(messages=[Message.user("Hi"), Message.assistant("Sure:")])
    )
    assert body["messages"][-1] == {"role": "assistant", "content": "Sure:", "prefix": True}
    assert prefix == "Sure:"
    # An assistant message that is not last is history, not a prefix.
    body, _, prefix = build_chat_request(
        options(messages=[Message.user("Hi"), Message.assistant("Hello"), Message.user("Hm")])
    )
    assert "prefix" not in body["messages"][1]
    assert prefix is None


# --------------------------------------------------------------------------- answers


def test_thinking_chunks_are_not_text() -> None:
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me see."}]},
        {"type": "text", "text": "Four."},
    ]
    response = parse(answer(content))
    assert response.text == "Four."
    assert response.raw["choices"][0]["message"]["content"][0]["type"] == "thinking"


@pytest.mark.parametrize(
    ("raw", "unified"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("model_length", "length"),
        ("tool_calls", "tool_calls"),
        ("error", "error"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(raw: str, unified: str) -> None:
    response = parse(answer("x", finish=raw))
    assert response.finish_reason == unified
    assert response.raw_finish_reason == raw


def test_cost_from_an_alias_of_the_catalogue() -> None:
    response = parse(answer("x"))
    assert response.cost == pytest.approx((10 * 0.10 + 5 * 0.30) / 1e6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sure: here it is", " here it is"),
        ("Something else", "Something else"),  # the prefix was not repeated: kept whole
        ("Sure:", ""),
    ],
)
def test_a_repeated_prefix_is_removed(text: str, expected: str) -> None:
    assert parse(answer(text), prefix="Sure:").text == expected


def test_prefix_removal_keeps_tool_calls() -> None:
    calls = [{"id": "abcdefghi", "function": {"name": "f", "arguments": "{}"}, "index": 0}]
    response = parse(answer("Sure: calling", tool_calls=calls), prefix="Sure:")
    assert response.text == " calling"
    assert [c.id for c in response.tool_calls] == ["abcdefghi"]


# --------------------------------------------------------------------------- streams


def feed_all(assembler: MistralStreamAssembler, chunks: list[dict[str, Any]]) -> list[Any]:
    events: list[Any] = []
    for item in chunks:
        events.extend(assembler.feed(item))
    return events


def test_stream_of_thinking_and_text_chunks() -> None:
    assembler = MistralStreamAssembler()
    events = feed_all(
        assembler,
        [
            chunk({"role": "assistant", "content": ""}),
            chunk(
                {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hm"}]}]}
            ),
            chunk({"content": [{"type": "text", "text": "Four"}]}),
            chunk({"content": "."}),
            chunk(
                {"content": ""},
                "stop",
                usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            ),
        ],
    )
    assert [type(e) for e in events] == [
        ReasoningDeltaEvent,
        TextDeltaEvent,
        TextDeltaEvent,
        UsageEvent,
    ]
    assert assembler.finished
    response = assembler.finish(
        provider="mistral", latency=0, request_id=None, warnings=[], models=MODELS
    )
    assert response.text == "Four."
    assert response.raw["choices"][0]["message"]["content"][0] == {
        "type": "thinking",
        "thinking": [{"type": "text", "text": "Hm"}],
    }
    assert response.usage.total_tokens == 5


def test_stream_tool_calls_with_repeated_indexes_stay_apart() -> None:
    # Each Mistral tool call arrives whole; some deployments number every one 0.
    assembler = MistralStreamAssembler()
    first = {"id": "aaaaaaaaa", "function": {"name": "f", "arguments": '{"a":1}'}, "index": 0}
    second = {"id": "bbbbbbbbb", "function": {"name": "g", "arguments": {"b": 2}}, "index": 0}
    events = feed_all(
        assembler,
        [chunk({"tool_calls": [first]}), chunk({"tool_calls": [second]}, "tool_calls")],
    )
    deltas = [e for e in events if isinstance(e, ToolCallDeltaEvent)]
    assert [d.index for d in deltas] == [0, 1]
    done = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, c.arguments) for c in done] == [
        ("aaaaaaaaa", "f", '{"a":1}'),
        ("bbbbbbbbb", "g", '{"b": 2}'),
    ]
    response = assembler.finish(
        provider="mistral", latency=0, request_id=None, warnings=[], models=MODELS
    )
    assert response.tool_calls == done
    assert response.finish_reason == "tool_calls"


@given(st.integers(min_value=1, max_value=12), st.integers(min_value=1, max_value=12))
def test_a_repeated_prefix_is_held_back_across_deltas(cut: int, size: int) -> None:
    prefix = "Sure, here:"
    full = prefix + " the answer is 42."
    pieces = [full[:cut]] + [full[i : i + size] for i in range(cut, len(full), size)]
    assembler = MistralStreamAssembler(prefix=prefix)
    events = feed_all(assembler, [chunk({"content": p}) for p in pieces])
    events += assembler.feed(chunk({"content": ""}, "stop"))
    text = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert text == " the answer is 42."
    response = assembler.finish(
        provider="mistral", latency=0, request_id=None, warnings=[], models=MODELS, prefix=prefix
    )
    assert response.text == text


def test_an_answer_that_does_not_repeat_the_prefix_is_kept() -> None:
    assembler = MistralStreamAssembler(prefix="Sure:")
    events = feed_all(assembler, [chunk({"content": "Su"}), chunk({"content": "ch"}, "stop")])
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Such"
    events = feed_all(MistralStreamAssembler(prefix="Sure:"), [chunk({"content": "Su"}, "length")])
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Su"


# --------------------------------------------------------------------------- errors


def error(status: int, body: Any, text: str = "", headers: dict[str, str] | None = None) -> Any:
    return map_error("mistral", status, headers or {}, body, text or json.dumps(body), "m")


def test_api_error_body() -> None:
    body = {
        "object": "error",
        "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for model "
        "with 32768 maximum context length",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    mapped = error(400, body, headers={"x-kong-request-id": "rid-1"})
    assert isinstance(mapped, ContextLengthExceededError)
    assert mapped.error_type == "invalid_request_error"
    assert mapped.request_id == "rid-1"


def test_validation_errors_old_and_new_shapes() -> None:
    detail = [
        {
            "type": "extra_forbidden",
            "loc": ["body", "safe_mode"],
            "msg": "Extra inputs are not permitted",
            "input": False,
        },
        {"type": "missing", "loc": ["body", "model"], "msg": "Field required"},
    ]
    new = error(422, {"detail": detail})
    old = error(
        422,
        {"object": "error", "message": {"detail": detail}, "type": "invalid_request_error"},
    )
    for mapped in (new, old):
        assert isinstance(mapped, InvalidRequestError)
        assert "body.safe_mode: Extra inputs are not permitted" in mapped.message
        assert "body.model: Field required" in mapped.message
    assert new.error_type == "extra_forbidden"
    assert old.error_type == "invalid_request_error"


def test_gateway_errors() -> None:
    unauthorized = error(401, {"message": "Unauthorized", "request_id": "abc"})
    assert isinstance(unauthorized, ProviderAuthError)
    assert unauthorized.request_id == "abc"
    assert isinstance(error(401, {"detail": "Unauthorized"}), ProviderAuthError)
    limited = error(
        429,
        {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "code": "1300",
        },
        headers={"retry-after": "3"},
    )
    assert isinstance(limited, ProviderRateLimitError)
    assert limited.error_type == "rate_limited"
    assert limited.retry_after == 3.0


def test_a_body_that_is_not_json() -> None:
    mapped = error(502, None, text="<html><body>Bad gateway</body></html>")
    assert isinstance(mapped, ProviderAPIError)
    assert mapped.retryable
    assert "HTTP 502 from mistral" in mapped.message


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("rate_limited", ProviderRateLimitError),
        ("invalid_request_error", InvalidRequestError),
        ("internal_server_error", ProviderAPIError),
        (None, ProviderAPIError),
    ],
)
def test_errors_inside_a_stream_are_classified_by_type(
    kind: str | None, cls: type[ProviderError]
) -> None:
    mapped = error(0, {"object": "error", "message": "boom", "type": kind})
    assert type(mapped) is cls
    assert mapped.status_code is None
