"""aiport against raw aiohttp, raw httpx, the openai SDK and litellm, in one run.

Usage:
    python bench/run.py            # full run (about 15 minutes on 2 cores)
    python bench/run.py --quick    # smoke run (about 2 minutes once the venvs exist)
    bench/run.sh [same options]

What it does (details in bench/README.md):

1. creates the venvs under ``bench/.venvs/`` (once; again when their spec changes):
   ``aiport`` (aiport from this checkout, editable, plus aiohttp and httpx for the
   floors), ``openai`` (the SDK alone, so it keeps its default httpx transport),
   ``litellm`` (with the certifi-pin workaround when needed) and ``upstream`` (uvloop for
   the loopback server, optional). A venv that cannot be built is reported and skipped.
2. starts the upstream (``upstream.py``) on core 0 and measures its own ceiling;
3. measures import time and RSS in fresh interpreters, interleaved across clients;
4. runs every client in a fresh process per round (``clients.py``) on core 1, with the
   order rotated every round and reversed on odd rounds;
5. profiles aiport's hot path (``hotpath.py``), measures aiport's own CPU per operation
   without the network (``inprocess.py``), measures the ceiling again, and prints the
   comparison and the targets as markdown; raw results go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
CLIENTS = ("aiohttp", "httpx", "aiport", "openai", "litellm")
FLOOR = "aiohttp"
CHUNKS = 50

#: Which venv runs which client.
VENV_OF = {
    "aiohttp": "aiport",
    "httpx": "aiport",
    "aiport": "aiport",
    "openai": "openai",
    "litellm": "litellm",
}

#: The import statement(s) a user writes, timed in a fresh interpreter.
IMPORTS: dict[str, str] = {
    "aiohttp": "import aiohttp",
    "httpx": "import httpx",
    "aiport": "from aiport import ProviderService",
    "openai": "from openai import AsyncOpenAI",
    "litellm": "import litellm",
}
#: Extra aiport import rows: the bare package (its exports load lazily), and everything
#: its first call needs (config, the OpenAI adapter, aiohttp), short of the network.
AIPORT_IMPORT_EXTRAS: dict[str, str] = {
    "aiport (bare `import aiport`)": "import aiport",
    "aiport (ready to call)": (
        "from aiport import ProviderService\n"
        "s = ProviderService({'providers': {'openai': {'type': 'openai', "
        "'base_url': 'http://127.0.0.1:9/v1', 'api_key': 'bench', 'max_connections': 512}}, "
        "'retry': {'max_attempts': 1}}, env={})\n"
        "s.get_provider('openai')\n"
        "import aiohttp"
    ),
}

IMPORT_SNIPPET = """\
import time
_t0 = time.perf_counter()
{statement}
_t1 = time.perf_counter()
with open("/proc/self/status") as _f:
    _rss = [line for line in _f if line.startswith("VmRSS:")]
print("RESULT", _t1 - _t0, int(_rss[0].split()[1]) if _rss else 0)
"""


@dataclass(frozen=True)
class Counts:
    """How much of everything one run does."""

    rounds: int
    imports: int
    warmup: int
    seq: int
    stream_warmup: int
    streams: int
    embeds: int
    calls: int
    #: Calls per concurrency level for the slowest peer (litellm, about 100-300 calls/s
    #: here): a third of ``calls`` keeps the full run near 15 minutes on 2 cores.
    slow_calls: int
    levels: tuple[int, ...] = (1, 16, 64, 256)
    ceiling_seconds: float = 3.0

    def client_args(self, client: str) -> list[str]:
        calls = self.slow_calls if client in SLOW_CLIENTS else self.calls
        return [
            f"--warmup={self.warmup}",
            f"--seq={self.seq}",
            f"--stream-warmup={self.stream_warmup}",
            f"--streams={self.streams}",
            f"--embeds={self.embeds}",
            f"--calls={calls}",
            "--levels",
            *map(str, self.levels),
        ]


SLOW_CLIENTS = ("litellm",)


FULL = Counts(
    rounds=3,
    imports=5,
    warmup=100,
    seq=2000,
    stream_warmup=20,
    streams=300,
    embeds=1000,
    calls=3000,
    slow_calls=1000,
)
QUICK = Counts(
    rounds=1,
    imports=1,
    warmup=20,
    seq=300,
    stream_warmup=5,
    streams=30,
    embeds=1000,
    calls=300,
    slow_calls=150,
    ceiling_seconds=1.5,
)


def log(message: str) -> None:
    """Progress on stderr (stdout carries the tables)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment


def measured_env() -> dict[str, str]:
    """The environment of every measured process: offline, no proxies, bytecode cached.

    Bytecode goes to a cache under ``bench/.venvs`` (not next to the sources) and is
    written by a discarded first import, so import times are those of a normal install.
    """
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(VENVS / ".pycache"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_OFFLINE_MODE": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OPENAI_API_KEY": "bench",
        }
    )
    return env


def pinning() -> tuple[list[str], list[str], str]:
    """``taskset`` prefixes for the upstream and the clients, and a description."""
    taskset = shutil.which("taskset")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if taskset and len(cores) >= 2:
        up, cl = str(cores[0]), str(cores[1])
        return [taskset, "-c", up], [taskset, "-c", cl], f"upstream on core {up}, clients on {cl}"
    return [], [], "not pinned (taskset missing or fewer than 2 cores)"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


def wait_for_idle(minutes: float) -> None:
    """Wait (at most ``minutes``) until the 1-minute load average is below 1.0."""
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        try:
            load = float(Path("/proc/loadavg").read_text().split()[0])
        except (OSError, ValueError):
            return
        if load < 1.0:
            return
        log(f"load average {load:.2f}: waiting for a quieter machine ...")
        time.sleep(15)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# --------------------------------------------------------------------------- venvs


@dataclass
class Venv:
    """One benchmark venv and how it was set up."""

    name: str
    python: Path | None = None
    ok: bool = False
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)


def _pip(python: Path, args: Sequence[str], logfile: Path) -> bool:
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    return done.returncode == 0


def _spec_hash(name: str, base_python: str) -> str:
    digest = hashlib.sha256(f"{name}|{base_python}|v1".encode())
    if name == "aiport":
        digest.update((REPO / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:16]


def _installed_versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, check=False
    )
    try:
        versions: dict[str, str] = json.loads(done.stdout)
    except ValueError:
        return {}
    return versions


def _install_litellm(python: Path, logfile: Path, notes: list[str]) -> bool:
    """litellm, or (when its certifi pin cannot resolve) the documented workaround:
    the wheel with ``--no-deps``, then its requirements with the certifi floor removed."""
    if _pip(python, ["litellm"], logfile):
        return True
    notes.append(
        "plain `pip install litellm` did not resolve (see .venvs/litellm.log); "
        "installed with --no-deps and its requirements minus the certifi floor"
    )
    if not _pip(python, ["--no-deps", "litellm"], logfile):
        return False
    code = (
        "import importlib.metadata as m\n"
        "for r in m.requires('litellm') or []:\n"
        "    if 'extra ==' not in r: print(r)"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    requirements = []
    for line in done.stdout.splitlines():
        requirement = line.strip()
        if re.match(r"certifi\b", requirement):
            marker = requirement.partition(";")[2]
            requirement = "certifi" + (f"; {marker.strip()}" if marker else "")
        requirements.append(requirement)
    if not _pip(python, requirements, logfile):
        return False
    check = subprocess.run(
        [str(python), "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        notes.append("pip check: " + " | ".join(check.stdout.strip().splitlines()[:3]))
    return True


def setup_venv(name: str, base_python: str, skip: bool) -> Venv:
    """Create (or reuse) one venv; never raises."""
    venv = Venv(name)
    path = VENVS / name
    python = path / "bin" / "python"
    marker = path / ".bench-ready"
    logfile = VENVS / f"{name}.log"
    spec = _spec_hash(name, base_python)
    if python.exists() and (skip or (marker.exists() and marker.read_text() == spec)):
        venv.python, venv.ok = python, True
    else:
        log(f"setting up venv {name!r} (log: {logfile.relative_to(REPO)})")
        VENVS.mkdir(parents=True, exist_ok=True)
        logfile.write_text("")
        made = subprocess.run(
            [base_python, "-m", "venv", "--clear", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            venv.notes.append(f"could not create the venv: {made.stderr.strip()[:200]}")
            return venv
        _pip(python, ["--upgrade", "pip"], logfile)
        if name == "aiport":
            ok = _pip(python, ["-e", str(REPO), "aiohttp", "httpx"], logfile)
        elif name == "openai":
            ok = _pip(python, ["openai"], logfile)
        elif name == "litellm":
            ok = _install_litellm(python, logfile, venv.notes)
        else:  # upstream: uvloop is optional
            ok = _pip(python, ["uvloop"], logfile)
            if not ok:
                venv.notes.append("uvloop not installable: the upstream uses asyncio's loop")
                ok = True
        if not ok:
            venv.notes.append(f"install failed (see {logfile.relative_to(REPO)})")
            return venv
        marker.write_text(spec)
        venv.python, venv.ok = python, True
    if name == "openai" and _installed_versions(python, ["aiohttp"]):
        venv.notes.append("aiohttp is installed here: the SDK may load its aiohttp transport")
    packages = {
        "aiport": ["aiport", "aiohttp", "httpx", "pydantic"],
        "openai": ["openai", "httpx", "pydantic"],
        "litellm": ["litellm", "openai", "httpx", "aiohttp", "pydantic", "certifi"],
        "upstream": ["uvloop"],
    }[name]
    venv.versions = _installed_versions(python, packages)
    return venv


# --------------------------------------------------------------------------- upstream


class Upstream:
    """The loopback server process (started and stopped by us, by pid)."""

    def __init__(self, python: Path, prefix: list[str]) -> None:
        self.process = subprocess.Popen(
            [*prefix, str(python), str(BENCH / "upstream.py"), "serve"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=BENCH,
            env=measured_env(),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if len(line) < 4 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"the upstream did not start: {line!r}")
        self.port = int(line[1])
        self.loop = " ".join(line[3:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ceiling(python: Path, prefix: list[str], port: int, seconds: float) -> dict[str, Any]:
    """The upstream's own ceiling: raw load generator (and wrk when installed)."""
    out: dict[str, Any] = {}
    command = [*prefix, str(python), str(BENCH / "upstream.py"), "load", f"--port={port}"]
    command += [f"--seconds={seconds}", "--connections=64"]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=BENCH,
            env=measured_env(),
            timeout=60 + seconds,
            check=False,
        )
        out["raw_loadgen"] = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        out["raw_loadgen"] = {"error": "the load generator timed out"}
    except (ValueError, IndexError):
        out["raw_loadgen"] = {"error": done.stderr.strip()[-300:]}
    wrk = shutil.which("wrk")
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(
                'wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = \'{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}\'\n'
            )
        try:
            run = subprocess.run(
                [
                    *prefix,
                    wrk,
                    "-t1",
                    "-c64",
                    f"-d{max(1, round(seconds))}s",
                    "-s",
                    script.name,
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                ],
                capture_output=True,
                text=True,
                timeout=60 + seconds,
                check=False,
            )
            match = re.search(r"Requests/sec:\s*([\d.]+)", run.stdout)
            out["wrk"] = {"rps": float(match.group(1))} if match else {"error": run.stdout[-200:]}
        finally:
            Path(script.name).unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------- imports


def measure_imports(
    venvs: dict[str, Venv], prefix: list[str], counts: Counts
) -> dict[str, list[dict[str, float]]]:
    """Import time and RSS per client: one discarded warm-up (it also writes bytecode),
    then ``counts.imports`` fresh interpreters per client, interleaved and rotated."""
    statements = {c: IMPORTS[c] for c in CLIENTS if VENV_OF[c] in venvs and venvs[VENV_OF[c]].ok}
    if venvs["aiport"].ok:
        statements.update(AIPORT_IMPORT_EXTRAS)
        statements["(bare interpreter)"] = "pass"
    python_of = {label: venvs[VENV_OF.get(label, "aiport")].python for label in statements}
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in statements}
    env = measured_env()
    labels = list(statements)

    def once(label: str) -> dict[str, float] | None:
        code = IMPORT_SNIPPET.format(statement=statements[label])
        done = subprocess.run(
            [*prefix, str(python_of[label]), "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),
            timeout=120,
            check=False,
        )
        for line in done.stdout.splitlines():
            if line.startswith("RESULT"):
                _, seconds, rss_kb = line.split()
                return {"ms": float(seconds) * 1000, "rss_mb": int(rss_kb) / 1024}
        log(f"import of {label!r} failed: {done.stderr.strip()[-300:]}")
        return None

    for label in labels:
        once(label)  # warm-up: bytecode written, page cache filled
    for i in range(counts.imports):
        order = labels[i % len(labels) :] + labels[: i % len(labels)]
        for label in order if i % 2 == 0 else reversed(order):
            sample = once(label)
            if sample is not None:
                samples[label].append(sample)
    return samples


# --------------------------------------------------------------------------- rounds


def round_order(clients: Sequence[str], index: int) -> list[str]:
    """Rotated by the round number, reversed on odd rounds."""
    shift = index % len(clients)
    order = list(clients[shift:]) + list(clients[:shift])
    return order[::-1] if index % 2 else order


def run_client(
    client: str, venv: Venv, *, port: int, prefix: list[str], counts: Counts, workdir: Path
) -> dict[str, Any]:
    """One (client, round): a fresh process; its JSON result plus process facts."""
    out = workdir / f"{client}-{time.monotonic_ns()}.json"
    command = [
        *prefix,
        str(venv.python),
        str(BENCH / "clients.py"),
        client,
        f"--port={port}",
        f"--out={out}",
        *counts.client_args(client),
    ]
    started = time.perf_counter()
    load_before = loadavg()
    process = subprocess.Popen(
        command,
        cwd=BENCH,
        env=measured_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return {"client": client, "ok": False, "error": "timed out after 1200 s"}
    try:
        result: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        result = {"client": client, "ok": False, "error": f"no result: {output.strip()[-400:]}"}
    result["process_seconds"] = time.perf_counter() - started
    result["loadavg_before"] = load_before
    result["loadavg_after"] = loadavg()
    if output.strip():
        result["output_tail"] = output.strip()[-1500:]
    return result


# --------------------------------------------------------------------------- summary


def _median(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _get(result: dict[str, Any], path: str) -> float | None:
    value: Any = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, int | float) else None


#: Metric label, path in a client result, format, and whether a lower value is better.
METRICS: list[tuple[str, str, str]] = [
    ("first call ms (build client + 1st call)", "first_call_ms", "{:,.0f}"),
    ("sequential p50 µs", "sequential.p50_us", "{:,.0f}"),
    ("sequential p99 µs", "sequential.p99_us", "{:,.0f}"),
    ("throughput c=1 calls/s", "throughput.1", "{:,.0f}"),
    ("throughput c=16 calls/s", "throughput.16", "{:,.0f}"),
    ("throughput c=64 calls/s", "throughput.64", "{:,.0f}"),
    ("throughput c=256 calls/s", "throughput.256", "{:,.0f}"),
    ("client CPU µs per call at c=64", "cpu_us_per_call.64", "{:,.0f}"),
    ("50-chunk stream p50 µs", "stream.p50_us", "{:,.0f}"),
    ("1,000 concurrent embeds: wall ms", "embed.wall_ms", "{:,.0f}"),
    ("1,000 concurrent embeds: upstream requests", "embed.upstream_requests", "{:,.0f}"),
    ("RSS at the end MB", "rss_end_mb", "{:,.1f}"),
]


def summarize(
    rounds: list[dict[str, dict[str, Any]]], imports: dict[str, list[dict[str, float]]]
) -> dict[str, Any]:
    """Medians over rounds, and per-round ratios to the floor (median of those)."""
    summary: dict[str, Any] = {"clients": {}}
    for client in CLIENTS:
        per_round = [r[client] for r in rounds if client in r and r[client].get("ok")]
        failures = [
            r[client].get("error") for r in rounds if client in r and not r[client].get("ok")
        ]
        entry: dict[str, Any] = {"rounds_ok": len(per_round), "errors": failures}
        for _, path, _ in METRICS:
            values = [_get(r, path) for r in per_round]
            entry[path] = _median([v for v in values if v is not None])
            ratios = []
            for r in rounds:
                mine, floor = r.get(client), r.get(FLOOR)
                if mine and floor and mine.get("ok") and floor.get("ok"):
                    a, b = _get(mine, path), _get(floor, path)
                    if a is not None and b:
                        ratios.append(a / b)
            entry[path + ":ratio"] = _median(ratios)
        overheads, per_chunk = [], []
        for r in rounds:
            mine, floor = r.get(client), r.get(FLOOR)
            if mine and floor and mine.get("ok") and floor.get("ok"):
                seq_a, seq_b = _get(mine, "sequential.p50_us"), _get(floor, "sequential.p50_us")
                st_a, st_b = _get(mine, "stream.p50_us"), _get(floor, "stream.p50_us")
                if seq_a is not None and seq_b is not None:
                    overheads.append(seq_a - seq_b)
                if st_a is not None and st_b is not None:
                    per_chunk.append((st_a - st_b) / CHUNKS)
        entry["seq_overhead_us"] = _median(overheads)
        entry["stream_added_us_per_chunk"] = _median(per_chunk)
        versions = {
            r[client].get("version") for r in rounds if client in r and r[client].get("version")
        }
        entry["version"] = ", ".join(sorted(v for v in versions if v))
        summary["clients"][client] = entry
    aiport_runs = [r["aiport"]["aiport"] for r in rounds if r.get("aiport", {}).get("ok")]
    extras: dict[str, Any] = {}
    for key in (
        "build500_us",
        "build500_encode_us",
        "build500_validate_us",
        "build500_body_kb",
        "parse_response_us",
        "validate_options_us",
        "cache_hit_p50_us",
    ):
        extras[key] = _median([v for a in aiport_runs if (v := a.get(key)) is not None])
    for key in BREAKDOWN:
        for kind in ("breakdown_p50_us", "breakdown_cpu_us_c64"):
            extras[f"{kind}:{key}"] = _median(
                [a[kind][key] for a in aiport_runs if key in a.get(kind, {})]
            )
    cache_notes = {a.get("cache") for a in aiport_runs}
    extras["cache"] = " / ".join(sorted(str(n) for n in cache_notes)) if cache_notes else "n/a"
    summary["aiport"] = extras
    summary["imports"] = {
        label: {
            "ms": _median([s["ms"] for s in samples]),
            "rss_mb": _median([s["rss_mb"] for s in samples]),
            "n": len(samples),
        }
        for label, samples in imports.items()
    }
    return summary


TIMES = "\u00d7"  # the multiplication sign of ratios

#: The latency breakdown levels (``clients._aiport_extras``), outermost first.
BREAKDOWN: dict[str, str] = {
    "service_dicts": "`service.complete(model=..., messages=[dict])`",
    "service_prebuilt_options": "`service.complete(ModelCompletionOptions)`",
    "adapter_only": "adapter alone (`OpenAIProvider.complete`)",
    "transport_only": "transport alone (`HttpClient.request` + `json.loads`)",
    "aiohttp_floor": "raw aiohttp floor, same process",
}


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def _ratio(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f}{TIMES})"


def comparison_table(summary: dict[str, Any], clients: Sequence[str]) -> str:
    """Rows: metrics; columns: clients; cells: median (ratio to raw aiohttp)."""
    rows = ["| metric | " + " | ".join(clients) + " |", "|---|" + "---:|" * len(clients)]
    imports = summary["imports"]
    floor_import = imports.get(FLOOR, {})

    def import_cell(client: str, key: str, pattern: str) -> str:
        data = imports.get(client)
        if not data or data.get(key) is None:
            return "n/a"
        base = floor_import.get(key)
        return _fmt(data[key], pattern) + _ratio(data[key] / base if base else None)

    def row(label: str, cells: list[str]) -> None:
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    def client_row(label: str, key: str, pattern: str) -> None:
        row(
            label,
            [
                _fmt(summary["clients"][c][key], pattern)
                if summary["clients"][c]["rounds_ok"]
                else "failed"
                for c in clients
            ],
        )

    row("import ms (fresh interpreter)", [import_cell(c, "ms", "{:,.0f}") for c in clients])
    row("RSS after import MB", [import_cell(c, "rss_mb", "{:,.1f}") for c in clients])
    for label, path, pattern in METRICS:
        cells = []
        for client in clients:
            entry = summary["clients"][client]
            if not entry["rounds_ok"]:
                cells.append("failed")
            elif "upstream requests" in label:
                cells.append(_fmt(entry[path], pattern))
            else:
                cells.append(_fmt(entry[path], pattern) + _ratio(entry.get(path + ":ratio")))
        row(label, cells)
        if path == "sequential.p99_us":
            client_row("sequential overhead vs aiohttp µs", "seq_overhead_us", "{:+,.0f}")
        if path == "stream.p50_us":
            client_row(
                "added µs per stream chunk vs aiohttp + SSE parse",
                "stream_added_us_per_chunk",
                "{:+,.1f}",
            )
    return "\n".join(rows)


@dataclass
class Target:
    """One target of issue 4, checked against aiport's medians."""

    name: str
    shown: str
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    at_least: bool = False
    note: str = ""

    @property
    def status(self) -> str:
        if self.value is None or self.limit is None:
            return "n/a"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "PASS" if ok else "MISS"

    @property
    def gap(self) -> str:
        if self.status != "MISS" or self.value is None or self.limit is None:
            return ""
        unit = self.unit if self.unit == TIMES else " " + self.unit
        if self.at_least:
            short = self.limit - self.value
            return f"{short:,.2f}{unit} short ({short / self.limit:.0%} below)"
        over = self.value - self.limit
        return f"{over:,.1f}{unit} over ({over / self.limit:.0%} above)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": self.value,
            "limit": self.limit,
            "shown": self.shown,
            "status": self.status,
            "gap": self.gap,
        }


def targets(summary: dict[str, Any]) -> list[Target]:
    """The issue's targets for aiport, each with its value, PASS/MISS and the gap."""
    me = summary["clients"]["aiport"]
    floor = summary["clients"][FLOOR]
    extras = summary["aiport"]
    imports = summary["imports"]
    n0, n1 = "{:,.0f}", "{:,.1f}"
    out: list[Target] = []

    ratio = me.get("throughput.64:ratio")
    cpu_ratio = me.get("cpu_us_per_call.64:ratio")
    out.append(
        Target(
            f"throughput at c=64 ≥ 0.8{TIMES} raw aiohttp",
            f"{_fmt(me.get('throughput.64'), n0)}/s = {_fmt(ratio, '{:.2f}')}{TIMES} "
            f"(aiohttp {_fmt(floor.get('throughput.64'), n0)}/s; by CPU per call: "
            f"{_fmt(1 / cpu_ratio if cpu_ratio else None, '{:.2f}')}{TIMES})",
            ratio,
            0.8,
            TIMES,
            at_least=True,
        )
    )
    t16, t256 = me.get("throughput.16"), me.get("throughput.256")
    out.append(
        Target(
            "throughput at c=256 not lower than at c=16",
            f"c=256 {_fmt(t256, n0)}/s vs c=16 {_fmt(t16, n0)}/s",
            t256,
            t16,
            "calls/s",
            at_least=True,
        )
    )
    overhead = me.get("seq_overhead_us")
    out.append(
        Target(
            "sequential p50 ≤ raw aiohttp + 25 µs",
            f"{_fmt(me.get('sequential.p50_us'), n0)} µs vs "
            f"{_fmt(floor.get('sequential.p50_us'), n0)} µs: {_fmt(overhead, '{:+,.0f}')} µs",
            overhead,
            25.0,
            "µs",
        )
    )
    per_chunk = me.get("stream_added_us_per_chunk")
    out.append(
        Target(
            "≤ 3 µs per stream chunk over raw aiohttp + SSE parse",
            f"{_fmt(per_chunk, '{:+,.1f}')} µs/chunk",
            per_chunk,
            3.0,
            "µs/chunk",
        )
    )
    for label, name in (
        ("aiport", "`from aiport import ProviderService`"),
        ("aiport (bare `import aiport`)", "`import aiport` alone"),
        ("aiport (ready to call)", "aiport ready to call (+ config, adapter, aiohttp)"),
    ):
        data = imports.get(label, {})
        ms, rss = data.get("ms"), data.get("rss_mb")
        out.append(Target(f"{name} ≤ 100 ms", f"{_fmt(ms, n0)} ms", ms, 100.0, "ms"))
        out.append(Target(f"{name} ≤ 40 MB RSS", f"{_fmt(rss, n1)} MB", rss, 40.0, "MB"))
    build = extras.get("build500_us")
    out.append(
        Target(
            "500-message request build ≤ 1 ms",
            f"{_fmt(build, n0)} µs (with JSON encoding: "
            f"{_fmt(extras.get('build500_encode_us'), n0)} µs)",
            build,
            1000.0,
            "µs",
        )
    )
    requests = me.get("embed.upstream_requests")
    out.append(
        Target(
            "1,000 concurrent single-text embeds → ≤ 20 upstream requests",
            f"{_fmt(requests, n0)} requests",
            requests,
            20.0,
            "requests",
        )
    )
    hit = extras.get("cache_hit_p50_us")
    shown = f"{_fmt(hit, n1)} µs p50" if hit is not None else str(extras.get("cache"))
    out.append(Target("memory cache hit ≤ 20 µs", shown, hit, 20.0, "µs"))
    return out


def targets_table(rows: list[Target]) -> str:
    lines = ["| target | aiport (median) | status | gap |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.shown} | {t.status} | {t.gap} |" for t in rows]
    return "\n".join(lines)


def extras_table(summary: dict[str, Any]) -> str:
    """aiport's own details: import variants, request build, latency breakdown."""
    extras = summary["aiport"]
    imports = summary["imports"]
    bare = imports.get("(bare interpreter)", {})
    n0, n1 = "{:,.0f}", "{:,.1f}"
    rows: list[tuple[str, str]] = [
        (
            "bare interpreter: empty snippet / RSS",
            f"{_fmt(bare.get('ms'), '{:.2f}')} ms / {_fmt(bare.get('rss_mb'), n1)} MB",
        )
    ]
    for label in ("aiport (bare `import aiport`)", "aiport (ready to call)"):
        data = imports.get(label, {})
        rows.append(
            (
                f"import: {label}",
                f"{_fmt(data.get('ms'), n0)} ms, {_fmt(data.get('rss_mb'), n1)} MB",
            )
        )
    body_kb = _fmt(extras.get("build500_body_kb"), n0)
    us: list[tuple[str, str, str]] = [
        ("500 messages: `build_chat_request`", "build500_us", n0),
        (f"500 messages: build + JSON encoding ({body_kb} KB)", "build500_encode_us", n0),
        ("500 messages: `ModelCompletionOptions` from dicts", "build500_validate_us", n0),
        ("1 message: `ModelCompletionOptions` from dicts", "validate_options_us", n1),
        ("`parse_chat_response` of the fixture answer", "parse_response_us", n1),
    ]
    rows += [(label, f"{_fmt(extras.get(key), pattern)} µs") for label, key, pattern in us]
    for key, label in BREAKDOWN.items():
        p50 = _fmt(extras.get(f"breakdown_p50_us:{key}"), n0)
        cpu = _fmt(extras.get(f"breakdown_cpu_us_c64:{key}"), n0)
        rows.append((f"{label}: sequential p50 / CPU per call at c=64", f"{p50} / {cpu} µs"))
    rows.append(("cache", str(extras.get("cache"))))
    return "\n".join(
        ["| aiport detail | median |", "|---|---:|"] + [f"| {a} | {b} |" for a, b in rows]
    )


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def _upstream(python: Path, prefix: list[str]) -> Iterator[Upstream]:
    server = Upstream(python, prefix)
    try:
        yield server
    finally:
        server.stop()


def _profile(python: Path, prefix: list[str], port: int, quick: bool, stamp: str) -> str:
    """Run ``hotpath.py``; the path of its report, or why it failed."""
    profile_file = RESULTS / f"profile-{stamp}.txt"
    command = [*prefix, str(python), str(BENCH / "hotpath.py"), f"--port={port}"]
    command += [f"--out={profile_file}", *(["--quick"] if quick else [])]
    done = subprocess.run(
        command,
        cwd=BENCH,
        env=measured_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        return "profile failed: " + done.stderr.strip()[-500:]
    return str(profile_file.relative_to(REPO))


def _inprocess(python: Path, prefix: list[str], quick: bool, stamp: str) -> dict[str, Any]:
    """Run ``inprocess.py`` (aiport's CPU per operation without the network)."""
    out_file = RESULTS / f"inprocess-{stamp}.json"
    command = [*prefix, str(python), str(BENCH / "inprocess.py"), f"--json={out_file}"]
    command += ["--quick"] if quick else []
    done = subprocess.run(
        command,
        cwd=BENCH,
        env=measured_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        return {"error": "in-process measurement failed: " + done.stderr.strip()[-500:]}
    return {"table": done.stdout.strip(), "results": json.loads(out_file.read_text())}


def _print_report(
    report: dict[str, Any], counts: Counts, shown: list[str], skipped: dict[str, str]
) -> None:
    summary = report["summary"]
    machine = report["machine"]
    up_start = report["ceiling_start"].get("raw_loadgen", {}).get("rps")
    up_end = report["ceiling_end"].get("raw_loadgen", {}).get("rps")
    wrk = report["ceiling_start"].get("wrk", {}).get("rps")
    fastest = max(
        (summary["clients"][c].get(f"throughput.{lv}") or 0 for c in shown for lv in counts.levels),
        default=0,
    )
    minutes = report["seconds"] / 60
    print(f"# aiport benchmark ({report['mode']}, {counts.rounds} round(s), {minutes:.1f} min)\n")
    print(
        f"{machine['cpu']}, {machine['cores']} cores, CPython {machine['python']}; "
        f"{machine['pinning']}; upstream loop: {report['upstream']['loop']}; load average "
        f"{machine['loadavg_start']} at the start, {machine['loadavg_end']} at the end."
    )
    ceiling_line = (
        f"Upstream ceiling (raw asyncio load generator, 64 connections, chat route): "
        f"{_fmt(up_start, '{:,.0f}')} req/s at the start, {_fmt(up_end, '{:,.0f}')} at the end"
    )
    if wrk:
        ceiling_line += f"; wrk: {wrk:,.0f} req/s"
    ceiling_line += f". Fastest client in any cell: {fastest:,.0f} calls/s"
    if up_start:
        ceiling_line += f" ({fastest / up_start:.0%} of the ceiling)"
    print(ceiling_line + ".")
    print(
        "Cells: median over rounds (ratio to raw aiohttp from the same round; median of the "
        f"per-round ratios). Counts: {counts.seq} sequential calls after {counts.warmup} "
        f"warm-up, {counts.streams} streams, {counts.calls} calls per concurrency level "
        f"({counts.slow_calls} for {', '.join(SLOW_CLIENTS)}), {counts.embeds} concurrent "
        f"embeds, import median of {counts.imports}.\n"
    )
    for client, reason in skipped.items():
        print(f"- **{client} not measured**: {reason or 'its venv could not be built'}")
    for client in shown:
        errors = summary["clients"][client]["errors"]
        if errors:
            print(f"- **{client} failed in {len(errors)} round(s)**: {errors[0]}")
        attempts = sorted(
            {
                a
                for r in report["rounds"]
                if client in r
                for a in r[client].get("network_attempts", [])
            }
        )
        if attempts:
            print(f"- {client} tried to reach the network (refused): {attempts[:3]}")
    versions = ", ".join(
        f"{c} {summary['clients'][c]['version']}" for c in shown if summary["clients"][c]["version"]
    )
    print(f"Versions: {versions}.\n")
    print(comparison_table(summary, [c for c in shown if c not in skipped]))
    print("\n## aiport against the targets of issue 4\n")
    print(targets_table(report["target_objects"]))
    print("\n## aiport details\n")
    print(extras_table(summary))
    inprocess = report.get("inprocess")
    if inprocess:
        print("\n## aiport's own CPU per operation, without the network\n")
        print(inprocess.get("table") or inprocess.get("error"))
    print(f"\nRaw results: {report['results_file']}")
    if report.get("profile"):
        print(f"Profile of aiport's hot path: {report['profile']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aiport vs raw aiohttp, httpx, openai, litellm.")
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick: 1)")
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--skip-setup", action="store_true", help="reuse the venvs as they are")
    parser.add_argument("--no-profile", action="store_true", help="skip the aiport profile")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="before measuring, wait up to this long for a 1-minute load average below 1",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter the venvs are made from"
    )
    args = parser.parse_args(argv)
    if sys.version_info < (3, 11):  # noqa: UP036 (run.sh may find an older python3)
        parser.error("Python 3.11+ is needed (set PYTHON=python3.11 for run.sh)")
    counts = QUICK if args.quick else FULL
    if args.rounds:
        counts = Counts(**{**counts.__dict__, "rounds": args.rounds})
    clients = [c for c in CLIENTS if c in args.clients or c in (FLOOR, "aiport")]
    started = time.perf_counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)

    needed = {VENV_OF[c] for c in clients} | {"upstream"}
    venvs: dict[str, Venv] = {
        name: setup_venv(name, args.python, args.skip_setup)
        for name in ("aiport", "openai", "litellm", "upstream")
        if name in needed
    }
    for name, venv in venvs.items():
        state = "ok" if venv.ok else "UNAVAILABLE"
        log(f"venv {name}: {state} {venv.versions} {'; '.join(venv.notes)}")
    if not venvs["aiport"].ok:
        log("the aiport venv is required (it also holds the aiohttp floor); stopping")
        return 2
    runnable = [c for c in clients if venvs[VENV_OF[c]].ok]
    skipped = {c: "; ".join(venvs[VENV_OF[c]].notes) for c in clients if c not in runnable}
    upstream_python = venvs["upstream"].python if venvs["upstream"].ok else venvs["aiport"].python
    assert upstream_python is not None
    up_prefix, client_prefix, pin_note = pinning()
    if args.wait_idle:
        wait_for_idle(args.wait_idle)
    sources = (REPO / "src" / "aiport").rglob("*.py")
    cache_present = any("CacheLayer" in p.read_text(errors="replace") for p in sources)

    report: dict[str, Any] = {
        "started": stamp,
        "mode": "quick" if args.quick else "full",
        "counts": counts.__dict__,
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pinning": pin_note,
            "loadavg_start": loadavg(),
        },
        "venvs": {
            n: {"ok": v.ok, "notes": v.notes, "versions": v.versions} for n, v in venvs.items()
        },
        "skipped": skipped,
        "cache_layer_in_source": cache_present,
    }
    rounds: list[dict[str, dict[str, Any]]] = []
    with _upstream(upstream_python, up_prefix) as server, tempfile.TemporaryDirectory() as tmp:
        report["upstream"] = {"loop": server.loop, "port": server.port}
        log(f"upstream on 127.0.0.1:{server.port} ({server.loop}); {pin_note}")
        seconds = counts.ceiling_seconds
        report["ceiling_start"] = ceiling(upstream_python, client_prefix, server.port, seconds)
        log(f"upstream ceiling: {report['ceiling_start']}")
        log("import times ...")
        report["imports"] = measure_imports(venvs, client_prefix, counts)
        for index in range(counts.rounds):
            current: dict[str, dict[str, Any]] = {}
            for client in round_order(runnable, index):
                log(f"round {index + 1}/{counts.rounds}: {client} ...")
                result = run_client(
                    client,
                    venvs[VENV_OF[client]],
                    port=server.port,
                    prefix=client_prefix,
                    counts=counts,
                    workdir=Path(tmp),
                )
                current[client] = result
                if result.get("ok"):
                    log(
                        f"  {client}: p50 {result['sequential']['p50_us']:.0f} µs, "
                        f"c=64 {result['throughput']['64']:.0f}/s, "
                        f"cpu share {result.get('cpu_share', 0):.2f}, "
                        f"{result['process_seconds']:.0f} s"
                    )
                else:
                    log(f"  {client} FAILED: {result.get('error')}")
            rounds.append(current)
        report["rounds"] = rounds
        report["ceiling_end"] = ceiling(upstream_python, client_prefix, server.port, seconds)
        if not args.no_profile:
            log("profiling aiport's hot path ...")
            python = venvs["aiport"].python
            assert python is not None
            report["profile"] = _profile(python, client_prefix, server.port, args.quick, stamp)
        if "aiport" in clients and venvs["aiport"].python is not None:
            log("measuring aiport in process, without the network ...")
            report["inprocess"] = _inprocess(
                venvs["aiport"].python, client_prefix, args.quick, stamp
            )

    summary = summarize(rounds, report["imports"])
    report["summary"] = summary
    target_objects = targets(summary)
    report["targets"] = [t.as_dict() for t in target_objects]
    report["machine"]["loadavg_end"] = loadavg()
    report["seconds"] = time.perf_counter() - started
    out_file = RESULTS / f"bench-{stamp}.json"
    report["results_file"] = str(out_file.relative_to(REPO))
    out_file.write_text(json.dumps(report, indent=1))
    report["target_objects"] = target_objects
    _print_report(report, counts, [c for c in CLIENTS if c in clients], skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
