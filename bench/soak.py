"""Soak test: many calls under injected faults; every call must end exactly once, in time.

Usage: python bench/soak.py [--calls 20000] [--concurrency 256] [--fault-rate 0.1]

Runs ``--calls`` calls (a third of them streams) through a ``ProviderService`` against
the emulator, with ``--fault-rate`` of them meeting one fault on their first attempt:
429 with and without Retry-After, 500, 503, 529, connection resets, hangs and streams
cut midway. It prints, and checks:

- every call ended in exactly one outcome (a response or a typed aiport error);
- no call outlived its deadline + 1 s, and none hung;
- no success carried a truncated answer (each answer is checked against the expected
  text);
- the attempts aiport counted equal the requests the emulator saw.

It exits non-zero when a check fails. The README's reliability section quotes its output.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from typing import Any

from aiport import AiportError, AttemptEvent, Hooks, ProviderService
from aiport.testing import Emulator, Fault

#: Per-attempt total timeout; a hang costs this much before the retry.
ATTEMPT_TIMEOUT = 2.0
#: Deadline of all attempts of one call.
CALL_DEADLINE = 10.0

FAULTS: list[tuple[str, Fault]] = [
    ("429 retry-after", Fault.status(429, retry_after="1")),
    ("429 bare", Fault.status(429)),
    ("500", Fault.status(500)),
    ("503", Fault.status(503)),
    ("529", Fault.status(529)),
    ("reset", Fault.reset()),
    ("hang", Fault.hang(seconds=30)),
    ("cut stream", Fault.cut_stream(after_events=3)),
]


async def soak(calls: int, concurrency: int, fault_rate: float, seed: int) -> int:
    rng = random.Random(seed)
    attempts = 0
    hooks = Hooks()

    @hooks.on_attempt
    def count(event: AttemptEvent) -> None:
        nonlocal attempts
        attempts += 1

    outcomes: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    faults_used: Counter[str] = Counter()
    slowest = 0.0
    async with Emulator() as emu:
        config: dict[str, Any] = {
            "providers": {
                "openai": {
                    "type": "openai",
                    "base_url": emu.openai_base_url,
                    "api_key": "soak-key",
                    "max_connections": concurrency,
                    "timeouts": {"total": ATTEMPT_TIMEOUT, "first_token": ATTEMPT_TIMEOUT},
                },
            },
            "retry": {
                "max_attempts": 3,
                "initial_backoff": 0.05,
                "max_backoff": 0.5,
                "deadline": CALL_DEADLINE,
                "budget_ratio": 0.5,
            },
            # Faults are injected on purpose: keep routing out of the way of the counts.
            "circuit_breaker": {"enabled": False},
            # A stream cut after its first tokens restarts cleanly instead of failing.
            "stream_recovery": True,
        }
        remaining = calls

        async def one(index: int) -> None:
            nonlocal slowest
            streaming = index % 3 == 0
            prompt = f"soak call {index}"
            model = f"soak-{index}"
            if rng.random() < fault_rate:
                name, fault = rng.choice(FAULTS)
                if name == "cut stream" and not streaming:
                    name, fault = FAULTS[2]
                faults_used[name] += 1
                emu.add_fault(fault, times=1, model=model)
            started = time.monotonic()
            try:
                async with asyncio.timeout(CALL_DEADLINE + 1.0):
                    if streaming:
                        response = await service.stream(
                            model=f"openai:{model}", messages=prompt
                        ).until_done()
                    else:
                        response = await service.complete(model=f"openai:{model}", messages=prompt)
                if response.text != f"You said: {prompt}":
                    problems["truncated success"] += 1
                outcomes["success"] += 1
            except TimeoutError:
                problems["hang (deadline + 1 s passed)"] += 1
            except AiportError as error:
                outcomes[f"error {error.code}/{getattr(error, 'reason', None)}"] += 1
            except Exception as error:  # anything untyped is a bug
                problems[f"untyped {type(error).__name__}"] += 1
            slowest = max(slowest, time.monotonic() - started)

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(remaining)

        async with ProviderService(config, env={}, hooks=hooks) as service:
            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.monotonic() - started
        seen = emu.count()

    ended = sum(outcomes.values()) + problems["hang (deadline + 1 s passed)"]
    if attempts != seen:
        problems["attempts counted != requests seen"] += 1
    if ended != calls:
        problems["calls without exactly one outcome"] += calls - ended
    injected = ", ".join(f"{name} {count}" for name, count in sorted(faults_used.items()))
    print(f"soak: {calls} calls, concurrency {concurrency}, fault rate {fault_rate:.0%}")
    print(f"  wall time {elapsed:.1f} s ({calls / elapsed:.0f} calls/s), slowest {slowest:.2f} s")
    print(f"  faults injected: {sum(faults_used.values())} ({injected})")
    for outcome, number in sorted(outcomes.items()):
        print(f"  outcome {outcome}: {number}")
    print(f"  attempts counted by aiport: {attempts}; requests seen by the emulator: {seen}")
    print(f"  calls ending in exactly one outcome: {ended}/{calls}")
    hangs, truncated = problems["hang (deadline + 1 s passed)"], problems["truncated success"]
    print(f"  hangs: {hangs}, truncated successes: {truncated}")
    failed = {k: v for k, v in problems.items() if v}
    print("  result: " + ("PASS" if not failed else f"FAIL {failed}"))
    return 0 if not failed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.calls, args.concurrency, args.fault_rate, args.seed)))


if __name__ == "__main__":
    main()
