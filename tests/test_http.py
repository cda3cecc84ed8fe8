"""The transport's deadlines: one shared timer per loop, with ``asyncio.timeout`` semantics.

Against a real loopback server: ``/answer`` answers at once, ``/slow/<ms>`` after that
many milliseconds, ``/hang`` never.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from aiport._http import HttpClient, HttpTimeouts, TransportError

BODY = b'{"ok":true}'


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if path == "/hang":
                await asyncio.sleep(3600)
            if path.startswith("/slow/"):
                await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(BODY)).encode()
                + b"\r\n\r\n"
                + BODY
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    try:
        yield http
    finally:
        await http.aclose()


def timeouts(total: float) -> HttpTimeouts:
    return HttpTimeouts(connect=5.0, first_token=total, idle=total, total=total)


async def post(client: HttpClient, url: str, total: float) -> bytes:
    response = await client.request("POST", url, headers={}, body=b"{}", timeouts=timeouts(total))
    return response.body


async def test_a_silent_server_times_out_at_the_total_deadline(
    client: HttpClient, base_url: str
) -> None:
    start = time.monotonic()
    with pytest.raises(TransportError) as info:
        await post(client, base_url + "/hang", 0.2)
    elapsed = time.monotonic() - start
    assert (info.value.kind, info.value.phase) == ("timeout", "total")
    assert 0.19 <= elapsed < 1.5


async def test_each_request_keeps_its_own_deadline(client: HttpClient, base_url: str) -> None:
    # A long deadline first, then shorter ones: the shared timer must move earlier.
    long = asyncio.create_task(post(client, base_url + "/slow/300", 5.0))
    await asyncio.sleep(0.01)
    short = asyncio.create_task(post(client, base_url + "/hang", 0.1))
    quick = asyncio.create_task(post(client, base_url + "/answer", 0.2))
    assert await quick == BODY
    async with asyncio.timeout(2.0):  # a deadline never honoured would hang here
        with pytest.raises(TransportError):
            await short
    assert not long.done()  # a neighbour timing out does not touch it
    assert await long == BODY


async def test_a_cancelled_request_is_cancelled_not_timed_out(
    client: HttpClient, base_url: str
) -> None:
    task = asyncio.create_task(post(client, base_url + "/hang", 10.0))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_caller_timeout_around_a_request_stays_the_callers(
    client: HttpClient, base_url: str
) -> None:
    # The caller's own asyncio timeout fires first: it sees its TimeoutError (from
    # asyncio), and the request's deadline does not claim the cancellation.
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0.1):
            await post(client, base_url + "/hang", 10.0)
    assert not isinstance(info.value, TransportError)


async def test_finished_requests_leave_nothing_behind(client: HttpClient, base_url: str) -> None:
    await asyncio.gather(*(post(client, base_url + "/answer", 5.0) for _ in range(50)))
    deadlines = client._deadlines[asyncio.get_running_loop()]
    assert deadlines.entries == set()
