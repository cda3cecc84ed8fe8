"""Running the async core from synchronous code.

One private event loop in a daemon thread, owned by one service, runs every ``*_sync``
call: a single implementation (the async one) serves both worlds, connections are
pooled across sync calls, and sync calls also work from inside a running event loop
(a notebook, a framework callback), where ``asyncio.run`` would refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """A lazily started event loop in a background thread."""

    def __init__(self, name: str = "aiport-sync") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, once started."""
        return self._loop

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the background loop and wait for its result."""
        loop = self._ensure_started()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("a *_sync method was called from aiport's own loop; await it")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            # KeyboardInterrupt while waiting: stop the work too, not just the wait.
            future.cancel()
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """Iterate an async iterator from sync code, one item per round trip."""

        async def next_item() -> tuple[bool, T | None]:
            try:
                return True, await anext(iterator)
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self.run(next_item())
                if not more:
                    return
                yield item  # type: ignore[misc]
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and self._loop is not None and not self._loop.is_closed():
                self.run(close())

    def stop(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``cleanup`` on the loop, then stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if cleanup is not None:

            async def run_cleanup() -> None:
                await cleanup()

            future = asyncio.run_coroutine_threadsafe(run_cleanup(), loop)
            # Shutting down: a failed cleanup must not stop the loop from closing.
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        if not thread.is_alive():
            loop.close()
