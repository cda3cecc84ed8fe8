"""No credential in any key or stored value, whatever the backend (raw contents checked).

The key must not be there whole nor as any 8-character piece of it (a prefix, a suffix, a
key cut in half by a serialiser), for an OpenAI and an Anthropic adapter alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aiport._cache import CacheBackend, MemoryCache, SQLiteCache
from aiport._cache._redis import RedisCache
from aiport._provider import ModelProvider
from aiport._types import ModelCompletionOptions, ModelEmbeddingOptions, Tool
from aiport.layers._cache import CacheLayer
from aiport.testing import Emulator
from tests.cache.conftest import ANTHROPIC_MODEL, EMBEDDING_MODEL, OPENAI_MODEL, MakeLayer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.security.conftest import leaks

#: Each provider's model and key (the emulator accepts both keys).
PROVIDERS = {"openai": (OPENAI_MODEL, OPENAI_KEY), "anthropic": (ANTHROPIC_MODEL, ANTHROPIC_KEY)}


async def _fill(layer: CacheLayer, provider: str) -> int:
    """Cache a completion, a tool-call stream and (where the provider has them) embeddings
    through a real adapter; return how many entries were written."""
    chat = PROVIDERS[provider][0]
    await layer.complete(ModelCompletionOptions(model=chat, messages="hi"))
    options = ModelCompletionOptions(model=chat, messages="weather?", tools=[Tool(name="weather")])
    async for _ in layer.stream(options):
        pass
    if provider == "openai":
        await layer.embed(ModelEmbeddingOptions(model=EMBEDDING_MODEL, input=["a", "b"]))
    return layer.stats.writes


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


@pytest.mark.parametrize("provider", list(PROVIDERS))
@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
async def test_no_credential_in_keys_or_values(
    kind: str,
    provider: str,
    *,
    emulator: Emulator,
    make_layer: MakeLayer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    # The ``openai`` and ``anthropic`` fixtures: bare adapters on the shared emulator.
    inner: ModelProvider = request.getfixturevalue(provider)
    key = PROVIDERS[provider][1]
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
        written = await _fill(make_layer(inner, backend=backend), provider)
        assert written == (4 if provider == "openai" else 2)
        contents = await raw()
        assert contents
        assert b"aiport:c:v1:" in b"".join(contents)  # the check does look at the entries
        assert emulator.requests  # the entries came from real answers over HTTP
        for blob in contents:
            # latin-1 maps every byte to one character: no piece is lost to decoding.
            assert leaks(blob.decode("latin-1"), key) == []
        assert leaks(repr(backend), key) == []
    finally:
        await backend.aclose()
