"""Layers: providers that wrap a provider to add one cross-cutting concern each.

Names load on first use (like the top-level package), so importing one layer does not
import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AttemptEvent": "aiport.layers._hooks",
    "BatchStats": "aiport.layers._batching",
    "CacheLayer": "aiport.layers._cache",
    "CacheStats": "aiport.layers._cache",
    "EmbeddingBatcher": "aiport.layers._batching",
    "ErrorEvent": "aiport.layers._hooks",
    "Hook": "aiport.layers._hooks",
    "HookEvent": "aiport.layers._hooks",
    "Hooks": "aiport.layers._hooks",
    "HooksLayer": "aiport.layers._hooks",
    "RateLimitLayer": "aiport.layers._ratelimit",
    "RequestEvent": "aiport.layers._hooks",
    "ResponseEvent": "aiport.layers._hooks",
    "RetryBudget": "aiport.layers._retry",
    "RetryLayer": "aiport.layers._retry",
}

__all__ = [
    "AttemptEvent",
    "BatchStats",
    "CacheLayer",
    "CacheStats",
    "EmbeddingBatcher",
    "ErrorEvent",
    "Hook",
    "HookEvent",
    "Hooks",
    "HooksLayer",
    "RateLimitLayer",
    "RequestEvent",
    "ResponseEvent",
    "RetryBudget",
    "RetryLayer",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'aiport.layers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from aiport.layers._batching import BatchStats, EmbeddingBatcher
    from aiport.layers._cache import CacheLayer, CacheStats
    from aiport.layers._hooks import (
        AttemptEvent,
        ErrorEvent,
        Hook,
        HookEvent,
        Hooks,
        HooksLayer,
        RequestEvent,
        ResponseEvent,
    )
    from aiport.layers._ratelimit import RateLimitLayer
    from aiport.layers._retry import RetryBudget, RetryLayer
