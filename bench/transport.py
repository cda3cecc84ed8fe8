"""Raw transport throughput on loopback: aiohttp vs httpx (the measurement behind the
transport decision in docs/decisions.md).

Usage: python bench/transport.py  (needs aiohttp; httpx is measured when installed)

The upstream is a minimal keep-alive HTTP/1.1 server on raw asyncio that answers every
request with a fixed chat-completion body, run in a separate process so that it is not
the bottleneck of the client under test.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
).encode()
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
REQUEST = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}).encode()


class _Upstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def _serve(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _throughput(call: Callable[[], Awaitable[None]], concurrency: int, total: int) -> float:
    for _ in range(50):
        await call()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def _aiohttp(url: str, concurrency: int, total: int) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call() -> None:
            async with session.post(
                url, data=REQUEST, headers={"Content-Type": "application/json"}
            ) as r:
                json.loads(await r.read())

        return await _throughput(call, concurrency, total)


async def _httpx(url: str, concurrency: int, total: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits) as client:

        async def call() -> None:
            r = await client.post(
                url, content=REQUEST, headers={"Content-Type": "application/json"}
            )
            json.loads(r.content)

        return await _throughput(call, concurrency, total)


def main() -> None:
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    clients: dict[str, Callable[[str, int, int], Awaitable[float]]] = {"aiohttp": _aiohttp}
    try:
        import httpx  # noqa: F401

        clients["httpx"] = _httpx
    except ImportError:
        print("httpx not installed: measuring aiohttp only", file=sys.stderr)
    total = int(os.environ.get("AIPORT_BENCH_CALLS", "4000"))
    print(f"{'client':<10} {'c=1':>8} {'c=16':>8} {'c=64':>8} {'c=256':>8}  (calls/s, median of 3)")
    try:
        for name, client in clients.items():
            cells = []
            for concurrency in (1, 16, 64, 256):
                runs = [asyncio.run(client(url, concurrency, total)) for _ in range(3)]
                cells.append(f"{statistics.median(runs):8.0f}")
            print(f"{name:<10} {' '.join(cells)}")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
