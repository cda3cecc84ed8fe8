"""``aiport demo`` (a guided tour, fully offline), ``aiport emulate``, and image files.

The demo starts the emulator in-process, builds a :class:`~aiport.ProviderService` from a
dict that points at it (the user's ``aiport.toml``, environment and real keys are never
read), and walks through what aiport does, timing each step.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from aiport._errors import AiportError, MalformedResponseError, ProviderConnectionError
from aiport.cli._output import Output, error_document, error_lines, mask_url
from aiport.cli._output import table as make_table

if TYPE_CHECKING:
    from aiport._service import ProviderService
    from aiport._types import GeneratedImage
    from aiport.testing import Emulator

__all__ = ["TOUR_MODELS", "DemoStep", "png_dimensions", "run_demo", "run_emulator", "save_images"]

CHAT_MODEL = "openai:gpt-4o-mini"
CLAUDE_MODEL = "anthropic:claude-sonnet-4-6"
EMBEDDING_MODEL = "openai:text-embedding-3-small"
IMAGE_MODEL = "openai:gpt-image-1"
_IMAGE_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
_DOWNLOAD_TIMEOUT = 60.0


class _StepFailedError(Exception):
    """A demo step ran but did not show what it should have."""


@dataclass
class DemoStep:
    """The outcome of one demo step."""

    number: int
    title: str
    ok: bool = False
    latency: float = 0.0
    detail: str = ""
    error: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "step": self.number,
            "title": self.title,
            "status": "ok" if self.ok else "failed",
            "latency": round(self.latency, 6),
            "detail": self.detail,
            "error": self.error,
        }


@dataclass
class _Tour:
    """What every step needs: the service, the emulator, and where to print."""

    service: ProviderService
    emulator: Emulator
    out: Output
    output_dir: Path
    steps: list[DemoStep] = field(default_factory=list)

    def say(self, message: str | Text, *, end: str = "\n") -> None:
        """Narrate for people (silent under ``--json``, whose stdout is one document)."""
        if self.out.json_mode:
            return
        if isinstance(message, Text):
            self.out.print(message)
        else:
            self.out.text(message, end=end)

    async def run(self, title: str, step: Callable[[_Tour], Awaitable[str]]) -> None:
        result = DemoStep(number=len(self.steps) + 1, title=title)
        self.steps.append(result)
        if not self.out.json_mode:
            self.out.print(Text())
            self.out.heading(f"{result.number}. {title}")
        started = time.perf_counter()
        try:
            result.detail = await step(self)
            result.ok = True
        except AiportError as exc:
            result.error = error_document(exc)
            result.detail = error_lines(exc)[0].removeprefix("error: ")
        except _StepFailedError as exc:
            result.detail = str(exc)
        finally:
            result.latency = time.perf_counter() - started
        if not result.ok:
            self.say(Text(f"failed: {result.detail}", style="bold red"))


# ---------------------------------------------------------------------- the steps


async def _complete_openai(tour: _Tour) -> str:
    prompt = "Say hello to aiport in five words."
    tour.say(f"> {prompt}")
    reply = await tour.service.complete(model=CHAT_MODEL, messages=prompt)
    tour.say(reply.text)
    tour.say(
        Text(
            _stats(reply.usage.total_tokens, reply.latency, reply.finish_reason, reply.cost), "dim"
        )
    )
    return f"{reply.usage.total_tokens} tokens, finish {reply.finish_reason}"


async def _complete_anthropic(tour: _Tour) -> str:
    prompt = "Same interface, different provider."
    tour.say(f"> {prompt}  (system: 'Answer briefly.')")
    reply = await tour.service.complete(
        model=CLAUDE_MODEL,
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": prompt},
        ],
        max_tokens=200,
    )
    tour.say(reply.text)
    tour.say(
        Text(
            _stats(reply.usage.total_tokens, reply.latency, reply.finish_reason, reply.cost), "dim"
        )
    )
    return f"{reply.usage.total_tokens} tokens, finish {reply.finish_reason}"


#: One model per other provider for the "every provider" step: (provider, model).
TOUR_MODELS: tuple[tuple[str, str], ...] = (
    ("gemini", "gemini-2.5-flash"),
    ("azure", "gpt-4o-mini"),
    ("mistral", "mistral-small-2506"),
    ("cohere", "command-a-03-2025"),
    ("ollama", "llama3.2"),
    ("bedrock", "anthropic.claude-haiku-4-5-20251001-v1:0"),
    ("groq", "llama-3.3-70b-versatile"),
)


async def _every_provider(tour: _Tour) -> str:
    prompt = "One request shape for every provider."
    tour.say(f"> {prompt}")
    rows: list[list[Any]] = []
    answered = 0
    for provider, model in TOUR_MODELS:
        if provider not in tour.service.config.providers:
            # Bedrock needs the optional botocore ('aiport[bedrock]') for AWS signing.
            rows.append([provider, model, Text("skipped: pip install 'aiport[bedrock]'", "dim")])
            continue
        reply = await tour.service.complete(
            model=f"{provider}:{model}", messages=prompt, max_tokens=50
        )
        answered += 1
        rows.append(
            [
                provider,
                model,
                f"{_short(reply.text, 40)} ({reply.usage.total_tokens} tokens{_cost(reply.cost)})",
            ]
        )
    if not tour.out.json_mode:
        tour.out.print(make_table(None, ["provider", "model", "answer"], rows))
    return f"{answered} providers answered the same request"


async def _stream(tour: _Tour) -> str:
    prompt = "Stream this sentence back to me one word at a time."
    tour.say(f"> {prompt}")
    deltas = 0
    async with tour.service.stream(model=CLAUDE_MODEL, messages=prompt, max_tokens=200) as stream:
        async for event in stream:
            if event.type == "text-delta":
                deltas += 1
                tour.say(event.text, end="")
    tour.say("")
    usage = stream.response.usage
    tour.say(
        Text(
            f"{deltas} text deltas · usage: {usage.input_tokens} in / "
            f"{usage.output_tokens} out tokens{_cost(stream.response.cost)}",
            "dim",
        )
    )
    if deltas == 0:
        raise _StepFailedError("the stream delivered no text")
    return f"{deltas} deltas, {usage.total_tokens} tokens"


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return json.dumps({"city": city, "temperature_c": 21, "conditions": "sunny"})


async def _tools(tour: _Tour) -> str:
    from aiport._types import Message, Tool

    tool = Tool.from_function(get_weather)
    messages: list[Message] = [Message.user("What's the weather like in Lisbon right now?")]
    tour.say(f"> {messages[0].text}   (tool offered: {tool.name}(city: str))")
    first = await tour.service.complete(model=CHAT_MODEL, messages=messages, tools=[tool])
    if not first.tool_calls:
        raise _StepFailedError(f"the model answered without calling the tool: {first.text!r}")
    messages.append(first.message)
    for call in first.tool_calls:
        arguments = call.parse_arguments()
        result = get_weather(**arguments)
        tour.say(f"model calls {call.name}({call.arguments}) -> runs locally -> {result}")
        messages.append(Message.tool_result(call.id, result))
    final = await tour.service.complete(model=CHAT_MODEL, messages=messages, tools=[tool])
    tour.say(f"final answer: {final.text}")
    return f"{len(first.tool_calls)} tool call(s), then: {_short(final.text)}"


async def _embeddings(tour: _Tour) -> str:
    texts = ["The cat sat on the mat.", "A cat was sitting on a rug.", "Stock markets fell."]
    response = await tour.service.embed(model=EMBEDDING_MODEL, input=texts, dimensions=256)
    for text, vector in zip(texts, response.embeddings, strict=True):
        head = ", ".join(f"{x:+.4f}" for x in vector[:3])
        tour.say(f"{len(vector)} dims [{head}, ...]  {text!r}")
    dims = {len(v) for v in response.embeddings}
    if dims != {256} or len(response.embeddings) != len(texts):
        raise _StepFailedError(f"expected 3 vectors of 256 dimensions, got sizes {sorted(dims)}")
    similarity = _cosine(response.embeddings[0], response.embeddings[1])
    tour.say(f"cosine similarity of the first two: {similarity:.4f}")
    return f"3 x 256 dims, cosine(1, 2) = {similarity:.4f}"


async def _image(tour: _Tour) -> str:
    response = await tour.service.generate_image(
        model=IMAGE_MODEL, prompt="A lighthouse at dawn, watercolor", size="1024x1024"
    )
    paths = await asyncio.to_thread(save_images, response.images, tour.output_dir)
    data = paths[0].read_bytes()
    size = png_dimensions(data)
    if size is None:
        raise _StepFailedError(f"{paths[0]} is not a PNG image")
    tour.say(f"wrote {paths[0]} ({size[0]}x{size[1]} PNG, {len(data):,} bytes)")
    return f"{paths[0]} ({size[0]}x{size[1]} PNG)"


async def _typed_error(tour: _Tour) -> str:
    from aiport._errors import ProviderRateLimitError
    from aiport.testing import Fault

    tour.say("the emulator will answer the next request with HTTP 429 (Retry-After: 2)")
    tour.emulator.add_fault(Fault.status(429, retry_after="2"), times=1)
    try:
        await tour.service.complete(model=CHAT_MODEL, messages="Are you there?")
    except ProviderRateLimitError as exc:
        tour.say(f"caught {type(exc).__name__}:")
        for name, value in (
            ("code", exc.code),
            ("status", exc.status_code),
            ("retry_after", exc.retry_after),
            ("request_id", exc.request_id),
            ("retryable", exc.retryable),
        ):
            tour.say(f"  {name:<12} {value}")
        return f"{exc.code}, status {exc.status_code}, retry_after {exc.retry_after}"
    raise _StepFailedError("expected a ProviderRateLimitError, but the call succeeded")


_STEPS: Sequence[tuple[str, Callable[[_Tour], Awaitable[str]]]] = (
    (f"Completion on {CHAT_MODEL}", _complete_openai),
    (f"Completion on {CLAUDE_MODEL}", _complete_anthropic),
    ("The same request to every other provider", _every_provider),
    (f"Streaming from {CLAUDE_MODEL}", _stream),
    ("Tool call round trip", _tools),
    (f"Embeddings with {EMBEDDING_MODEL}", _embeddings),
    (f"Image generation with {IMAGE_MODEL}", _image),
    ("A typed error (HTTP 429)", _typed_error),
)


def _stats(tokens: int, latency: float, finish: str, cost: float | None = None) -> str:
    return f"{tokens} tokens · {latency * 1000:.0f} ms · finish {finish}{_cost(cost)}"


def _cost(cost: float | None) -> str:
    """`` · $0.000012`` (list price of the call), or nothing when the price is unknown."""
    return "" if cost is None else f" · ${cost:.6f}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


# ---------------------------------------------------------------------- entry points


def demo_config(emulator: Emulator) -> dict[str, Any]:
    """The demo's configuration: every built-in provider type (and the Groq preset)
    pointing at the emulator, with demo keys; Bedrock only when botocore is installed."""
    import importlib.util

    others: dict[str, dict[str, Any]] = {
        "gemini": {"type": "gemini", "base_url": emulator.gemini_base_url},
        "azure": {"type": "azure", "base_url": emulator.azure_endpoint},
        "mistral": {"type": "mistral", "base_url": emulator.mistral_base_url},
        "cohere": {"type": "cohere", "base_url": emulator.cohere_base_url},
        "ollama": {"type": "ollama", "base_url": emulator.ollama_base_url},
        "groq": {"type": "groq", "base_url": emulator.openai_base_url},
    }
    if importlib.util.find_spec("botocore") is not None:
        others["bedrock"] = {
            "type": "bedrock",
            "base_url": emulator.bedrock_endpoint,
            "region": "us-east-1",
        }
    for name, provider in others.items():
        if name != "ollama":  # a local Ollama takes no key
            provider["api_key"] = f"demo-{name}-key"
    return {
        # One attempt: the 429 step shows the error itself instead of retrying it away.
        "retry": {"max_attempts": 1},
        "providers": {
            **others,
            "openai": {
                "type": "openai",
                "base_url": emulator.openai_base_url,
                "api_key": "demo-openai-key",
            },
            "anthropic": {
                "type": "anthropic",
                "base_url": emulator.anthropic_base_url,
                "api_key": "demo-anthropic-key",
            },
        },
    }


def run_demo(out: Output, output_dir: Path | None) -> bool:
    """Run every step, print the summary; return whether every step succeeded."""
    from aiport.cli._catalogue import builtin_registry, provider_types_table, summarize_types
    from aiport.testing import Emulator

    directory = output_dir or Path(tempfile.mkdtemp(prefix="aiport-demo-"))
    provider_types = summarize_types(builtin_registry())
    with Emulator().run_in_thread() as emulator:
        if not out.json_mode:
            out.print(Text("aiport demo", style="bold"))
            out.print(Text())
            out.print(provider_types_table(provider_types, "Provider types aiport speaks"))
            out.print(Text())
            out.text(f"emulator running at {emulator.url} (offline; no real keys are used)")
        steps = asyncio.run(_tour(emulator, out, directory))
    ok = all(step.ok for step in steps)
    if out.json_mode:
        out.json(
            {
                "ok": ok,
                "output_dir": str(directory),
                "provider_types": [t.document() for t in provider_types],
                "steps": [s.document() for s in steps],
            }
        )
        return ok
    out.print(Text())
    rows = [
        [
            f"{s.number}. {s.title}",
            Text("ok", style="green") if s.ok else Text("failed", style="bold red"),
            f"{s.latency * 1000:.0f} ms",
        ]
        for s in steps
    ]
    out.print(make_table("Summary", ["step", "status", "latency"], rows))
    passed = sum(s.ok for s in steps)
    style = "bold green" if ok else "bold red"
    out.print(Text(f"{passed}/{len(steps)} steps succeeded", style=style))
    return ok


async def _tour(emulator: Emulator, out: Output, directory: Path) -> list[DemoStep]:
    from aiport._service import ProviderService

    async with ProviderService(demo_config(emulator), env={}) as service:
        tour = _Tour(service=service, emulator=emulator, out=out, output_dir=directory)
        for title, step in _STEPS:
            await tour.run(title, step)
    return tour.steps


def run_emulator(out: Output, *, host: str, port: int, api_keys: Sequence[str] | None) -> None:
    """Serve the emulator in the foreground until Ctrl-C."""
    from aiport.testing import Emulator

    def ready(emulator: Emulator) -> None:
        if out.json_mode:
            out.json(
                {
                    "url": emulator.url,
                    "openai_base_url": emulator.openai_base_url,
                    "anthropic_base_url": emulator.anthropic_base_url,
                }
            )
            return
        keys = "only the keys given with --api-key" if api_keys else "any non-empty key"
        out.print(Text(f"aiport emulator listening on {emulator.url}", style="bold"))
        out.text(f"  OpenAI base URL:     {emulator.openai_base_url}")
        out.text(f"  Anthropic base URL:  {emulator.anthropic_base_url}")
        out.text(f"  accepted API keys:   {keys}")
        out.text("")
        out.text("Example aiport.toml:")
        out.text("")
        out.text(_snippet(emulator))
        out.text("")
        out.text("Press Ctrl-C to stop.")

    Emulator(api_keys=api_keys, port=port, host=host).serve_forever(on_ready=ready)
    if not out.json_mode:
        out.info("emulator stopped")


def _snippet(emulator: Emulator) -> str:
    return (
        "[providers.openai]\n"
        'type = "openai"\n'
        f'base_url = "{emulator.openai_base_url}"\n'
        'api_key = "env:OPENAI_API_KEY"\n'
        "\n"
        "[providers.anthropic]\n"
        'type = "anthropic"\n'
        f'base_url = "{emulator.anthropic_base_url}"\n'
        'api_key = "env:ANTHROPIC_API_KEY"'
    )


# ---------------------------------------------------------------------- images


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG image, or ``None`` when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def save_images(images: Sequence[GeneratedImage], directory: Path) -> list[Path]:
    """Write each image to ``directory`` as ``aiport-image-<n>.<ext>``; return the paths.

    Existing files are never overwritten: numbering continues after the last one taken.
    Images that came back only as a URL are downloaded first.
    """
    directory.mkdir(parents=True, exist_ok=True)
    payloads = _image_bytes(images)
    paths: list[Path] = []
    number = 1
    for image, data in zip(images, payloads, strict=True):
        extension = _IMAGE_EXTENSIONS.get(image.media_type.lower(), ".png")
        while True:
            path = directory / f"aiport-image-{number}{extension}"
            number += 1
            if not path.exists():
                break
        path.write_bytes(data)
        paths.append(path)
    return paths


def _image_bytes(images: Sequence[GeneratedImage]) -> list[bytes]:
    missing = [image.url for image in images if image.data is None and image.url]
    downloaded: dict[str, bytes] = {}
    if missing:
        import asyncio

        downloaded = asyncio.run(_download(missing))
    out: list[bytes] = []
    for image in images:
        if image.data is not None:
            out.append(image.data)
        elif image.url is not None:
            out.append(downloaded[image.url])
        else:
            raise MalformedResponseError(
                "the provider returned an image with neither bytes nor a URL"
            )
    return out


async def _download(urls: Sequence[str]) -> dict[str, bytes]:
    import aiohttp

    result: dict[str, bytes] = {}
    timeout = aiohttp.ClientTimeout(total=_DOWNLOAD_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls:
            shown = mask_url(url)
            try:
                async with session.get(url) as response:
                    if response.status >= 300:
                        raise ProviderConnectionError(
                            f"downloading the generated image failed: HTTP {response.status} "
                            f"from {shown}",
                            status_code=response.status,
                        )
                    result[url] = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ProviderConnectionError(
                    f"downloading the generated image from {shown} failed ({type(exc).__name__})"
                ) from exc
    return result
