"""Client-side rate limiting: buckets, the waiting queue, and where the counters live.

* ``MemoryLimiter``: this process only (the default backend).
* ``RedisLimiter``: shared by every process and host using one Redis
  (``pip install 'aiport[redis]'``).

Both admit a call only when every one of its buckets has room (requests per minute,
tokens per minute, concurrency, no pause), atomically, with sliding-window logs: no
window of 60 s ever holds more admissions than the limit. ``RateLimitLayer``
(``aiport.layers``) puts them in front of a provider.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from aiport._limits._base import (
    CONCURRENCY_RETRY_HINT,
    Bucket,
    BucketUsage,
    Denial,
    FailureMode,
    Lease,
    Limiter,
    LimiterUnavailableError,
    LimitExceededError,
)
from aiport._limits._estimate import (
    DEFAULT_OUTPUT_TOKENS,
    estimate_completion,
    estimate_embedding,
    estimate_image,
)
from aiport._limits._headers import (
    RateLimitInfo,
    may_pause,
    parse_duration,
    parse_rate_limit_headers,
)
from aiport._limits._memory import MemoryLimiter

# The redis package itself is imported only when a RedisLimiter is made.
from aiport._limits._redis import RedisLimiter

__all__ = [
    "CONCURRENCY_RETRY_HINT",
    "DEFAULT_OUTPUT_TOKENS",
    "Bucket",
    "BucketUsage",
    "Denial",
    "FailureMode",
    "Lease",
    "LimitExceededError",
    "Limiter",
    "LimiterUnavailableError",
    "MemoryLimiter",
    "RateLimitInfo",
    "RedisLimiter",
    "create_limiter",
    "estimate_completion",
    "estimate_embedding",
    "estimate_image",
    "limit_scope",
    "may_pause",
    "parse_duration",
    "parse_rate_limit_headers",
]


def create_limiter(
    backend: Literal["memory", "redis"] = "memory",
    *,
    redis_url: str | None = None,
    on_failure: FailureMode = "fail_closed",
) -> MemoryLimiter | RedisLimiter:
    """The limiter for a ``RateLimitConfig.backend``.

    Make one per service and backend and share it between providers (their buckets are
    named apart by scope): for Redis that shares one connection pool. ``redis_url`` is
    the resolved ``AgentConfig.redis_url`` (required for ``"redis"``); ``on_failure``
    is the default of calls that do not pass their own ``on_backend_failure``.
    """
    if backend == "memory":
        return MemoryLimiter()
    if backend == "redis":
        if not redis_url:
            raise ValueError("the 'redis' rate-limit backend needs redis_url")
        return RedisLimiter(redis_url, on_failure=on_failure)
    raise ValueError(f"unknown rate-limit backend {backend!r}: expected 'memory' or 'redis'")


def limit_scope(provider: str, secret: str | None) -> str:
    """A bucket scope for a provider and its API key: ``"openai-3fa9c2e1d0b4"``.

    The key appears only as 12 hex digits of its SHA-256 (never in clear, not
    reversible for a real key), so a key rotation starts fresh buckets and every
    process using the same provider name and key shares them. Braces, which Redis
    Cluster reads as a hash tag, are replaced in the name.
    """
    digest = hashlib.sha256((secret or "").encode()).hexdigest()[:12]
    name = provider.replace("{", "(").replace("}", ")")
    return f"{name}-{digest}" if secret else name
