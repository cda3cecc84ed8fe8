"""Where aiport's time goes: cProfile of its hot paths against the bench upstream.

Usage (``run.py`` does this after the rounds, in the aiport venv):
    python hotpath.py --port N --out profile.txt [--quick]

For each scenario (sequential ``complete``, 50-chunk ``stream``, ``complete`` at 64
concurrent, the 500-message request build), it prints the time per operation without
and with the profiler, the profiled self time grouped by where the code lives (each
aiport module, aiohttp, pydantic, asyncio, C built-ins, the rest), and the top functions
by self time and by cumulative time. cProfile adds a fixed cost per Python call, so
absolute numbers under it are inflated; the shares are what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fixtures
from clients import MESSAGES, aiport_config

MODEL = "openai:" + fixtures.CHAT_MODEL


def _where(filename: str, function: str, aiport_dir: str) -> str:
    """A readable bucket for one profiled function."""
    path = filename.replace("\\", "/")
    if path.startswith(aiport_dir):
        return "aiport/" + path[len(aiport_dir) :].lstrip("/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/asyncio/" in path:
        return "asyncio"
    if filename == "~":
        if "pydantic_core" in function:
            return "pydantic-core (C: validation, serialisation)"
        if "json" in function or "Encoder" in function or "Scanner" in function:
            return "C: json"
        if "socket" in function or "send" in function or "recv" in function:
            return "C: socket"
        if "select" in function or "poll" in function:
            return "C: selector"
        return "C: other built-ins"
    return "python: " + path.rsplit("/", 1)[-1]


def _report(title: str, profile: cProfile.Profile, ops: int, plain_us: float, limit: int) -> str:
    import aiport

    aiport_dir = str(Path(aiport.__file__).parent).replace("\\", "/")
    stats = pstats.Stats(profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1e-12
    buckets: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        buckets[_where(filename, function, aiport_dir)] += tottime
    out = io.StringIO()
    out.write(f"\n## {title}\n\n")
    out.write(
        f"{ops} operations; {plain_us:,.1f} µs of wall time each without the profiler; "
        f"{total / ops * 1e6:,.1f} µs of CPU time each under cProfile.\n\n"
    )
    own = sum(v for k, v in buckets.items() if k.startswith("aiport/"))
    out.write(
        f"aiport's own modules: {own / total:.1%} of the CPU ({own / ops * 1e6:,.1f} µs/op "
        "under the profiler); the rest is aiohttp, asyncio, pydantic, json and the C "
        "built-ins they and aiport call.\n\n"
    )
    out.write("CPU self time by where the code lives:\n\n")
    for name, seconds in sorted(buckets.items(), key=lambda kv: -kv[1])[:18]:
        out.write(f"  {seconds / total:6.1%}  {seconds / ops * 1e6:8.1f} µs/op  {name}\n")
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profile, stream=buffer).sort_stats(order).print_stats(limit)
        text = buffer.getvalue()
        start = text.find("   ncalls")
        out.write(f"\nTop {limit} by {order}:\n\n{text[start:] if start >= 0 else text}")
    return out.getvalue()


async def _timed(call: Callable[[], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def _concurrent(call: Callable[[], Awaitable[object]], concurrency: int, n: int) -> float:
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / n * 1e6


async def main_async(port: int, quick: bool, limit: int) -> str:
    from aiport import ModelCompletionOptions, ProviderService
    from aiport.providers.openai._convert import build_chat_request

    base = f"http://127.0.0.1:{port}"
    n_seq, n_stream, n_conc = (300, 50, 600) if quick else (2000, 300, 3000)
    parts = [
        "# aiport hot-path profile (cProfile)\n",
        "The profiler's clock is this process's CPU time, so waiting for the upstream "
        "costs nothing here: the shares are of the CPU the client spends. Self time = time "
        "inside a function itself; the shares add up to 100% of a scenario. cProfile "
        "counts each resumption of a coroutine as a call. The event loop's own work "
        "(selector, callbacks) is part of every asyncio client.\n",
    ]
    async with ProviderService(aiport_config(base), env={}) as service:

        async def complete() -> object:
            return await service.complete(model=MODEL, messages=MESSAGES)

        async def stream() -> object:
            async with service.stream(model=MODEL, messages=MESSAGES) as events:
                async for _ in events:
                    pass
            return None

        for _ in range(200):
            await complete()
        for _ in range(20):
            await stream()

        scenarios: list[tuple[str, Callable[[], Awaitable[float]], int]] = [
            (
                "sequential service.complete",
                lambda: _timed(complete, n_seq),
                n_seq,
            ),
            (
                "50-chunk service.stream, read to the end",
                lambda: _timed(stream, n_stream),
                n_stream,
            ),
            (
                "service.complete at 64 concurrent (µs of wall time per call)",
                lambda: _concurrent(complete, 64, n_conc),
                n_conc,
            ),
        ]
        for title, run, ops in scenarios:
            plain = await run()
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            await run()
            profile.disable()
            parts.append(_report(title, profile, ops, plain, limit))

    parts.append(await _cache_scenario(base, n_seq, limit))

    conversation = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": fixtures.TEXT[:200]}
        for i in range(500)
    ]
    options = ModelCompletionOptions(model=fixtures.CHAT_MODEL, messages=conversation)
    reps = 50 if quick else 200
    start = time.perf_counter()
    for _ in range(reps):
        build_chat_request(options, compatible=False)
    plain = (time.perf_counter() - start) / reps * 1e6
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    for _ in range(reps):
        build_chat_request(options, compatible=False)
    profile.disable()
    parts.append(_report("build_chat_request, 500 messages", profile, reps, plain, limit))
    return "".join(parts)


async def _cache_scenario(base: str, n: int, limit: int) -> str:
    """Memory-cache hits through ``service.complete``, when aiport has a cache layer."""
    import importlib

    from aiport import ProviderService

    if not hasattr(importlib.import_module("aiport.layers"), "CacheLayer"):
        return "\n## memory cache hit\n\nn/a: aiport.layers has no CacheLayer yet.\n"
    config = aiport_config(base)
    config["cache"] = {"enabled": True, "backend": "memory"}
    async with ProviderService(config, env={}) as service:

        async def hit() -> object:
            return await service.complete(model=MODEL, messages=MESSAGES)

        for _ in range(50):
            await hit()
        plain = await _timed(hit, n)
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        await _timed(hit, n)
        profile.disable()
    return _report("memory cache hit via service.complete", profile, n, plain, limit)


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile aiport's hot path.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--limit", type=int, default=25, help="functions per top list")
    args = parser.parse_args()
    text = asyncio.run(main_async(args.port, args.quick, args.limit))
    args.out.write_text(text)


if __name__ == "__main__":
    main()
