"""One measured client in one fresh process: ``python clients.py CLIENT --port N --out FILE``.

Run by ``run.py`` with the Python of the client's own venv, pinned to its core. The
process checks first that the client gets the fixture back (a client aimed at the wrong
route fails here, before anything is timed), then measures, in this order:

1. first call: building the client and its first completion (lazy imports included);
2. sequential latency: ``--warmup`` calls, then ``--seq`` calls timed one by one;
3. streams: ``--stream-warmup`` streams, then ``--streams`` timed 50-chunk streams, each
   read to the end;
4. embeddings: ``--embeds`` single-text ``embed`` calls started at once, with the number
   of requests the upstream saw for them;
5. throughput: for each level in ``--levels``, a warm-up at that concurrency (opens the
   connections), then ``--calls`` calls shared by that many workers;
6. aiport only: 500-message request build, and where the sequential time goes (the
   service, the adapter alone, aiport's transport alone).

It writes one JSON document to ``--out``. Standard library only at module level: each
client's library is imported inside its adapter.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import gc
import importlib
import json
import math
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import fixtures

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": fixtures.PROMPT}]
HEADERS = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --------------------------------------------------------------------------- guard


def _install_network_guard(log: list[str]) -> None:
    """Refuse DNS and connections to anything but loopback, and log each attempt.

    The measured clients must never touch the network (litellm fetches its cost map at
    import unless told not to). An audit hook sees every connect, including those made
    from threads.
    """

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else address
        elif event == "socket.getaddrinfo":
            host = args[0]
        else:
            return
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host in LOOPBACK or str(host).startswith("127."):
            return
        log.append(f"{event} {host!r}")
        raise ConnectionRefusedError(f"bench network guard: {host!r} is not loopback")

    sys.addaudithook(hook)


def rss_mb() -> float:
    """The resident set size of this process, in MB (from /proc; 0 if unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --------------------------------------------------------------------------- raw parsing


class SSEText:
    """The raw floor's SSE parse: split events, ``json.loads`` each, collect the text."""

    __slots__ = ("buffer", "done", "parts")

    def __init__(self) -> None:
        self.buffer = b""
        self.parts: list[str] = []
        self.done = False

    def feed(self, chunk: bytes) -> None:
        buffer = self.buffer + chunk if self.buffer else chunk
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            for line in buffer[start:end].split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    self.done = True
                    continue
                for choice in json.loads(data)["choices"]:
                    content = choice["delta"].get("content")
                    if content:
                        self.parts.append(content)
            start = end + 2
        self.buffer = buffer[start:]

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _decode_embedding(body: bytes) -> list[float]:
    value = json.loads(body)["data"][0]["embedding"]
    if isinstance(value, str):
        vector = array.array("f")
        vector.frombytes(base64.b64decode(value))
        return vector.tolist()
    return list(value)


def _chat_body(stream: bool = False) -> bytes:
    payload: dict[str, Any] = {"model": fixtures.CHAT_MODEL, "messages": MESSAGES}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return json.dumps(payload).encode()


def _embed_body(text: str) -> bytes:
    payload = {"model": fixtures.EMBED_MODEL, "input": text, "encoding_format": "base64"}
    return json.dumps(payload).encode()


# --------------------------------------------------------------------------- clients


class Client(Protocol):
    """What the harness drives. ``start`` builds the client (imports happen there)."""

    async def start(self, base: str) -> None: ...
    async def complete(self) -> str: ...
    async def stream(self) -> str: ...
    async def embed(self, text: str) -> list[float]: ...
    async def aclose(self) -> None: ...
    def version(self) -> str: ...


class AiohttpClient:
    """The floor: one shared ``aiohttp.ClientSession``, 512-connection pool, ``json``."""

    async def start(self, base: str) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512))
        self.chat_url = base + "/v1/chat/completions"
        self.embed_url = base + "/v1/embeddings"

    async def complete(self) -> str:
        async with self.session.post(self.chat_url, data=_chat_body(), headers=HEADERS) as r:
            body = await r.read()
        content: str = json.loads(body)["choices"][0]["message"]["content"]
        return content

    async def stream(self) -> str:
        parser = SSEText()
        async with self.session.post(
            self.chat_url, data=_chat_body(stream=True), headers=HEADERS
        ) as r:
            async for chunk in r.content.iter_any():
                parser.feed(chunk)
        return parser.text

    async def embed(self, text: str) -> list[float]:
        async with self.session.post(self.embed_url, data=_embed_body(text), headers=HEADERS) as r:
            return _decode_embedding(await r.read())

    async def aclose(self) -> None:
        await self.session.close()

    def version(self) -> str:
        return str(self.aiohttp.__version__)


class HttpxClient:
    """The other floor: one shared ``httpx.AsyncClient``, 512-connection pool, ``json``."""

    async def start(self, base: str) -> None:
        import httpx

        self.httpx = httpx
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
        self.client = httpx.AsyncClient(limits=limits, timeout=120.0, trust_env=False)
        self.chat_url = base + "/v1/chat/completions"
        self.embed_url = base + "/v1/embeddings"

    async def complete(self) -> str:
        r = await self.client.post(self.chat_url, content=_chat_body(), headers=HEADERS)
        content: str = json.loads(r.content)["choices"][0]["message"]["content"]
        return content

    async def stream(self) -> str:
        parser = SSEText()
        async with self.client.stream(
            "POST", self.chat_url, content=_chat_body(stream=True), headers=HEADERS
        ) as r:
            async for chunk in r.aiter_bytes():
                parser.feed(chunk)
        return parser.text

    async def embed(self, text: str) -> list[float]:
        r = await self.client.post(self.embed_url, content=_embed_body(text), headers=HEADERS)
        return _decode_embedding(r.content)

    async def aclose(self) -> None:
        await self.client.aclose()

    def version(self) -> str:
        return str(self.httpx.__version__)


def aiport_config(base: str) -> dict[str, Any]:
    """The configuration the brief prescribes for aiport."""
    return {
        "providers": {
            "openai": {
                "type": "openai",
                "base_url": base + "/v1",
                "api_key": "bench",
                "max_connections": 512,
            }
        },
        "retry": {"max_attempts": 1},
    }


class AiportClient:
    """aiport through its public API: ``ProviderService.complete/stream/embed``."""

    async def start(self, base: str) -> None:
        import aiport

        self.aiport = aiport
        self.base = base
        self.service = aiport.ProviderService(aiport_config(base), env={})

    async def complete(self) -> str:
        reply = await self.service.complete(
            model="openai:" + fixtures.CHAT_MODEL, messages=MESSAGES
        )
        return reply.text

    async def stream(self) -> str:
        parts: list[str] = []
        async with self.service.stream(
            model="openai:" + fixtures.CHAT_MODEL, messages=MESSAGES
        ) as stream:
            async for event in stream:
                if event.type == "text-delta":
                    parts.append(event.text)
        return "".join(parts)

    async def embed(self, text: str) -> list[float]:
        reply = await self.service.embed(model="openai:" + fixtures.EMBED_MODEL, input=text)
        return reply.embeddings[0]

    async def aclose(self) -> None:
        await self.service.aclose()

    def version(self) -> str:
        from importlib.metadata import version

        return version("aiport")


class OpenAIClient:
    """The official SDK with its defaults (httpx transport; no aiohttp in its venv)."""

    async def start(self, base: str) -> None:
        import openai

        self.openai = openai
        self.client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="bench", max_retries=0)
        # Typed loosely: the bench passes plain dicts, as most callers do.
        self.create: Any = self.client.chat.completions.create

    async def complete(self) -> str:
        reply = await self.create(model=fixtures.CHAT_MODEL, messages=MESSAGES)
        return reply.choices[0].message.content or ""

    async def stream(self) -> str:
        parts: list[str] = []
        stream = await self.create(
            model=fixtures.CHAT_MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def embed(self, text: str) -> list[float]:
        reply = await self.client.embeddings.create(model=fixtures.EMBED_MODEL, input=text)
        return list(reply.data[0].embedding)

    async def aclose(self) -> None:
        await self.client.close()

    def version(self) -> str:
        return str(self.openai.__version__)


class LiteLLMClient:
    """litellm's ``acompletion``/``aembedding`` with the ``openai/`` prefix, offline."""

    async def start(self, base: str) -> None:
        import litellm

        self.litellm = litellm
        self.api_base = base + "/v1"

    async def complete(self) -> str:
        reply = await self.litellm.acompletion(
            model="openai/" + fixtures.CHAT_MODEL,
            messages=MESSAGES,
            api_base=self.api_base,
            api_key="bench",
            num_retries=0,
        )
        return str(reply.choices[0].message.content)

    async def stream(self) -> str:
        parts: list[str] = []
        stream = await self.litellm.acompletion(
            model="openai/" + fixtures.CHAT_MODEL,
            messages=MESSAGES,
            api_base=self.api_base,
            api_key="bench",
            num_retries=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def embed(self, text: str) -> list[float]:
        reply = await self.litellm.aembedding(
            model="openai/" + fixtures.EMBED_MODEL,
            input=[text],
            api_base=self.api_base,
            api_key="bench",
        )
        item = reply.data[0]
        vector = item["embedding"] if isinstance(item, dict) else item.embedding
        return list(vector)

    async def aclose(self) -> None:
        close = getattr(self.litellm, "close_litellm_async_clients", None)
        if close is not None:
            await close()

    def version(self) -> str:
        from importlib.metadata import version

        return version("litellm")


CLIENTS: dict[str, Callable[[], Client]] = {
    "aiohttp": AiohttpClient,
    "httpx": HttpxClient,
    "aiport": AiportClient,
    "openai": OpenAIClient,
    "litellm": LiteLLMClient,
}


# --------------------------------------------------------------------------- measuring


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summary_us(samples_ns: list[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples_ns]
    return {
        "p50_us": statistics.median(us),
        "p99_us": _pct(us, 0.99),
        "mean_us": statistics.fmean(us),
        "n": len(us),
    }


async def _sequential(call: Callable[[], Awaitable[object]], warmup: int, n: int) -> list[int]:
    for _ in range(warmup):
        await call()
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    for _ in range(n):
        start = clock()
        await call()
        append(clock() - start)
    return samples


async def _throughput(
    call: Callable[[], Awaitable[object]], concurrency: int, total: int
) -> tuple[float, float]:
    """Calls per second, and this process's CPU µs per call (robust to other load)."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_us = (time.process_time() - cpu) / total * 1e6
    return total / (time.perf_counter() - start), cpu_us


async def upstream_stats(port: int) -> dict[str, int]:
    """The upstream's request counters (a raw GET, so no client library is involved)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    body = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    counts: dict[str, int] = json.loads(body)
    return counts


def _check_vector(vector: list[float]) -> None:
    if len(vector) != fixtures.EMBED_DIM or abs(vector[7] - fixtures.VECTOR[7]) > 1e-6:
        raise AssertionError(f"wrong embedding: {len(vector)} values, [7]={vector[7]!r}")


async def measure(name: str, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every measurement of one client in this process."""
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"client": name, "rss_start_mb": rss_mb()}
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    client = CLIENTS[name]()

    start = time.perf_counter()
    await client.start(base)
    first = await client.complete()
    result["first_call_ms"] = (time.perf_counter() - start) * 1000
    result["version"] = client.version()

    # Correctness first: a misrouted or misparsing client fails here, before timing.
    if first != fixtures.TEXT:
        raise AssertionError(f"complete() returned {first[:80]!r}, not the fixture")
    streamed = await client.stream()
    if streamed != fixtures.TEXT:
        raise AssertionError(f"stream() returned {streamed[:80]!r}, not the fixture")
    _check_vector(await client.embed("check"))

    samples = await _sequential(client.complete, args.warmup, args.seq)
    result["sequential"] = _summary_us(samples)
    result["rss_after_seq_mb"] = rss_mb()

    stream_samples = await _sequential(client.stream, args.stream_warmup, args.streams)
    result["stream"] = _summary_us(stream_samples)

    before = await upstream_stats(port)
    texts = [f"text number {i}" for i in range(args.embeds)]
    embed_start = time.perf_counter()
    vectors = await asyncio.gather(*(client.embed(t) for t in texts))
    embed_seconds = time.perf_counter() - embed_start
    after = await upstream_stats(port)
    for vector in vectors:
        _check_vector(vector)
    requests = sum(after.get(k, 0) - before.get(k, 0) for k in ("embed-float", "embed-base64"))
    result["embed"] = {
        "calls": args.embeds,
        "upstream_requests": requests,
        "base64": after.get("embed-base64", 0) > before.get("embed-base64", 0),
        "wall_ms": embed_seconds * 1000,
    }

    throughput: dict[str, float] = {}
    cpu_per_call: dict[str, float] = {}
    for level in args.levels:
        await _throughput(client.complete, level, max(2 * level, 100))
        throughput[str(level)], cpu_per_call[str(level)] = await _throughput(
            client.complete, level, args.calls
        )
    result["throughput"] = throughput
    result["cpu_us_per_call"] = cpu_per_call

    if name == "aiport":
        result["aiport"] = await _aiport_extras(client, base, port, args)
    result["rss_end_mb"] = rss_mb()
    await client.aclose()
    # CPU time over wall time; and how often other processes took the core from us.
    result["cpu_share"] = (time.process_time() - cpu_start) / (time.perf_counter() - wall_start)
    result["involuntary_switches"] = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    return result


def _conversation(n: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a concise assistant. " * 4}]
    for i in range(n - 1):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": f"Message {i}: " + fixtures.TEXT[:200]})
    return messages


def _median_us(fn: Callable[[], object], repeat: int) -> float:
    for _ in range(max(3, repeat // 10)):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(repeat):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples) / 1000


async def _aiport_extras(
    client: Client, base: str, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    """aiport only: the 500-message build, and a breakdown of its sequential latency.

    The breakdown uses aiport internals (the adapter and the transport directly); it
    exists to say where the time goes, not as a public-API number.
    """
    from aiport import ModelCompletionOptions, StaticCredential
    from aiport._http import HttpClient, HttpTimeouts
    from aiport.providers._base import encode_json
    from aiport.providers.openai import OpenAIProvider
    from aiport.providers.openai._convert import build_chat_request, parse_chat_response

    assert isinstance(client, AiportClient)
    out: dict[str, Any] = {}
    conversation = _conversation(500)
    options = ModelCompletionOptions(model=fixtures.CHAT_MODEL, messages=conversation)
    body, _ = build_chat_request(options, compatible=False)
    if len(body["messages"]) != 500:
        raise AssertionError("build_chat_request dropped messages")
    out["build500_us"] = _median_us(lambda: build_chat_request(options, compatible=False), 200)
    out["build500_encode_us"] = _median_us(
        lambda: encode_json(build_chat_request(options, compatible=False)[0]), 200
    )
    out["build500_validate_us"] = _median_us(
        lambda: ModelCompletionOptions.model_validate(
            {"model": fixtures.CHAT_MODEL, "messages": conversation}
        ),
        100,
    )
    out["build500_body_kb"] = len(encode_json(body)) / 1024

    # Where one call goes: each level strips one more part of aiport, measured as the
    # sequential p50 and as CPU per call at 64 concurrent; raw aiohttp in this same
    # process is the reference.
    n = max(200, args.seq // 2)
    warm = min(args.warmup, 100)
    service = client.service
    prebuilt = ModelCompletionOptions(model="openai:" + fixtures.CHAT_MODEL, messages=MESSAGES)

    async def service_prebuilt() -> object:
        return await service.complete(prebuilt)

    http = HttpClient(max_connections=512)
    adapter = OpenAIProvider(base_url=base + "/v1", credential=StaticCredential("bench"), http=http)
    adapter_options = ModelCompletionOptions(model=fixtures.CHAT_MODEL, messages=MESSAGES)

    async def adapter_call() -> object:
        return await adapter.complete(adapter_options)

    timeouts = HttpTimeouts()
    url = base + "/v1/chat/completions"
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}

    async def transport_call() -> object:
        response = await http.request(
            "POST", url, headers=headers, body=_chat_body(), timeouts=timeouts
        )
        return json.loads(response.body)

    response = await http.request(
        "POST", url, headers=headers, body=_chat_body(), timeouts=timeouts
    )
    chat = json.loads(response.body)
    out["parse_response_us"] = _median_us(
        lambda: parse_chat_response(
            chat, provider="openai", latency=0.0, request_id=None, warnings=[], models={}
        ),
        2000,
    )
    out["validate_options_us"] = _median_us(
        lambda: ModelCompletionOptions.model_validate(
            {"model": "openai:" + fixtures.CHAT_MODEL, "messages": MESSAGES}
        ),
        2000,
    )
    floor = AiohttpClient()
    await floor.start(base)
    breakdown: dict[str, float] = {}
    breakdown_cpu: dict[str, float] = {}
    for label, call in (
        ("service_dicts", client.complete),
        ("service_prebuilt_options", service_prebuilt),
        ("adapter_only", adapter_call),
        ("transport_only", transport_call),
        ("aiohttp_floor", floor.complete),
    ):
        # Collected first, so no level pays for garbage another one left (the 500-message
        # builds above leave enough for a full collection to land inside the first level
        # and add tens of µs per call to it).
        gc.collect()
        samples = await _sequential(call, warm, n)
        breakdown[label] = statistics.median(samples) / 1000
        await _throughput(call, 64, 200)
        breakdown_cpu[label] = (await _throughput(call, 64, 2 * n))[1]
    out["breakdown_p50_us"] = breakdown
    out["breakdown_cpu_us_c64"] = breakdown_cpu
    await http.aclose()
    await floor.aclose()
    out["cache"], out["cache_hit_p50_us"] = await _cache_hit(base, port, n)
    return out


async def _cache_hit(base: str, port: int, n: int) -> tuple[str, float | None]:
    """Hit latency of the memory cache through ``service.complete``, when there is one.

    The hits are checked: if any repeated call reaches the upstream, there is no hit to
    time (the cache is missing or not wired into the service).
    """
    import aiport

    if not hasattr(importlib.import_module("aiport.layers"), "CacheLayer"):
        return "n/a (no cache yet: aiport.layers has no CacheLayer)", None
    config = aiport_config(base)
    config["cache"] = {"enabled": True, "backend": "memory"}
    try:
        service = aiport.ProviderService(config, env={})
    except aiport.ConfigError as exc:
        return f"n/a (the config refuses a memory cache: {exc})", None
    model = "openai:" + fixtures.CHAT_MODEL
    try:
        first = await service.complete(model=model, messages=MESSAGES)
        if first.text != fixtures.TEXT:
            raise AssertionError("the cached service returned the wrong text")
        before = (await upstream_stats(port)).get("chat", 0)

        async def hit() -> object:
            return await service.complete(model=model, messages=MESSAGES)

        samples = await _sequential(hit, 20, n)
        reached = (await upstream_stats(port)).get("chat", 0) - before
    finally:
        await service.aclose()
    if reached:
        return (
            f"n/a (CacheLayer exists but {reached} of {n + 20} repeated calls reached "
            "the upstream: not wired into the service yet)"
        ), None
    return "memory cache via service.complete, hits verified", statistics.median(samples) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure one client (see module docstring).")
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seq", type=int, default=2000)
    parser.add_argument("--stream-warmup", type=int, default=20)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--embeds", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64, 256])
    args = parser.parse_args()

    guard_log: list[str] = []
    _install_network_guard(guard_log)
    try:
        result = asyncio.run(measure(args.client, args.port, args))
        result["ok"] = True
    except Exception as exc:
        result = {
            "client": args.client,
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
        }
    result["network_attempts"] = guard_log
    result["gc_enabled"] = gc.isenabled()
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
