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
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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

    __slots__ = ("_deadline", "_first", "_loop", "_response", "_timeouts", "headers", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        timeouts: HttpTimeouts,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._response = response
        self._timeouts = timeouts
        self._deadline = deadline
        self._loop = loop
        self._first = True
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_all(self) -> bytes:
        """The rest of the body (for error responses to a stream request)."""
        return await _read_body(self._response, self._deadline, self._loop)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; raises ``TransportError`` on stalls and cuts."""
        import aiohttp

        content = self._response.content
        while True:
            now = self._loop.time()
            limit = self._timeouts.first_token if self._first else self._timeouts.idle
            phase = "first_token" if self._first else "idle"
            when = now + limit
            if when >= self._deadline:
                when, phase = self._deadline, "total"
            try:
                async with asyncio.timeout_at(when):
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
    response: aiohttp.ClientResponse, deadline: float, loop: asyncio.AbstractEventLoop
) -> bytes:
    import aiohttp

    try:
        async with asyncio.timeout_at(deadline):
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
        self._lock = threading.Lock()

    def _session(self) -> tuple[aiohttp.ClientSession, asyncio.AbstractEventLoop]:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
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
        return session, loop

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
    ) -> HttpResponse:
        """Send a request and read the whole response."""
        session, loop = self._session()
        deadline = loop.time() + timeouts.total
        response = await self._send(
            session,
            loop,
            method=method,
            url=url,
            headers=headers,
            body=body,
            timeouts=timeouts,
            deadline=deadline,
        )
        try:
            data = await _read_body(response, deadline, loop)
        finally:
            response.release()
        return HttpResponse(status=response.status, headers=response.headers, body=data)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
    ) -> AsyncIterator[HttpStream]:
        """Send a request and give its response to read as it arrives."""
        session, loop = self._session()
        deadline = loop.time() + timeouts.total
        response = await self._send(
            session,
            loop,
            method=method,
            url=url,
            headers=headers,
            body=body,
            timeouts=timeouts,
            deadline=deadline,
            streaming=True,
        )
        try:
            yield HttpStream(response, timeouts, deadline, loop)
        finally:
            # Closing (not releasing) drops a connection whose body was not read to the
            # end: reusing it would hand the next call the tail of this stream.
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def _send(
        self,
        session: aiohttp.ClientSession,
        loop: asyncio.AbstractEventLoop,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: HttpTimeouts,
        deadline: float,
        streaming: bool = False,
    ) -> aiohttp.ClientResponse:
        import aiohttp

        phase = "first_token" if streaming else "total"
        when = deadline
        if streaming and loop.time() + timeouts.first_token < deadline:
            when = loop.time() + timeouts.first_token
        else:
            phase = "total"
        try:
            async with asyncio.timeout_at(when):
                return await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
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
        if session is not None and not session.closed:
            await session.close()


def _describe_connection_error(exc: BaseException) -> str:
    # The class name and OS error are enough to act on, and never contain headers
    # (aiohttp messages can include the request URL, which carries no secret in aiport).
    name = type(exc).__name__
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return f"{name} ({os_error.strerror})"
    return name
