"""Property tests: any conversation converts to a request Anthropic accepts.

Requests are also validated against the official SDK's ``MessageCreateParams`` TypedDict
(the ``anthropic`` 2.x package, a dev-only dependency) with pydantic.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiport._types import ImagePart, Message, ModelCompletionOptions, TextPart, Tool, ToolCall
from aiport.providers.anthropic._convert import build_messages_request

anthropic_types = pytest.importorskip("anthropic.types.message_create_params")

WEATHER = Tool(
    name="get_weather",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}},
)


@functools.cache
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(anthropic_types.MessageCreateParamsNonStreaming)


def _consume(value: Any) -> Any:
    # The SDK types use Iterable[...], which pydantic validates lazily: walk everything.
    if isinstance(value, dict):
        return {k: _consume(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_consume(v) for v in value]
    if type(value).__name__ == "ValidatorIterator":
        return [_consume(v) for v in value]
    return value


def validate_with_sdk(body: dict[str, Any], *, legacy: bool = False) -> None:
    """Raise if ``body`` is not a valid ``MessageCreateParams`` of the SDK."""
    known = set(anthropic_types.MessageCreateParamsBase.__annotations__)
    if legacy:
        known |= {"temperature", "top_p", "top_k"}  # the 2023-06-01 API still takes them
    unknown = set(body) - known - {"stream"}
    assert not unknown, f"fields the SDK does not know: {unknown}"
    _consume(_adapter().validate_python(body))


# --------------------------------------------------------------------------- strategies

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20
)


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Valid unified conversations: tool results always answer the calls just made."""
    messages: list[Message] = []
    counter = 0
    if draw(st.booleans()):
        messages.append(Message.system(draw(_text)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        kind = draw(st.sampled_from(["user", "user_image", "assistant", "tool_round", "system"]))
        if kind == "user":
            messages.append(Message.user(draw(_text)))
        elif kind == "user_image":
            image = ImagePart(data=draw(st.binary(min_size=1, max_size=8)), media_type="image/png")
            messages.append(Message.user(draw(_text), image))
        elif kind == "assistant":
            messages.append(Message.assistant(draw(_text)))
        elif kind == "system":
            messages.append(Message(role="developer", content=draw(_text)))
        else:
            calls = []
            for _ in range(draw(st.integers(min_value=1, max_value=3))):
                counter += 1
                location = draw(_text)
                calls.append(
                    ToolCall(
                        id=f"toolu_{counter}", name="get_weather", arguments={"location": location}
                    )
                )
            text = draw(st.one_of(st.just(""), _text))
            messages.append(Message.assistant(text, calls))
            for call in calls:
                content: Any = draw(
                    st.one_of(_text, st.builds(lambda t: [TextPart(text=t)], _text))
                )
                messages.append(Message.tool_result(call.id, content, is_error=draw(st.booleans())))
            if draw(st.booleans()):
                messages.append(Message.user(draw(_text)))
    if not any(m.role in ("user", "assistant", "tool") for m in messages):
        messages.append(Message.user("hi"))
    return messages


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(conversation=conversations(), parallel=st.sampled_from([None, True, False]))
def test_any_conversation_converts_to_a_valid_request(
    conversation: list[Message], parallel: bool | None
) -> None:
    options = ModelCompletionOptions(
        model="claude-sonnet-4-6",
        messages=conversation,
        tools=[WEATHER],
        parallel_tool_calls=parallel,
    )
    body, _ = build_messages_request(options, api_version="2026-10-21", max_tokens_default=1024)
    messages = body["messages"]

    # Strict alternation.
    roles = [m["role"] for m in messages]
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert set(roles) <= {"user", "assistant"}

    # Every tool_result answers a tool_use of the previous (assistant) turn, every tool_use
    # is answered in the next turn, and tool_result blocks come first in their turn.
    for i, message in enumerate(messages):
        blocks = _blocks(message["content"])
        results = [b for b in blocks if b["type"] == "tool_result"]
        if results:
            assert message["role"] == "user"
            assert blocks[: len(results)] == results
            previous = _blocks(messages[i - 1]["content"]) if i else []
            offered = {b["id"] for b in previous if b["type"] == "tool_use"}
            assert messages[i - 1]["role"] == "assistant"
            assert {b["tool_use_id"] for b in results} == offered
        uses = [b for b in blocks if b["type"] == "tool_use"]
        if uses:
            assert message["role"] == "assistant"
            assert i + 1 < len(messages)

    # Nothing is lost: every text, call and result of the conversation is in the request.
    def count(kind: str) -> int:
        return sum(1 for m in messages for b in _blocks(m["content"]) if b["type"] == kind)

    calls = sum(len(m.tool_calls) for m in conversation)
    result_count = sum(
        1 for m in conversation for p in m.parts if getattr(p, "type", None) == "tool_result"
    )
    texts = sum(
        1
        for m in conversation
        if m.role in ("user", "assistant")
        for p in m.parts
        if isinstance(p, TextPart) and p.text
    )
    assert (count("tool_use"), count("tool_result"), count("text")) == (calls, result_count, texts)
    system = sum(1 for m in conversation if m.role in ("system", "developer"))
    if system == 1:
        assert isinstance(body["system"], str)
    elif system:
        assert len(body["system"]) == system

    validate_with_sdk(body)


@pytest.mark.parametrize("legacy", [False, True])
def test_full_request_validates_against_the_sdk_types(legacy: bool) -> None:
    options = ModelCompletionOptions(
        model="claude-sonnet-4-6",
        messages=[
            {"role": "system", "content": "Be brief."},
            Message.user("Hi", ImagePart(url="https://example.com/a.png")),
        ],
        temperature=0.5,
        top_p=0.5,
        stop=["END"],
        tools=[WEATHER],
        tool_choice="get_weather",
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
        metadata={"user_id": "u"},
        provider_options={"thinking": {"type": "enabled", "budget_tokens": 2048}},
    )
    version = "2023-06-01" if legacy else "2026-10-21"
    body, _ = build_messages_request(options, api_version=version, max_tokens_default=1024)
    assert ("temperature" in body) is legacy
    validate_with_sdk(body, legacy=legacy)


def test_sdk_validation_catches_a_bad_body() -> None:
    with pytest.raises(Exception, match="validation error"):
        validate_with_sdk(
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": [{"type": "tool_use", "idx": 1}]}],
            }
        )
    with pytest.raises(AssertionError, match="temperature"):
        validate_with_sdk(
            {"model": "m", "max_tokens": 1, "messages": [], "temperature": 0.5}, legacy=False
        )
