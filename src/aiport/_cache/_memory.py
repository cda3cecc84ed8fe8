"""The in-process cache: an LRU bounded by entries and by bytes, with a TTL per entry."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

__all__ = ["MemoryCache"]


class MemoryCache:
    """Least-recently-used entries of this process (the default backend).

    Both bounds hold at all times: storing an entry first evicts the least recently
    used ones until the new entry fits in ``max_entries`` and ``max_bytes`` (the size of
    an entry is its key and value, in bytes; an entry larger than ``max_bytes`` alone is
    not stored). Expired entries are dropped when read, and evicted like any other when
    room is needed.

    Thread-safe (one lock, held for microseconds): a service may serve calls from
    several event loops (the sync API runs one of its own).

    Args:
        max_entries: entries kept at most.
        max_bytes: bytes of keys and values kept at most.
        clock: seconds, for expiry (tests pass a fake).
    """

    #: ``get`` returns the very bytes object that was stored (never a copy), so a caller may
    #: remember what it derived from a value by the value's identity (the cache layer keeps
    #: the decoded response that way, and skips decoding it again on the next hit).
    shares_values = True

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 128 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries <= 0 or max_bytes <= 0:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key -> (value, expires at); the order is the recency, oldest first.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Entries dropped to make room (not counting expiries).
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        # A backend, not a container: truthy even when empty, so that code such as
        # ``backend or MemoryCache()`` never swaps an empty cache for another one.
        return True

    @property
    def size_bytes(self) -> int:
        """Bytes of keys and values held now."""
        return self._bytes

    def __repr__(self) -> str:
        return (
            f"<MemoryCache {len(self._entries)}/{self.max_entries} entries, "
            f"{self._bytes}/{self.max_bytes} bytes>"
        )

    def _get(self, key: str, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self._bytes -= len(key) + len(value)

    def _set(self, key: str, value: bytes, expires: float) -> None:
        size = len(key) + len(value)
        if key in self._entries:
            self._drop(key)
        if size > self.max_bytes:
            return  # would evict everything and still not fit
        while self._entries and (
            len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes
        ):
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        self._entries[key] = (value, expires)
        self._bytes += size

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, marking it recently used."""
        with self._lock:
            return self._get(key, self._clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, in order."""
        with self._lock:
            now = self._clock()
            return [self._get(key, now) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, evicting the least recently used to fit."""
        with self._lock:
            self._set(key, bytes(value), self._clock() + ttl)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store several entries for ``ttl`` seconds."""
        with self._lock:
            expires = self._clock() + ttl
            for key, value in items:
                self._set(key, bytes(value), expires)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        with self._lock:
            if key in self._entries:
                self._drop(key)

    async def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    async def aclose(self) -> None:
        """Drop every entry (memory is the only resource held)."""
        await self.clear()
