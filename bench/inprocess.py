"""aiport's own CPU per operation, without the network: where the time goes, steadily.

Usage (``run.py`` does this after the rounds, in the aiport venv):
    python inprocess.py [--quick] [--json FILE]

The network is taken out: aiport's ``HttpClient`` answers every request at once with the
fixture bodies (the chat answer; the 50-chunk stream in two reads), so what is timed is
aiport's Python work alone: building and encoding the request, its layers and router,
parsing the answer into the unified types. Each number is the CPU time of this process
(``time.process_time``) per operation, best of several rounds, so it hardly moves when
other processes share the machine (wall-clock numbers in the main table do).

Rows: ``service.complete`` with message dicts; the provider pipeline entered at each
layer (outermost first, called without a call context, as a layer sees a direct call);
the same ``service.complete`` with the rate-limit layer made a pass-through (a diagnostic:
what that layer costs with no limit configured); a memory-cache hit; a 50-chunk stream
read to the end, and a stream of one content chunk (the same last chunk, usage chunk and
``[DONE]``), which splits a stream's cost into what every stream pays once and what each
further chunk adds. The floor of a stream is what the benchmark's raw aiohttp client does
with the same bytes besides HTTP: split the SSE events, ``json.loads`` each, collect the
text. The floor of ``complete`` is likewise ``json.dumps`` of the request and
``json.loads`` of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import fixtures
from clients import MESSAGES, SSEText, aiport_config

MODEL = "openai:" + fixtures.CHAT_MODEL
#: The stream body the patched transport answers with (``measure`` switches it).
_STREAM_BODY = [fixtures.STREAM_BODY]


def _one_chunk_stream(body: bytes) -> bytes:
    """``body`` cut to its last content chunk (with the finish reason), usage, ``[DONE]``."""
    events = [e for e in body.split(b"\n\n") if e]
    return b"\n\n".join(events[-3:]) + b"\n\n"


def _patch_transport() -> None:
    """Make ``HttpClient`` answer from the fixtures, with no socket at all."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from aiport._http import HttpClient, HttpResponse

    chat_headers = CIMultiDictProxy(
        CIMultiDict({"Content-Type": "application/json", "x-request-id": "req_bench"})
    )
    stream_headers = CIMultiDictProxy(
        CIMultiDict({"Content-Type": "text/event-stream", "x-request-id": "req_bench"})
    )

    class CannedStream:
        status = 200
        headers = stream_headers

        async def chunks(self) -> AsyncIterator[bytes]:
            body = _STREAM_BODY[0]
            half = len(body) // 2
            yield body[:half]
            yield body[half:]

        async def read_all(self) -> bytes:
            return b""

    async def request(self: Any, method: str, url: str, **_: Any) -> HttpResponse:
        return HttpResponse(status=200, headers=chat_headers, body=fixtures.CHAT_BODY)

    @contextlib.asynccontextmanager
    async def stream(self: Any, method: str, url: str, **_: Any) -> AsyncIterator[CannedStream]:
        yield CannedStream()

    HttpClient.request = request  # type: ignore[method-assign]
    HttpClient.stream = stream  # type: ignore[assignment]


async def _cpu_us(call: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    """Best-of-``rounds`` CPU µs per call, after a warm-up."""
    for _ in range(max(20, n // 10)):
        await call()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            await call()
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


async def measure(quick: bool) -> dict[str, Any]:
    _patch_transport()
    from aiport import ModelCompletionOptions, ProviderService
    from aiport.layers._ratelimit import RateLimitLayer

    n, n_stream, rounds = (2000, 200, 5) if quick else (10000, 1000, 7)
    out: dict[str, Any] = {"n": n, "rounds": rounds}
    base = "http://127.0.0.1:9"
    request_payload = {"model": fixtures.CHAT_MODEL, "messages": MESSAGES}

    async def floor_complete() -> object:
        json.dumps(request_payload).encode()
        return json.loads(fixtures.CHAT_BODY)

    async def floor_stream() -> object:
        parser = SSEText()
        body = _STREAM_BODY[0]
        half = len(body) // 2
        parser.feed(body[:half])
        parser.feed(body[half:])
        return parser.text

    out["floor_complete_us"] = await _cpu_us(floor_complete, n, rounds)
    out["floor_stream_us"] = await _cpu_us(floor_stream, n_stream, rounds)
    _STREAM_BODY[0] = _one_chunk_stream(fixtures.STREAM_BODY)
    out["floor_stream_1_us"] = await _cpu_us(floor_stream, n, rounds)
    _STREAM_BODY[0] = fixtures.STREAM_BODY

    async with ProviderService(aiport_config(base), env={}) as service:

        async def complete() -> object:
            return await service.complete(model=MODEL, messages=MESSAGES)

        async def stream() -> object:
            async with service.stream(model=MODEL, messages=MESSAGES) as events:
                async for _ in events:
                    pass
            return None

        out["service_complete_us"] = await _cpu_us(complete, n, rounds)
        out["service_stream_us"] = await _cpu_us(stream, n_stream, rounds)
        _STREAM_BODY[0] = _one_chunk_stream(fixtures.STREAM_BODY)
        out["service_stream_1_us"] = await _cpu_us(stream, n, rounds)
        _STREAM_BODY[0] = fixtures.STREAM_BODY
        options = ModelCompletionOptions(model=fixtures.CHAT_MODEL, messages=MESSAGES)
        layers: list[tuple[str, float]] = []
        provider: Any = service.get_provider("openai")
        while provider is not None:
            entered = provider

            async def direct(entered: Any = entered) -> object:
                return await entered.complete(options)

            layers.append((type(provider).__name__, await _cpu_us(direct, n, rounds)))
            provider = getattr(provider, "inner", None)
        out["layers_us"] = layers

        original = RateLimitLayer.complete

        async def passthrough(self: RateLimitLayer, options: Any) -> Any:
            return await self.inner.complete(options)

        RateLimitLayer.complete = passthrough  # type: ignore[method-assign]
        try:
            out["service_complete_no_ratelimit_us"] = await _cpu_us(complete, n, rounds)
        finally:
            RateLimitLayer.complete = original  # type: ignore[method-assign]

    config = aiport_config(base)
    config["cache"] = {"enabled": True, "backend": "memory"}
    async with ProviderService(config, env={}) as cached:

        async def hit() -> object:
            return await cached.complete(model=MODEL, messages=MESSAGES)

        out["cache_hit_us"] = await _cpu_us(hit, n, rounds)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table with a sentence of context."""
    floor_c, floor_s = result["floor_complete_us"], result["floor_stream_us"]
    rows = [
        ("`service.complete` (message dicts)", result["service_complete_us"], floor_c),
        (
            "`service.complete`, rate-limit layer made a pass-through (diagnostic)",
            result["service_complete_no_ratelimit_us"],
            floor_c,
        ),
    ]
    for name, value in result["layers_us"]:
        rows.append((f"pipeline entered at `{name}`", value, floor_c))
    rows.append(("memory-cache hit via `service.complete`", result["cache_hit_us"], None))
    rows.append(("50-chunk `service.stream` read to the end", result["service_stream_us"], floor_s))
    floor_1 = result.get("floor_stream_1_us")
    stream_1 = result.get("service_stream_1_us")
    if floor_1 is not None and stream_1 is not None:
        rows.append(("1-chunk `service.stream` read to the end", stream_1, floor_1))
    lines = [
        "| operation (no network) | CPU µs per op | over the floor |",
        "|---|---:|---:|",
        f"| floor: `json.dumps` request + `json.loads` answer | {floor_c:.1f} | |",
        f"| floor: SSE split + `json.loads` of 50 chunks + text | {floor_s:.1f} | |",
    ]
    if floor_1 is not None:
        lines.append(f"| floor: the same for 1 chunk | {floor_1:.1f} | |")
    for name, value, floor in rows:
        over = f"+{value - floor:.1f}" if floor is not None else ""
        lines.append(f"| {name} | {value:.1f} | {over} |")
    added_50 = result["service_stream_us"] - floor_s
    text = "\n".join(lines) + "\n\n"
    if floor_1 is not None and stream_1 is not None:
        # Two streams that differ only in 49 content chunks: what a chunk adds, and what
        # every stream pays once.
        per_chunk = (added_50 - (stream_1 - floor_1)) / 49
        once = (stream_1 - floor_1) - per_chunk
        text += (
            f"Over the floor, a stream costs {once:.1f} µs once plus {per_chunk:.2f} µs per "
            f"content chunk; spread over 50 chunks: {added_50 / 50:.2f} µs per chunk "
        )
    else:
        text += f"Over the floor, spread over 50 chunks: {added_50 / 50:.2f} µs per chunk "
    return text + (
        f"(best of {result['rounds']} rounds of {result['n']} calls; CPU time of this process)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="aiport's CPU per operation, no network.")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    result = asyncio.run(measure(args.quick))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
