"""The circuit breaker's error-rate window: constant memory, and the rate it promises."""

from __future__ import annotations

from aiport._config import CircuitBreakerConfig
from aiport._errors import ProviderAPIError
from aiport._health import DeploymentHealth


def _health(now: list[float], **settings: object) -> DeploymentHealth:
    config = CircuitBreakerConfig(
        **{"failure_threshold": 10_000, "cooldown": 5, "window": 10, **settings}  # type: ignore[arg-type]
    )
    return DeploymentHealth("p:m", config, lambda: now[0])


def _call(health: DeploymentHealth, ok: bool) -> None:
    health.begin()
    if ok:
        health.succeeded(0.01)
    else:
        health.failed(ProviderAPIError("boom", status_code=500))


def test_a_busy_deployment_keeps_a_bounded_window() -> None:
    now = [0.0]
    health = _health(now, error_rate=0.5, min_calls=10)
    for i in range(100_000):  # 5,000 calls a second for 20 s
        now[0] = i / 5_000
        _call(health, ok=True)
    assert len(health._window) <= 65  # one slice per 1/64 of the window, not one per call
    assert health.state == "closed"


def test_the_error_rate_counts_only_the_window() -> None:
    now = [0.0]
    health = _health(now, error_rate=0.5, min_calls=4)
    for _ in range(3):
        _call(health, ok=False)  # 3 failures: under min_calls, stays closed
    assert health.state == "closed"
    now[0] = 11.0  # those failures have left the 10 s window
    for _ in range(3):
        _call(health, ok=True)
    _call(health, ok=False)  # 1 failure in 4 calls: 25%
    assert health.state == "closed"
    _call(health, ok=False)
    _call(health, ok=False)  # 3 of 6: 50% opens it
    assert health.state == "open"
