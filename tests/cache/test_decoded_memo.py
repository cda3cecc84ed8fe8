"""The memory backend's hits skip decoding: still a fresh, current answer every time."""

from __future__ import annotations

from pathlib import Path

from aiport._cache import MemoryCache, SQLiteCache
from aiport._context import CacheControl, CallContext, call_scope
from aiport._types import ModelCompletionOptions, ModelCompletionResponse
from aiport.layers._cache import CacheLayer
from aiport.testing import Emulator
from tests.cache.conftest import CHAT_PATH, OPENAI_MODEL, FakeClock, MakeLayer

HELLO = ModelCompletionOptions(model=OPENAI_MODEL, messages="hello there")


async def complete(
    layer: CacheLayer, control: CacheControl | None = None
) -> ModelCompletionResponse:
    with call_scope(CallContext(cache=control)):
        return await layer.complete(HELLO)


async def test_each_hit_is_its_own_object_equal_to_the_stored_answer(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer(backend=MemoryCache())
    first = await layer.complete(HELLO)
    hits = [await layer.complete(HELLO) for _ in range(3)]
    assert emulator.count(CHAT_PATH) == 1
    assert len({id(hit) for hit in hits}) == 3
    for hit in hits:
        assert hit.id == first.id
        assert hit.text == first.text
        assert hit.usage == first.usage
        assert hit.attempts == []
    # Each hit's latency is set on its own object: a later hit leaves earlier ones alone.
    latencies = [hit.latency for hit in hits]
    await layer.complete(HELLO)
    assert [hit.latency for hit in hits] == latencies


async def test_a_rewritten_entry_is_served_as_rewritten(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    layer = make_layer(backend=MemoryCache())
    await complete(layer)
    remembered = await complete(layer)  # decoded once, remembered
    refreshed = await complete(layer, CacheControl(read=False))  # a new answer, stored
    assert emulator.count(CHAT_PATH) == 2
    assert refreshed.id != remembered.id
    served = await complete(layer)
    assert emulator.count(CHAT_PATH) == 2
    assert served.id == refreshed.id


async def test_an_expired_entry_is_a_miss_even_when_remembered(
    emulator: Emulator, make_layer: MakeLayer, clock: FakeClock
) -> None:
    layer = make_layer(backend=MemoryCache(), ttl=10)
    await layer.complete(HELLO)
    await layer.complete(HELLO)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 1
    clock.advance(10.1)
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2


async def test_a_cleared_backend_forgets_what_the_layer_remembered(
    emulator: Emulator, make_layer: MakeLayer
) -> None:
    backend = MemoryCache()
    layer = make_layer(backend=backend)
    await layer.complete(HELLO)
    await layer.complete(HELLO)
    await backend.clear()
    await layer.complete(HELLO)
    assert emulator.count(CHAT_PATH) == 2


async def test_backends_that_copy_their_values_still_hit(
    emulator: Emulator, make_layer: MakeLayer, tmp_path: Path
) -> None:
    backend = SQLiteCache(tmp_path / "cache.db")
    try:
        layer = make_layer(backend=backend)
        first = await layer.complete(HELLO)
        second = await layer.complete(HELLO)
        third = await layer.complete(HELLO)
    finally:
        await backend.aclose()
    assert emulator.count(CHAT_PATH) == 1
    assert first.id == second.id == third.id
    assert second is not third
