"""The tables of the cross-cutting behaviours, each read by the layer it configures.

Timeouts (the transport), retry, rate limits, circuit breaking, fallback, routers and
the response cache. Timeouts, retry, rate limits and circuit breaking can be set at the
top level and overridden per provider (and per model), setting by setting; see
``AgentConfig.effective_retry`` and its siblings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from aiport._config._base import ConfigModel
from aiport._config._fields import NonEmptyName

__all__ = [
    "DEFAULT_FALLBACK_ON",
    "CacheBackend",
    "CacheConfig",
    "CircuitBreakerConfig",
    "FallbackConfig",
    "FallbackTrigger",
    "LimiterBackend",
    "RateLimitConfig",
    "RetryConfig",
    "RouteStrategy",
    "RouterConfig",
    "TimeoutConfig",
]

#: Where cached responses are kept.
CacheBackend = Literal["memory", "sqlite", "redis"]
LimiterBackend = Literal["memory", "redis"]
RouteStrategy = Literal["round-robin", "least-busy", "lowest-latency"]
#: Kinds of failure after which the next model of a fallback list is tried.
FallbackTrigger = Literal[
    "rate_limit",
    "server_error",
    "overloaded",
    "timeout",
    "connection",
    "context_length",
    "malformed_response",
    "stream_interrupted",
    "auth",
    "content_filter",
    "circuit_open",
]
DEFAULT_FALLBACK_ON: tuple[FallbackTrigger, ...] = (
    "rate_limit",
    "server_error",
    "overloaded",
    "timeout",
    "connection",
    "context_length",
    "malformed_response",
    "stream_interrupted",
    "circuit_open",
)


class TimeoutConfig(ConfigModel):
    """How long a call may take, in seconds. Every value must be greater than zero."""

    connect: float = Field(
        10.0, gt=0, allow_inf_nan=False, description="Seconds to open the TCP/TLS connection."
    )
    first_token: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds from sending the request to the response headers, or to the first "
            "event of a stream."
        ),
    )
    idle: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Longest gap, in seconds, between two events of a stream.",
    )
    total: float = Field(
        600.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds the whole call may take, reading the full response included.",
    )


class RetryConfig(ConfigModel):
    """How failed calls are retried: exponential backoff with jitter, bounded in count and time."""

    max_attempts: int = Field(
        3, ge=1, description="Attempts in all, the first try included (1 means no retry)."
    )
    initial_backoff: float = Field(
        0.5, gt=0, allow_inf_nan=False, description="Seconds to wait before the first retry."
    )
    max_backoff: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Longest wait between two attempts, in seconds (at least initial_backoff).",
    )
    max_retry_after: float = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Longest Retry-After, in seconds, that is honoured; a provider asking for more "
            "makes the call fail at once."
        ),
    )
    deadline: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds all attempts together may take; unset means no limit beyond them.",
    )
    budget_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description=(
            "Retries allowed as a share of first attempts (0.2: at most 20% extra load), "
            "so retries cannot snowball when a provider is down."
        ),
    )

    budget_window: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds of history the retry budget counts first attempts and retries over.",
    )
    budget_min_retries: int = Field(
        10,
        ge=0,
        description=(
            "Retries always allowed per budget window, so that a quiet service can still "
            "retry its occasional failure."
        ),
    )

    @field_validator("max_backoff")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_backoff")
        if isinstance(initial, float) and value < initial:
            raise PydanticCustomError(
                "backoff_order",
                "must be at least initial_backoff ({initial})",
                {"initial": initial},
            )
        return value


class RateLimitConfig(ConfigModel):
    """Client-side limits; calls over a limit wait in a queue for their turn."""

    requests_per_minute: int | None = Field(
        None, gt=0, description="Requests started per minute; unset means no limit."
    )
    tokens_per_minute: int | None = Field(
        None, gt=0, description="Tokens (input and output) per minute; unset means no limit."
    )
    max_concurrency: int | None = Field(
        None, gt=0, description="Calls in flight at once; unset means no limit."
    )
    max_queue_wait: float = Field(
        30.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Seconds a call may wait for its turn before failing with ProviderRateLimitError "
            "(0: fail at once when over a limit)."
        ),
    )
    backend: LimiterBackend = Field(
        "memory",
        description=(
            "Where the counters live: 'memory' (this process) or 'redis' (shared by every "
            "process and host; needs redis_url)."
        ),
    )
    on_backend_failure: Literal["fail_closed", "fail_open"] = Field(
        "fail_closed",
        description=(
            "When the Redis backend is unreachable: 'fail_closed' refuses calls with "
            "ProviderRateLimitError, 'fail_open' lets them through unlimited until it is back."
        ),
    )
    learn_from_headers: bool = Field(
        True,
        description=(
            "Tighten the limits from the providers' rate-limit headers and pause on a 429 "
            "until its Retry-After."
        ),
    )


class CircuitBreakerConfig(ConfigModel):
    """When a deployment (provider + model) is skipped after failing, and for how long."""

    enabled: bool = Field(True, description="Skip failing deployments while their circuit is open.")
    failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open the circuit."
    )
    error_rate: float | None = Field(
        0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of failed calls over `window` that opens the circuit; unset: off.",
    )
    window: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="Seconds the error rate is measured over."
    )
    min_calls: int = Field(
        10, ge=1, description="Calls in the window before the error rate is considered."
    )
    cooldown: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds an open circuit waits before letting one probe call through "
            "(half-open); a successful probe closes it."
        ),
    )


class FallbackConfig(ConfigModel):
    """Which failures move a call on to the next model of its fallback list."""

    enabled: bool = Field(True, description="Use fallbacks (a call can also turn them off).")
    on: list[FallbackTrigger] = Field(
        default_factory=lambda: list(DEFAULT_FALLBACK_ON),
        description=(
            "Failure kinds that trigger a fallback once retries are exhausted; content "
            "filter refusals and auth errors are left out by default."
        ),
    )


class RouterConfig(ConfigModel):
    """Several deployments behind one model id, balanced by a strategy."""

    deployments: list[str] = Field(
        min_length=1,
        description="Model ids served interchangeably ('openai:gpt-4o', 'mirror:gpt-4o').",
    )
    strategy: RouteStrategy = Field(
        "round-robin",
        description=(
            "How a deployment is picked: 'round-robin', 'least-busy' (fewest calls in "
            "flight) or 'lowest-latency' (smallest moving average)."
        ),
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Model ids tried, in order, when every deployment failed.",
    )


class CacheConfig(ConfigModel):
    """The exact-match response cache (opt-in)."""

    enabled: bool = Field(False, description="Cache responses (can also be chosen per call).")
    backend: CacheBackend = Field(
        "memory",
        description=(
            "Where entries live: 'memory' (this process), 'sqlite' (a local file) or "
            "'redis' (shared; needs redis_url)."
        ),
    )
    path: NonEmptyName | None = Field(
        None,
        description="The SQLite file of the 'sqlite' backend; default: the user's cache directory.",
    )
    ttl: float = Field(
        3600.0, gt=0, allow_inf_nan=False, description="Seconds an entry stays valid."
    )
    max_entries: int = Field(
        10_000,
        gt=0,
        description=(
            "Entries kept before the least recently used are evicted (memory; the SQLite "
            "file drops those closest to expiry first)."
        ),
    )
    max_bytes: int = Field(
        128 * 1024 * 1024,
        gt=0,
        description=(
            "Bytes of keys and values the memory backend keeps before evicting the least "
            "recently used (an entry larger than this is not cached)."
        ),
    )
    redis_timeout: float = Field(
        0.02,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds a Redis cache operation may take (connecting included) before the call "
            "goes on without the cache; raise it for a distant Redis."
        ),
    )
