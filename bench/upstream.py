"""The benchmark upstream: a loopback HTTP/1.1 keep-alive server on raw asyncio.

Usage:
    python upstream.py serve [--port 0]        # prints "PORT <n>" when ready
    python upstream.py load --port N [--seconds 3] [--connections 64]

``serve`` answers, from precomputed bytes (see ``fixtures.py``):

- ``POST /v1/chat/completions``: the chat completion, or, when the body has
  ``"stream": true``, the whole SSE stream in one write (as a static file server would);
- ``POST /v1/embeddings``: the embedding, base64 when the body asks
  ``"encoding_format": "base64"``, JSON floats otherwise;
- ``GET /stats``: requests counted per route since start, as JSON (never counted itself);
- anything else: 404.

``load`` measures the server's own ceiling: a raw asyncio load generator that keeps
``--connections`` keep-alive connections busy with chat requests, one in flight each
(no pipelining), and prints ``{"rps": ...}``. It is itself Python, so the number it
prints is a lower bound of what the server can do.

uvloop is used for both when it is importable, the default loop otherwise. Standard
library only besides that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import fixtures

_STREAM_FLAG = re.compile(rb'"stream"\s*:\s*true')
_BASE64_FLAG = re.compile(rb'"encoding_format"\s*:\s*"base64"')


def _response(
    body: bytes, content_type: bytes = b"application/json", status: bytes = b"200 OK"
) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nx-request-id: req_bench\r\n\r\n"
        + body
    )


CHAT = _response(fixtures.CHAT_BODY)
STREAM = _response(fixtures.STREAM_BODY, b"text/event-stream; charset=utf-8")
EMBED_FLOAT = _response(fixtures.EMBED_BODY_FLOAT)
EMBED_BASE64 = _response(fixtures.EMBED_BODY_BASE64)


def _input_count(body: bytes) -> int:
    """How many texts an embeddings request carries (a string counts as one)."""
    if b'"input":[' not in body.replace(b" ", b""):
        return 1
    inputs = json.loads(body).get("input")
    return len(inputs) if isinstance(inputs, list) else 1


NOT_FOUND = _response(
    b'{"error":{"message":"no such route on the bench upstream","type":"invalid_request_error"}}',
    status=b"404 Not Found",
)

#: Requests served, per route key ("chat", "stream", "embed-float", "embed-base64", "other").
COUNTS: Counter[str] = Counter()


class Upstream(asyncio.Protocol):
    """One keep-alive connection: parse requests as they complete, answer each at once."""

    __slots__ = ("buffer", "transport")

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        transport = self.transport
        assert transport is not None
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            length = 0
            lower = buffer[:head_end].lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop >= 0 else head_end])
            end = head_end + 4 + length
            if len(buffer) < end:
                break
            line_end = buffer.find(b"\r\n")
            request_line = buffer[:line_end]
            body = buffer[head_end + 4 : end]
            buffer = buffer[end:]
            transport.write(self.answer(request_line, body))
        self.buffer = buffer

    @staticmethod
    def answer(request_line: bytes, body: bytes) -> bytes:
        """The response bytes for one request."""
        method, _, rest = request_line.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"POST" and path == b"/v1/chat/completions":
            if b'"stream"' in body and _STREAM_FLAG.search(body):
                COUNTS["stream"] += 1
                return STREAM
            COUNTS["chat"] += 1
            return CHAT
        if method == b"POST" and path == b"/v1/embeddings":
            base64_wanted = b"base64" in body and _BASE64_FLAG.search(body) is not None
            COUNTS["embed-base64" if base64_wanted else "embed-float"] += 1
            inputs = _input_count(body)
            if inputs == 1:
                return EMBED_BASE64 if base64_wanted else EMBED_FLOAT
            # A merged request (micro-batching clients): one vector per input, in order.
            COUNTS["embed-inputs"] += inputs
            return _response(fixtures.embed_body(inputs, as_base64=base64_wanted))
        if method == b"GET" and path == b"/stats":
            return _response(json.dumps(dict(COUNTS)).encode())
        COUNTS["other"] += 1
        return NOT_FOUND


def _new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop, f"uvloop {uvloop.__version__}"


def serve(port: int) -> None:
    """Serve until killed; print ``PORT <n> LOOP <name>`` once listening."""
    loop, loop_name = _new_loop()
    server = loop.run_until_complete(
        loop.create_server(Upstream, "127.0.0.1", port, backlog=2048, reuse_address=True)
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound} LOOP {loop_name}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


_LOAD_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nAuthorization: Bearer bench\r\nContent-Length: "
)


class _LoadClient(asyncio.Protocol):
    """Sends one request, waits for the whole answer, sends the next one."""

    def __init__(self, request: bytes, response_size: int, on_done: Callable[[], bool]) -> None:
        self.request = request
        self.response_size = response_size
        self.on_done = on_done
        self.received = 0
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        # The answer has a fixed size, so counting bytes is enough to frame it.
        while self.received >= self.response_size:
            self.received -= self.response_size
            assert self.transport is not None
            if self.on_done():
                self.transport.write(self.request)
            elif self.received == 0:
                self.transport.close()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _load(port: int, seconds: float, connections: int) -> dict[str, Any]:
    body = json.dumps(
        {"model": fixtures.CHAT_MODEL, "messages": [{"role": "user", "content": fixtures.PROMPT}]}
    ).encode()
    request = _LOAD_REQUEST + str(len(body)).encode() + b"\r\n\r\n" + body
    loop = asyncio.get_running_loop()
    done = 0
    measuring = False
    deadline = 0.0

    def on_done() -> bool:
        nonlocal done
        if measuring:
            done += 1
        return loop.time() < deadline

    deadline = loop.time() + seconds + 0.5
    clients = []
    for _ in range(connections):
        _, proto = await loop.create_connection(
            lambda: _LoadClient(request, len(CHAT), on_done), "127.0.0.1", port
        )
        clients.append(proto)
    await asyncio.sleep(0.5)  # warm-up: every connection busy
    measuring = True
    start = time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.closed for c in clients))
    return {"rps": done / elapsed, "connections": connections, "seconds": seconds}


def load(port: int, seconds: float, connections: int) -> None:
    """Measure the server's ceiling; print one JSON line."""
    loop, loop_name = _new_loop()
    try:
        result = loop.run_until_complete(_load(port, seconds, connections))
    finally:
        loop.close()
    result["loop"] = loop_name
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--port", type=int, default=0)
    p_load = sub.add_parser("load")
    p_load.add_argument("--port", type=int, required=True)
    p_load.add_argument("--seconds", type=float, default=3.0)
    p_load.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve(args.port)
    else:
        load(args.port, args.seconds, args.connections)


if __name__ == "__main__":
    main()
