"""The interface every cache backend implements.

Backends store opaque bytes under short string keys with a time to live. They know
nothing of requests or responses: the cache layer builds the keys (``_keys``) and the
values. A backend may lose entries at any time (eviction, expiry, an outage): the layer
treats a missing entry as a miss, so correctness never depends on the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["CacheBackend"]


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached responses live (memory, SQLite, Redis, or your own).

    ``get_many``/``set_many`` serve embeddings, cached one entry per input text: one
    round trip for a whole call instead of one per text. ``ttl`` is in seconds.
    Implementations must be safe to call from several tasks at once.
    """

    async def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` when absent or expired."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, in order (``None`` for each one absent)."""
        ...

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (replacing any value)."""
        ...

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store several ``(key, value)`` pairs, each for ``ttl`` seconds."""
        ...

    async def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is absent)."""
        ...

    async def aclose(self) -> None:
        """Release connections and files; the backend is not used afterwards."""
        ...
