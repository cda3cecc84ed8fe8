"""The Redis limiter: limits shared by every process and host that uses one Redis.

Admission is one atomic Lua script per attempt (see ``_lua``): sliding-window logs of
requests and tokens checked and written together, with Redis's own clock, so the
exactness argument of the in-process limiter holds across processes (no window of the
configured length ever admits more than the limit, whatever the number of clients).
Concurrency slots are leases that expire (``lease_ttl``) unless renewed, so the slots
of a process that crashed come back on their own; a running process renews its leases
every third of the ttl. Pauses after a 429 are written to Redis, so every process waits.

Each process keeps its own waiting queue (priority, then FIFO); only the head of the
queue asks Redis, and polls every ``poll_interval`` when room may be freed by another
process (a slot or tokens), or sleeps until the exact time a request-log entry or a
pause ends. Order across processes is first come, first served at Redis, not a global
FIFO.

Redis unreachable (connection refused, any Redis error, or two timeouts of
``socket_timeout`` in a row: one may be this process's own event loop stalling): a
WARNING is logged once per outage, and until a probe (at most every
``probe_interval``) reaches Redis again, calls fail at once with
``LimiterUnavailableError`` (fail closed, the default) or go through untracked (fail
open). A call never hangs on Redis and never crashes with a Redis exception. Every
script is idempotent, so a command retried after a lost answer is never counted twice,
and an admission whose answer was lost is handed back once Redis answers again.

``redis`` is an optional dependency (``pip install 'aiport[redis]'``), imported when a
``RedisLimiter`` is made. The URL may hold a password: it is never logged or shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aiport._limits import _lua
from aiport._limits._base import (
    CONCURRENCY_RETRY_HINT,
    Bucket,
    BucketUsage,
    Denial,
    FailureMode,
    Lease,
    LimiterUnavailableError,
    refusal,
)
from aiport._limits._queue import QueuedLimiter
from aiport._redis import LoopConnections, Outage, connect, import_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["RedisLimiter"]

T = TypeVar("T")
_MICRO = 1_000_000
_INSTALL_HINT = (
    "the Redis rate-limit backend needs the 'redis' package: pip install 'aiport[redis]'"
)


class _DownError(Exception):
    """Redis could not be reached (the cause is chained).

    ``unsure``: the command may have run anyway (its answer was lost to a timeout).
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.unsure = isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__


def _consume(task: asyncio.Future[Any]) -> None:
    # A shielded task outlives a cancelled caller: read its outcome so that asyncio
    # does not report it as never retrieved.
    if not task.cancelled():
        task.exception()


@dataclass(eq=False)
class _Conn:
    """The client and background work of one event loop (redis clients are loop-bound)."""

    client: Redis
    acquire: AsyncScript
    release: AsyncScript
    renew: AsyncScript
    pause: AsyncScript
    usage: AsyncScript
    #: One permit per pooled connection (made on the loop that uses it).
    gate: asyncio.Semaphore
    leases: dict[str, Lease] = field(default_factory=dict)
    renewer: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class _Held:
    conn: _Conn
    refund: bool = False


class RedisLimiter(QueuedLimiter):
    """Limits shared through Redis.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        on_failure: what calls do while Redis is unreachable, unless a call says
            otherwise: ``"fail_closed"`` (refused with ``LimiterUnavailableError``) or
            ``"fail_open"`` (let through, uncounted).
        prefix: the first part of every key (``aiport:rl``).
        window: the sliding window in seconds (limits are per minute; tests shorten it).
        lease_ttl: seconds a concurrency slot survives its process without renewal.
        poll_interval: how often a waiting call asks Redis again for room that another
            process may free.
        socket_timeout: connect and read timeout of every Redis command.
        probe_interval: while Redis is unreachable, how often a call tries it again.
        max_connections: connections per event loop.
        clock: the monotonic clock of local deadlines.
        logger: where the outage WARNING goes (``logging.getLogger("aiport")``).
    """

    def __init__(
        self,
        url: str,
        *,
        on_failure: FailureMode = "fail_closed",
        prefix: str = "aiport:rl",
        window: float = 60.0,
        lease_ttl: float = 60.0,
        poll_interval: float = 0.05,
        socket_timeout: float = 0.5,
        probe_interval: float = 1.0,
        max_connections: int = 16,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        import_redis(_INSTALL_HINT)
        if on_failure not in ("fail_closed", "fail_open"):
            raise ValueError(f"on_failure must be 'fail_closed' or 'fail_open', not {on_failure!r}")
        if not (window > 0 and lease_ttl > 0 and poll_interval > 0 and socket_timeout > 0):
            raise ValueError("window, lease_ttl, poll_interval and socket_timeout must be > 0")
        super().__init__(clock=clock, poll_interval=poll_interval)
        self._url = url
        self.on_failure: FailureMode = on_failure
        self.prefix = prefix
        self.window = window
        self.lease_ttl = lease_ttl
        self._socket_timeout = socket_timeout
        self._max_connections = max_connections
        self._logger = logger or logging.getLogger("aiport")
        self.outage = Outage(probe_interval=probe_interval, clock=clock)
        self._conns = LoopConnections(self._connect, owner="RedisLimiter")
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:  # never the URL: it may carry a password
        state = "down" if self.outage.down else "up"
        return f"<RedisLimiter prefix={self.prefix!r} {state} on_failure={self.on_failure}>"

    @property
    def available(self) -> bool:
        """False from a failed Redis command until one succeeds again."""
        return not self.outage.down

    # ------------------------------------------------------------------ connections

    def _conn(self) -> _Conn:
        return self._conns.get()

    def _connect(self) -> _Conn:
        client = connect(
            self._url,
            timeout=self._socket_timeout,
            max_connections=self._max_connections,
            blocking_pool=True,
        )
        return _Conn(
            client=client,
            acquire=client.register_script(_lua.ACQUIRE),
            release=client.register_script(_lua.RELEASE),
            renew=client.register_script(_lua.RENEW),
            pause=client.register_script(_lua.PAUSE),
            usage=client.register_script(_lua.USAGE),
            gate=asyncio.Semaphore(self._max_connections),
        )

    async def _call(self, conn: _Conn, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation under the socket timeout; an outage raises ``_DownError``.

        Operations wait for one of the loop's connections *before* the timeout starts:
        a burst of calls queueing for a connection is load, not an outage. A timeout is
        tried once more before it counts as an outage: an event loop stalled by other
        work (a burst of calls starting up) looks exactly like a slow Redis, and every
        script is idempotent, so running one twice is safe. A refused connection counts
        at once.
        """
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        async with conn.gate:
            for attempt in (1, 2):
                try:
                    async with asyncio.timeout(self._socket_timeout * 2):
                        result = await operation()
                    break
                except (RedisTimeoutError, TimeoutError) as exc:
                    if attempt == 1:
                        continue
                    self.outage.failed(exc)
                    raise _DownError(exc) from exc
                except (RedisError, OSError) as exc:
                    self.outage.failed(exc)
                    raise _DownError(exc) from exc
        lasted = self.outage.worked()
        if lasted is not None:
            self._logger.info("aiport rate limiter: Redis is reachable again after %.1fs", lasted)
        return result

    def _key(self, bucket: Bucket, part: str) -> str:
        model = bucket.model if bucket.model is not None else "*"
        return f"{self.prefix}:{{{bucket.scope}}}:{model}:{part}"

    # ------------------------------------------------------------------ admission

    async def _attempt(
        self, buckets: tuple[Bucket, ...], tokens: int, on_failure: FailureMode | None
    ) -> Lease | Denial:
        mode = on_failure or self.on_failure
        if self.outage.skip():
            return self._unavailable(mode, buckets, tokens)
        conn = self._conn()
        task = asyncio.ensure_future(self._acquire_remote(conn, buckets, tokens))
        task.add_done_callback(_consume)
        try:
            # Shielded: if the caller is cancelled while Redis answers, a lease Redis
            # granted is handed back below instead of holding its slot until it expires.
            return await asyncio.shield(task)
        except _DownError:
            return self._unavailable(mode, buckets, tokens)
        except asyncio.CancelledError:
            task.add_done_callback(self._refund_orphan)
            raise

    async def _acquire_remote(
        self, conn: _Conn, buckets: tuple[Bucket, ...], tokens: int
    ) -> Lease | Denial:
        lease_id = uuid.uuid4().hex
        keys: list[str] = []
        args: list[int | str] = [
            round(self.window * _MICRO),
            lease_id,
            tokens,
            round(self.lease_ttl * _MICRO),
        ]
        for bucket in buckets:
            keys += [self._key(bucket, p) for p in ("req", "tok", "tsum", "conc", "pause")]
            args += [
                bucket.requests_per_minute or 0,
                bucket.tokens_per_minute or 0,
                bucket.max_concurrency or 0,
            ]
        try:
            reply = await self._call(conn, lambda: conn.acquire(keys=keys, args=args))
        except _DownError as exc:
            if exc.unsure:
                # The script may have admitted the call before its answer was lost: hand
                # the lease back once Redis answers (a no-op if it never ran).
                lost = Lease(lease_id, buckets, tokens, state=_Held(conn, refund=True))
                self._spawn(self._refund_lost(lost))
            raise
        values = [int(v) for v in reply]
        if values[0] == 1:
            slots = tuple(b.key for b in buckets if b.max_concurrency is not None)
            lease = Lease(lease_id, buckets, tokens, slots, state=_Held(conn))
            if slots:
                conn.leases[lease_id] = lease
                if conn.renewer is None or conn.renewer.done():
                    conn.renewer = asyncio.get_running_loop().create_task(self._renew(conn))
            return lease
        denials: list[tuple[str, str, float, float]] = []
        for i in range(1, len(values), 5):
            index, pause_us, requests_us, tokens_us, full = values[i : i + 5]
            pause, requests, tokens_wait = (v / _MICRO for v in (pause_us, requests_us, tokens_us))
            waits = {"paused": pause, "requests": requests, "tokens": tokens_wait}
            reason = next((name for name, wait in waits.items() if wait > 0), "concurrency")
            retry = max(pause, requests, tokens_wait, CONCURRENCY_RETRY_HINT if full else 0.0)
            # Only a pause or the request log says exactly when this bucket can admit.
            denials.append((buckets[index].key, reason, retry, max(pause, requests)))
        return refusal(denials)

    def _unavailable(self, mode: FailureMode, buckets: tuple[Bucket, ...], tokens: int) -> Lease:
        if self.outage.claim_warning():  # once per outage, by the first call it affects
            self._logger.warning(
                "aiport rate limiter: Redis is unreachable (%s); until it is back, calls are %s",
                self.outage.cause,
                "let through without limits (fail_open)"
                if mode == "fail_open"
                else "refused with ProviderRateLimitError (fail_closed)",
            )
        if mode == "fail_open":
            return Lease(uuid.uuid4().hex, buckets, tokens, tracked=False)
        raise LimiterUnavailableError(
            "the rate limiter's Redis is unreachable", retry_after=self.outage.probe_interval
        )

    def _refund_orphan(self, task: asyncio.Task[Lease | Denial]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        lease = task.result()
        if isinstance(lease, Lease) and lease.tracked:
            lease.state = _Held(_conn_of(lease), refund=True)
            self._spawn(self.release(lease, tokens=0))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def release(self, lease: Lease, *, tokens: int | None = None) -> None:
        """Free the lease's slots and correct its tokens; never raises.

        On an outage the correction is lost and the slots come back when their leases
        expire.
        """
        if lease.released or not lease.tracked:
            return
        lease.released = True
        held = lease.state
        if not isinstance(held, _Held):
            return
        held.conn.leases.pop(lease.id, None)
        task = asyncio.ensure_future(self._release_remote(held, lease, tokens))
        task.add_done_callback(_consume)
        # Shielded: a release runs to its end even when the releasing call is cancelled.
        with contextlib.suppress(_DownError):
            await asyncio.shield(task)
        self._wake_eligible()

    async def _release_remote(self, held: _Held, lease: Lease, tokens: int | None) -> None:
        keys: list[str] = []
        for bucket in lease.buckets:
            keys += [self._key(bucket, p) for p in ("req", "tok", "tsum", "conc")]
        args: list[int | str] = [
            lease.id,
            lease.tokens,
            -1 if tokens is None else max(0, tokens),
            1 if held.refund else 0,
        ]
        await self._call(held.conn, lambda: held.conn.release(keys=keys, args=args))

    async def _refund_lost(self, lease: Lease) -> None:
        """Give back a lease whose admission answer was lost, when Redis answers again."""
        held = lease.state
        assert isinstance(held, _Held)
        for _ in range(3):
            await asyncio.sleep(self.outage.probe_interval)
            try:
                await self._release_remote(held, lease, 0)
            except _DownError:
                continue
            self._wake_eligible()
            return

    async def _renew(self, conn: _Conn) -> None:
        """Keep the leases of running calls alive while they run."""
        while conn.leases:
            await asyncio.sleep(self.lease_ttl / 3)
            leases = list(conn.leases.values())
            keys = [
                self._key(b, "conc")
                for lease in leases
                for b in lease.buckets
                if b.key in lease.slots
            ]
            ids = [lease.id for lease in leases for b in lease.buckets if b.key in lease.slots]
            if keys:
                args: list[int | str] = [round(self.lease_ttl * _MICRO), *ids]
                with contextlib.suppress(_DownError):
                    await self._call(conn, functools.partial(conn.renew, keys=keys, args=args))

    # ------------------------------------------------------------------ pauses and usage

    def _pause_shared(self, bucket: Bucket, seconds: float) -> None:
        try:
            conn = self._conn()
        except RuntimeError:  # no running loop, or closed: this process knows already
            return
        micros = math.ceil(seconds * _MICRO)
        self._spawn(self._pause_remote(conn, bucket, micros))

    async def _pause_remote(self, conn: _Conn, bucket: Bucket, micros: int) -> None:
        with contextlib.suppress(_DownError):
            await self._call(
                conn, lambda: conn.pause(keys=[self._key(bucket, "pause")], args=[micros])
            )

    async def usage(self, bucket: Bucket) -> BucketUsage:
        """What ``bucket`` holds in Redis now (for tests and diagnostics)."""
        conn = self._conn()
        keys = [self._key(bucket, p) for p in ("req", "tok", "tsum", "conc")]
        reply = await self._call(
            conn, lambda: conn.usage(keys=keys, args=[round(self.window * _MICRO)])
        )
        requests, tokens, in_flight = (int(v) for v in reply)
        return BucketUsage(requests, tokens, in_flight)

    # ------------------------------------------------------------------ closing

    async def aclose(self) -> None:
        """Close the Redis connections of every loop and stop background work.

        Connections of other loops are closed on their loop when it still runs; those
        of loops already closed are dropped (close them first with ``aclose_loop``).
        """
        await self._conns.aclose(self._close_conn)
        await self._cancel_tasks(asyncio.get_running_loop())

    async def aclose_loop(self) -> None:
        """Close this loop's connection only (before a loop that used the limiter ends).

        The limiter stays usable: a later call opens a new connection.
        """
        conn = self._conns.pop_current()
        if conn is not None:
            await self._close_conn(conn)
        await self._cancel_tasks(asyncio.get_running_loop())

    async def _cancel_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        tasks = [t for t in list(self._tasks) if t.get_loop() is loop and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_conn(self, conn: _Conn) -> None:
        if conn.renewer is not None and not conn.renewer.done():
            conn.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.renewer
        with contextlib.suppress(Exception):
            await conn.client.aclose()


def _conn_of(lease: Lease) -> _Conn:
    held = lease.state
    assert isinstance(held, _Held)
    return held.conn
