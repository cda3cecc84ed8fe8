"""Objects built without validation (``aiport._replace.trusted``) equal validated ones.

The OpenAI adapter builds its responses, messages, usage, tool calls and text deltas, and
the retry layer its attempts, from values that are valid by construction, skipping
pydantic's validation (docs/decisions.md 18). That is only sound while every such object
is exactly what the validating constructor would make from the same values: every field
present and in declaration order, each value of the same type, the same fields set. These
tests rebuild each object through its validating constructor and compare, over odd wire
answers (compatible servers) as well as ordinary ones, so a field added to a model, or a
wire value that slips through unchecked, fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from aiport._catalogue import known_models
from aiport._context import CallContext, call_scope
from aiport._errors import ProviderRateLimitError
from aiport._types import ModelCompletionOptions, ModelCompletionResponse
from aiport.layers._retry import RetryBudget, RetryLayer
from aiport.providers.openai._convert import ChatStreamAssembler, parse_chat_response, parse_usage

MODELS = known_models("openai", "openai")


def assert_as_validated(obj: Any) -> None:
    """``obj`` (and every model inside it) equals its revalidated self, field by field."""
    if isinstance(obj, list):
        for item in obj:
            assert_as_validated(item)
        return
    if not isinstance(obj, BaseModel):
        return
    cls = type(obj)
    again = cls.model_validate({name: getattr(obj, name) for name in obj.model_fields_set})
    assert list(obj.__dict__) == list(cls.model_fields), cls.__name__
    for name, value in obj.__dict__.items():
        expected = again.__dict__[name]
        assert value == expected, (cls.__name__, name)
        assert type(value) is type(expected), (cls.__name__, name, type(value), type(expected))
    assert obj.model_fields_set == again.model_fields_set, cls.__name__
    assert obj.__pydantic_extra__ is None and obj.__pydantic_private__ is None
    assert obj == again and obj.model_dump_json() == again.model_dump_json()
    for value in obj.__dict__.values():
        assert_as_validated(value)


def answer(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }
    data.update(changes)
    return data


def parsed(data: dict[str, Any], **extra: Any) -> ModelCompletionResponse:
    return parse_chat_response(
        data,
        provider="openai",
        latency=extra.pop("latency", 0.25),
        request_id=extra.pop("request_id", "req_1"),
        warnings=extra.pop("warnings", []),
        models=extra.pop("models", MODELS),
        requested_model=extra.pop("requested_model", "gpt-4o"),
    )


def message(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": fields, "finish_reason": "stop"}]}


@pytest.mark.parametrize(
    "data",
    [
        answer(),
        # Tool calls, with arguments as text and as an object, an id and a name missing.
        answer(
            **message(
                role="assistant",
                content=None,
                tool_calls=[
                    {"id": "call_a", "function": {"name": "f", "arguments": '{"x":1}'}},
                    {"function": {"name": 7, "arguments": {"y": [1, 2]}}},
                    "not a call",
                ],
            )
        ),
        answer(**message(role="assistant", content="Some text", tool_calls=[{"function": {}}])),
        answer(**message(role="assistant", content=None, refusal="I can't.")),
        answer(**message(role="assistant", content=[{"type": "text", "text": "a"}, {"text": 3}])),
        # What compatible servers leave out or get wrong.
        {"choices": [{"message": {"content": "x"}}]},
        {"id": 5, "model": None, "choices": [{"message": "odd", "finish_reason": 3}]},
        answer(usage={"prompt_tokens": True, "completion_tokens": "7", "total_tokens": 0}),
        answer(
            usage={
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "prompt_tokens_details": {"cached_tokens": 40},
                "completion_tokens_details": {"reasoning_tokens": 20},
            }
        ),
        answer(usage={"prompt_tokens": 10, "prompt_cache_hit_tokens": 6}),
        answer(usage=None),
    ],
)
def test_parsed_answers_are_what_validation_makes(data: dict[str, Any]) -> None:
    response = parsed(data)
    assert_as_validated(response)
    assert response.raw is data


def test_the_callers_warnings_list_is_not_the_responses() -> None:
    warnings = ["one"]
    response = parsed(answer(), warnings=warnings, models={}, latency=1, request_id=None)
    warnings.append("later")
    assert response.warnings == ["one"]
    assert response.cost is None
    assert_as_validated(response)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
_USAGE_KEYS = st.sampled_from(
    [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_cache_hit_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    ]
)


@given(
    st.dictionaries(
        _USAGE_KEYS,
        st.one_of(
            st.integers(0, 10**6),
            st.booleans(),
            _JSON,
            st.fixed_dictionaries(
                {}, optional={"cached_tokens": _JSON, "reasoning_tokens": st.integers(0, 99)}
            ),
        ),
    )
)
def test_usage_of_any_shape_is_what_validation_makes(data: dict[str, Any]) -> None:
    try:
        usage = parse_usage(data)
    except (AttributeError, TypeError):
        return  # a malformed details object: the adapter reports it, nothing is built
    assert_as_validated(usage)


def test_stream_events_and_final_response_are_what_validation_makes() -> None:
    chunks: list[dict[str, Any]] = [
        {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"refusal": "lo"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ]
    assembler = ChatStreamAssembler()
    events = [event for chunk in chunks for event in assembler.feed(json.loads(json.dumps(chunk)))]
    assert [e.type for e in events] == [
        "text-delta",
        "text-delta",
        "tool-call-delta",
        "tool-call-delta",
        "tool-call",
        "usage",
    ]
    assert_as_validated(events)
    response = assembler.finish(
        provider="openai", latency=0.5, request_id=None, warnings=[], models=MODELS
    )
    assert_as_validated(response)
    assert response.text == "Hello" and response.tool_calls[0].arguments == "{}"


async def test_recorded_attempts_are_what_validation_makes() -> None:
    from aiport._provider import ModelProvider

    class Flaky(ModelProvider):
        name = "flaky"
        models: dict[str, Any] = {}  # noqa: RUF012
        calls = 0

        async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise ProviderRateLimitError("busy", status_code=429, retry_after=0.0)
            return parsed(answer())

        def stream(self, options: ModelCompletionOptions) -> Any:
            raise NotImplementedError

    async def no_sleep(_: float) -> None:
        return None

    layer = RetryLayer(
        Flaky(),
        policy=lambda model: __import__("aiport").RetryConfig(max_attempts=3),
        budget=RetryBudget(ratio=1.0, window=10.0, min_retries=5),
        sleep=no_sleep,
    )
    context = CallContext()
    with call_scope(context):
        await layer.complete(ModelCompletionOptions(model="m", messages="hi"))
    assert [(a.number, a.outcome, a.status_code) for a in context.attempts] == [
        (1, "error", 429),
        (2, "ok", None),
    ]
    assert_as_validated(context.attempts)
