"""The shared cache: entries in Redis, seen by every process and host that uses it.

A cache must never make a call slower or make it fail, so every Redis operation is
bounded by ``timeout`` (20 ms by default; connecting included) and any trouble - Redis
down, slow, refusing, answering garbage - turns the operation into a miss (reads) or a
no-op (writes): the call goes on to the provider. ``bypasses`` counts those operations.

After a failure Redis is left alone for ``retry_interval`` seconds: meanwhile operations
bypass at once (no 20 ms wait per call during an outage), then one operation probes it
again. One WARNING is logged per outage and an INFO when Redis is back.

A burst of calls waiting for a free connection is load, not an outage: an operation
that spends its whole time waiting for a connection is bypassed without marking Redis
down.

``redis`` is an optional dependency (``pip install 'aiport[redis]'``), imported when a
``RedisCache`` is made. The URL may hold a password: it is never logged or shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aiport._redis import LoopConnections, Outage, connect, import_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisCache"]

T = TypeVar("T")
_INSTALL_HINT = "the Redis cache backend needs the 'redis' package: pip install 'aiport[redis]'"


@dataclass(eq=False)
class _Conn:
    """The client of one event loop (redis.asyncio clients belong to the loop they run on)."""

    client: Redis
    gate: asyncio.Semaphore


class RedisCache:
    """Cached entries in Redis, with expiry done by Redis (``SET ... PX``).

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (may hold a password).
        namespace: put before every key (``"tenant-a:"``), to share one database.
        timeout: seconds an operation may take, connecting included, before it is
            bypassed.
        retry_interval: seconds Redis is left alone after a failure.
        max_connections: connections per event loop.
        clock: a monotonic clock (outage bookkeeping).
        logger: where the outage WARNING goes (``logging.getLogger("aiport")``).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "",
        timeout: float = 0.02,
        retry_interval: float = 1.0,
        max_connections: int = 32,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        import_redis(_INSTALL_HINT)
        if not (timeout > 0 and retry_interval >= 0 and max_connections > 0):
            raise ValueError("timeout and max_connections must be > 0, retry_interval >= 0")
        self._url = url
        self.namespace = namespace
        self.timeout = timeout
        self._max_connections = max_connections
        self._logger = logger or logging.getLogger("aiport")
        self._conns = LoopConnections(self._connect, owner="RedisCache")
        self._outage = Outage(probe_interval=retry_interval, clock=clock)
        self._lock = threading.Lock()  # guards bypasses
        #: Operations that went on without Redis (it failed, was slow, or was down).
        self.bypasses = 0

    def __repr__(self) -> str:  # never the URL: it may carry a password
        state = "down" if self._outage.down else "up"
        return f"<RedisCache namespace={self.namespace!r} {state} bypasses={self.bypasses}>"

    @property
    def available(self) -> bool:
        """False from a failed operation until one succeeds again."""
        return not self._outage.down

    @property
    def retry_interval(self) -> float:
        """Seconds Redis is left alone after a failure."""
        return self._outage.probe_interval

    @retry_interval.setter
    def retry_interval(self, seconds: float) -> None:
        self._outage.probe_interval = seconds

    # ------------------------------------------------------------------ connections

    def _conn(self) -> _Conn:
        return self._conns.get()

    def _connect(self) -> _Conn:
        # The gate keeps this loop's operations within the pool: no blocking pool needed.
        client = connect(self._url, timeout=self.timeout, max_connections=self._max_connections)
        return _Conn(client=client, gate=asyncio.Semaphore(self._max_connections))

    async def _run(self, operation: Callable[[Redis], Awaitable[T]], fallback: T) -> T:
        """``operation`` within ``timeout``; on any trouble, ``fallback`` (a bypass)."""
        from redis.exceptions import RedisError

        if self._outage.skip():  # down: only one operation per retry_interval tries Redis
            self._count_bypass()
            return fallback
        conn = self._conn()
        admitted = False
        try:
            async with asyncio.timeout(self.timeout):
                async with conn.gate:
                    admitted = True
                    result = await operation(conn.client)
        except TimeoutError as exc:
            self._count_bypass()
            if admitted:  # Redis was slow; only waiting for a free connection is no outage
                self._went_down(exc)
            return fallback
        except (RedisError, OSError, ValueError) as exc:
            # ValueError: a reply redis-py could not parse; treated as Redis trouble too.
            self._count_bypass()
            self._went_down(exc)
            return fallback
        self._came_back()
        return result

    def _count_bypass(self) -> None:
        with self._lock:
            self.bypasses += 1

    def _went_down(self, exc: BaseException) -> None:
        if not self._outage.failed(exc):
            return
        # Once per outage, never the URL.
        self._logger.warning(
            "aiport cache: Redis is unreachable or slow (%s); calls go on without the "
            "cache until it answers again",
            type(exc).__name__,
        )

    def _came_back(self) -> None:
        lasted = self._outage.worked()
        if lasted is not None:
            self._logger.info("aiport cache: Redis answers again after %.1fs", lasted)

    # ------------------------------------------------------------------ operations

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``; ``None`` when absent or Redis is in trouble."""
        name = self.namespace + key
        value = await self._run(lambda r: r.get(name), None)
        return _as_bytes(value)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in one ``MGET``; all ``None`` when Redis is in trouble."""
        if not keys:
            return []
        names = [self.namespace + key for key in keys]
        missing: list[bytes | str | None] = [None] * len(keys)
        values = await self._run(lambda r: r.mget(names), missing)
        return [_as_bytes(v) for v in values]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (nothing happens when Redis is in trouble)."""
        name = self.namespace + key
        await self._run(lambda r: r.set(name, value, px=_millis(ttl)), None)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store several entries in one pipelined round trip."""
        if not items:
            return
        px = _millis(ttl)

        async def write(client: Redis) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, value in items:
                    pipe.set(self.namespace + key, value, px=px)
                await pipe.execute()

        await self._run(write, None)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        name = self.namespace + key
        await self._run(lambda r: r.delete(name), None)

    async def aclose(self) -> None:
        """Close the connections of every event loop.

        Those of another loop are closed on it when it still runs; those of a loop
        already closed are dropped with it.
        """
        await self._conns.aclose(_close)


async def _close(conn: _Conn) -> None:
    with contextlib.suppress(Exception):
        await conn.client.aclose()


def _as_bytes(value: bytes | str | None) -> bytes | None:
    """A reply as bytes (clients made with ``decode_responses`` answer ``str``)."""
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else bytes(value)


def _millis(ttl: float) -> int:
    """Redis ``PX``: whole milliseconds, at least one (0 is an error)."""
    return max(1, round(ttl * 1000))
