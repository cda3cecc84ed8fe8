"""Redis plumbing shared by the Redis cache and the Redis rate limiter.

* :func:`import_redis`: the ``redis`` package, imported when a Redis store is made (it is
  an optional dependency, ``pip install 'aiport[redis]'``), failing with the install hint;
* :func:`connect`: a ``redis.asyncio`` client that never retries by itself, so that an
  outage surfaces at once instead of after backoffs longer than the caller's budget;
* :class:`LoopConnections`: one client per event loop (a ``redis.asyncio`` client belongs
  to the loop it runs on), each closed on its own loop;
* :class:`Outage`: whether Redis is reachable, and when to probe it again while it is not.

How long an operation may take and what a failure means (a cache miss, a refused call)
stay with each store. This module imports nothing of ``redis`` until a function asks for
it, so importing it costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LoopConnections", "Outage", "connect", "import_redis"]

ConnT = TypeVar("ConnT")


def import_redis(install_hint: str) -> None:
    """Import everything a Redis operation needs, now.

    Called when a store is made: a missing package fails there with ``install_hint`` (how
    to install it), and import time stays out of the first operation's time budget.

    Raises:
        ImportError: ``redis`` is not installed; the message is ``install_hint``.
    """
    try:
        import redis.asyncio
        import redis.asyncio.retry
        import redis.backoff
        import redis.exceptions  # noqa: F401
    except ImportError as exc:
        raise ImportError(install_hint) from exc


def connect(
    url: str, *, timeout: float, max_connections: int, blocking_pool: bool = False
) -> Redis:
    """A client of ``url`` whose commands redis-py never retries.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL (may hold a password).
        timeout: seconds connecting, and each read, may take.
        max_connections: connections the client's pool may open.
        blocking_pool: when every connection is busy, a command waits up to ``timeout``
            for one (``BlockingConnectionPool``); otherwise the caller must keep its
            commands in flight within ``max_connections`` itself.
    """
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    no_retry = Retry(NoBackoff(), 0)
    if not blocking_pool:
        return Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=max_connections,
            retry=no_retry,
        )
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=no_retry,
    )
    return Redis.from_pool(pool)


class LoopConnections(Generic[ConnT]):
    """The connection of each event loop, made on the loop's first use (thread-safe).

    Args:
        make: makes the connection of the running loop (called on that loop).
        owner: what the error after :meth:`aclose` calls the store (``"RedisCache"``).
    """

    def __init__(self, make: Callable[[], ConnT], *, owner: str) -> None:
        self._make = make
        self._owner = owner
        self._conns: dict[asyncio.AbstractEventLoop, ConnT] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> ConnT:
        """The running loop's connection, made now if it has none.

        Raises:
            RuntimeError: no event loop is running, or :meth:`aclose` was called.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"this {self._owner} is closed")
            conn = self._conns.get(loop)
            if conn is None:
                conn = self._conns[loop] = self._make()
            return conn

    def pop_current(self) -> ConnT | None:
        """Forget the running loop's connection and hand it over (for the caller to close).

        A later :meth:`get` on this loop makes a new one.
        """
        current = asyncio.get_running_loop()
        with self._lock:
            return self._conns.pop(current, None)

    async def aclose(self, close: Callable[[ConnT], Coroutine[Any, Any, None]]) -> None:
        """Close the connection of every loop with ``close``; :meth:`get` fails from now on.

        A connection of another loop is closed on that loop when it still runs (waiting
        up to 5 seconds, errors ignored); one of a loop already closed is dropped with it.
        """
        with self._lock:
            self._closed = True
            conns, self._conns = dict(self._conns), {}
        current = asyncio.get_running_loop()
        for loop, conn in conns.items():
            if loop is current:
                await close(conn)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(close(conn), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), 5)


class Outage:
    """Whether Redis is reachable (thread-safe: event loops in several threads share it).

    An outage starts at the first failed operation and ends at the first one that works.
    Meanwhile callers skip Redis (:meth:`skip`), except one probe per ``probe_interval``,
    so an outage costs them nothing (no timeout waited out again and again) and its end
    is noticed within one interval. Logging stays with the store: :meth:`failed` and
    :meth:`worked` say when an outage starts and ends, :meth:`claim_warning` picks one
    caller per outage to warn.

    Args:
        probe_interval: seconds between probes while Redis is down.
        clock: a monotonic clock.
    """

    def __init__(self, *, probe_interval: float, clock: Callable[[], float]) -> None:
        self.probe_interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._next_probe = 0.0
        self._cause = ""
        self._warned = False

    @property
    def down(self) -> bool:
        """True from a failed operation until one works again."""
        return self._since is not None

    @property
    def cause(self) -> str:
        """The exception type of the failure that started the current (or last) outage."""
        return self._cause

    def failed(self, cause: BaseException) -> bool:
        """An operation failed: Redis is down, and the next probe waits an interval.

        Returns:
            True when this failure started an outage (Redis was up until now).
        """
        with self._lock:
            now = self._clock()
            self._next_probe = now + self.probe_interval
            if self._since is not None:
                return False
            self._since = now
            self._cause = type(cause).__name__
            self._warned = False
            return True

    def worked(self) -> float | None:
        """An operation worked: the outage, if any, is over.

        Returns:
            How many seconds the outage that just ended lasted; ``None`` if Redis was up.
        """
        if self._since is None:  # the common case, without taking the lock
            return None
        with self._lock:
            since, self._since = self._since, None
        return None if since is None else self._clock() - since

    def skip(self) -> bool:
        """Whether an operation should not even try Redis now (down, and no probe due).

        When a probe is due, this operation is the probe: the next one is due an interval
        later.
        """
        if self._since is None:  # the common case, without taking the lock
            return False
        with self._lock:
            if self._since is None:
                return False
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self.probe_interval
                return False
            return True

    def claim_warning(self) -> bool:
        """True for the first caller during an outage (it logs the warning), else False."""
        with self._lock:
            if self._warned or self._since is None:
                return False
            self._warned = True
            return True
