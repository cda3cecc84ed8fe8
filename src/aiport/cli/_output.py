"""Rendering for the command line: rich tables for people, one JSON document for scripts.

Everything the CLI prints goes through :class:`Output`. Text that came from a model or a
provider is printed literally (never interpreted as rich markup), errors are printed from
their already-scrubbed messages and context, and configuration values are shown through
:func:`aiport._secrets.describe_secret`, so no credential reaches the terminal.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aiport._errors import (
    AiportError,
    ConfigError,
    ProviderError,
)

if TYPE_CHECKING:
    from aiport._types import (
        ModelCompletionResponse,
        ModelEmbeddingResponse,
        ProviderModel,
        Usage,
    )

__all__ = [
    "Output",
    "completion_document",
    "error_document",
    "error_lines",
    "format_price",
    "format_tokens",
    "handle_errors",
    "mask_url",
    "model_document",
    "usage_line",
]

_PIPE_WIDTH = 200
_SENSITIVE_NAME = re.compile(
    r"authorization|cookie|api[-_]?key|token|secret|password|passwd|credential|signature|^sig$",
    re.IGNORECASE,
)


class Output:
    """Where and how a command prints.

    Args:
        json_mode: print one JSON document on stdout instead of text and tables.
    """

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        # Consoles bind sys.stdout/sys.stderr when they print, so redirection is honoured.
        self.console = Console(highlight=False, soft_wrap=True)
        self.err_console = Console(stderr=True, highlight=False, soft_wrap=True)
        if not self.console.is_terminal and "COLUMNS" not in os.environ:
            # Piped into grep, less or a file: do not squeeze tables into 80 columns.
            self.console.width = _PIPE_WIDTH

    # ------------------------------------------------------------------ plain text

    def text(self, value: str = "", *, end: str = "\n") -> None:
        """Print ``value`` literally on stdout (model output: never read as markup)."""
        stream = sys.stdout
        stream.write(value + end)
        stream.flush()

    def info(self, message: str | Text) -> None:
        """A note for people on stderr (never part of the machine output)."""
        self.err_console.print(message if isinstance(message, Text) else Text(message))

    def print(self, renderable: Any) -> None:
        """Print a rich renderable (table, rule, text) on stdout."""
        self.console.print(renderable)

    def heading(self, title: str) -> None:
        """A section heading (a rule with a bold title)."""
        self.console.rule(Text(title, style="bold cyan"), align="left")

    def json(self, document: Any) -> None:
        """Print ``document`` as one JSON document on stdout."""
        self.text(json.dumps(document, indent=2, ensure_ascii=False, default=_json_default))

    # ------------------------------------------------------------------ errors

    def error(self, exc: AiportError) -> None:
        """Report an aiport error: the line(s) on stderr, and the document under ``--json``."""
        if self.json_mode:
            self.json({"error": error_document(exc)})
        stream = sys.stderr
        for line in error_lines(exc):
            stream.write(line + "\n")
        stream.flush()

    def fail(self, message: str, *, code: int = 1) -> NoReturn:
        """Print ``error: message`` on stderr and exit with ``code``."""
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
        raise typer.Exit(code)


@contextmanager
def handle_errors(out: Output) -> Iterator[None]:
    """Turn aiport errors into a one-line report and exit code 1; Ctrl-C into exit 130.

    Any other exception propagates: it is a bug, and its traceback should be seen.
    """
    try:
        yield
    except AiportError as exc:
        out.error(exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        raise typer.Exit(130) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_lines(exc: AiportError) -> list[str]:
    """``error: CODE: message`` (then, for a ConfigError, each problem indented)."""
    if isinstance(exc, ConfigError):
        return [f"error: {exc.code}: {_config_header(exc)}"] + [
            f"  - {_one_line(str(problem))}" for problem in exc.problems
        ]
    if isinstance(exc, ProviderError):
        context = [
            f"{name}={value}"
            for name, value in (
                ("provider", exc.provider),
                ("model", exc.model),
                ("status", exc.status_code),
                ("request_id", exc.request_id),
            )
            if value is not None
        ]
        suffix = f" ({', '.join(context)})" if context else ""
        return [f"error: {exc.code}: {_one_line(exc.message)}{suffix}"]
    return [f"error: {exc.code}: {_one_line(str(exc))}"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _config_header(exc: ConfigError) -> str:
    return f"invalid configuration ({_plural(len(exc.problems), 'problem')})"


def error_document(exc: AiportError) -> dict[str, Any]:
    """The ``error`` object of ``--json`` output: code, message and the error's context."""
    if isinstance(exc, ConfigError):
        return {
            "code": str(exc.code),
            "message": _config_header(exc),
            "problems": [
                {"path": p.path, "message": p.message, "source": p.source} for p in exc.problems
            ],
        }
    if isinstance(exc, ProviderError):
        document: dict[str, Any] = {"code": str(exc.code), "message": exc.message}
        document.update(exc.context())
        for extra in ("suggestions", "candidates"):
            value = getattr(exc, extra, None)
            if value:
                document[extra] = list(value)
        return document
    return {"code": str(exc.code), "message": str(exc)}


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


# ---------------------------------------------------------------------- documents


def usage_document(usage: Usage) -> dict[str, int]:
    """Token counts as a plain dict."""
    return usage.model_dump()


def completion_document(response: ModelCompletionResponse) -> dict[str, Any]:
    """A completion as ``aiport chat --json`` prints it."""
    return {
        "text": response.text,
        "model": response.model,
        "provider": response.provider,
        "finish_reason": response.finish_reason,
        "usage": usage_document(response.usage),
        "latency": round(response.latency, 6),
        "cost": response.cost,
        "request_id": response.request_id,
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in response.tool_calls
        ],
        "warnings": list(response.warnings),
    }


def embedding_document(response: ModelEmbeddingResponse) -> dict[str, Any]:
    """Embeddings as ``aiport embed --json`` prints them."""
    return {
        "model": response.model,
        "provider": response.provider,
        "embeddings": response.embeddings,
        "usage": usage_document(response.usage),
    }


def model_document(model: ProviderModel) -> dict[str, Any]:
    """One model as ``aiport models --json`` prints it."""
    return {
        "id": model.qualified_id,
        "model": model.id,
        "provider": model.provider,
        "description": model.description,
        "capabilities": model.capabilities.names(),
        "context_window": model.context_window,
        "max_output_tokens": model.max_output_tokens,
        "input_price_per_million": model.input_price_per_million,
        "output_price_per_million": model.output_price_per_million,
        "cached_input_price_per_million": model.cached_input_price_per_million,
        "cache_write_price_per_million": model.cache_write_price_per_million,
        "reasoning_price_per_million": model.reasoning_price_per_million,
        "deprecated": model.deprecated.isoformat() if model.deprecated else None,
        "aliases": list(model.aliases),
    }


def usage_line(response: ModelCompletionResponse) -> str:
    """One line of call statistics: model, finish reason, tokens, latency, cost."""
    usage = response.usage
    parts = [
        f"{response.provider}:{response.model}",
        response.finish_reason,
        f"{usage.input_tokens} in / {usage.output_tokens} out tokens",
        f"{response.latency:.2f} s",
    ]
    if response.cost is not None:
        parts.append(f"${response.cost:.6f}")
    return " · ".join(parts)


# ---------------------------------------------------------------------- tables


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    wrap: Collection[str] = (),
) -> Table:
    """A table whose cells are printed literally (no markup), ``None`` shown as ``-``.

    Only the ``wrap`` columns wrap when the terminal is narrow; the others keep their
    values on one line (ids, URLs and numbers are unreadable when folded).
    """
    result = Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
        show_edge=False,
        expand=False,
    )
    for column in columns:
        wraps = column in wrap
        result.add_column(column, no_wrap=not wraps, min_width=len(column) if wraps else None)
    for row in rows:
        result.add_row(*(cell if isinstance(cell, Text) else Text(_cell(cell)) for cell in row))
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_tokens(value: int | None) -> str:
    """A token count for people: ``200k``, ``1M``, ``1.05M``, ``8,191``; ``-`` when unknown."""
    if value is None:
        return "-"
    if value and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value and value % 1_000 == 0:
        return f"{value // 1_000}k"
    return f"{value:,}"


def format_price(value: float | None) -> str:
    """A price per million tokens (``$2.50``, ``$0.075``: up to 4 decimals, at least 2),
    ``-`` when unknown."""
    if value is None:
        return "-"
    whole, _, decimals = f"{value:,.4f}".partition(".")
    return f"${whole}.{decimals.rstrip('0').ljust(2, '0')}"


# ---------------------------------------------------------------------- masking


def mask_url(url: str) -> str:
    """``url`` without credentials: user info and sensitive query values are masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "****"
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "****@" + (f"[{host}]" if ":" in host else host)
        if port is not None:
            netloc += f":{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "****" if _SENSITIVE_NAME.search(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_sensitive(value: Any) -> Any:
    """A copy of a JSON-like value with every sensitive-looking entry masked.

    A key named like a credential (``api_key``, ``Authorization``, ``token``...) has its
    string value replaced by :func:`describe_secret`'s view; URLs lose their user info.
    """
    from aiport._secrets import describe_secret

    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and _SENSITIVE_NAME.search(str(key)):
                out[key] = describe_secret(item)
            elif isinstance(item, str) and str(key).endswith("url"):
                out[key] = mask_url(item)
            else:
                out[key] = mask_sensitive(item)
        return out
    if isinstance(value, list | tuple):
        return [mask_sensitive(item) for item in value]
    return value
