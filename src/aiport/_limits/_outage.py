"""Whether a shared store is reachable: outage state, probing, and logging once.

An outage starts at the first failed command and ends at the first command that works.
Meanwhile calls skip the store, except one probe per ``probe_interval``, so an outage
costs callers nothing (no timeouts waited out again and again) and its end is noticed
within one interval. One WARNING is logged per outage, by the first call it affects; an
INFO line says when the store is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Outage"]


class Outage:
    """The reachability of one store (thread-safe: event loops in several threads share it).

    Args:
        name: what the log lines call the store (``"Redis"``).
        probe_interval: seconds between probes while the store is down.
        clock: a monotonic clock.
        logger: where the WARNING and INFO lines go.
    """

    def __init__(
        self,
        name: str,
        *,
        probe_interval: float,
        clock: Callable[[], float],
        logger: logging.Logger,
    ) -> None:
        self.name = name
        self.probe_interval = probe_interval
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._since: float | None = None
        self._next_probe = 0.0
        self._cause = ""
        self._warned = False

    @property
    def down(self) -> bool:
        """True from a failed command until one works again."""
        return self._since is not None

    def failed(self, cause: BaseException) -> None:
        """A command failed: the store is down (the next probe waits an interval)."""
        with self._lock:
            self._next_probe = self._clock() + self.probe_interval
            if self._since is None:
                self._since = self._clock()
                self._cause = type(cause).__name__
                self._warned = False

    def worked(self) -> None:
        """A command worked: the outage, if any, is over."""
        if self._since is None:  # the common case, without taking the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self._logger.info(
                "aiport rate limiter: %s is reachable again after %.1fs",
                self.name,
                self._clock() - since,
            )

    def skip(self) -> bool:
        """Whether a call should not even try the store now (down, and not its turn to probe)."""
        with self._lock:
            if self._since is None:
                return False
            now = self._clock()
            if now >= self._next_probe:
                self._next_probe = now + self.probe_interval
                return False
            return True

    def warn_once(self, consequence: str) -> None:
        """Log the outage and ``consequence`` once per outage."""
        with self._lock:
            if self._warned or self._since is None:
                return
            self._warned = True
        self._logger.warning(
            "aiport rate limiter: %s is unreachable (%s); until it is back, calls are %s",
            self.name,
            self._cause,
            consequence,
        )
