"""Anthropic messages over real HTTP, checked raw and through the official SDK."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import jsonschema
import pytest
from anthropic import AsyncAnthropic

from aiport.testing import Emulator

from .conftest import AN, ANTHROPIC_KEY, parse_sse

RECORDED = (
    Path(__file__).resolve().parents[3] / "shared/conformance-data/anthropic/recorded-streams"
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["location"],
}
TOOLS = [
    {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA},
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]


def msg(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def post(
    http: aiohttp.ClientSession,
    emu: Emulator,
    body: Any,
    headers: dict[str, str] | None = None,
    path: str = "/v1/messages",
) -> tuple[int, dict[str, str], str]:
    async with http.post(
        emu.url + path, json=body, headers=AN if headers is None else headers
    ) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.text()


async def test_plain_message(ant: AsyncAnthropic) -> None:
    m = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system="Be nice.",
        messages=[{"role": "user", "content": "Hello, Claude"}],
    )
    assert m.id.startswith("msg_")
    assert m.type == "message"
    assert m.role == "assistant"
    assert m.model == "claude-sonnet-4-5"
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == "You said: Hello, Claude"  # type: ignore[union-attr]
    assert m.stop_reason == "end_turn"
    assert m.stop_sequence is None
    # system "Be nice." = 3 (no per-message overhead); message: 3 + 3
    assert m.usage.input_tokens == 9
    assert m.usage.output_tokens == 4
    assert m.usage.cache_read_input_tokens == 0
    assert m.usage.cache_creation_input_tokens == 0
    assert m.usage.service_tier == "standard"


async def test_headers(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, headers, text = await post(http, emu, msg("hi"))
    assert status == 200
    assert headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens"):
        assert int(headers[f"anthropic-ratelimit-{kind}-limit"]) > 0
        assert int(headers[f"anthropic-ratelimit-{kind}-remaining"]) >= 0
        datetime.fromisoformat(headers[f"anthropic-ratelimit-{kind}-reset"])
    assert json.loads(text)["content"] == [{"type": "text", "text": "You said: hi"}]


async def test_stream_matches_recorded_shape(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, headers, text = await post(http, emu, msg("Hello there!", stream=True))
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(text)
    names = [event for event, _ in frames]
    expected = (
        ["message_start", "content_block_start", "ping"]
        + ["content_block_delta"] * 4
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    assert names == expected
    payloads = [json.loads(data) for _, data in frames]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    start = payloads[0]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    assert start["usage"]["input_tokens"] == 6
    assert [p["delta"]["text"] for p in payloads[3:7]] == ["You", " said:", " Hello", " there!"]
    assert payloads[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert payloads[-2]["usage"]["output_tokens"] == 4
    if RECORDED.is_dir():
        recorded = parse_sse((RECORDED / "basic.sse").read_text())
        assert [e for e, _ in recorded][:3] == names[:3]
        assert [e for e, _ in recorded][-3:] == names[-3:]
        assert recorded[2][1] == frames[2][1]  # the ping, byte for byte


async def test_sdk_stream_with_thinking_and_tools(ant: AsyncAnthropic) -> None:
    async with ant.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "call get_weather and get_time"}],
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert "content_block_delta" in kinds
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, weather, time_ = final.content
    assert thinking.thinking == "Thinking about: call get_weather and get_time"  # type: ignore[union-attr]
    assert thinking.signature  # type: ignore[union-attr]
    assert text.text == "I'll call get_weather and get_time."  # type: ignore[union-attr]
    assert weather.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(weather.input, SCHEMA)  # type: ignore[union-attr]
    assert weather.input == {"location": "example", "unit": "celsius"}  # type: ignore[union-attr]
    assert time_.input == {}  # type: ignore[union-attr]
    assert weather.id.startswith("toolu_") and len(weather.id) == 30  # type: ignore[union-attr]
    assert weather.id != time_.id  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


async def test_streamed_deltas(http: aiohttp.ClientSession, emu: Emulator) -> None:
    body = msg(
        "get_weather",
        stream=True,
        max_tokens=2000,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    _, _, text = await post(http, emu, body)
    payloads = [json.loads(d) for _, d in parse_sse(text)]
    deltas = [p["delta"] for p in payloads if p["type"] == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    assert kinds[0] == "thinking_delta"
    assert "signature_delta" in kinds
    json_parts = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert json_parts[0] == ""
    assert json.loads("".join(json_parts)) == {"location": "example", "unit": "celsius"}
    starts = [p["content_block"] for p in payloads if p["type"] == "content_block_start"]
    assert starts[0] == {"type": "thinking", "thinking": "", "signature": ""}
    assert starts[2]["type"] == "tool_use" and starts[2]["input"] == {}


async def test_tool_choice_and_parallel(ant: AsyncAnthropic) -> None:
    async def names(**extra: Any) -> list[str]:
        m = await ant.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=100,
            tools=TOOLS,  # type: ignore[arg-type]
            messages=[{"role": "user", "content": "get_time and get_weather"}],
            **extra,
        )
        return [b.name for b in m.content if b.type == "tool_use"]

    assert await names() == ["get_weather", "get_time"]
    assert await names(tool_choice={"type": "auto", "disable_parallel_tool_use": True}) == [
        "get_weather"
    ]
    assert await names(tool_choice={"type": "tool", "name": "get_time"}) == ["get_time"]
    assert await names(tool_choice={"type": "none"}) == []


async def test_tool_result_round_trip(ant: AsyncAnthropic) -> None:
    first = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "weather?"}],
    )
    tool_use = next(b for b in first.content if b.type == "tool_use")
    second = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=TOOLS,  # type: ignore[arg-type]
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},  # type: ignore[list-item,misc]
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": [{"type": "text", "text": "rainy"}],
                    }
                ],
            },
        ],
    )
    assert second.content[0].text == "Tool results: rainy"  # type: ignore[union-attr]
    assert second.stop_reason == "end_turn"


async def test_max_tokens_and_stop_sequences(ant: AsyncAnthropic) -> None:
    m = await ant.messages.create(
        model="claude-sonnet-4-5", max_tokens=2, messages=[{"role": "user", "content": "a b c"}]
    )
    assert (m.content[0].text, m.stop_reason) == ("You said:", "max_tokens")  # type: ignore[union-attr]
    m = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        stop_sequences=["END", "said"],
        messages=[{"role": "user", "content": "x END y"}],
    )
    assert m.content[0].text == "You"  # type: ignore[union-attr]
    assert (m.stop_reason, m.stop_sequence) == ("stop_sequence", "said")


async def test_structured_output(http: aiohttp.ClientSession, emu: Emulator) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 5}, "ok": {"type": "boolean"}},
        "required": ["n", "ok"],
        "additionalProperties": False,
    }
    for extra in (
        {"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        {"output_format": {"type": "json_schema", "schema": schema}},
    ):
        _, _, text = await post(http, emu, msg("json please", **extra))
        value = json.loads(json.loads(text)["content"][0]["text"])
        jsonschema.validate(value, schema)
        assert value == {"n": 5, "ok": True}


async def test_cache_control_usage(ant: AsyncAnthropic) -> None:
    m = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        system=[{"type": "text", "text": "one two three", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "four five"}],
    )
    assert m.usage.cache_read_input_tokens == 3
    assert m.usage.input_tokens == 5
    m = await ant.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a b", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "c"},
                ],
            }
        ],
    )
    assert (m.usage.cache_read_input_tokens, m.usage.input_tokens) == (5, 1)


async def test_images_count(http: aiohttp.ClientSession, emu: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    body = msg("x")
    body["messages"][0]["content"] = [image, {"type": "text", "text": "what is this"}]
    _, _, text = await post(http, emu, body)
    data = json.loads(text)
    assert data["content"][0]["text"] == "You said: what is this [images: 1]"
    assert data["usage"]["input_tokens"] == 3 + 85 + 3


async def test_count_tokens(ant: AsyncAnthropic) -> None:
    r = await ant.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "one two"}]
    )
    assert r.input_tokens == 5


async def test_context_window(http: aiohttp.ClientSession) -> None:
    async with Emulator(context_windows={"tiny": 4}) as emu:
        status, _, text = await post(http, emu, msg("one two three", model="tiny"))
        assert status == 400
        body = json.loads(text)
        assert body["type"] == "error"
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": "prompt is too long: 6 tokens > 4 maximum",
        }
        assert body["request_id"].startswith("req_")


async def test_versions_and_auth(http: aiohttp.ClientSession) -> None:
    async with Emulator(api_keys=[ANTHROPIC_KEY]) as emu:
        ok_bearer = {"authorization": f"Bearer {ANTHROPIC_KEY}", "anthropic-version": "2026-10-21"}
        assert (await post(http, emu, msg("hi"), ok_bearer))[0] == 200
        assert (await post(http, emu, msg("hi"), AN))[0] == 200

        async def error(headers: dict[str, str], body: Any = None) -> tuple[int, dict[str, Any]]:
            status, _, text = await post(http, emu, body or msg("hi"), headers)
            return status, json.loads(text)["error"]

        assert await error({**AN, "x-api-key": "wrong-key-123"}) == (
            401,
            {"type": "authentication_error", "message": "invalid x-api-key"},
        )
        bad_bearer = {**ok_bearer, "authorization": "Bearer wrong-token-1"}
        assert await error(bad_bearer) == (
            401,
            {"type": "authentication_error", "message": "invalid bearer token"},
        )
        assert (await error({"anthropic-version": "2023-06-01"}))[0] == 401
        status, err = await error({"x-api-key": ANTHROPIC_KEY})
        assert (status, err["type"]) == (400, "invalid_request_error")
        assert "anthropic-version" in err["message"]
        status, err = await error({**AN, "anthropic-version": "2024-01-01"})
        assert (status, err["type"]) == (400, "invalid_request_error")
        for name in ("temperature", "top_p", "top_k"):
            assert await error(ok_bearer, msg("hi", **{name: 0.5})) == (
                400,
                {
                    "type": "invalid_request_error",
                    "message": f"{name}: Extra inputs are not permitted",
                },
            )
        # The older version still takes them.
        assert (await post(http, emu, msg("hi", temperature=0.5, top_k=3), AN))[0] == 200


async def test_sdk_defaults_to_bearer_and_new_version(ant: AsyncAnthropic, emu: Emulator) -> None:
    await ant.messages.create(
        model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    headers = emu.requests[-1].headers
    assert headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert headers["anthropic-version"] == "2026-10-21"
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        await ant.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_body={"temperature": 0.2},
        )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens: Field required",
        ),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            "model: Field required",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "user"}]},
            "messages.0.content: Field required",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}
                        ],
                    }
                ],
            },
            "unexpected `tool_use_id`",
        ),
        (
            {**msg("x"), "thinking": {"type": "enabled", "budget_tokens": 2048}},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        ({**msg("x"), "tools": [{"name": "f"}]}, "tools.0.custom.input_schema: Field required"),
    ],
)
async def test_bad_requests(
    http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any], message: str
) -> None:
    status, _, text = await post(http, emu, body)
    assert status == 400
    error = json.loads(text)["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


async def test_unknown_route_is_not_found(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, _, text = await post(http, emu, {}, path="/v1/embeddings")
    assert status == 404
    assert json.loads(text)["error"]["type"] == "not_found_error"


async def test_sdk_parse_into_pydantic(ant: AsyncAnthropic) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        title: str
        score: int

    m = await ant.messages.parse(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "rate it"}],
        output_format=Answer,
    )
    assert m.parsed_output == Answer(title="example", score=1)
