"""OpenAI chat completions over real HTTP, checked raw and through the official SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import openai
import pytest
from openai import AsyncOpenAI

from aiport.testing import Emulator

from .conftest import OA, parse_sse, sse_json

RECORDED = Path(__file__).resolve().parents[3] / "shared/conformance-data/openai/recorded-streams"

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "units": {"type": "string", "enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "units"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}},
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]


async def post(
    http: aiohttp.ClientSession, emu: Emulator, body: dict[str, Any], **headers: str
) -> tuple[int, dict[str, str], str]:
    async with http.post(
        emu.openai_base_url + "/chat/completions", json=body, headers={**OA, **headers}
    ) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.text()


def user(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


async def test_plain_answer_and_usage(oai: AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello, world!"},
        ],
    )
    assert r.id.startswith("chatcmpl-")
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini"
    assert r.system_fingerprint == "fp_emulator"
    assert r.choices[0].message.content == "You said: Hello, world!"
    assert r.choices[0].finish_reason == "stop"
    # system: Be brief . -> 3 + 3; user: Hello , world ! -> 4 + 3
    assert r.usage is not None
    assert r.usage.prompt_tokens == 13
    assert r.usage.completion_tokens == 4  # "You", " said:", " Hello,", " world!"
    assert r.usage.total_tokens == 17
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 0
    assert r.usage.completion_tokens_details is not None
    assert r.usage.completion_tokens_details.reasoning_tokens == 0


async def test_headers(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, headers, body = await post(http, emu, user("hi"))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    for kind in ("requests", "tokens"):
        for what in ("limit", "remaining", "reset"):
            assert f"x-ratelimit-{what}-{kind}" in headers
    assert headers["x-ratelimit-reset-requests"] == "6ms"
    assert int(headers["x-ratelimit-remaining-requests"]) < int(
        headers["x-ratelimit-limit-requests"]
    )
    assert isinstance(json.loads(body)["created"], int)


async def test_images_and_multipart_text(oai: AsyncOpenAI) -> None:
    image: Any = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    image,
                    {"type": "text", "text": "here"},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "You said: look here [images: 1]"
    assert r.usage is not None
    assert r.usage.prompt_tokens == 3 + 2 + 85


async def test_stream_matches_recorded_shape(http: aiohttp.ClientSession, emu: Emulator) -> None:
    body = {**user("one two three"), "stream": True, "stream_options": {"include_usage": True}}
    status, headers, text = await post(http, emu, body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(text)
    assert frames[-1] == (None, "[DONE]")
    chunks = sse_json(text)
    first, *middle, final, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"]["content"] for c in middle] == [
        "You",
        " said:",
        " one",
        " two",
        " three",
    ]
    assert final["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 5
    assert all(c["usage"] is None for c in chunks[:-1])
    assert {c["id"] for c in chunks} == {first["id"]}
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert c["system_fingerprint"] == "fp_emulator"
    if RECORDED.is_dir():
        recorded = sse_json((RECORDED / "text.sse").read_text())
        assert set(recorded[0]) <= set(first)
        assert set(recorded[0]["choices"][0]) == set(first["choices"][0])
        assert recorded[0]["choices"][0]["delta"] == first["choices"][0]["delta"]
        assert set(recorded[-1]) == set(usage)


async def test_stream_without_usage_has_no_usage_key(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    _, _, text = await post(http, emu, {**user("hi"), "stream": True})
    chunks = sse_json(text)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_sdk_stream(oai: AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(parts) == "You said: stream me"
    assert usage is not None
    assert usage.completion_tokens == 4


async def test_max_tokens_and_stop(oai: AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "a b c d e f"}],
        max_completion_tokens=3,
    )
    assert r.choices[0].message.content == "You said: a"
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None
    assert r.usage.completion_tokens == 3
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "alpha STOP beta"}],
        stop=["STOP", "zz"],
    )
    assert r.choices[0].message.content == "You said: alpha"
    assert r.choices[0].finish_reason == "stop"
    # Legacy max_tokens works too; a stop after the budget still ends as "length".
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "x y STOP"}],
        stop="STOP",
        max_tokens=2,
    )
    assert (r.choices[0].message.content, r.choices[0].finish_reason) == ("You said:", "length")


async def test_n_choices(oai: AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hey"}], n=3
    )
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert {c.message.content for c in r.choices} == {"You said: hey"}
    assert r.usage is not None
    assert r.usage.completion_tokens == 9


async def test_tool_calls_validate_against_schema(oai: AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "what is the weather?"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"  # no tool named in the text: the first one
    assert call.id.startswith("call_")
    assert len(call.id) == len("call_") + 24
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER_SCHEMA)
    assert list(args) == ["city", "units", "days"]  # required first
    assert args == {"city": "example", "units": "c", "days": 1}


async def test_tool_selection_rules(oai: AsyncOpenAI) -> None:
    text = "use get_time then get_weather"

    async def names(**extra: Any) -> list[str]:
        r = await oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": text}],
            tools=TOOLS,  # type: ignore[arg-type]
            **extra,
        )
        return [c.function.name for c in r.choices[0].message.tool_calls or []]  # type: ignore[union-attr]

    assert await names() == ["get_weather", "get_time"]  # order of the tools, not the text
    assert await names(parallel_tool_calls=False) == ["get_weather"]
    forced = {"type": "function", "function": {"name": "get_time"}}
    assert await names(tool_choice=forced) == ["get_time"]
    assert await names(tool_choice="none") == []


async def test_tool_call_ids_are_deterministic_and_unique(oai: AsyncOpenAI) -> None:
    async def ids() -> list[str]:
        r = await oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "get_weather and get_time"}],
            tools=TOOLS,  # type: ignore[arg-type]
        )
        return [c.id for c in r.choices[0].message.tool_calls or []]

    first = await ids()
    assert len(set(first)) == 2
    assert await ids() == first


async def test_tool_round_trip(oai: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    r = await oai.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    call = (r.choices[0].message.tool_calls or [])[0]
    messages.append(r.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    r = await oai.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert r.choices[0].message.content == "Tool results: sunny, 21C"
    assert r.choices[0].finish_reason == "stop"


async def test_streamed_tool_calls(http: aiohttp.ClientSession, emu: Emulator) -> None:
    body = {
        **user("get_weather and get_time please"),
        "tools": TOOLS,
        "stream": True,
    }
    _, _, text = await post(http, emu, body)
    chunks = sse_json(text)
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
    }
    starts = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if "id" in (c["choices"][0]["delta"].get("tool_calls") or [{}])[0]
    ]
    assert [(s["index"], s["type"], s["function"]) for s in starts] == [
        (0, "function", {"name": "get_weather", "arguments": ""}),
        (1, "function", {"name": "get_time", "arguments": ""}),
    ]
    args: dict[int, str] = {0: "", 1: ""}
    for c in chunks[1:-1]:
        tc = c["choices"][0]["delta"]["tool_calls"][0]
        assert set(tc) <= {"index", "id", "type", "function"}
        piece = tc["function"]["arguments"]
        assert len(piece) <= 8
        args[tc["index"]] += piece
    jsonschema.validate(json.loads(args[0]), WEATHER_SCHEMA)
    assert json.loads(args[1]) == {"tz": "example"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_sdk_stream_accumulates_tool_calls(oai: AsyncOpenAI) -> None:
    async with oai.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "get_time"}],
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]
    assert json.loads(calls[0].function.arguments) == {"tz": "example"}


async def test_json_modes(oai: AsyncOpenAI) -> None:
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "give json"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content or "") == {"echo": "give json"}
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 2},
            "score": {"anyOf": [{"type": "number", "minimum": 3}, {"type": "null"}]},
        },
        "required": ["name", "tags", "score"],
        "additionalProperties": False,
        "$defs": {"tag": {"type": "string", "enum": ["red", "blue"]}},
    }
    r = await oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "give json"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": True},
        },
    )
    value = json.loads(r.choices[0].message.content or "")
    jsonschema.validate(value, schema)
    assert value == {"name": "example", "tags": ["red", "red"], "score": 3}


async def test_prompt_cache_key_reports_cached_tokens(oai: AsyncOpenAI) -> None:
    text = " ".join(["word"] * 200)
    r = await oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}], prompt_cache_key="k1"
    )
    assert r.usage is not None
    assert r.usage.prompt_tokens == 203
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 192


async def test_context_window_is_enforced(http: aiohttp.ClientSession) -> None:
    async with Emulator(context_window=10, context_windows={"big": 1000}) as emu:
        status, _, text = await post(http, emu, user("one two three four five six seven eight"))
        assert status == 400
        error = json.loads(text)["error"]
        assert error["code"] == "context_length_exceeded"
        assert error["type"] == "invalid_request_error"
        assert error["message"] == (
            "This model's maximum context length is 10 tokens. However, your messages resulted "
            "in 11 tokens. Please reduce the length of the messages."
        )
        status, _, _ = await post(
            http, emu, {**user("one two three four five six seven eight"), "model": "big"}
        )
        assert status == 200


@pytest.mark.parametrize(
    ("body", "param", "code", "fragment"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, None, None, "must provide a model"),
        ({"model": "gpt-4o"}, "messages", "missing_required_parameter", "'messages'"),
        ({"model": "gpt-4o", "messages": []}, "messages", "empty_array", "empty array"),
        (
            {"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
            "invalid_value",
            "Invalid value: 'robot'",
        ),
        (
            {
                "model": "gpt-4o",
                "messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}],
            },
            "messages.[0].role",
            None,
            "must be a response to a preceeding message",
        ),
        (
            {
                "model": "gpt-4o",
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "y"},
                ],
            },
            "messages.[1].role",
            None,
            "did not have response messages: call_1",
        ),
        (
            {**user("x"), "stream_options": {"include_usage": True}},
            "stream_options",
            "invalid_value",
            "stream",
        ),
        ({**user("x"), "n": 0}, "n", "invalid_value", "'n'"),
    ],
)
async def test_bad_requests(
    http: aiohttp.ClientSession,
    emu: Emulator,
    *,
    body: dict[str, Any],
    param: str | None,
    code: str | None,
    fragment: str,
) -> None:
    status, _, text = await post(http, emu, body)
    assert status == 400
    error = json.loads(text)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert fragment in error["message"]


async def test_non_json_body(http: aiohttp.ClientSession, emu: Emulator) -> None:
    async with http.post(emu.openai_base_url + "/chat/completions", data=b"{nope", headers=OA) as r:
        assert r.status == 400
        assert "could not parse the JSON body" in (await r.json())["error"]["message"]


async def test_sdk_raises_typed_errors(oai: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(model="gpt-4o", messages=[])
    assert info.value.code == "empty_array"


async def test_unknown_route(http: aiohttp.ClientSession, emu: Emulator) -> None:
    async with http.post(emu.openai_base_url + "/nope", json={}, headers=OA) as r:
        assert r.status == 404
        assert (await r.json())["error"]["message"] == "Invalid URL (POST /v1/nope)"
    async with http.get(emu.openai_base_url + "/chat/completions", headers=OA) as r:
        assert r.status == 404


async def test_sdk_parse_into_pydantic(oai: AsyncOpenAI) -> None:
    from typing import Literal

    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        temperature: float
        units: Literal["c", "f"]
        alerts: list[str]

    r = await oai.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Paris"}],
        response_format=Weather,
    )
    assert r.choices[0].message.parsed == Weather(
        city="example", temperature=1.5, units="c", alerts=["example"]
    )
