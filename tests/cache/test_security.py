"""No credential in any key or stored value, whatever the backend (raw contents checked)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aiport._cache import CacheBackend, MemoryCache, SQLiteCache
from aiport._cache._redis import RedisCache
from aiport._types import ModelCompletionOptions, ModelEmbeddingOptions, Tool
from aiport.testing import Emulator
from tests.cache.conftest import EMBEDDING_MODEL, OPENAI_MODEL, MakeLayer
from tests.conftest import OPENAI_KEY

CANARY = OPENAI_KEY.encode()


async def _fill(layer_of: Callable[[CacheBackend], object], backend: CacheBackend) -> None:
    """Cache a completion, a tool-call stream and embeddings through a real adapter."""
    layer = layer_of(backend)
    await layer.complete(ModelCompletionOptions(model=OPENAI_MODEL, messages="hi"))  # type: ignore[attr-defined]
    options = ModelCompletionOptions(
        model=OPENAI_MODEL, messages="weather?", tools=[Tool(name="weather")]
    )
    async for _ in layer.stream(options):  # type: ignore[attr-defined]
        pass
    await layer.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["a", "b"]))  # type: ignore[attr-defined]
    assert layer.stats.writes == 4  # type: ignore[attr-defined]


def _raw_memory(backend: MemoryCache) -> list[bytes]:
    return [key.encode() + value for key, (value, _) in backend._entries.items()]


async def _raw_redis(backend: RedisCache) -> list[bytes]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(backend._url)
    try:
        keys = [key async for key in client.scan_iter(match=backend.namespace + "*")]
        return [key + (await client.get(key) or b"") for key in keys]
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_no_credential_in_keys_or_values(
    kind: str,
    emulator: Emulator,
    make_layer: MakeLayer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    raw: Callable[[], Awaitable[list[bytes]]]
    if kind == "memory":
        memory = MemoryCache()
        backend: CacheBackend = memory

        async def raw() -> list[bytes]:
            return _raw_memory(memory)

    elif kind == "sqlite":
        path = tmp_path / "cache.sqlite3"
        backend = SQLiteCache(path)

        async def raw() -> list[bytes]:
            # Every byte of the database and its journal, not only what a query shows.
            files = [p for p in tmp_path.iterdir() if p.is_file()]  # noqa: ASYNC240  (a test)
            return [p.read_bytes() for p in files]

    else:
        url = request.getfixturevalue("redis_url")
        redis_cache = RedisCache(url, namespace=request.getfixturevalue("redis_namespace"))
        backend = redis_cache

        async def raw() -> list[bytes]:
            return await _raw_redis(redis_cache)

    try:
        await _fill(lambda b: make_layer(backend=b), backend)
        contents = await raw()
        assert contents
        assert b"aiport:c:v1:" in b"".join(contents)  # the check does look at the entries
        for blob in contents:
            assert CANARY not in blob
        assert OPENAI_KEY not in repr(backend)
    finally:
        await backend.aclose()
