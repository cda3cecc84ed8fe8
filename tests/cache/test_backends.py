"""The memory and SQLite backends on their own: bounds, expiry, persistence, processes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aiport._cache import (
    CacheBackend,
    MemoryCache,
    SQLiteCache,
    backend_from_config,
    default_cache_path,
    enabled_for,
)
from aiport._config import AgentConfig, CacheConfig
from tests.cache.conftest import FakeClock

# ---------------------------------------------------------------------- memory


async def test_memory_is_a_backend() -> None:
    assert isinstance(MemoryCache(), CacheBackend)
    assert MemoryCache()  # truthy even when empty: `backend or default` keeps it
    assert isinstance(SQLiteCache(":memory:"), CacheBackend)


async def test_memory_lru_bound_by_entries() -> None:
    cache = MemoryCache(max_entries=3)
    for key in "abc":
        await cache.set(key, key.encode(), 60)
    assert await cache.get("a") == b"a"  # a is now the most recently used
    await cache.set("d", b"d", 60)
    assert await cache.get_many(["a", "b", "c", "d"]) == [b"a", None, b"c", b"d"]
    assert len(cache) == 3
    assert cache.evictions == 1


async def test_memory_lru_bound_by_bytes() -> None:
    cache = MemoryCache(max_bytes=100)
    await cache.set("a", b"x" * 39, 60)  # 40 bytes with its key
    await cache.set("b", b"x" * 39, 60)
    await cache.get("a")
    await cache.set("c", b"x" * 39, 60)  # 120 > 100: b (least recently used) goes
    assert await cache.get_many(["a", "b", "c"]) == [b"x" * 39, None, b"x" * 39]
    assert cache.size_bytes == 80
    await cache.set("huge", b"x" * 200, 60)  # larger than the whole cache: not stored
    assert await cache.get("huge") is None
    assert cache.size_bytes == 80
    await cache.set("a", b"y", 60)  # replacing an entry updates the size
    assert cache.size_bytes == 42
    assert "MemoryCache 2/" in repr(cache)


async def test_memory_ttl_and_delete() -> None:
    clock = FakeClock()
    cache = MemoryCache(clock=clock)
    await cache.set_many([("a", b"1"), ("b", b"2")], 10)
    clock.advance(9)
    assert await cache.get("a") == b"1"
    await cache.delete("a")
    await cache.delete("missing")
    assert await cache.get("a") is None
    clock.advance(2)
    assert await cache.get("b") is None
    assert len(cache) == 0
    await cache.set("c", b"3", 10)
    await cache.aclose()
    assert len(cache) == 0


def test_backends_reject_bad_bounds() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryCache(max_entries=0)
    with pytest.raises(ValueError, match="positive"):
        SQLiteCache("x.db", max_entries=0)


# ---------------------------------------------------------------------- sqlite


async def test_sqlite_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "cache.sqlite3"
    first = SQLiteCache(path)
    await first.set("k", b"\x00value", 60)
    await first.set_many([("a", b"1"), ("b", b"2")], 60)
    await first.aclose()
    second = SQLiteCache(path)
    assert await second.get("k") == b"\x00value"
    assert await second.get_many(["a", "zz", "b"]) == [b"1", None, b"2"]
    await second.delete("a")
    assert await second.get("a") is None
    await second.aclose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert repr(second) == f"<SQLiteCache {str(path)!r}>"
    with pytest.raises(RuntimeError, match="closed"):
        await second.get("k")


async def test_sqlite_expiry_purge_and_trim(tmp_path: Path) -> None:
    clock = FakeClock()
    cache = SQLiteCache(tmp_path / "c.db", max_entries=3, purge_interval=0, clock=clock)
    await cache.set("old", b"1", 5)
    clock.advance(6)
    assert await cache.get("old") is None  # expired rows are never read
    await cache.set_many([(f"k{i}", b"v") for i in range(5)], 60)  # purges, then trims
    rows = sqlite3.connect(tmp_path / "c.db").execute("SELECT COUNT(*) FROM aiport_cache")
    assert rows.fetchone() == (3,)
    await cache.purge()
    await cache.aclose()


async def test_sqlite_many_keys_in_batches(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.db")
    items = [(f"k{i}", str(i).encode()) for i in range(1200)]
    await cache.set_many(items, 60)
    assert await cache.get_many([k for k, _ in items]) == [v for _, v in items]
    await cache.set_many([], 60)
    await cache.aclose()


def test_default_path_is_in_the_user_cache_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    if sys.platform.startswith("linux"):
        assert default_cache_path() == Path("/somewhere/cache/aiport/cache.sqlite3")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the spec says
    assert default_cache_path().name == "cache.sqlite3"
    assert "relative" not in str(default_cache_path())


async def test_backend_from_config(tmp_path: Path) -> None:
    memory = backend_from_config(CacheConfig(max_entries=5, max_bytes=99))
    assert isinstance(memory, MemoryCache)
    assert (memory.max_entries, memory.max_bytes) == (5, 99)
    sqlite = backend_from_config(CacheConfig(backend="sqlite", path=str(tmp_path / "x.db")))
    assert isinstance(sqlite, SQLiteCache)
    assert sqlite.path == tmp_path / "x.db"
    with pytest.raises(ValueError, match="redis_url"):
        backend_from_config(CacheConfig(backend="redis"))


_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from aiport._cache import SQLiteCache

    path, me, other, count, start = sys.argv[1:6]
    count = int(count)

    async def main() -> None:
        cache = SQLiteCache(path, busy_timeout=10)
        while time.time() < float(start):
            await asyncio.sleep(0.001)
        seen = 0
        for i in range(count):
            await cache.set_many([(f"{me}:{i}:{j}", f"{me}-{i}-{j}".encode() * 50)
                                  for j in range(3)], 60)
            values = await cache.get_many([f"{other}:{i}:{j}" for j in range(3)])
            for j, value in enumerate(values):
                if value is not None:
                    assert value == f"{other}-{i}-{j}".encode() * 50, value[:40]
                    seen += 1
        await cache.aclose()
        print(seen)

    asyncio.run(main())
    """
)


def test_sqlite_two_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    start = str(time.time() + 1.5)  # both start writing at the same moment
    count = 150
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), me, other, str(count), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    outputs = [worker.communicate(timeout=60) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
    assert sum(int(out) for out, _ in outputs) > 0  # each read what the other wrote
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()

    async def check() -> None:
        cache = SQLiteCache(path)
        keys = [f"{me}:{i}:{j}" for me in "ab" for i in range(count) for j in range(3)]
        values = await cache.get_many(keys)
        assert values == [
            f"{k.split(':')[0]}-{k.split(':')[1]}-{k.split(':')[2]}".encode() * 50 for k in keys
        ]
        await cache.aclose()

    asyncio.run(check())


def test_enabled_for_reads_the_model_tables() -> None:
    config = AgentConfig.model_validate(
        {
            "cache": {"enabled": True},
            "providers": {
                "openai": {
                    "type": "openai",
                    "api_key": "env:OPENAI_API_KEY",
                    "models": {
                        "fresh": {"name": "gpt-4o-2024", "cache": False},
                        "plain": {},
                    },
                }
            },
        }
    )
    enabled = enabled_for(config, "openai")
    assert enabled("gpt-4o-2024") is False  # by upstream name
    assert enabled("fresh") is False
    assert enabled("fresh") is False  # remembered
    assert enabled("plain") is True
    assert enabled("anything-else") is True
    assert enabled_for(config, "unknown")("m") is True
    off = AgentConfig.model_validate({"providers": {}})
    assert enabled_for(off, "openai")("m") is False
