"""Reading the providers' rate-limit headers.

OpenAI sends ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` with resets as
Go-style durations (``6ms``, ``1.5s``, ``6m0s``, ``1h2m3s``); Anthropic sends
``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
with resets as RFC 3339 times. A 429 may add ``retry-after`` (seconds or an HTTP date)
or ``retry-after-ms``. Anything missing or unparseable is ``None``: a header we cannot
read never changes a limit.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiport._mapping import parse_retry_after

__all__ = ["RateLimitInfo", "may_pause", "parse_duration", "parse_rate_limit_headers"]

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_TOKEN_KINDS = ("tokens", "input-tokens", "output-tokens")
#: Every header whose value 0 can make ``RateLimitInfo.pause`` non-empty (lower case).
_REMAINING_HEADERS = tuple(
    name
    for kind in ("requests", *_TOKEN_KINDS)
    for name in (f"x-ratelimit-remaining-{kind}", f"anthropic-ratelimit-{kind}-remaining")
)


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (``"1h2m3.5s"``, ``"6ms"``), or a bare number of seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return value if math.isfinite(value) and value >= 0 else None
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def _reset_in(text: str | None, now: float) -> float | None:
    """Seconds until a reset given as a duration or an RFC 3339 time (never negative)."""
    if text is None:
        return None
    seconds = parse_duration(text)
    if seconds is not None:
        return seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What one response said about the limits of the key and model it was for.

    Resets and ``retry_after`` are seconds from when the response was read.
    ``token_pause`` is the longest reset among token families with nothing remaining.
    """

    request_limit: int | None = None
    request_remaining: int | None = None
    request_reset: float | None = None
    token_limit: int | None = None
    token_remaining: int | None = None
    token_reset: float | None = None
    token_pause: float | None = None
    retry_after: float | None = None

    @property
    def pause(self) -> float | None:
        """Seconds nothing should be sent because a limit has nothing remaining."""
        waits = [
            self.request_reset if self.request_remaining == 0 else None,
            self.token_pause,
        ]
        known = [w for w in waits if w is not None]
        return max(known) if known else None


def may_pause(headers: Mapping[str, str]) -> bool:
    """Whether ``parse_rate_limit_headers(headers).pause`` can be set: some "remaining"
    header of either dialect holds 0. False means it is certainly ``None``.

    About 0.3 µs, against 2-10 µs for the whole parse: what a call with no configured
    limit looks for, since only a pause (or a 429) changes anything for it. A plain
    ``dict`` is searched by lower-cased name; any other mapping is taken to look names
    up case-insensitively, as the header mappings of HTTP clients do (aiohttp's
    ``CIMultiDictProxy``, which every adapter passes).
    """
    if isinstance(headers, dict):
        return any(
            _count(value) == 0
            for name, value in headers.items()
            if name.lower() in _REMAINING_HEADERS
        )
    get = headers.get
    for name in _REMAINING_HEADERS:
        value = get(name)
        if value is not None and _count(value) == 0:
            return True
    return False


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> RateLimitInfo:
    """Read OpenAI and Anthropic rate-limit headers (names in any case)."""
    found = {
        name.lower(): value
        for name, value in headers.items()
        if "ratelimit" in name.lower() or name.lower().startswith("retry-after")
    }
    if not found:
        return RateLimitInfo()
    wall = now()
    if any(name.startswith("anthropic-ratelimit-") for name in found):

        def get(kind: str, field: str) -> str | None:
            return found.get(f"anthropic-ratelimit-{kind}-{field}")
    else:

        def get(kind: str, field: str) -> str | None:
            return found.get(f"x-ratelimit-{field}-{kind}")

    token_pause: float | None = None
    for kind in _TOKEN_KINDS:
        if _count(get(kind, "remaining")) == 0:
            reset = _reset_in(get(kind, "reset"), wall)
            if reset is not None:
                token_pause = reset if token_pause is None else max(token_pause, reset)
    return RateLimitInfo(
        request_limit=_count(get("requests", "limit")),
        request_remaining=_count(get("requests", "remaining")),
        request_reset=_reset_in(get("requests", "reset"), wall),
        token_limit=_count(get("tokens", "limit")),
        token_remaining=_count(get("tokens", "remaining")),
        token_reset=_reset_in(get("tokens", "reset"), wall),
        token_pause=token_pause,
        retry_after=parse_retry_after(found, now=lambda: wall),
    )
