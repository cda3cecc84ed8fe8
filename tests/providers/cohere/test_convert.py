"""The pure Cohere conversions: request translation, answer parsing, stream assembly,
rerank results, error bodies."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport._errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderRateLimitError,
)
from aiport._types import (
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    TextDeltaEvent,
    TextPart,
    ToolCall,
    ToolCallEvent,
)
from aiport.providers.cohere._convert import (
    CohereStreamAssembler,
    build_chat_request,
    build_embed_request,
    parse_chat_response,
    parse_embed_response,
    parse_usage,
)
from aiport.providers.cohere._errors import map_error
from aiport.providers.cohere._rerank import build_rerank_request, parse_rerank_response


def options(**kwargs: Any) -> ModelCompletionOptions:
    kwargs.setdefault("model", "command-a-03-2025")
    kwargs.setdefault("messages", "Hi")
    return ModelCompletionOptions(**kwargs)


def parse(data: dict[str, Any]) -> Any:
    return parse_chat_response(
        data,
        provider="cohere",
        latency=0.0,
        request_id=None,
        warnings=[],
        models={},
        requested_model="command-a-03-2025",
    )


# --------------------------------------------------------------------------- requests


def test_a_conversation_in_cohere_roles() -> None:
    call = ToolCall(id="lookup_abc", name="lookup", arguments='{"q":"x"}')
    body, warnings = build_chat_request(
        options(
            messages=[
                Message.system("Be brief."),
                Message.user("Find x", ImagePart(url="https://example.com/x.png", detail="high")),
                Message.assistant("Looking it up.", tool_calls=[call]),
                Message.tool_result("lookup_abc", "found"),
                Message.assistant("It is found."),
                Message.user("Thanks"),
            ]
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Find x"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/x.png", "detail": "high"},
                },
            ],
        },
        {
            "role": "assistant",
            "tool_plan": "Looking it up.",
            "tool_calls": [
                {
                    "id": "lookup_abc",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":"x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "lookup_abc", "content": "found"},
        {"role": "assistant", "content": "It is found."},
        {"role": "user", "content": "Thanks"},
    ]
    assert warnings == []


def test_tool_results_lose_images_and_the_error_flag_with_warnings() -> None:
    result = Message.tool_result(
        "c1", [TextPart(text="oops"), ImagePart(url="https://example.com/a.png")], is_error=True
    )
    body, warnings = build_chat_request(
        options(
            messages=[
                Message.user("q"),
                Message.assistant(tool_calls=[ToolCall(id="c1", name="f")]),
                result,
            ]
        )
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "oops"}
    assert len(warnings) == 2


@pytest.mark.parametrize(
    ("choice", "wire", "offered"),
    [
        ("auto", None, ["f", "g"]),
        ("none", "NONE", ["f", "g"]),
        ("required", "REQUIRED", ["f", "g"]),
        ("g", "REQUIRED", ["g"]),
    ],
)
def test_tool_choices(choice: str, wire: str | None, offered: list[str]) -> None:
    tools = [{"name": "f"}, {"name": "g", "description": "G"}]
    body, warnings = build_chat_request(options(tools=tools, tool_choice=choice))
    assert body.get("tool_choice") == wire
    assert [t["function"]["name"] for t in body["tools"]] == offered
    assert warnings == []


def test_a_named_tool_that_is_not_offered() -> None:
    body, warnings = build_chat_request(options(tools=[{"name": "f"}], tool_choice="missing"))
    assert "tools" not in body
    assert "not among the tools" in warnings[0]


def test_strict_tools_is_request_wide() -> None:
    body, warnings = build_chat_request(
        options(tools=[{"name": "f", "strict": True}, {"name": "g"}])
    )
    assert body["strict_tools"] is True
    assert "strict too" in warnings[0]
    body, warnings = build_chat_request(options(tools=[{"name": "f", "strict": True}]))
    assert body["strict_tools"] is True
    assert warnings == []


@given(st.floats(min_value=0, max_value=1))
def test_p_is_always_in_cohere_range(top_p: float) -> None:
    body, warnings = build_chat_request(options(top_p=top_p))
    assert 0.01 <= body["p"] <= 0.99
    assert bool(warnings) == (body["p"] != top_p)


def test_embed_request() -> None:
    body = build_embed_request(
        ModelEmbeddingOptions(
            model="embed-v4.0",
            input=["a"],
            dimensions=512,
            provider_options={"input_type": "classification", "truncate": "NONE"},
        )
    )
    assert body == {
        "model": "embed-v4.0",
        "texts": ["a"],
        "input_type": "classification",
        "embedding_types": ["float"],
        "output_dimension": 512,
        "truncate": "NONE",
    }


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("raw", "unified"),
    [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
        ("TOOL_CALL", "tool_calls"),
        ("ERROR", "error"),
        ("TIMEOUT", "error"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons(raw: str, unified: str) -> None:
    data = {"id": "x", "message": {"role": "assistant", "content": []}, "finish_reason": raw}
    assert parse(data).finish_reason == unified


def test_usage_prefers_billed_units() -> None:
    usage = parse_usage(
        {
            "billed_units": {"input_tokens": 12.0, "output_tokens": 7.0},
            "tokens": {"input_tokens": 507.0, "output_tokens": 10.0},
        }
    )
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 7, 19)
    only_tokens = parse_usage({"tokens": {"input_tokens": 5, "output_tokens": 1}})
    assert (only_tokens.input_tokens, only_tokens.output_tokens) == (5, 1)
    assert parse_usage(None).total_tokens == 0


def test_an_answer_without_a_message_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        parse({"id": "x", "finish_reason": "COMPLETE"})


def test_embeddings_of_another_type_are_refused_clearly() -> None:
    with pytest.raises(MalformedResponseError) as info:
        parse_embed_response(
            {"embeddings": {"int8": [[1, 2]]}},
            provider="cohere",
            model="embed-v4.0",
            latency=0,
            request_id=None,
            models={},
        )
    assert "int8" in info.value.message


# --------------------------------------------------------------------------- streams


def test_citations_and_unknown_events_in_a_stream() -> None:
    assembler = CohereStreamAssembler()
    events: list[Any] = []
    payloads: list[dict[str, Any]] = [
        {"id": "m1", "type": "message-start", "delta": {"message": {"role": "assistant"}}},
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        },
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Paris"}}}},
        {
            "type": "citation-start",
            "index": 0,
            "delta": {
                "message": {"citations": {"start": 0, "end": 5, "text": "Paris", "sources": []}}
            },
        },
        {"type": "citation-end", "index": 0},
        {"type": "debug", "prompt": "..."},
        {"type": "something-new"},
        {"type": "content-end", "index": 0},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "COMPLETE",
                "usage": {"billed_units": {"input_tokens": 1, "output_tokens": 1}},
            },
        },
    ]
    for payload in payloads:
        events.extend(assembler.feed(payload))
    assert [e.text for e in events if isinstance(e, TextDeltaEvent)] == ["Paris"]
    response = assembler.finish(
        provider="cohere", latency=0, request_id=None, warnings=[], models={}, requested_model="m"
    )
    assert response.text == "Paris"
    assert response.id == "m1"
    assert response.raw["message"]["citations"][0]["text"] == "Paris"


def test_a_stream_that_ends_with_an_error() -> None:
    assembler = CohereStreamAssembler()
    assembler.feed({"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "boom"}})
    assert assembler.finished
    assert assembler.error == "boom"


def test_tool_calls_still_open_at_the_end_are_closed() -> None:
    assembler = CohereStreamAssembler()
    start = {
        "type": "tool-call-start",
        "index": 0,
        "delta": {
            "message": {
                "tool_calls": {
                    "id": "f_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a":'},
                }
            }
        },
    }
    delta = {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": "1}"}}}},
    }
    end = {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL"}}
    events = [*assembler.feed(start), *assembler.feed(delta), *assembler.feed(end)]
    [done] = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert (done.id, done.name, done.arguments) == ("f_1", "f", '{"a":1}')


# --------------------------------------------------------------------------- rerank


def test_rerank_request_and_results() -> None:
    body = build_rerank_request(
        "q",
        ["a", "b"],
        model="rerank-v3.5",
        top_n=1,
        max_tokens_per_doc=100,
        provider_options={"priority": 1},
    )
    assert body == {
        "model": "rerank-v3.5",
        "query": "q",
        "documents": ["a", "b"],
        "top_n": 1,
        "max_tokens_per_doc": 100,
        "priority": 1,
    }
    data = {
        "id": "r1",
        "results": [{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}],
        "meta": {"billed_units": {"search_units": 1.0}},
    }
    response = parse_rerank_response(
        data, ["a", "b"], provider="cohere", model="rerank-v3.5", latency=0, request_id=None
    )
    assert [(r.index, r.document, r.relevance_score) for r in response.results] == [
        (1, "b", 0.9),
        (0, "a", 0.1),
    ]
    assert response.search_units == 1


@pytest.mark.parametrize(
    "results",
    [
        None,
        [{"index": 5, "relevance_score": 0.5}],
        [{"index": -1, "relevance_score": 1}],
        [{"index": 0}],
    ],
)
def test_unreadable_rerank_results_are_malformed(results: Any) -> None:
    with pytest.raises(MalformedResponseError):
        parse_rerank_response(
            {"results": results}, ["a"], provider="cohere", model="m", latency=0, request_id=None
        )


@pytest.mark.parametrize(
    ("query", "documents", "top_n"),
    [("", ["a"], None), ("q", [], None), ("q", ["a"], 0), ("q", "abc", None)],
)
def test_bad_rerank_arguments(query: str, documents: Any, top_n: int | None) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (each message is checked by the adapter's caller)
        build_rerank_request(
            query, documents, model="m", top_n=top_n, max_tokens_per_doc=None, provider_options=None
        )


# --------------------------------------------------------------------------- errors


def error(status: int, body: Any, headers: dict[str, str] | None = None, text: str = "") -> Any:
    return map_error("cohere", status, headers or {}, body, text, "m")


def test_error_bodies() -> None:
    mapped = error(400, {"id": "e-1", "message": "invalid request: bad"})
    assert isinstance(mapped, InvalidRequestError)
    assert mapped.message == "invalid request: bad"
    assert mapped.request_id == "e-1"  # no trace header: the body's id
    traced = error(401, {"message": "invalid api token"}, {"x-debug-trace-id": "t-1"})
    assert isinstance(traced, ProviderAuthError)
    assert traced.request_id == "t-1"
    assert isinstance(error(498, {"message": "invalid token"}), ProviderAuthError)
    cancelled = error(499, {"message": "cancelled"})
    assert type(cancelled) is ProviderAPIError
    assert cancelled.retryable
    assert cancelled.reason == "cancelled"
    limited = error(429, {"message": "slow down"}, {"retry-after": "5"})
    assert isinstance(limited, ProviderRateLimitError)
    assert limited.retry_after == 5.0
    too_long = error(
        400,
        {
            "message": "too many tokens: total number of tokens in the prompt cannot "
            "exceed 10 - received 20."
        },
    )
    assert isinstance(too_long, ContextLengthExceededError)


def test_errors_inside_a_stream() -> None:
    server = error(0, {"message": "internal error"})
    assert type(server) is ProviderAPIError
    assert server.retryable
    assert server.status_code is None
    assert isinstance(
        error(0, {"message": "too many tokens: size limit exceeded"}), ContextLengthExceededError
    )


def test_a_body_that_is_not_json() -> None:
    mapped = error(503, None, text="<html>Service Unavailable</html>")
    assert mapped.retryable
    assert "HTTP 503 from cohere" in mapped.message
