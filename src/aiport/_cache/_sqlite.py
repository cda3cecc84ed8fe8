"""The persistent cache: one SQLite file, shared safely by several processes.

Why these settings:

* WAL journal: readers never block the writer and the writer never blocks readers, so
  processes sharing the file do not serialise their lookups.
* ``busy_timeout``: when another process holds the write lock, SQLite waits for it
  (up to ``busy_timeout`` seconds) instead of failing at once with "database is locked".
* Autocommit, one statement per operation, and ``BEGIN IMMEDIATE`` for the multi-row
  writes: a transaction never upgrades from reading to writing, the case where WAL
  gives up with ``SQLITE_BUSY`` without waiting.
* ``synchronous=NORMAL``: durable enough for a cache (a power cut may lose the last
  entries, never corrupt the file) and much faster than ``FULL``.

sqlite3 calls block, so they run in worker threads (``asyncio.to_thread``); one
connection per cache, used under a lock. Expired rows are ignored on read and deleted
every ``purge_interval`` seconds by the next write, which also trims the file to
``max_entries`` by dropping the rows closest to expiry (a true LRU would need a write on
every read, which is what costs most with several processes).

The file is created readable by its owner only: cached answers may be private.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["SQLiteCache", "default_cache_path"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aiport_cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aiport_cache_expiry ON aiport_cache (expires_at);
"""
#: SQLite accepts at most 999 parameters per statement in old builds; stay well below.
_BATCH = 500


def default_cache_path() -> Path:
    """``cache.sqlite3`` in the user's cache directory for aiport.

    ``%LOCALAPPDATA%\\aiport\\Cache`` on Windows, ``~/Library/Caches/aiport`` on macOS,
    else ``$XDG_CACHE_HOME/aiport`` (``~/.cache/aiport``).
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        folder = base / "aiport" / "Cache"
    elif sys.platform == "darwin":
        folder = Path.home() / "Library" / "Caches" / "aiport"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        folder = (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / (
            "aiport"
        )
    return folder / "cache.sqlite3"


class SQLiteCache:
    """Cached entries in one SQLite file (persistent, shared by processes on one host).

    Args:
        path: the file; ``None``: ``default_cache_path()``. Its folder is created.
        max_entries: rows kept at most (trimmed at each purge, closest to expiry first).
        busy_timeout: seconds to wait for another process's write lock.
        purge_interval: seconds between two purges of expired rows.
        clock: wall-clock seconds (expiry times are shared between processes).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_entries: int = 10_000,
        busy_timeout: float = 5.0,
        purge_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        self.path = Path(path) if path is not None else default_cache_path()
        self.max_entries = max_entries
        self._busy_timeout = busy_timeout
        self._purge_interval = purge_interval
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._next_purge = 0.0
        self._closed = False

    def __repr__(self) -> str:
        return f"<SQLiteCache {str(self.path)!r}>"

    # ------------------------------------------------------------------ connection

    def _connection(self) -> sqlite3.Connection:
        """The open connection (opened, and the schema made, on first use)."""
        if self._closed:
            raise RuntimeError("this SQLiteCache is closed")
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Owner-only from the start; SQLite gives its -wal/-shm files the same mode.
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit: we open transactions ourselves
                check_same_thread=False,  # used from worker threads, under self._lock
            )
            try:
                self._setup(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema, waiting out other processes doing the same.

        Switching a new file to WAL while another process does it fails with "database
        is locked" at once, without the busy handler: retried here until
        ``busy_timeout``. A file already in WAL mode (it persists) is not switched again.
        """
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
                if str(mode).lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() >= deadline:
                    raise
            time.sleep(0.01)  # in a worker thread: the event loop is not blocked

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                return work(self._connection())

        return await asyncio.to_thread(locked)

    # ------------------------------------------------------------------ operations

    def _select(self, conn: sqlite3.Connection, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key, value FROM aiport_cache WHERE key IN ({marks}) AND expires_at > ?",  # noqa: S608  (only placeholders are interpolated)
                (*chunk, now),
            )
            found.update((key, bytes(value)) for key, value in rows)
        return [found.get(key) for key in keys]

    def _upsert(
        self, conn: sqlite3.Connection, items: Sequence[tuple[str, bytes]], ttl: float
    ) -> None:
        now = self._clock()
        expires = now + ttl
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO aiport_cache (key, value, expires_at) VALUES (?, ?, ?)",
                [(key, value, expires) for key, value in items],
            )
            if now >= self._next_purge:
                self._next_purge = now + self._purge_interval
                self._purge(conn, now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _purge(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete expired rows, then the rows closest to expiry beyond ``max_entries``."""
        conn.execute("DELETE FROM aiport_cache WHERE expires_at <= ?", (now,))
        (count,) = conn.execute("SELECT COUNT(*) FROM aiport_cache").fetchone()
        excess = int(count) - self.max_entries
        if excess > 0:
            conn.execute(
                "DELETE FROM aiport_cache WHERE key IN "
                "(SELECT key FROM aiport_cache ORDER BY expires_at LIMIT ?)",
                (excess,),
            )

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, or ``None`` (absent or expired)."""
        (value,) = await self.get_many([key])
        return value

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys``, in order (one query per 500 keys)."""
        return await self._run(lambda conn: self._select(conn, list(keys)))

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        await self.set_many([(key, value)], ttl)

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store several entries for ``ttl`` seconds, in one transaction."""
        if items:
            await self._run(lambda conn: self._upsert(conn, list(items), ttl))

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._run(lambda conn: conn.execute("DELETE FROM aiport_cache WHERE key = ?", (key,)))

    async def purge(self) -> None:
        """Delete expired rows now (and trim to ``max_entries``)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._purge(conn, self._clock())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(work)

    async def aclose(self) -> None:
        """Close the file (the cache cannot be used afterwards)."""

        def close() -> None:
            with self._lock:
                self._closed = True
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.close()

        await asyncio.to_thread(close)
