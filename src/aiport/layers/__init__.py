"""Layers: providers that wrap a provider to add one cross-cutting concern each."""

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
