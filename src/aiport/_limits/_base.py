"""What every limiter backend shares: buckets, leases, outcomes and the ``Limiter`` protocol.

A *bucket* is one set of limits with its own counters: the provider bucket (every call
made with one API key) and a model bucket (the calls to one model with that key). A
call needs room in all of its buckets at once, and takes it from all of them atomically
or from none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

__all__ = [
    "CONCURRENCY_RETRY_HINT",
    "Bucket",
    "BucketUsage",
    "Denial",
    "FailureMode",
    "Lease",
    "LimitExceededError",
    "Limiter",
    "LimiterUnavailableError",
    "bucket_key",
    "refusal",
]

#: What a limiter does when its shared store cannot be reached.
FailureMode: TypeAlias = Literal["fail_closed", "fail_open"]

#: ``retry_after`` given when only a concurrency slot is missing: no clock says when a call
#: in flight ends, so this is a hint, not a promise.
CONCURRENCY_RETRY_HINT = 1.0


def bucket_key(scope: str, model: str | None) -> str:
    """``scope:model`` (``*`` for the provider bucket): how backends name a bucket."""
    return f"{scope}:{model if model is not None else '*'}"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One set of limits and the counters behind it.

    ``scope`` names the API key (``"openai-3fa9c2e1d0b4"``, never the key itself) and
    ``model`` the model, ``None`` for the bucket every call of the key counts against.
    A limit left ``None`` is not enforced (and not counted).
    """

    scope: str
    model: str | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrency: int | None = None

    @property
    def key(self) -> str:
        """``scope:model`` (``*`` for the provider bucket): how backends name the bucket."""
        return bucket_key(self.scope, self.model)

    @property
    def limited(self) -> bool:
        """Whether any limit is set (a bucket without limits only honours pauses)."""
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.max_concurrency is not None
        )


@dataclass(frozen=True, slots=True)
class BucketUsage:
    """What a bucket holds now: requests and tokens in the window, calls in flight."""

    requests: int = 0
    tokens: int = 0
    in_flight: int = 0


@dataclass(slots=True, eq=False)
class Lease:
    """What one admitted call holds until it is released.

    ``tokens`` is what the call reserved in each bucket with a token limit; ``slots``
    the keys of the buckets where it holds a concurrency slot. An untracked lease
    (``tracked=False``) was granted without counting, by a fail-open limiter whose store
    was unreachable: releasing it does nothing.
    """

    id: str
    buckets: tuple[Bucket, ...]
    tokens: int
    slots: tuple[str, ...] = ()
    tracked: bool = True
    released: bool = False
    #: Backend bookkeeping (the entries to reconcile); opaque to callers.
    state: object = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a call was not admitted now, and when it might be.

    Attributes:
        reason: the first limit that refused: ``"paused"``, ``"requests"``,
            ``"tokens"`` or ``"concurrency"``.
        retry_after: the best estimate of the seconds until the call would fit.
        blocked: keys of the buckets that refused.
        until: per refusing bucket, seconds before which it *cannot* admit anyone
            (from its request log or a pause: only time frees those). Buckets refusing
            on tokens or concurrency are absent: a call ending early may free them.
    """

    reason: str
    retry_after: float
    blocked: frozenset[str]
    until: Mapping[str, float] = field(default_factory=dict)


class LimitExceededError(Exception):
    """A call did not get its turn within its wait budget."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(f"over the {reason} limit; retry in {retry_after:.3f}s")
        self.reason = reason
        self.retry_after = retry_after


class LimiterUnavailableError(Exception):
    """The limiter's shared store is unreachable and the limiter fails closed."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Limiter(Protocol):
    """Where rate-limit state lives: in this process or shared through Redis.

    ``acquire`` waits in a queue (higher ``priority`` first, FIFO within a priority) for
    room in every bucket, at most ``max_wait`` seconds, then raises
    ``LimitExceededError``. A backend that cannot reach its store raises
    ``LimiterUnavailableError`` (fail closed) or grants an untracked lease (fail open),
    as ``on_failure`` says (``None``: the backend's default).
    """

    async def acquire(
        self,
        buckets: Sequence[Bucket],
        *,
        tokens: int = 0,
        priority: int = 0,
        max_wait: float = 0.0,
        on_failure: FailureMode | None = None,
    ) -> Lease:
        """Take one request, ``tokens`` tokens and a concurrency slot from every bucket."""
        ...

    async def release(self, lease: Lease, *, tokens: int | None = None) -> None:
        """Give the slots back; with ``tokens``, correct the reservation to that many.

        Never raises; a second release of the same lease does nothing.
        """
        ...

    def pause(self, bucket: Bucket, seconds: float) -> None:
        """Admit nobody in ``bucket`` for ``seconds`` (extends a pause, never shortens one).

        Takes effect in this process at once; shared backends tell the others shortly
        after (without blocking: response listeners call this from synchronous code).
        """
        ...

    async def aclose(self) -> None:
        """Release connections and background tasks."""
        ...


def refusal(denials: Sequence[tuple[str, str, float, float]]) -> Denial:
    """Combine per-bucket refusals ``(key, reason, retry_after, until)`` into one ``Denial``.

    ``until`` is 0 when nothing but time blocks that bucket; the call waits for the
    slowest bucket, so ``retry_after`` is the largest estimate.
    """
    order = {"paused": 0, "requests": 1, "tokens": 2, "concurrency": 3}
    first = min(denials, key=lambda d: order.get(d[1], 9))
    return Denial(
        reason=first[1],
        retry_after=max(d[2] for d in denials),
        blocked=frozenset(d[0] for d in denials),
        until={d[0]: d[3] for d in denials if d[3] > 0},
    )
