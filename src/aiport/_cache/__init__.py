"""The response cache: backends, keys, and the factory the service uses.

The layer itself is ``aiport.layers.CacheLayer``; this package holds what it stores
into (``MemoryCache``, ``SQLiteCache``, ``RedisCache``, or any ``CacheBackend``) and
how requests become keys (``completion_key``, ``embedding_keys``, ``scope_digest``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiport._cache._base import CacheBackend
from aiport._cache._keys import (
    KEY_PREFIX,
    UncacheableRequestError,
    completion_key,
    embedding_keys,
    scope_digest,
)
from aiport._cache._memory import MemoryCache
from aiport._cache._sqlite import SQLiteCache, default_cache_path

if TYPE_CHECKING:
    from aiport._cache._redis import RedisCache
    from aiport._config import AgentConfig, CacheConfig

__all__ = [
    "KEY_PREFIX",
    "CacheBackend",
    "MemoryCache",
    "RedisCache",
    "SQLiteCache",
    "UncacheableRequestError",
    "backend_from_config",
    "completion_key",
    "default_cache_path",
    "embedding_keys",
    "enabled_for",
    "scope_digest",
]


def __getattr__(name: str) -> object:
    # RedisCache on demand: its module is cheap, but keeps `import aiport` lean all the same.
    if name == "RedisCache":
        from aiport._cache._redis import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_from_config(config: CacheConfig, *, redis_url: str | None = None) -> CacheBackend:
    """The backend ``config.backend`` names, sized and timed as configured.

    ``redis_url`` is the resolved secret (the config keeps only a reference); it is
    required for the ``redis`` backend.
    """
    if config.backend == "memory":
        return MemoryCache(max_entries=config.max_entries, max_bytes=config.max_bytes)
    if config.backend == "sqlite":
        return SQLiteCache(config.path, max_entries=config.max_entries)
    if redis_url is None:
        raise ValueError("the 'redis' cache backend needs redis_url")
    from aiport._cache._redis import RedisCache

    return RedisCache(redis_url, timeout=config.redis_timeout)


def enabled_for(config: AgentConfig, provider: str) -> Callable[[str], bool]:
    """``CacheLayer(enabled=...)`` for ``provider``: a model's ``cache`` setting if it has
    one (found by key, upstream name or alias), else ``config.cache.enabled``."""
    from aiport._config import _find_model

    default = config.cache.enabled
    provider_config = config.providers.get(provider)
    answers: dict[str, bool] = {}  # a handful of models: remembered after the first call

    def enabled(model: str) -> bool:
        answer = answers.get(model)
        if answer is None:
            found = _find_model(provider_config, model) if provider_config is not None else None
            answer = default if found is None or found.cache is None else found.cache
            answers[model] = answer
        return answer

    return enabled
