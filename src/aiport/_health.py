"""Health of one deployment (provider + model): circuit breaker, load and latency.

The service keeps one ``DeploymentHealth`` per deployment it has called. The router asks
it whether the deployment may be tried now, and tells it how each call ended.

Circuit breaker states:

- **closed**: calls go through. ``failure_threshold`` consecutive failures, or an error
  rate of ``error_rate`` over ``window`` seconds (once ``min_calls`` calls were made),
  open it.
- **open**: the deployment is skipped until ``cooldown`` seconds have passed.
- **half-open**: one probe call goes through; its success closes the circuit, its
  failure opens it again for a fresh ``cooldown`` (a second failure extends the
  deadline, it never keeps the earlier one).

A remote 429 does not count as a failure: it *cools* the deployment until its
Retry-After, so that a router with alternatives sends the next calls elsewhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from aiport._errors import (
    ContentFilterError,
    InvalidRequestError,
    ProviderCapabilityError,
    ProviderError,
    ProviderRateLimitError,
)

if TYPE_CHECKING:
    from aiport._config import CircuitBreakerConfig

__all__ = ["DeploymentHealth", "counts_as_failure"]

#: Latency moving average: weight of the newest call.
_EWMA_WEIGHT = 0.3
#: How long a 429 without Retry-After cools a deployment.
_DEFAULT_COOLING = 1.0
#: Slices of the error-rate window: a call leaves the window at most 1/_SLICES of it late.
_SLICES = 64

BreakerState = Literal["closed", "open", "half_open"]


def counts_as_failure(error: BaseException) -> bool:
    """Whether ``error`` says the deployment is unhealthy (not the request, not our limiter)."""
    if not isinstance(error, ProviderError):
        return False
    if isinstance(error, InvalidRequestError | ContentFilterError | ProviderCapabilityError):
        return False  # the request's fault: another deployment would refuse it too
    if isinstance(error, ProviderRateLimitError):
        return False  # busy, not broken: handled by cooling
    return error.reason not in ("local_rate_limit", "limiter_unavailable", "circuit_open")


class DeploymentHealth:
    """Breaker state, calls in flight and latency of one deployment."""

    __slots__ = (
        "_clock",
        "_config",
        "_consecutive",
        "_cooling_until",
        "_open_until",
        "_probing",
        "_window",
        "_window_calls",
        "_window_failures",
        "in_flight",
        "key",
        "latency",
        "state",
    )

    def __init__(self, key: str, config: CircuitBreakerConfig, clock: Callable[[], float]) -> None:
        self.key = key
        self._config = config
        self._clock = clock
        self.state: BreakerState = "closed"
        self.in_flight = 0
        #: Moving average of successful call latencies (seconds), ``None`` before the first.
        self.latency: float | None = None
        self._consecutive = 0
        self._open_until = 0.0
        self._cooling_until = 0.0
        self._probing = False
        # The error-rate window as slices of 1/_SLICES of it, each [start, calls, failures],
        # with running totals: memory and time per call stay constant however many calls
        # a busy deployment takes (one entry per call was ~200k entries at 7k calls/s).
        self._window: deque[list[float]] = deque()
        self._window_calls = 0
        self._window_failures = 0

    # ------------------------------------------------------------------ questions

    def open_for(self) -> float:
        """Seconds until the circuit lets a call through (0 when it does now)."""
        if not self._config.enabled or self.state == "closed":
            return 0.0
        if self.state == "half_open":
            return self._config.cooldown if self._probing else 0.0
        return max(0.0, self._open_until - self._clock())

    def cooling_for(self) -> float:
        """Seconds left of the cooling a 429 imposed (0 when none)."""
        return max(0.0, self._cooling_until - self._clock())

    def available(self) -> bool:
        """Whether a call may go to this deployment now (the circuit allows it)."""
        return self.open_for() == 0.0

    # ------------------------------------------------------------------ events

    def begin(self) -> None:
        """A call starts; in the half-open state it is the one probe."""
        if self.state == "open" and self._clock() >= self._open_until:
            self.state = "half_open"
        if self.state == "half_open":
            self._probing = True
        self.in_flight += 1

    def succeeded(self, latency: float) -> None:
        """The call started by ``begin`` succeeded after ``latency`` seconds."""
        self.in_flight -= 1
        self.latency = (
            latency
            if self.latency is None
            else _EWMA_WEIGHT * latency + (1 - _EWMA_WEIGHT) * self.latency
        )
        self._consecutive = 0
        self._record(ok=True)
        if self.state != "closed":
            self.state = "closed"
            self._probing = False
            self._window.clear()
            self._window_calls = self._window_failures = 0

    def failed(self, error: BaseException) -> None:
        """The call started by ``begin`` failed with ``error``."""
        self.in_flight -= 1
        if isinstance(error, ProviderRateLimitError) and error.reason not in (
            "local_rate_limit",
            "limiter_unavailable",
        ):
            wait = error.retry_after if error.retry_after is not None else _DEFAULT_COOLING
            self._cooling_until = max(self._cooling_until, self._clock() + wait)
        if not counts_as_failure(error):
            if self.state == "half_open":
                self._probing = False  # the probe told us nothing: let another one through
            return
        self._consecutive += 1
        self._record(ok=False)
        if not self._config.enabled:
            return
        if self.state == "half_open" or self._should_open():
            self._open()

    def cancelled(self) -> None:
        """The call started by ``begin`` was abandoned (cancelled, or stopped early)."""
        self.in_flight -= 1
        self._probing = False

    # ------------------------------------------------------------------ internals

    def _record(self, *, ok: bool) -> None:
        """Count a call in the window; calls leave it at most 1/_SLICES of it late."""
        now = self._clock()
        width = self._config.window / _SLICES
        window = self._window
        if not window or now - window[-1][0] >= width:
            window.append([now, 0, 0])
        last = window[-1]
        last[1] += 1
        self._window_calls += 1
        if not ok:
            last[2] += 1
            self._window_failures += 1
        horizon = now - self._config.window
        while window and window[0][0] + width <= horizon:
            _, calls, failures = window.popleft()
            self._window_calls -= int(calls)
            self._window_failures -= int(failures)

    def _should_open(self) -> bool:
        if self._consecutive >= self._config.failure_threshold:
            return True
        rate = self._config.error_rate
        if rate is None or self._window_calls < self._config.min_calls:
            return False
        return self._window_failures / self._window_calls >= rate

    def _open(self) -> None:
        self.state = "open"
        self._probing = False
        self._open_until = self._clock() + self._config.cooldown

    def __repr__(self) -> str:
        return (
            f"<DeploymentHealth {self.key} {self.state} in_flight={self.in_flight} "
            f"latency={self.latency}>"
        )
