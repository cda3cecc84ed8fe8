"""The cache layer end to end: real adapters, real HTTP, the emulator counting requests."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aiport._cache import MemoryCache
from aiport._context import CacheControl, CallContext, call_scope, scoped_stream
from aiport._errors import ProviderError
from aiport._provider import ModelProvider
from aiport._types import (
    ImageGenerationOptions,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    StreamEvent,
    Tool,
)
from aiport.providers.anthropic import AnthropicProvider
from aiport.testing import Emulator, Fault
from tests.cache.conftest import (
    ANTHROPIC_MODEL,
    CHAT_PATH,
    EMBEDDING_MODEL,
    EMBEDDINGS_PATH,
    MESSAGES_PATH,
    OPENAI_MODEL,
    FakeClock,
    MakeLayer,
)

HELLO = ModelCompletionOptions(model=OPENAI_MODEL, messages="hello there")


def variant(options: ModelCompletionOptions, **change: Any) -> ModelCompletionOptions:
    """``options`` with fields changed (validated, unlike ``model_copy``)."""
    return ModelCompletionOptions.model_validate({**options.model_dump(), **change})


def same(a: ModelCompletionResponse, b: ModelCompletionResponse) -> bool:
    """Equal but for the latency (a hit has its own) and attempts (not stored)."""
    strip = {"latency": 0.0, "attempts": []}
    return a.model_copy(update=strip) == b.model_copy(update=strip)


async def collect(events: Any) -> list[StreamEvent]:
    return [event async for event in events]


# ---------------------------------------------------------------------- hits and misses


@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_second_identical_call_is_served_from_the_cache(
    which: str, emulator: Emulator, make_layer: MakeLayer, anthropic: AnthropicProvider
) -> None:
    if which == "openai":
        layer, options, path = make_layer(), HELLO, CHAT_PATH
    else:
        layer = make_layer(anthropic)
        options = ModelCompletionOptions(model=ANTHROPIC_MODEL, messages="hello there")
        path = MESSAGES_PATH
    first = await layer.complete(options)
    second = await layer.complete(options)
    assert emulator.count(path) == 1
    assert same(first, second)
    assert second.text == "You said: hello there"
    assert second.latency < first.latency
    assert (layer.stats.hits, layer.stats.misses, layer.stats.writes) == (1, 1, 1)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"messages": "hello there!"},
        {"temperature": 0.5},
        {"top_p": 0.5},
        {"max_tokens": 3},
        {"stop": ["there"]},
        {"seed": 7},
        {"tools": [Tool(name="lookup")]},
        {"response_format": "json"},
        {"metadata": {"user": "a"}},
        {"provider_options": {"logprobs": True}},
    ],
)
async def test_any_output_affecting_difference_misses(
    change: dict[str, Any], emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    await layer.complete(HELLO)
    await layer.complete(variant(HELLO, **change))
    assert emulator.count(CHAT_PATH) == 2


async def test_the_timeout_is_not_part_of_the_request(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    await layer.complete(HELLO)
    await layer.complete(variant(HELLO, timeout=12.0))
    assert emulator.count(CHAT_PATH) == 1


async def test_callers_with_other_scopes_share_nothing(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    backend = MemoryCache()
    await make_layer(backend=backend, scope="tenant-a").complete(HELLO)
    await make_layer(backend=backend, scope="tenant-b").complete(HELLO)
    await make_layer(backend=backend, scope="tenant-a").complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2


async def test_async_scope_is_awaited(emulator: Emulator, make_layer: MakeLayer) -> None:
    async def scope() -> str:
        return "tenant-a"

    layer = make_layer(scope=scope)
    await layer.complete(HELLO)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 1


# ---------------------------------------------------------------------- ttl and control


async def test_entries_expire_after_the_ttl(
    emulator: Emulator, make_layer: MakeLayer, clock: FakeClock
) -> None:
    layer = make_layer(ttl=10)
    await layer.complete(HELLO)
    clock.advance(9.9)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 1
    clock.advance(0.2)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2


async def complete_with(layer: Any, control: CacheControl | None) -> ModelCompletionResponse:
    with call_scope(CallContext(cache=control)):
        response: ModelCompletionResponse = await layer.complete(HELLO)
        return response


async def test_skip_read_calls_upstream_and_refreshes_the_entry(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    await complete_with(layer, None)
    await complete_with(layer, CacheControl(read=False))
    assert emulator.count(CHAT_PATH) == 2
    assert layer.stats.writes == 2
    await complete_with(layer, None)
    assert emulator.count(CHAT_PATH) == 2


async def test_skip_write_stores_nothing(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    await complete_with(layer, CacheControl(write=False))
    await complete_with(layer, None)
    assert emulator.count(CHAT_PATH) == 2
    await complete_with(layer, CacheControl(write=False))  # still reads
    assert emulator.count(CHAT_PATH) == 2


async def test_custom_ttl_per_call(
    emulator: Emulator, make_layer: MakeLayer, clock: FakeClock
) -> None:
    layer = make_layer(ttl=3600)
    await complete_with(layer, CacheControl(ttl=5))
    clock.advance(6)
    await complete_with(layer, None)
    assert emulator.count(CHAT_PATH) == 2
    await complete_with(layer, CacheControl(ttl=0))  # a zero ttl stores nothing
    assert emulator.count(CHAT_PATH) == 2  # but the entry of the second call is read


async def test_per_call_enabled_overrides_the_config(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    off = make_layer(enabled=False)
    await complete_with(off, None)
    await complete_with(off, None)
    assert emulator.count(CHAT_PATH) == 2
    await complete_with(off, CacheControl(enabled=True))
    await complete_with(off, CacheControl(enabled=True))
    assert emulator.count(CHAT_PATH) == 3

    on = make_layer(enabled=True)
    await complete_with(on, CacheControl(enabled=False))
    await complete_with(on, CacheControl(enabled=False))
    assert emulator.count(CHAT_PATH) == 5
    assert on.stats.skipped == 2


async def test_enabled_is_asked_per_model(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer(enabled=lambda model: model == "gpt-4o")
    for _ in range(2):
        await layer.complete(HELLO)
        await layer.complete(variant(HELLO, model="gpt-4o"))
    assert emulator.count(CHAT_PATH) == 3


# ---------------------------------------------------------------------- errors


async def test_errors_are_never_cached(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    emulator.fail_next(1, Fault.status(500))
    with pytest.raises(ProviderError):
        await layer.complete(HELLO)
    second = await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2
    assert second.text == "You said: hello there"
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2


class _BrokenBackend(MemoryCache):
    async def get(self, key: str) -> bytes | None:
        raise OSError("disk gone")

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        raise OSError("disk gone")


async def test_a_failing_backend_never_fails_the_call(
    emulator: Emulator, make_layer: MakeLayer, caplog: pytest.LogCaptureFixture
) -> None:
    layer = make_layer(backend=_BrokenBackend())
    with caplog.at_level(logging.DEBUG, logger="aiport"):
        assert (await layer.complete(HELLO)).text == "You said: hello there"
        await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2
    assert layer.stats.errors == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1


async def test_foreign_or_corrupt_entries_are_misses(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    backend = MemoryCache()
    layer = make_layer(backend=backend)
    await layer.complete(HELLO)
    (key,) = list(backend._entries)
    await backend.set(key, b"apc1" + b"\0" * 8, 60)  # expired header
    await layer.complete(HELLO)
    await backend.set(key, b"junk", 60)
    await layer.complete(HELLO)
    value = (await backend.get(key)) or b""
    await backend.set(key, value[:12] + b"{not json", 60)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 4


# ---------------------------------------------------------------------- streams


async def test_a_cached_stream_replays_as_events(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    live = await collect(layer.stream(HELLO))
    replayed = await collect(layer.stream(HELLO))
    assert emulator.count(CHAT_PATH) == 1
    assert [e.type for e in replayed][-2:] == ["usage", "finish"]
    text = "".join(e.text for e in replayed if e.type == "text-delta")
    assert text == "You said: hello there"
    assert sum(e.type == "text-delta" for e in replayed) > 1  # in pieces
    assert live[-1].type == replayed[-1].type == "finish"
    assert same(live[-1].response, replayed[-1].response)
    # complete and stream share the entry
    assert same(await layer.complete(HELLO), replayed[-1].response)
    assert emulator.count(CHAT_PATH) == 1


@pytest.mark.parametrize("which", ["openai", "anthropic"])
async def test_a_cached_tool_call_stream_replays_its_calls(
    which: str, emulator: Emulator, make_layer: MakeLayer, anthropic: AnthropicProvider
) -> None:
    provider: ModelProvider | None = anthropic if which == "anthropic" else None
    model = ANTHROPIC_MODEL if which == "anthropic" else OPENAI_MODEL
    weather = Tool(
        name="weather",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    )
    time_tool = Tool(name="time", parameters={"type": "object", "properties": {}})
    options = ModelCompletionOptions(
        model=model, messages="weather and time please", tools=[weather, time_tool]
    )
    layer = make_layer(provider)
    live = await collect(layer.stream(options))
    replayed = await collect(layer.stream(options))
    assert emulator.count() == 1
    final = replayed[-1].response  # type: ignore[union-attr]
    assert same(live[-1].response, final)  # type: ignore[union-attr]
    assert len(final.tool_calls) == 2
    calls = [e.tool_call for e in replayed if e.type == "tool-call"]
    assert calls == final.tool_calls
    for index, call in enumerate(calls):
        deltas = [e for e in replayed if e.type == "tool-call-delta" and e.index == index]
        assert (deltas[0].id, deltas[0].name) == (call.id, call.name)
        assert "".join(d.arguments_delta for d in deltas) == call.arguments
    text = "".join(e.text for e in replayed if e.type == "text-delta")
    assert text == final.text


async def test_a_stream_reads_the_call_control_at_its_first_event(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer(enabled=False)
    context = CallContext(cache=CacheControl(enabled=True))
    for _ in range(2):
        stream = scoped_stream(context, layer.stream(HELLO))  # context set at first anext
        await collect(stream)
    assert emulator.count(CHAT_PATH) == 1


async def test_a_failed_or_abandoned_stream_is_not_stored(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    emulator.fail_next(1, Fault.cut_stream(after_events=2))
    with pytest.raises(ProviderError):
        await collect(layer.stream(HELLO))
    stream = layer.stream(HELLO)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert layer.stats.writes == 0
    await collect(layer.stream(HELLO))
    await collect(layer.stream(HELLO))
    assert emulator.count(CHAT_PATH) == 3


async def test_disabled_stream_passes_through(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer(enabled=False)
    for _ in range(2):
        events = await collect(layer.stream(HELLO))
        assert events[-1].type == "finish"
    assert emulator.count(CHAT_PATH) == 2


# ---------------------------------------------------------------------- embeddings


async def test_embeddings_send_only_the_texts_never_seen(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    texts = [f"text number {i}" for i in range(100)]
    cached = texts[::10] + [t for i, t in enumerate(texts) if i % 10]  # 90 of them...
    known, new = cached[10:], texts[::10]  # ...but the 10 multiples of ten are new
    await layer.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=known))
    emulator.reset()
    result = await layer.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=texts))
    assert emulator.count(EMBEDDINGS_PATH) == 1
    assert emulator.requests[0].body["input"] == new
    direct = await layer.inner.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=texts))
    assert result.embeddings == direct.embeddings  # input order, same vectors
    sent_only = await layer.inner.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=new))
    assert result.usage == sent_only.usage
    assert layer.stats.hits == 90


async def test_embeddings_fully_cached_send_nothing(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer()
    options = ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["a", "b"], dimensions=8)
    first = await layer.embed(options)
    second = await layer.embed(options)
    assert emulator.count(EMBEDDINGS_PATH) == 1
    assert second.embeddings == first.embeddings
    assert second.usage.input_tokens == 0
    assert second.cost in (0.0, None)
    other_size = await layer.embed(options.model_copy(update={"dimensions": 16}))
    assert len(other_size.embeddings[0]) == 16
    assert emulator.count(EMBEDDINGS_PATH) == 2


async def test_repeated_texts_are_sent_once(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    result = await layer.embed(
        ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["x", "y", "x", "x"])
    )
    assert emulator.requests[0].body["input"] == ["x", "y"]
    assert result.embeddings[0] == result.embeddings[2] == result.embeddings[3]
    assert result.embeddings[0] != result.embeddings[1]


async def test_embedding_controls(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    options = ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["a"])
    with call_scope(CallContext(cache=CacheControl(write=False))):
        await layer.embed(options)
    with call_scope(CallContext(cache=CacheControl(enabled=False))):
        await layer.embed(options)
    await layer.embed(options)
    with call_scope(CallContext(cache=CacheControl(read=False))):
        await layer.embed(options)
    await layer.embed(options)
    assert emulator.count(EMBEDDINGS_PATH) == 4


async def test_embedding_errors_are_not_cached(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    options = ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["a", "b"])
    emulator.fail_next(1, Fault.status(503))
    with pytest.raises(ProviderError):
        await layer.embed(options)
    await layer.embed(options)
    await layer.embed(options)
    assert emulator.count(EMBEDDINGS_PATH) == 2


# ---------------------------------------------------------------------- images


async def test_images_are_never_cached(emulator: Emulator, make_layer: MakeLayer) -> None:
    layer = make_layer()
    options = ImageGenerationOptions(model="gpt-image-1", prompt="a red square")
    await layer.generate_image(options)
    await layer.generate_image(options)
    assert emulator.count() == 2
