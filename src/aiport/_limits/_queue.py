"""The waiting queue every limiter backend shares.

Calls over a limit wait here in order: higher priority first, first come first served
within a priority. Only a waiter that nobody ahead of it stands in the way of may ask
the backend for room; a waiter ahead stands in the way when it needs one of the same
buckets and was refused by one of those buckets (or is trying again after such a
refusal). So a call to a model whose own bucket is full does not hold up calls to other
models, and nobody overtakes a call waiting for the same bucket; calls arriving while
nobody waits all try at once (a shared backend's atomic admission orders them).

Backends implement ``_attempt`` (admit now or say why not). This class adds:

* waiting: for a wake-up (a slot or tokens freed in this process), for the time the
  backend said room would appear, or for the next poll (shared backends, where other
  processes free room without telling us);
* early failure: when a bucket provably cannot admit anyone before the waiter's
  deadline (its request log or a pause says so), the waiter fails at once instead of
  sleeping through its budget;
* clean exits: a waiter that gives up or is cancelled leaves the queue and wakes the
  next one; it never holds a slot.

The queue works across event loops (the service's sync twins run on their own loop):
its state is guarded by a thread lock and waiters are woken on their own loop.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from aiport._limits._base import (
    CONCURRENCY_RETRY_HINT,
    Bucket,
    Denial,
    FailureMode,
    Lease,
    LimitExceededError,
    bucket_key,
)

__all__ = ["QueuedLimiter"]


@dataclass(eq=False, slots=True)
class _Waiter:
    priority: int
    seq: int
    keys: frozenset[str]
    loop: asyncio.AbstractEventLoop
    #: Keys of the buckets that refused it at its last try; None while it is about to try.
    blocked: frozenset[str] | None = None
    #: Refused at least once (then, while it tries again, it goes before those behind).
    tried: bool = False
    reason: str = "requests"
    #: Clock time its last refusal said room would appear.
    retry_at: float | None = None
    future: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def order(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class QueuedLimiter(ABC):
    """Base of the limiter backends: the queue, early failure and pauses.

    Args:
        clock: a monotonic clock (seconds), the time base of every deadline here.
        poll_interval: how often the waiter at the head of the queue asks again when
            room may appear without this process hearing of it (shared backends);
            ``None`` when every change is local and wakes the queue itself.
    """

    #: Whether every pause that can stop this limiter's buckets is known in this process
    #: (``paused_now`` is then the whole truth). False for shared backends, where another
    #: process's pause is only seen by asking the store.
    pauses_known_locally: ClassVar[bool] = False

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float | None = None,
    ) -> None:
        self._clock = clock
        self._poll = poll_interval
        self._lock = threading.Lock()
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        #: Per bucket key: clock time before which it admits nobody, for the bucket
        #: exactly as it was then (a change of its limits makes the entry stale).
        self._blocked_until: dict[str, tuple[float, Bucket]] = {}
        #: Per bucket key: clock time a pause ends (a pause does not depend on limits).
        self._paused_until: dict[str, float] = {}

    # ------------------------------------------------------------------ backend hooks

    @abstractmethod
    async def _attempt(
        self, buckets: tuple[Bucket, ...], tokens: int, on_failure: FailureMode | None
    ) -> Lease | Denial:
        """Admit the call now (all buckets or none), or say why not."""

    def _pause_shared(self, bucket: Bucket, seconds: float) -> None:  # noqa: B027
        """Tell other processes of a pause (shared backends); the local part is done."""

    # ------------------------------------------------------------------ public API

    @property
    def queued(self) -> int:
        """How many calls are waiting right now."""
        with self._lock:
            return len(self._waiters)

    def pause(self, bucket: Bucket, seconds: float) -> None:
        """Admit nobody in ``bucket`` for ``seconds``; extends a pause, never shortens it."""
        if not seconds > 0:
            return
        until = self._clock() + seconds
        with self._lock:
            if until > self._paused_until.get(bucket.key, 0.0):
                self._paused_until[bucket.key] = until
        self._pause_shared(bucket, seconds)

    def paused_now(self, scope: str, model: str | None) -> bool:
        """Whether a pause this process knows of stops the provider bucket of ``scope`` or
        its bucket of ``model`` now (expired pauses are dropped on the way).

        The rate-limit layer asks this on every call that has no limit to count, so the
        common answer costs one test: with no pause at all the dict is empty, which is
        read without the lock (a dict's length is read atomically).
        """
        paused = self._paused_until
        if not paused:
            return False
        now = self._clock()
        stopped = False
        with self._lock:
            for key in (bucket_key(scope, None), bucket_key(scope, model)):
                until = paused.get(key)
                if until is None:
                    continue
                if until > now:
                    stopped = True
                else:
                    del paused[key]
        return stopped

    def paused_for(self, bucket: Bucket) -> float:
        """Seconds this process will still admit nobody in ``bucket`` because of a pause."""
        with self._lock:
            return max(0.0, self._paused_until.get(bucket.key, 0.0) - self._clock())

    async def acquire(
        self,
        buckets: Sequence[Bucket],
        *,
        tokens: int = 0,
        priority: int = 0,
        max_wait: float = 0.0,
        on_failure: FailureMode | None = None,
    ) -> Lease:
        """Wait for room in every bucket (see ``Limiter.acquire``)."""
        specs = tuple(buckets)
        loop = asyncio.get_running_loop()
        give_up = self._clock() + max(0.0, max_wait)
        waiter = _Waiter(priority, next(self._seq), frozenset(b.key for b in specs), loop)
        with self._lock:
            bisect.insort(self._waiters, waiter, key=lambda w: w.order)
        try:
            while True:
                with self._lock:
                    # A fresh future per round, made under the lock, so that a wake-up
                    # sent while this waiter decides what to do is never lost.
                    waiter.future = loop.create_future()
                    now = self._clock()
                    bound = self._bound(specs, now)
                    eligible = bound <= now and self._eligible(waiter)
                if bound > give_up:
                    raise LimitExceededError(self._bound_reason(specs, now), bound - now)
                if eligible:
                    waiter.blocked = None
                    outcome = await self._attempt(specs, max(0, tokens), on_failure)
                    if isinstance(outcome, Lease):
                        return outcome
                    now = self._clock()
                    self._refused(waiter, specs, outcome, now)
                    if now >= give_up or max(outcome.until.values(), default=0.0) > give_up - now:
                        raise LimitExceededError(outcome.reason, outcome.retry_after)
                    wake_at = give_up
                    if waiter.retry_at is not None:
                        wake_at = min(wake_at, waiter.retry_at)
                    if self._poll is not None:
                        wake_at = min(wake_at, now + self._poll)
                elif now >= give_up:
                    raise LimitExceededError(*self._estimate(waiter, specs, now))
                else:
                    # Not its turn: sleep until woken, until the bound passes, or until
                    # it gives up.
                    wake_at = give_up if bound <= now else min(bound, give_up)
                await self._sleep(waiter.future, wake_at - self._clock())
        finally:
            with self._lock:
                index = bisect.bisect_left(self._waiters, waiter.order, key=lambda w: w.order)
                if index < len(self._waiters) and self._waiters[index] is waiter:
                    del self._waiters[index]
            self._wake_eligible()

    # ------------------------------------------------------------------ internals

    async def _sleep(self, future: asyncio.Future[None], seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            pass

    def _eligible(self, waiter: _Waiter) -> bool:
        """Whether no waiter ahead stands in its way (call with the lock held).

        A waiter ahead that needs one of the same buckets stands in the way when a bucket
        this one needs refused it, or when it is trying again after a refusal (it was
        first). Calls arriving together may all try at once: the backend's atomic
        admission orders them, which a shared backend needs to admit a burst quickly.
        """
        for other in self._waiters:
            if other is waiter:
                return True
            if not other.keys & waiter.keys:
                continue
            if other.blocked is None:
                if other.tried:
                    return False
            elif other.blocked & waiter.keys:
                return False
        return True

    def _bound(self, specs: tuple[Bucket, ...], now: float) -> float:
        """The clock time before which one of ``specs`` provably admits nobody (lock held)."""
        bound = 0.0
        for bucket in specs:
            paused = self._paused_until.get(bucket.key)
            if paused is not None:
                if paused > now:
                    bound = max(bound, paused)
                else:
                    del self._paused_until[bucket.key]
            blocked = self._blocked_until.get(bucket.key)
            if blocked is not None:
                if blocked[0] <= now:
                    del self._blocked_until[bucket.key]
                elif blocked[1] == bucket:
                    bound = max(bound, blocked[0])
        return bound

    def _bound_reason(self, specs: tuple[Bucket, ...], now: float) -> str:
        with self._lock:
            paused = any(self._paused_until.get(b.key, 0.0) > now for b in specs)
        return "paused" if paused else "requests"

    def _refused(
        self, waiter: _Waiter, specs: tuple[Bucket, ...], denial: Denial, now: float
    ) -> None:
        by_key = {b.key: b for b in specs}
        with self._lock:
            waiter.blocked = denial.blocked
            waiter.tried = True
            waiter.reason = denial.reason
            waiter.retry_at = now + denial.retry_after
            for key, seconds in denial.until.items():
                bucket = by_key.get(key)
                if bucket is not None:
                    until = now + seconds
                    current = self._blocked_until.get(key)
                    if current is None or current[1] != bucket or current[0] < until:
                        self._blocked_until[key] = (until, bucket)
        # The waiters behind it that need none of the refusing buckets may go now.
        self._wake_eligible(exclude=waiter)

    def _estimate(
        self, waiter: _Waiter, specs: tuple[Bucket, ...], now: float
    ) -> tuple[str, float]:
        """(reason, seconds until room) for a waiter that never reached the front."""
        with self._lock:
            reason = waiter.reason
            candidates = [self._bound(specs, now) - now]
            if waiter.retry_at is not None:
                candidates.append(waiter.retry_at - now)
            for other in self._waiters:
                if other is waiter:
                    break
                if other.keys & waiter.keys and other.retry_at is not None:
                    candidates.append(other.retry_at - now)
                    reason = other.reason
        best = max(candidates)
        return reason, best if best > 0 else CONCURRENCY_RETRY_HINT

    def _wake_eligible(self, exclude: _Waiter | None = None) -> None:
        """Wake every waiter whose turn it may be (after room was freed or a waiter left)."""
        with self._lock:
            ready = [w for w in self._waiters if w is not exclude and self._eligible(w)]
        for waiter in ready:
            self._wake(waiter)

    @staticmethod
    def _wake(waiter: _Waiter) -> None:
        future = waiter.future
        if future is None or future.done():
            return
        # RuntimeError: its loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            waiter.loop.call_soon_threadsafe(_resolve, future)
