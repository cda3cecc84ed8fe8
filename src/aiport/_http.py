"""The HTTP transport: pooled aiohttp sessions with aiport's four timeouts.

aiohttp was chosen over httpx by measurement (docs/decisions.md): about 15x the
throughput at 64 concurrent calls on this machine kind, without httpx's collapse as
concurrency grows.

A session belongs to one event loop, so ``HttpClient`` keeps one session per loop it is
used from (the caller's loop, and the background loop behind the ``*_sync`` methods).
Errors leave this module only as ``TransportError``; providers turn them into typed
``ProviderError``s with their context.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpClient", "HttpResponse", "HttpStream", "HttpTimeouts", "TransportError"]

USER_AGENT = "aiport/0.1.0"


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """Seconds allowed for each phase of one call.

    ``first_token`` bounds the wait for the first event of a stream (and for its
    response headers); ``idle`` the gap between stream chunks; ``total`` the whole call.
    A non-streaming call is bounded by ``connect`` and ``total``: its headers only
    arrive once the whole answer is generated.
    """

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0


class TransportError(Exception):
    """A failure below HTTP semantics: no (complete) response.

    ``kind`` is ``"timeout"`` or ``"connection"``; ``phase`` says where it happened
    (``connect``, ``first_token``, ``idle``, ``total``, ``body``).
    """

    def __init__(self, message: str, *, kind: Literal["timeout", "connection"], phase: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.phase = phase


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A whole response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class HttpStream:
    """A response whose body is read chunk by chunk, each read under a timeout."""

    __slots__ = (
        "_deadline",
        "_deadlines",
        "_first",
        "_loop",
        "_response",
        "_timeouts",
        "headers",
        "status",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        timeouts: HttpTimeouts,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        deadlines: _LoopDeadlines,
    ) -> None:
        self._response = response
        self._timeouts = timeouts
        self._deadline = deadline
        self._loop = loop
        self._deadlines = deadlines
        self._first = True
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_all(self) -> bytes:
        """The rest of the body (for error responses to a stream request)."""
        return await _read_body(self._response, self._deadlines, self._deadline)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises ``TransportError`` on stalls and cuts."""
        aiohttp = _aiohttp()
        content = self._response.content
        while True:
            now = self._loop.time()
            limit = self._timeouts.first_token if self._first else self._timeouts.idle
            phase = "first_token" if self._first else "idle"
            when = now + limit
            if when >= self._deadline:
                when, phase = self._deadline, "total"
            try:
                async with _Deadline(self._deadlines, when):
                    chunk = await content.readany()
            except TimeoutError:
                raise TransportError(
                    f"no data from the server for {when - now:.3g}s ({phase} timeout)",
                    kind="timeout",
                    phase=phase,
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(
                    f"connection broken while reading the stream: {type(exc).__name__}",
                    kind="connection",
                    phase="body",
                ) from exc
            if not chunk:
                return
            self._first = False
            yield chunk


async def _read_body(
    response: aiohttp.ClientResponse, deadlines: _LoopDeadlines, deadline: float
) -> bytes:
    aiohttp = _aiohttp()
    try:
        async with _Deadline(deadlines, deadline):
            return await response.read()
    except TimeoutError:
        raise TransportError(
            "the response body did not arrive in time (total timeout)",
            kind="timeout",
            phase="total",
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(
            f"connection broken while reading the response: {type(exc).__name__}",
            kind="connection",
            phase="body",
        ) from exc


class HttpClient:
    """Pooled keep-alive HTTP for one provider endpoint.

    Args:
        max_connections: the pool size (connections open at once) per event loop.
        user_agent: the ``User-Agent`` header sent on every request.
    """

    def __init__(self, *, max_connections: int = 100, user_agent: str = USER_AGENT) -> None:
        self._max_connections = max_connections
        self._user_agent = user_agent
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._deadlines: dict[asyncio.AbstractEventLoop, _LoopDeadlines] = {}
        self._lock = threading.Lock()

    def _session(
        self,
    ) -> tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop, _LoopDeadlines]:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        deadlines = self._deadlines.get(loop)
        if deadlines is None:
            with self._lock:
                deadlines = self._deadlines.setdefault(loop, _LoopDeadlines(loop))
        if session is None or session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=None),
                auto_decompress=True,
                # Never follow redirects: an API does not redirect, and a redirect must
                # not carry credentials to another host.
                requote_redirect_url=False,
            )
            with self._lock:
                self._sessions[loop] = session
        return session, loop, deadlines

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
    ) -> HttpResponse:
        """Send a request and read the whole response.

        One deadline bounds the whole call (sending, waiting, reading the body) by
        ``timeouts.total``, on the loop's shared timer (``_LoopDeadlines``); connecting is
        bounded by ``timeouts.connect`` too (docs/decisions.md 14).
        """
        lib = _aiohttp()
        session, loop, deadlines = self._session()
        response: aiohttp.ClientResponse | None = None
        try:
            async with _Deadline(deadlines, loop.time() + timeouts.total):
                response = await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=_client_timeout(timeouts.connect),
                )
                try:
                    data = await response.read()
                finally:
                    response.release()
                return HttpResponse(status=response.status, headers=response.headers, body=data)
        except lib.ConnectionTimeoutError:
            raise TransportError(
                f"could not connect within {timeouts.connect:.3g}s (connect timeout)",
                kind="timeout",
                phase="connect",
            ) from None
        except lib.ServerTimeoutError:
            raise TransportError(
                "the server did not answer in time", kind="timeout", phase="total"
            ) from None
        except TimeoutError:
            # After aiohttp's own timeout classes: they subclass TimeoutError too.
            message = (
                f"no response within {timeouts.total:.3g}s (total timeout)"
                if response is None
                else "the response body did not arrive in time (total timeout)"
            )
            raise TransportError(message, kind="timeout", phase="total") from None
        except (lib.ClientError, OSError) as exc:
            if response is None:
                raise TransportError(
                    f"connection failed: {_describe_connection_error(exc)}",
                    kind="connection",
                    phase="connect",
                ) from exc
            raise TransportError(
                f"connection broken while reading the response: {type(exc).__name__}",
                kind="connection",
                phase="body",
            ) from exc

    def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
    ) -> contextlib.AbstractAsyncContextManager[HttpStream]:
        """Send a request and give its response to read as it arrives (``async with``)."""
        return _Streaming(self, method, url, headers=headers, body=body, timeouts=timeouts)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        loop: asyncio.AbstractEventLoop,
        deadlines: _LoopDeadlines,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
        deadline: float,
        streaming: bool = False,
    ) -> aiohttp.ClientResponse:
        aiohttp = _aiohttp()
        phase = "first_token" if streaming else "total"
        when = deadline
        if streaming and loop.time() + timeouts.first_token < deadline:
            when = loop.time() + timeouts.first_token
        else:
            phase = "total"
        try:
            async with _Deadline(deadlines, when):
                return await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=_client_timeout(timeouts.connect),
                )
        except aiohttp.ConnectionTimeoutError:
            raise TransportError(
                f"could not connect within {timeouts.connect:.3g}s (connect timeout)",
                kind="timeout",
                phase="connect",
            ) from None
        except aiohttp.ServerTimeoutError:
            raise TransportError(
                "the server did not answer in time", kind="timeout", phase=phase
            ) from None
        except TimeoutError:
            # After aiohttp's own timeout classes: they subclass TimeoutError too.
            raise TransportError(
                f"no response within {when - (deadline - timeouts.total):.3g}s ({phase} timeout)",
                kind="timeout",
                phase=phase,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(
                f"connection failed: {_describe_connection_error(exc)}",
                kind="connection",
                phase="connect",
            ) from exc

    async def aclose(self) -> None:
        """Close every session this client opened on the running loop.

        Sessions opened on other loops are closed by their own loop's owner (the
        background loop of the sync API closes its own before it stops).
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            session = self._sessions.pop(loop, None)
            dead = [lp for lp in self._sessions if lp.is_closed()]
            for lp in dead:
                del self._sessions[lp]
            deadlines = self._deadlines.pop(loop, None)
            for lp in [lp for lp in self._deadlines if lp.is_closed()]:
                del self._deadlines[lp]
        if deadlines is not None:
            deadlines.stop()
        if session is not None and not session.closed:
            await session.close()


class _Streaming:
    """What ``HttpClient.stream`` returns: sends the request on entry, gives the
    ``HttpStream``, and on exit gives the connection back (a plain class rather than an
    ``asynccontextmanager`` generator: one per stream, and a generator costs more)."""

    __slots__ = ("_body", "_client", "_headers", "_method", "_response", "_timeouts", "_url")

    def __init__(
        self,
        client: HttpClient,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
    ) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._headers = headers
        self._body = body
        self._timeouts = timeouts
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> HttpStream:
        client, timeouts = self._client, self._timeouts
        session, loop, deadlines = client._session()
        deadline = loop.time() + timeouts.total
        response = self._response = await client._send(
            session,
            loop,
            deadlines,
            method=self._method,
            url=self._url,
            headers=self._headers,
            body=self._body,
            timeouts=timeouts,
            deadline=deadline,
            streaming=True,
        )
        return HttpStream(response, timeouts, deadline, loop, deadlines)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        # Closing (not releasing) drops a connection whose body was not read to the
        # end: reusing it would hand the next call the tail of this stream.
        if response.content.at_eof():
            response.release()
        else:
            response.close()


class _LoopDeadlines:
    """The deadlines of the requests in flight on one event loop, behind one timer.

    ``asyncio.timeout_at`` gives every request a timer of its own: a ``TimerHandle``
    pushed into the loop's heap (with Python-level comparisons) and cancelled out of it,
    about 10 us of CPU per call under load (docs/decisions.md 14). Here a request only
    enters and leaves a set; the single timer is set for the earliest deadline and moved
    only when a request comes with an earlier one. When it fires, the overdue requests
    are cancelled (and see ``TimeoutError``, see ``_Deadline``) and it is set for the
    next deadline. A request that ends leaves its deadline behind in the timer at most.
    """

    __slots__ = ("_handle", "_loop", "_wake_at", "entries")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.entries: set[_Deadline] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._wake_at = math.inf

    def add(self, deadline: _Deadline) -> None:
        self.entries.add(deadline)
        if deadline.when < self._wake_at:
            self._schedule(deadline.when)

    def _schedule(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._wake_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._wake_at = math.inf
        now = self._loop.time()
        nearest = math.inf
        for deadline in list(self.entries):
            if deadline.when <= now:
                self.entries.discard(deadline)
                deadline.expire()
            elif deadline.when < nearest:
                nearest = deadline.when
        if nearest < math.inf:
            self._schedule(nearest)

    def stop(self) -> None:
        """Drop the timer (the client closes on this loop)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._wake_at = math.inf


class _Deadline:
    """``async with _Deadline(deadlines, when)``: ``asyncio.timeout_at(when)`` on the
    loop's shared timer. Past ``when`` the task is cancelled and the block raises
    ``TimeoutError`` (a cancellation from elsewhere stays a cancellation), exactly as
    ``asyncio.Timeout`` decides it."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_task", "when")

    def __init__(self, deadlines: _LoopDeadlines, when: float) -> None:
        self._deadlines = deadlines
        self.when = when
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._expired = False

    async def __aenter__(self) -> _Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines.add(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deadlines.entries.discard(self)
        if (
            self._expired
            and self._task is not None
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        if self._task is not None and not self._expired:
            self._expired = True
            self._task.cancel()


@functools.cache
def _aiohttp() -> Any:
    """The aiohttp module, imported on first use (``import aiport`` does not load it)."""
    import aiohttp

    return aiohttp


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float) -> aiohttp.ClientTimeout:
    """aiohttp's per-request timeout: only the connect bound (aiport's own timer covers
    the rest). One object per value, not one per request."""
    return cast("aiohttp.ClientTimeout", _aiohttp().ClientTimeout(total=None, sock_connect=connect))


def _describe_connection_error(exc: BaseException) -> str:
    # The class name and OS error are enough to act on, and never contain headers
    # (aiohttp messages can include the request URL, which carries no secret in aiport).
    name = type(exc).__name__
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{name} ({os_error.strerror})"
    return name
