"""Stream endings and odd answers the emulator does not produce, from a scripted server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from aiport._credentials import StaticCredential
from aiport._errors import (
    MalformedResponseError,
    ProviderRateLimitError,
    StreamInterruptedError,
)
from aiport._http import HttpClient
from aiport._types import ModelCompletionOptions, StreamFinishEvent
from aiport.providers.openai import OpenAIProvider

from .conftest import API_KEY

OPTIONS = ModelCompletionOptions(model="gpt-4o", messages="Hi")
Script = Callable[[bytes], None]


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    data = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(data) + "\n\n"


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, Script]]:
    """A server whose next answer is the bytes given to ``script``."""
    answers: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        body = answers.pop(0)
        if body.startswith(b"{"):
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1", answers.append
    await runner.cleanup()


@pytest.fixture
async def provider_for(
    scripted: tuple[str, Script],
) -> AsyncIterator[Callable[..., tuple[OpenAIProvider, Script]]]:
    http = HttpClient()
    base_url, script = scripted

    def make(**kwargs: Any) -> tuple[OpenAIProvider, Script]:
        kwargs.setdefault("credential", StaticCredential(API_KEY))
        return OpenAIProvider(base_url=base_url, http=http, **kwargs), script

    yield make
    await http.aclose()


async def collect(provider: OpenAIProvider) -> list[Any]:
    return [event async for event in provider.stream(OPTIONS)]


async def test_a_finish_reason_without_done_is_a_complete_stream(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for()
    script((chunk({"content": "Hi"}) + chunk({}, "stop")).encode())
    events = await collect(provider)
    assert isinstance(events[-1], StreamFinishEvent)
    assert events[-1].response.text == "Hi"


async def test_done_without_a_finish_reason(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    body = (chunk({"content": "Hi"}) + "data: [DONE]\n\n").encode()
    provider, script = provider_for()
    script(body)
    with pytest.raises(StreamInterruptedError) as info:
        await collect(provider)
    assert info.value.partial_text == "Hi"
    # Some compatible servers never send a finish reason: [DONE] is enough from them.
    compatible, script = provider_for(compatible=True)
    script(body)
    events = await collect(compatible)
    assert events[-1].response.text == "Hi"
    assert events[-1].response.finish_reason == "stop"


async def test_a_clean_end_without_any_finish(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for(compatible=True)
    script(chunk({"content": "par"}).encode() + chunk({"content": "tial"}).encode())
    with pytest.raises(StreamInterruptedError) as info:
        await collect(provider)
    assert info.value.partial_text == "partial"


async def test_json_of_the_wrong_shape_is_skipped(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for()
    body = (
        chunk({"content": "a"})
        + "data: [1, 2]\n\n"
        + 'data: {"choices": [{"delta": "nope"}]}\n\n'
        + "data:\n\n"
        + chunk({"content": "b"}, "stop")
        + "data: [DONE]\n\n"
    )
    script(body.encode())
    events = await collect(provider)
    response = events[-1].response
    assert response.text == "ab"
    assert response.warnings == ["skipped a malformed stream event from openai"] * 2


async def test_an_error_event_by_name(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for()
    error = {"error": {"message": "slow down", "type": "tokens", "code": "rate_limit_exceeded"}}
    script((chunk({"content": "a"}) + "event: error\ndata: " + json.dumps(error) + "\n\n").encode())
    with pytest.raises(ProviderRateLimitError) as info:
        await collect(provider)
    assert info.value.message == "slow down"


async def test_an_error_object_in_a_200_answer(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for(compatible=True)
    script(json.dumps({"error": {"message": "quota", "type": "insufficient_quota"}}).encode())
    with pytest.raises(ProviderRateLimitError) as info:
        await provider.complete(OPTIONS)
    assert not info.value.retryable


async def test_an_answer_without_choices(
    provider_for: Callable[..., tuple[OpenAIProvider, Script]],
) -> None:
    provider, script = provider_for()
    script(json.dumps({"id": "x", "object": "chat.completion"}).encode())
    with pytest.raises(MalformedResponseError):
        await provider.complete(OPTIONS)
