"""The in-process limiter: sliding-window logs, in memory, for one process.

Algorithm (per bucket): a log of the times of the requests admitted in the last
``window`` seconds, and a log of (time, tokens) entries with their running sum. A call is
admitted at time ``t`` when, after dropping entries at or before ``t - window``:

* fewer than ``requests_per_minute`` requests remain in the log, and
* the tokens in the log plus the call's estimate fit ``tokens_per_minute`` (an estimate
  larger than the whole limit is admitted only into an empty window, so it cannot
  wait forever), and
* fewer than ``max_concurrency`` admitted calls are still running, and
* the bucket is not paused.

Exactness: take any window ``(a, a + window]`` and suppose it held ``N + 1`` admitted
requests with ``N = requests_per_minute``. When the last of them was admitted, at
``t <= a + window``, the other ``N`` were in the log (each is later than
``a >= t - window``), so the check saw ``N`` requests and refused it: a contradiction.
Hence no window of that length ever holds more than ``N`` requests; the same argument
holds for tokens as reserved at admission. A refused call is told exactly when room
appears: when the oldest entry that must leave the log reaches ``window`` seconds of age.

Tokens are reserved when a call is admitted and corrected, in place (at their admission
time), to the usage the provider reports when the call ends; a correction for an entry
that already left the window is dropped.

All state sits behind one thread lock, so one limiter serves several event loops.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from aiport._limits._base import (
    CONCURRENCY_RETRY_HINT,
    Bucket,
    BucketUsage,
    Denial,
    FailureMode,
    Lease,
    refusal,
)
from aiport._limits._queue import QueuedLimiter

__all__ = ["MemoryLimiter"]

#: Every this many admissions, buckets nobody used for a window are dropped.
_SWEEP_EVERY = 1024


class _TokenEntry:
    __slots__ = ("amount", "live", "time")

    def __init__(self, when: float, amount: int) -> None:
        self.time = when
        self.amount = amount
        self.live = True  # False once it left the window: corrections no longer apply


class _State:
    __slots__ = ("in_flight", "requests", "token_sum", "tokens")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens: deque[_TokenEntry] = deque()
        self.token_sum = 0
        self.in_flight = 0

    def trim(self, horizon: float) -> None:
        requests = self.requests
        while requests and requests[0] <= horizon:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0].time <= horizon:
            entry = tokens.popleft()
            entry.live = False
            self.token_sum -= entry.amount

    @property
    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.in_flight)


class MemoryLimiter(QueuedLimiter):
    """Limits for the calls of this process (the default backend).

    Args:
        window: the length of the sliding window in seconds (limits are per minute;
            tests shorten it).
        clock: a monotonic clock; every time here is on it.
    """

    #: Pauses live in this process only: ``paused_now`` knows them all.
    pauses_known_locally = True

    def __init__(
        self, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not window > 0:
            raise ValueError("window must be > 0")
        super().__init__(clock=clock, poll_interval=None)
        self.window = window
        self._states: dict[str, _State] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<MemoryLimiter buckets={len(self._states)} queued={len(self._waiters)}>"

    async def _attempt(
        self, buckets: tuple[Bucket, ...], tokens: int, on_failure: FailureMode | None
    ) -> Lease | Denial:
        # No await inside: admission is atomic for this process and cannot be cancelled
        # half-way.
        return self.try_acquire(buckets, tokens=tokens)

    def try_acquire(self, buckets: tuple[Bucket, ...], *, tokens: int = 0) -> Lease | Denial:
        """Admit a call now in every bucket, or say why not, without waiting or queueing."""
        with self._lock:
            now = self._clock()
            horizon = now - self.window
            denials: list[tuple[str, str, float, float]] = []
            for bucket in buckets:
                denial = self._check(bucket, tokens, now, horizon)
                if denial is not None:
                    denials.append(denial)
            if denials:
                return refusal(denials)
            return self._admit(buckets, tokens, now)

    def _check(
        self, bucket: Bucket, tokens: int, now: float, horizon: float
    ) -> tuple[str, str, float, float] | None:
        """(key, reason, retry_after, until) if ``bucket`` refuses the call (lock held)."""
        reason: str | None = None
        until = retry = 0.0
        paused = self._paused_until.get(bucket.key, 0.0) - now
        if paused > 0:
            reason, until, retry = "paused", paused, paused
        state = self._states.get(bucket.key)
        if state is None:
            return (bucket.key, reason, retry, until) if reason else None
        state.trim(horizon)
        rpm = bucket.requests_per_minute
        if rpm is not None and len(state.requests) >= rpm:
            # The oldest entry that must leave before one more fits.
            wait = state.requests[len(state.requests) - rpm] + self.window - now
            reason = reason or "requests"
            until, retry = max(until, wait), max(retry, wait)
        tpm = bucket.tokens_per_minute
        if tpm is not None and state.token_sum + min(tokens, tpm) > tpm:
            excess = state.token_sum + min(tokens, tpm) - tpm
            wait = self.window  # not reached: the log always holds the excess
            for entry in state.tokens:
                excess -= entry.amount
                if excess <= 0:
                    wait = entry.time + self.window - now
                    break
            reason = reason or "tokens"
            retry = max(retry, wait)
        limit = bucket.max_concurrency
        if limit is not None and state.in_flight >= limit:
            reason = reason or "concurrency"
            retry = max(retry, CONCURRENCY_RETRY_HINT)
        return (bucket.key, reason, retry, until) if reason else None

    def _admit(self, buckets: tuple[Bucket, ...], tokens: int, now: float) -> Lease:
        entries: list[tuple[str, _TokenEntry]] = []
        slots: list[str] = []
        for bucket in buckets:
            if not bucket.limited:
                continue
            state = self._states.get(bucket.key)
            if state is None:
                state = self._states[bucket.key] = _State()
            if bucket.requests_per_minute is not None:
                state.requests.append(now)
            if bucket.tokens_per_minute is not None:
                entry = _TokenEntry(now, tokens)
                state.tokens.append(entry)
                state.token_sum += tokens
                entries.append((bucket.key, entry))
            if bucket.max_concurrency is not None:
                state.in_flight += 1
                slots.append(bucket.key)
        lease_id = next(self._ids)
        if lease_id % _SWEEP_EVERY == 0:
            self._sweep(now - self.window)
        return Lease(str(lease_id), buckets, tokens, tuple(slots), state=entries)

    def _sweep(self, horizon: float) -> None:
        for key, state in list(self._states.items()):
            state.trim(horizon)
            if state.empty:
                del self._states[key]

    async def release(self, lease: Lease, *, tokens: int | None = None) -> None:
        """Free the lease's slots and correct its tokens (see ``Limiter.release``)."""
        self.release_now(lease, tokens=tokens)

    def release_now(self, lease: Lease, *, tokens: int | None = None) -> None:
        """``release`` for synchronous code."""
        with self._lock:
            if lease.released or not lease.tracked:
                return
            lease.released = True
            for key in lease.slots:
                state = self._states.get(key)
                if state is not None:
                    state.in_flight -= 1
            entries = cast("list[tuple[str, _TokenEntry]]", lease.state or [])
            if tokens is not None:
                for key, entry in entries:
                    state = self._states.get(key)
                    if entry.live and state is not None:
                        state.token_sum += tokens - entry.amount
                        entry.amount = tokens
        # A slot or tokens may have been freed: the next waiters may fit now.
        self._wake_eligible()

    def usage(self, bucket: Bucket) -> BucketUsage:
        """What ``bucket`` holds now (for tests and diagnostics)."""
        with self._lock:
            state = self._states.get(bucket.key)
            if state is None:
                return BucketUsage()
            state.trim(self._clock() - self.window)
            return BucketUsage(len(state.requests), state.token_sum, state.in_flight)

    async def aclose(self) -> None:
        """Nothing to release: the state is plain memory."""
