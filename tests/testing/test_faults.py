"""Every fault kind over real HTTP: scheduled, per request, raw and through the SDKs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
import anthropic
import httpx2
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from aiport.testing import Emulator, Fault

from .conftest import AN, OA, parse_sse

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "one two three four"}]}
STREAM = {**CHAT, "stream": True}
MSG = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "one two three four"}],
}


async def drain_anthropic(ant: AsyncAnthropic) -> None:
    async with ant.messages.stream(**MSG) as stream:  # type: ignore[arg-type]
        async for _ in stream:
            pass


async def drain_openai(oai: AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(**STREAM)  # type: ignore[call-overload]
    try:
        async for _ in stream:
            pass
    finally:
        await stream.close()


def chat_url(emu: Emulator) -> str:
    return emu.openai_base_url + "/chat/completions"


async def chat(
    http: aiohttp.ClientSession, emu: Emulator, body: Any = None, fault: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {**OA, **({"x-emulator-fault": fault} if fault else {})}
    async with http.post(chat_url(emu), json=body or CHAT, headers=headers) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


# ----------------------------------------------------------------------------- statuses


async def test_status_fault_openai_body_and_headers(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    emu.add_fault(Fault.status(429, retry_after="2", retry_after_ms=1500))
    status, headers, body = await chat(http, emu)
    assert status == 429
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-request-id"].startswith("req_")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert "Rate limit reached for gpt-4o" in error["message"]
    status, _, body = await chat(http, emu)
    assert status == 200  # times=1: consumed


@pytest.mark.parametrize(
    ("code", "type_", "error_code"),
    [
        (400, "invalid_request_error", None),
        (401, "invalid_request_error", "invalid_api_key"),
        (404, "invalid_request_error", "model_not_found"),
        (500, "server_error", None),
        (503, "server_error", None),
    ],
)
async def test_openai_status_types(
    http: aiohttp.ClientSession, emu: Emulator, code: int, type_: str, error_code: str | None
) -> None:
    status, headers, body = await chat(http, emu, fault=str(code))
    assert status == code
    assert "retry-after" not in headers
    error = json.loads(body)["error"]
    assert (error["type"], error["code"]) == (type_, error_code)


@pytest.mark.parametrize(
    ("code", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_anthropic_status_types(
    http: aiohttp.ClientSession, emu: Emulator, code: int, type_: str
) -> None:
    headers = {**AN, "x-emulator-fault": f"{code};retry-after=Wed, 21 Oct 2015 07:28:00 GMT"}
    async with http.post(emu.url + "/v1/messages", json=MSG, headers=headers) as r:
        assert r.status == code
        assert r.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
        assert r.headers["request-id"].startswith("req_")
        body = await r.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == type_
    assert body["error"]["message"]
    assert body["request_id"] == r.headers["request-id"]


async def test_sdks_see_typed_status_errors(
    oai: AsyncOpenAI, ant: AsyncAnthropic, emu: Emulator
) -> None:
    emu.add_fault(Fault.status(429, error_type="insufficient_quota"), path="/v1/chat/completions")
    emu.add_fault(Fault.status(529, message="busy now"), path="/v1/messages")
    with pytest.raises(openai.RateLimitError) as oe:
        await oai.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert oe.value.code == "insufficient_quota"
    with pytest.raises(anthropic.OverloadedError, match="busy now"):
        await ant.messages.create(**MSG)  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- connections


async def test_hang_ends_when_the_client_gives_up(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with http.post(
            chat_url(emu),
            json=CHAT,
            headers={**OA, "x-emulator-fault": "hang"},
            timeout=aiohttp.ClientTimeout(total=0.3),
        ) as r:
            await r.read()
    assert time.monotonic() - started < 2
    assert emu.requests[-1].fault == "hang"
    status, _, _ = await chat(http, emu)  # still serving
    assert status == 200


async def test_sdk_timeout_on_hang(emu: Emulator) -> None:
    emu.fail_next(1, Fault.hang())
    async with AsyncOpenAI(
        base_url=emu.openai_base_url, api_key="k", max_retries=0, timeout=0.3
    ) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]


async def test_stop_cancels_hangs_and_stalls_promptly(http: aiohttp.ClientSession) -> None:
    emu = Emulator()
    await emu.start()
    emu.add_fault(Fault.hang(), path="/v1/chat/completions")
    emu.add_fault(Fault.stall(after_events=1), path="/v1/messages")

    async def hang() -> None:
        async with http.post(chat_url(emu), json=CHAT, headers=OA) as r:
            await r.read()

    async def stall() -> None:
        async with http.post(
            emu.url + "/v1/messages", json={**MSG, "stream": True}, headers=AN
        ) as r:
            await r.read()

    tasks = [asyncio.create_task(hang()), asyncio.create_task(stall())]
    for _ in range(500):  # bounded poll: the emulator records requests as they arrive
        if emu.count() >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await emu.stop()
    assert time.monotonic() - started < 2
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2)
    assert all(isinstance(r, aiohttp.ClientError) for r in results), results


async def test_reset(http: aiohttp.ClientSession, emu: Emulator, oai: AsyncOpenAI) -> None:
    with pytest.raises(aiohttp.ClientError):
        await chat(http, emu, fault="reset")
    emu.fail_next(1, Fault.reset())
    with pytest.raises(openai.APIConnectionError):
        await oai.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert [r.fault for r in emu.requests] == ["reset", "reset"]


async def test_slow_first_token(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.slow_first_token(0.3))
    started = time.monotonic()
    status, _, body = await chat(http, emu)
    assert status == 200
    assert time.monotonic() - started >= 0.3
    assert json.loads(body)["choices"][0]["message"]["content"] == "You said: one two three four"


# ----------------------------------------------------------------------------- streams


async def read_frames(resp: aiohttp.ClientResponse, frames: list[str]) -> None:
    """Collect SSE frames as they arrive (so a cut stream keeps what came before)."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            frames.append(frame.decode())


async def test_cut_stream(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=3))
    frames: list[str] = []

    async def read() -> None:
        async with http.post(chat_url(emu), json=STREAM, headers=OA) as r:
            assert r.status == 200
            await read_frames(r, frames)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read()
    assert len(frames) == 3
    assert "[DONE]" not in "".join(frames)


async def test_cut_stream_sdk(ant: AsyncAnthropic, oai: AsyncOpenAI, emu: Emulator) -> None:
    emu.add_fault(Fault.cut_stream(after_events=4))
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        await drain_anthropic(ant)
    emu.add_fault(Fault.cut_stream(after_events=4))
    with pytest.raises(openai.APIConnectionError):
        await drain_openai(oai)


async def test_cut_plain_body(http: aiohttp.ClientSession, emu: Emulator) -> None:
    with pytest.raises(aiohttp.ClientPayloadError):
        await chat(http, emu, fault="cut")


async def test_stall_then_continue(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.stall(after_events=2, seconds=0.4))
    stamps: list[float] = []
    text = ""
    async with http.post(chat_url(emu), json=STREAM, headers=OA) as r:
        async for chunk in r.content.iter_any():
            stamps.append(time.monotonic())
            text += chunk.decode()
    frames = parse_sse(text)
    assert frames[-1] == (None, "[DONE]")
    assert len(frames) == 1 + 6 + 1 + 1  # role, 6 tokens, finish, done
    assert max(b - a for a, b in itertools.pairwise(stamps)) >= 0.35


async def test_stall_header_spec(http: aiohttp.ClientSession, emu: Emulator) -> None:
    started = time.monotonic()
    status, _, body = await chat(http, emu, STREAM, fault="stall;after=1;seconds=0.3")
    assert status == 200
    assert time.monotonic() - started >= 0.3
    assert parse_sse(body.decode())[-1] == (None, "[DONE]")


async def test_malformed_stream_event_amid_healthy_stream(
    http: aiohttp.ClientSession, emu: Emulator
) -> None:
    for url, body, headers in (
        (chat_url(emu), STREAM, OA),
        (emu.url + "/v1/messages", {**MSG, "stream": True}, AN),
    ):
        async with http.post(
            url, json=body, headers={**headers, "x-emulator-fault": "malformed"}
        ) as r:
            frames = parse_sse(await r.text())
        bad = []
        for i, (_, data) in enumerate(frames):
            if data == "[DONE]":
                continue
            try:
                json.loads(data)
            except ValueError:
                bad.append(i)
        assert len(bad) == 1
        assert 0 < bad[0] < len(frames) - 1
        last = frames[-1]
        assert last == (None, "[DONE]") or last[0] == "message_stop"


async def test_malformed_json_body(
    http: aiohttp.ClientSession, emu: Emulator, oai: AsyncOpenAI
) -> None:
    status, headers, body = await chat(http, emu, fault="malformed")
    assert status == 200
    assert headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    emu.fail_next(1, Fault.malformed_json())
    with pytest.raises(json.JSONDecodeError):
        await oai.chat.completions.create(**CHAT)  # type: ignore[call-overload]


async def test_malformed_stream_breaks_sdk(oai: AsyncOpenAI, emu: Emulator) -> None:
    emu.fail_next(1, Fault.malformed_json())
    with pytest.raises(json.JSONDecodeError):
        await drain_openai(oai)


async def test_malformed_body_is_a_proxy_page(
    http: aiohttp.ClientSession, emu: Emulator, oai: AsyncOpenAI
) -> None:
    status, headers, body = await chat(http, emu, fault="malformed-body")
    assert status == 502
    assert headers["content-type"].startswith("text/html")
    assert body.startswith(b"<html>")
    assert b"502 Bad Gateway" in body
    emu.fail_next(1, Fault.malformed_body(503))
    with pytest.raises(openai.InternalServerError) as info:
        await oai.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 503


async def test_context_length_fault(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, _, body = await chat(http, emu, fault="context-length")
    assert status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["message"].startswith("This model's maximum context length is 128000 tokens.")
    async with http.post(
        emu.url + "/v1/messages", json=MSG, headers={**AN, "x-emulator-fault": "context-length"}
    ) as r:
        assert r.status == 400
        message = (await r.json())["error"]["message"]
    assert message == "prompt is too long: 128001 tokens > 128000 maximum"


async def test_stream_error_events(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=2), path="/v1/messages")
    async with http.post(emu.url + "/v1/messages", json={**MSG, "stream": True}, headers=AN) as r:
        frames = parse_sse(await r.text())
    assert [e for e, _ in frames] == ["message_start", "content_block_start", "error"]
    assert json.loads(frames[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    emu.add_fault(Fault.stream_error(after_events=1, message="boom"), path="/v1/chat/completions")
    async with http.post(chat_url(emu), json=STREAM, headers=OA) as r:
        frames = parse_sse(await r.text())
    assert len(frames) == 2
    assert json.loads(frames[-1][1])["error"]["message"] == "boom"


async def test_stream_error_in_sdks(oai: AsyncOpenAI, ant: AsyncAnthropic, emu: Emulator) -> None:
    emu.add_fault(Fault.stream_error(after_events=3), times=None)
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        await drain_anthropic(ant)
    with pytest.raises(openai.APIError, match="The server had an error"):
        await drain_openai(oai)
    # Without a stream the same fault is a plain error status.
    with pytest.raises(anthropic.OverloadedError):
        await ant.messages.create(**MSG)  # type: ignore[call-overload]
    with pytest.raises(openai.InternalServerError):
        await oai.chat.completions.create(**CHAT)  # type: ignore[call-overload]


async def test_stream_delay(http: aiohttp.ClientSession) -> None:
    async with Emulator(stream_delay=0.05) as emu:
        started = time.monotonic()
        status, _, _ = await chat(http, emu, STREAM)
        assert status == 200
        assert time.monotonic() - started >= 0.05 * 8  # 9 events, 8 gaps


# ----------------------------------------------------------------------------- scheduling


async def test_rules_times_path_model_and_order(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.status(500), times=2, path="/v1/chat/completions", model="gpt-4o")
    emu.add_fault(Fault.status(503), times=1)
    other_model = {**CHAT, "model": "gpt-4o-mini"}
    assert (await chat(http, emu, other_model))[0] == 503  # only the second rule matches
    assert (await chat(http, emu))[0] == 500
    assert (await chat(http, emu))[0] == 500
    assert (await chat(http, emu))[0] == 200
    assert [r.fault for r in emu.requests] == ["503", "500", "500", None]


async def test_forever_rule_and_reset(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.add_fault(Fault.status(502), times=None, path="/v1/embeddings")
    body = {"model": "text-embedding-3-small", "input": "x"}
    for _ in range(3):
        async with http.post(emu.openai_base_url + "/embeddings", json=body, headers=OA) as r:
            assert r.status == 502
    assert (await chat(http, emu))[0] == 200
    assert emu.count() == 4
    assert emu.count("/v1/embeddings") == 3
    emu.reset()
    assert emu.count() == 0
    async with http.post(emu.openai_base_url + "/embeddings", json=body, headers=OA) as r:
        assert r.status == 200


async def test_fail_next_and_header_precedence(http: aiohttp.ClientSession, emu: Emulator) -> None:
    emu.fail_next(2, Fault.status(503))
    assert (await chat(http, emu, fault="429"))[0] == 429  # the header wins...
    assert (await chat(http, emu))[0] == 503  # ...and did not consume the rule
    assert (await chat(http, emu))[0] == 503
    assert (await chat(http, emu))[0] == 200


async def test_recorded_requests(http: aiohttp.ClientSession, emu: Emulator) -> None:
    await chat(http, emu, fault="503;retry-after-ms=1500")
    await chat(http, emu)
    first, second = emu.requests
    assert (first.method, first.path, first.fault) == ("POST", "/v1/chat/completions", "503")
    assert first.headers["x-emulator-fault"] == "503;retry-after-ms=1500"
    assert first.headers["authorization"] == OA["Authorization"]
    assert first.body == CHAT
    assert json.loads(first.raw_body) == CHAT
    assert second.fault is None
    assert first.time <= second.time


async def test_bad_fault_header_is_a_400(http: aiohttp.ClientSession, emu: Emulator) -> None:
    status, _, body = await chat(http, emu, fault="explode")
    assert status == 400
    assert "unknown fault 'explode'" in json.loads(body)["error"]["message"]
    assert emu.requests[-1].fault is None
