"""Redis for the resilience tests.

``redis_url`` is, in order: ``AIPORT_TEST_REDIS_URL`` when set; else a private
``redis-server`` started on a free loopback port for the session (no persistence,
killed at the end); else the test is skipped with the reason shown. With
``AIPORT_TEST_REQUIRE_REDIS=1`` (CI) that skip is a failure instead, so Redis tests can
never silently stop running. Tests isolate themselves with a random key prefix
(``redis_prefix``) and never flush a database.

``redis_server_factory`` starts extra private servers a test may stop and restart
(outage tests); it never uses ``AIPORT_TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REQUIRE_ENV = "AIPORT_TEST_REQUIRE_REDIS"
URL_ENV = "AIPORT_TEST_REDIS_URL"


def _unavailable(reason: str) -> None:
    """Skip, or fail when the environment requires Redis."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"Redis is required ({REQUIRE_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(f"no Redis for this test: {reason} (set {URL_ENV} or install redis-server)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(url: str, timeout: float = 0.5) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A private ``redis-server`` on a loopback port, which a test may stop and restart."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self._binary = binary
        self._workdir = workdir
        self.port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        if self._process is not None:
            raise RuntimeError("already running")
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited at start (port {self.port})")
            if _ping(self.url, timeout=0.2):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        """Kill the server (its data is gone: it never persists)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], RedisServer]]:
    """Make private servers (started); all are killed at the end of the session."""
    binary = shutil.which("redis-server")
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        if binary is None:
            _unavailable("redis-server is not installed")
        try:
            import redis  # noqa: F401
        except ImportError:
            _unavailable("the redis package is not installed (pip install -e '.[dev]')")
        assert binary is not None
        server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server_factory: Callable[[], RedisServer]) -> str:
    """A Redis for the session: ``AIPORT_TEST_REDIS_URL`` or a private server."""
    url = os.environ.get(URL_ENV)
    if url:
        try:
            import redis  # noqa: F401
        except ImportError:
            _unavailable("the redis package is not installed (pip install -e '.[dev]')")
        if not _ping(url, timeout=2.0):
            _unavailable(f"{URL_ENV} does not answer")
        return url
    return redis_server_factory().url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own: tests share a Redis and never flush it."""
    return f"aiport-test:{uuid.uuid4().hex[:12]}:rl"
