"""The ``aiport`` command: chat, embed, image, providers, models, config check, emulate, demo."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiport.cli._batch import batch_app
from aiport.cli._check import Finding, check_config, render_config_check
from aiport.cli._keys import keys_app
from aiport.cli._output import (
    Output,
    completion_document,
    embedding_document,
    format_price,
    format_tokens,
    handle_errors,
    mask_url,
    model_document,
    table,
    usage_line,
)

if TYPE_CHECKING:
    from aiport._service import ProviderService
    from aiport._types import ProviderModel

__all__ = ["app"]


def _examples(*lines: str) -> str:
    return "**Examples**\n\n```\n" + "\n".join(lines) + "\n```"


app = typer.Typer(
    name="aiport",
    help="One interface to every AI model provider: chat, embeddings, images, and tools "
    "to check your configuration and try everything offline.",
    epilog=_examples(
        'aiport chat openai:gpt-4o-mini "Explain TCP in one sentence"',
        "aiport models --capability embeddings",
        "aiport --json providers",
        "aiport demo",
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals may hold credentials
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    help="Inspect and validate the configuration.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")
app.add_typer(batch_app, name="batch")


# ---------------------------------------------------------------------- global state


@dataclass
class State:
    """The global options, shared by every command through ``ctx.obj``."""

    config: Path | None = None
    environment: str | None = None
    json: bool = False
    verbose: bool = False

    def service(self) -> ProviderService:
        """A service built from the selected configuration file and profile."""
        from aiport._service import ProviderService

        return ProviderService(self.config, environment=self.environment)


JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout (same as the global --json)."),
]


def _state(ctx: typer.Context, json_mode: bool = False) -> tuple[State, Output]:
    state = ctx.obj if isinstance(ctx.obj, State) else State()
    if json_mode:
        state.json = True
    return state, Output(json_mode=state.json)


@app.callback()
def _main(
    ctx: typer.Context,
    *,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Configuration file (TOML or YAML). Default: $AIPORT_CONFIG, else "
            "./aiport.toml or ./aiport.yaml, else defaults plus environment variables.",
        ),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option(
            "--env",
            "-e",
            metavar="NAME",
            help="Configuration profile to apply ([environments.NAME]); default: $AIPORT_ENV.",
        ),
    ] = None,
    json_mode: Annotated[
        bool, typer.Option("--json", help="Machine output: one JSON document on stdout.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Log what aiport does (DEBUG) on stderr."),
    ] = False,
) -> None:
    ctx.obj = State(config=config, environment=environment, json=json_mode, verbose=verbose)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("aiport")
        previous = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)

        def restore() -> None:
            logger.removeHandler(handler)
            logger.setLevel(previous)

        ctx.call_on_close(restore)


# ---------------------------------------------------------------------- chat


@app.command(
    epilog=_examples(
        'aiport chat openai:gpt-4o-mini "Write a haiku about the sea"',
        'aiport chat anthropic:claude-sonnet-4-6 --stream "Tell me a story"',
        'git diff | aiport chat smart --system "Review this diff"',
        'aiport --json chat gpt-4o "Hi" | jq .usage',
    )
)
def chat(
    ctx: typer.Context,
    *,
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="'provider:model', an alias from the configuration, or a bare model id.",
        ),
    ],
    prompt: Annotated[
        str | None,
        typer.Argument(metavar="PROMPT", help="The prompt; read from stdin when omitted or '-'."),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", help="A system message sent first.")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(min=0.0, max=2.0, help="Sampling temperature (0-2); default: the model's."),
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Most tokens to generate in the answer.")
    ] = None,
    stream: Annotated[
        bool,
        typer.Option("--stream/--no-stream", help="Print the answer as it arrives."),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """Send a prompt to a model and print its answer.

    With --json the answer is printed as a document with the text, model, provider,
    finish reason, token usage, latency and tool calls.
    """
    state, out = _state(ctx, json_mode)
    text = _read_prompt(prompt)
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    options: dict[str, Any] = {"model": model, "messages": messages}
    if temperature is not None:
        options["temperature"] = temperature
    if max_tokens is not None:
        options["max_tokens"] = max_tokens

    with handle_errors(out), state.service() as service:
        if stream:
            response = None
            printed = False
            try:
                for event in service.stream_sync(options):
                    if event.type == "text-delta" and not out.json_mode:
                        out.text(event.text, end="")
                        printed = True
                    elif event.type == "finish":
                        response = event.response
            finally:
                if printed:
                    out.text()  # end the line, also before an error report
            assert response is not None  # a stream ends with its response, or raises
        else:
            response = service.complete_sync(options)

    if out.json_mode:
        out.json(completion_document(response))
        return
    if not stream:
        out.text(response.text)
    for call in response.tool_calls:
        out.text(f"[tool call] {call.name}({call.arguments})")
    if state.verbose:
        out.info(usage_line(response))


def _read_prompt(prompt: str | None) -> str:
    if prompt is not None and prompt != "-":
        return prompt
    if sys.stdin is None or sys.stdin.isatty():
        raise typer.BadParameter("give a PROMPT, or pipe one on stdin", param_hint="PROMPT")
    text = sys.stdin.read().rstrip("\r\n")
    if not text.strip():
        raise typer.BadParameter("the prompt read from stdin is empty", param_hint="PROMPT")
    return text


# ---------------------------------------------------------------------- embed


@app.command(
    epilog=_examples(
        'aiport embed openai:text-embedding-3-small "first text" "second text"',
        'aiport --json embed text-embedding-3-small --dimensions 256 "hello" > vec.json',
    )
)
def embed(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="An embedding model id.")],
    texts: Annotated[list[str], typer.Argument(metavar="TEXT...", help="The texts to embed.")],
    dimensions: Annotated[
        int | None,
        typer.Option(min=1, help="Vector size, for models that can shorten their vectors."),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Embed one or more texts and print the vectors.

    People get one line per text: its dimensions and first numbers. --json gives every
    vector in full, in input order.
    """
    state, out = _state(ctx, json_mode)
    options: dict[str, Any] = {"model": model, "input": list(texts)}
    if dimensions is not None:
        options["dimensions"] = dimensions
    with handle_errors(out), state.service() as service:
        response = service.embed_sync(options)
    if out.json_mode:
        out.json(embedding_document(response))
        return
    for index, (text, vector) in enumerate(zip(texts, response.embeddings, strict=False), 1):
        head = ", ".join(f"{x:.4f}" for x in vector[:4])
        more = ", ..." if len(vector) > 4 else ""
        preview = text if len(text) <= 40 else text[:37] + "..."
        out.text(f"{index}: {len(vector)} dims [{head}{more}]  {preview!r}")


# ---------------------------------------------------------------------- image


@app.command(
    epilog=_examples(
        'aiport image openai:gpt-image-1 "A lighthouse at dawn, watercolor"',
        'aiport image openai:dall-e-2 -o out/ --n 2 --size 512x512 "A red fox"',
    )
)
def image(
    ctx: typer.Context,
    *,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="An image model id.")],
    prompt: Annotated[str, typer.Argument(metavar="PROMPT", help="What to draw.")],
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir", "-o", metavar="DIR", help="Where to write the images (created)."
        ),
    ] = Path("."),
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many images.")] = 1,
    size: Annotated[
        str | None, typer.Option(metavar="WxH", help="Image size, e.g. 1024x1024, or 'auto'.")
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Generate images and write them as aiport-image-N.png files.

    Existing files are never overwritten. Images returned only as a URL are downloaded.
    """
    state, out = _state(ctx, json_mode)
    options: dict[str, Any] = {"model": model, "prompt": prompt, "n": n}
    if size is not None:
        options["size"] = size
    with handle_errors(out):
        with state.service() as service:
            response = service.generate_image_sync(options)
        from aiport.cli._demo import save_images

        try:
            files = save_images(response.images, output_dir)
        except OSError as exc:
            out.fail(f"cannot write the images to {output_dir}: {exc.strerror or exc}")
    if out.json_mode:
        out.json(
            {
                "files": [str(path) for path in files],
                "model": response.model,
                "provider": response.provider,
            }
        )
        return
    for path in files:
        out.text(str(path))


# ---------------------------------------------------------------------- providers


@app.command(
    epilog=_examples(
        "aiport providers",
        "aiport --env prod --json providers",
        "aiport providers --types",
        "aiport providers --types --markdown",
    )
)
def providers(
    ctx: typer.Context,
    *,
    types: Annotated[
        bool,
        typer.Option(
            "--types",
            help="List the provider types aiport can talk to (configured or not) and what "
            "each supports, from the registry and the model catalogue.",
        ),
    ] = False,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Print aiport's own provider types (built-in and presets, no plug-ins) as "
            "the Markdown table of the README.",
        ),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """List the configured providers: type, base URL, key reference, and whether each is usable.

    Keys are never shown: a reference (env:OPENAI_API_KEY) is shown as written, a literal
    key is masked. "valid" means the provider can be built and its key resolves; no request
    is sent. With --types, list the provider types instead (the configuration is not read).
    """
    from aiport._secrets import describe_secret

    state, out = _state(ctx, json_mode)
    if types or markdown:
        _provider_types(out, markdown=markdown)
        return
    rows: list[dict[str, Any]] = []
    with handle_errors(out), state.service() as service:
        for name, config in service.config.providers.items():
            provider_type = service.registry.types.get(config.type)
            if config.api_key is not None:
                key = describe_secret(config.api_key)
            elif config.api_keys:
                key = ", ".join(describe_secret(k) for k in config.api_keys)
                key += f" ({config.key_rotation})" if len(config.api_keys) > 1 else ""
            elif provider_type is not None and provider_type.api_key_env:
                key = f"env:{provider_type.api_key_env} (default)"
            else:
                key = "(none)"
            base_url = config.base_url
            description = config.description
            if config.enabled:
                valid = service.validate_provider(name)
                built = _built_provider(service, name)
                if built is not None:
                    base_url = base_url or getattr(built, "base_url", None)
                    description = description or built.description
            else:
                valid = False
            if not description and provider_type is not None:
                description = provider_type.description
            rows.append(
                {
                    "name": name,
                    "type": config.type,
                    "description": description,
                    "base_url": mask_url(base_url) if isinstance(base_url, str) else None,
                    "key": key,
                    "enabled": config.enabled,
                    "valid": valid,
                }
            )
    if out.json_mode:
        out.json({"providers": rows})
        return
    if not rows:
        out.info(
            "No providers configured. Set OPENAI_API_KEY or ANTHROPIC_API_KEY, or write an "
            "aiport.toml (see `aiport emulate` for an example)."
        )
        return
    out.print(
        table(
            None,
            ["name", "type", "description", "base_url", "key", "valid"],
            [
                [
                    r["name"],
                    r["type"],
                    r["description"] or None,
                    r["base_url"],
                    r["key"],
                    "disabled" if not r["enabled"] else r["valid"],
                ]
                for r in rows
            ],
            wrap=("description",),
        )
    )


def _provider_types(out: Output, *, markdown: bool) -> None:
    from aiport._registry import ProviderRegistry
    from aiport.cli._catalogue import (
        builtin_registry,
        provider_types_table,
        render_markdown,
        summarize_types,
    )

    with handle_errors(out):
        registry = builtin_registry() if markdown else ProviderRegistry.default()
        summaries = summarize_types(registry)
    if out.json_mode:
        out.json({"provider_types": [s.document() for s in summaries]})
    elif markdown:
        out.text(render_markdown(summaries))
    else:
        out.print(provider_types_table(summaries))


def _built_provider(service: ProviderService, name: str) -> Any:
    from aiport._errors import AiportError

    try:
        provider: Any = service.get_provider(name)
    except AiportError:
        return None
    unwrap = getattr(provider, "unwrap", None)
    return unwrap() if callable(unwrap) else provider


# ---------------------------------------------------------------------- models


class Capability(StrEnum):
    """What a model can do (``aiport models --capability``)."""

    chat = "chat"
    streaming = "streaming"
    tools = "tools"
    vision = "vision"
    json_output = "json_output"
    embeddings = "embeddings"
    images = "images"


_SHORT_CAPABILITY = {
    "chat": "chat",
    "streaming": "stream",
    "tools": "tools",
    "vision": "vision",
    "json_output": "json",
    "embeddings": "embed",
    "images": "image",
}


@app.command(
    epilog=_examples(
        "aiport models",
        "aiport models --provider anthropic",
        "aiport models --capability tools --capability vision --max-input-price 1",
        "aiport models --all --min-context 1M",
        "aiport --json models --capability embeddings",
    )
)
def models(
    ctx: typer.Context,
    *,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            "-p",
            metavar="NAME",
            help="Only this provider's models (repeatable): a configured provider, or a "
            "provider type for its built-in catalogue.",
        ),
    ] = None,
    capability: Annotated[
        list[Capability] | None,
        typer.Option(
            "--capability",
            "-C",
            help="Only models with this capability (repeatable: all must match).",
        ),
    ] = None,
    max_input_price: Annotated[
        float | None,
        typer.Option(
            "--max-input-price",
            metavar="USD",
            min=0,
            help="Only models whose input price per million tokens is at most this.",
        ),
    ] = None,
    min_context: Annotated[
        str | None,
        typer.Option(
            "--min-context",
            metavar="TOKENS",
            help="Only models with at least this context window (128000, 128k, 1M).",
        ),
    ] = None,
    include_retired: Annotated[
        bool,
        typer.Option(
            "--include-retired",
            "--include-deprecated",
            help="Also list models already past their retirement date (those retiring "
            "later are always listed, with the date).",
        ),
    ] = False,
    all_types: Annotated[
        bool,
        typer.Option(
            "--all", help="The built-in catalogue of every provider type, configured or not."
        ),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """List the known models with their capabilities, limits and prices.

    Known models are the built-in catalogue of each configured provider's type, merged
    with the model tables of the configuration (config values win). Prices are US
    dollars per million tokens (input / output); capabilities are shortened in the table
    (stream, json, embed, image) and spelled out with --json. A filter on a price or a
    window leaves out models where it is unknown. Models not listed can still be called
    as 'provider:model'.
    """
    from aiport.cli._catalogue import filter_models, parse_token_count

    state, out = _state(ctx, json_mode)
    try:
        window = parse_token_count(min_context) if min_context is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--min-context") from None
    with handle_errors(out), state.service() as service:
        found = _listed_models(service, provider or [], all_types=all_types)
        configured = bool(service.provider_names)
    found = filter_models(
        found,
        capabilities=[c.value for c in capability or ()],
        max_input_price=max_input_price,
        min_context=window,
        include_retired=include_retired,
    )
    if out.json_mode:
        out.json({"models": [model_document(m) for m in found]})
        return
    if not found:
        out.info(
            "No models match."
            if provider or all_types or configured
            else "No providers configured: `aiport models --all` lists every built-in model."
        )
        return
    columns = ["model", "capabilities", "context", "max out", "$/M in", "$/M out"]
    retiring = any(m.deprecated is not None for m in found)
    if retiring:
        columns.append("retires")
    out.print(
        table(
            None,
            columns,
            [
                [
                    m.qualified_id,
                    " ".join(_SHORT_CAPABILITY[c] for c in m.capabilities.names()) or None,
                    format_tokens(m.context_window),
                    format_tokens(m.max_output_tokens),
                    format_price(m.input_price_per_million),
                    format_price(m.output_price_per_million),
                    *([m.deprecated.isoformat() if m.deprecated else None] if retiring else []),
                ]
                for m in found
            ],
            wrap=("capabilities",),
        )
    )


def _listed_models(
    service: ProviderService, providers: list[str], *, all_types: bool
) -> list[ProviderModel]:
    """The models ``aiport models`` starts from, before its filters."""
    registry = service.registry
    if all_types:
        return [
            model
            for name in sorted(registry.names())
            for model in registry.types[name].known_models(name).values()
        ]
    if not providers:
        return service.list_models()
    found: list[ProviderModel] = []
    for name in providers:
        if name not in service.config.providers and name in registry.types:
            # A type that is not configured: its built-in catalogue.
            found.extend(registry.types[name].known_models(name).values())
        else:
            found.extend(service.known_models(name).values())
    return found


# ---------------------------------------------------------------------- config check


@config_app.command(
    "check",
    epilog=_examples(
        "aiport config check",
        "aiport config check ./aiport.toml --env prod",
        "aiport --json config check | jq .problems",
        "aiport config check --allow-warnings",
    ),
)
def config_check(
    ctx: typer.Context,
    *,
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="PATH", help="The file to check; default: --config or the usual lookup."
        ),
    ] = None,
    environment: Annotated[
        str | None,
        typer.Option("--env", "-e", metavar="NAME", help="Profile to apply (as the global --env)."),
    ] = None,
    allow_warnings: Annotated[
        bool,
        typer.Option(
            "--allow-warnings", help="Exit with code 0 when the only problems are warnings."
        ),
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """Load the configuration, print it resolved with secrets masked, and report problems.

    Any problem makes it exit with code 1: errors (invalid values, unknown provider types)
    and warnings (credential references that do not resolve here, API keys written
    literally in a file, plain http to another host), unless --allow-warnings is given.
    API keys are identified by fingerprint (key#3f2a9c1e…wxyz), never shown.
    """
    from aiport._config import load_config
    from aiport._errors import ConfigError

    state, out = _state(ctx, json_mode)
    source = path or state.config
    profile = environment or state.environment
    try:
        config = load_config(source, environment=profile)
    except ConfigError as exc:
        if out.json_mode:
            findings = [Finding("error", p.path, p.message, p.source) for p in exc.problems]
            render_config_check(out, None, findings, error=exc)
            out = Output()  # the document is printed; the lines below go to stderr only
        out.error(exc)
        raise typer.Exit(1) from None
    with handle_errors(out):
        findings = check_config(config, source, profile)
    if not render_config_check(out, config, findings, allow_warnings=allow_warnings):
        raise typer.Exit(1)


# ---------------------------------------------------------------------- emulate


@app.command(
    epilog=_examples(
        "aiport emulate",
        "aiport emulate --port 9000 --api-key test-key",
    )
)
def emulate(
    ctx: typer.Context,
    *,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any).")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            help="Accept only this key (repeatable); default: any key is accepted.",
        ),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Run the offline provider emulator (OpenAI and Anthropic APIs) until Ctrl-C.

    Point a provider's base_url at it to develop and test without network or real keys.
    """
    from aiport.cli._demo import run_emulator

    _, out = _state(ctx, json_mode)
    try:
        run_emulator(out, host=host, port=port, api_keys=api_key or None)
    except OSError as exc:
        out.fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


# ---------------------------------------------------------------------- demo


@app.command(
    epilog=_examples("aiport demo", "aiport demo --output-dir ./demo-out", "aiport --json demo")
)
def demo(
    ctx: typer.Context,
    *,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            metavar="DIR",
            help="Where to write the demo image; default: a new temporary directory.",
        ),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Tour aiport offline: completions, streaming, tools, embeddings, images, errors.

    Starts the emulator in-process and talks to it; no network, no real keys, and your
    configuration is not read. Exits 0 when every step succeeded.
    """
    from aiport.cli._demo import run_demo

    _, out = _state(ctx, json_mode)
    with handle_errors(out):
        ok = run_demo(out, output_dir)
    if not ok:
        raise typer.Exit(1)
