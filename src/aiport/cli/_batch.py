"""``aiport batch``: run the completion requests of a JSONL file, results in a JSONL file.

Input: one JSON object per line, the options of one completion (``model``, ``messages``
in aiport's or the OpenAI chat style, ``temperature``...), with an optional
``custom_id`` carried to the output. A line in the OpenAI Batch API form (``{"custom_id",
"method", "url", "body": {...}}``) is read as its ``body``. Blank lines are skipped; a line
without ``model`` takes ``--model`` (else the configured ``default_model``).

Output: one line per input line, in input order: ``{"custom_id"?, "index", "response":
{...}}`` (the document ``aiport chat --json`` prints) or ``{"custom_id"?, "index", "line",
"error": {"code", "message", ...}}``. ``index`` counts requests from 0; ``line`` is the
line number in the input, so a failure can be found and fixed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from aiport._errors import InvalidRequestError, ProviderError
from aiport.cli._output import (
    Output,
    completion_document,
    error_document,
    error_lines,
    handle_errors,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiport._batch import BatchItemResult, BatchJob
    from aiport._service import ProviderService
    from aiport._types import ModelCompletionResponse

__all__ = ["batch_app"]

#: Failed lines listed on stderr before "... and N more".
_MAX_LISTED_FAILURES = 20
#: Plain progress (stderr not a terminal) prints a count at each tenth of the job.
_PLAIN_STEPS = 10


def _examples(*lines: str) -> str:
    return "**Examples**\n\n```\n" + "\n".join(lines) + "\n```"


batch_app = typer.Typer(
    help="Run many requests from a JSONL file, with bounded concurrency and a progress bar.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@dataclass(slots=True)
class _Line:
    """One request of the input file: where it was, and its options or what is wrong."""

    index: int
    line: int
    custom_id: Any = None
    has_custom_id: bool = False
    options: dict[str, Any] | None = None
    error: ProviderError | None = None


@batch_app.command(
    "run",
    epilog=_examples(
        "aiport batch run questions.jsonl -o answers.jsonl --model openai:gpt-4o-mini",
        "aiport batch run in.jsonl -o out.jsonl --concurrency 64",
        "aiport --json batch run in.jsonl -o out.jsonl | jq .failed",
    ),
)
def run(
    ctx: typer.Context,
    *,
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.jsonl",
            exists=True,
            dir_okay=False,
            readable=True,
            help="One JSON object of completion options per line.",
        ),
    ],
    output_path: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="OUTPUT.jsonl",
            dir_okay=False,
            help="Where to write one result per input line (replaced if it exists).",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", metavar="MODEL", help="The model of the lines that name none."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="The most requests in flight at once.")
    ] = 16,
    provider_batch: Annotated[
        bool,
        typer.Option(
            "--provider-batch",
            help=(
                "Send the lines through the provider's Batch API (OpenAI Batch, Anthropic "
                "Message Batches: half price, results within 24 h) instead of online calls. "
                "Every line must use the same model."
            ),
        ),
    ] = False,
    batch_id: Annotated[
        str | None,
        typer.Option(
            "--batch-id",
            metavar="ID",
            help="With --provider-batch: resume the batch ID instead of submitting again.",
        ),
    ] = None,
    json_mode: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON summary on stdout (same as the global --json)."
        ),
    ] = False,
) -> None:
    """Send every request of INPUT.jsonl (several at a time) and write the results in order.

    Shows a progress bar on a terminal (a count every tenth otherwise, nothing with
    --json), then a summary. Exits 0 when every line succeeded, 1 otherwise: lines that
    failed, or could not be read, are listed with their line number.
    """
    out = Output(json_mode=json_mode or bool(getattr(ctx.obj, "json", False)))
    if batch_id is not None and not provider_batch:
        out.fail("--batch-id only makes sense with --provider-batch", code=2)
    if input_path.resolve() == output_path.resolve():
        out.fail("the output file must not be the input file")
    try:
        text = input_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.fail(f"cannot read {input_path}: {_reason(exc)}")
    lines = _parse(text, model)
    try:
        # Opened before any request is sent: a bad path should not cost a whole run.
        sink = output_path.open("w", encoding="utf-8")
    except OSError as exc:
        out.fail(f"cannot write {output_path}: {_reason(exc)}")
    with sink, handle_errors(out):
        batch = _ProviderBatch(out, batch_id) if provider_batch else None
        results = _run_all(ctx, out, lines, concurrency, batch)
        _write(sink, lines, results)
    failed = [line for line in lines if line.error is not None]
    _summarise(out, input_path, output_path, lines, failed)
    if failed:
        raise typer.Exit(1)


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _parse(text: str, model: str | None) -> list[_Line]:
    """The requests of the input file, in order; a bad line keeps its place with its error."""
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        entry = _Line(index=len(lines), line=number)
        lines.append(entry)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            entry.error = _bad_line(f"not valid JSON ({exc.msg}, column {exc.colno})")
            continue
        if not isinstance(data, dict):
            entry.error = _bad_line(f"expected a JSON object, got {_json_type(data)}")
            continue
        if "custom_id" in data:
            entry.has_custom_id = True
            entry.custom_id = data.pop("custom_id")
        body = data.get("body")
        if isinstance(body, dict) and set(data) <= {"body", "method", "url"}:
            data = dict(body)  # an OpenAI Batch API line: the request is its body
        if model is not None and not data.get("model"):
            data["model"] = model
        entry.options = data
    return lines


def _bad_line(problem: str) -> InvalidRequestError:
    # The line number goes next to the error (output record, summary), as for the others.
    return InvalidRequestError(problem, reason="invalid_input")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


@dataclass
class _ProviderBatch:
    """How ``--provider-batch`` reports: the batch id (to resume with) as soon as known."""

    out: Output
    batch_id: str | None

    def submitted(self, job: BatchJob) -> None:
        self.out.info(
            f"batch {job.id} on {job.provider}: {job.counts.total} requests submitted; "
            f"if interrupted, resume with --provider-batch --batch-id {job.id}"
        )


def _run_all(
    ctx: typer.Context,
    out: Output,
    lines: list[_Line],
    concurrency: int,
    batch: _ProviderBatch | None = None,
) -> dict[int, ModelCompletionResponse]:
    """Send the readable lines; their errors go on the lines, the responses are returned."""
    todo = [line for line in lines if line.options is not None]
    if batch is not None:
        results = asyncio.run(_submit_batch(ctx, todo, batch))
    else:
        with _progress(out, len(todo)) as progress:
            results = asyncio.run(_complete(ctx, todo, concurrency, progress))
    responses: dict[int, ModelCompletionResponse] = {}
    for line, result in zip(todo, results, strict=True):
        if isinstance(result, ProviderError):
            line.error = result
        else:
            responses[line.index] = result
    return responses


async def _complete(
    ctx: typer.Context,
    todo: list[_Line],
    concurrency: int,
    progress: Callable[[int, int], None] | None,
) -> list[ModelCompletionResponse | ProviderError]:
    from aiport._bulk import complete_many

    # Built and closed on this loop, so its connections are closed before the loop ends.
    async with _service(ctx) as service:
        return await complete_many(
            service,
            [line.options for line in todo if line.options is not None],
            concurrency=concurrency,
            progress=progress,
        )


async def _submit_batch(
    ctx: typer.Context, todo: list[_Line], batch: _ProviderBatch
) -> list[ModelCompletionResponse | ProviderError]:
    requests = [line.options for line in todo if line.options is not None]
    models = {str(options.get("model") or "") for options in requests}
    if len(models) != 1 or "" in models:
        raise InvalidRequestError(
            "--provider-batch sends every line to one model: give --model, or the same "
            f"model on every line (found: {', '.join(sorted(models)) or 'none'})",
            reason="invalid_input",
        )
    async with _service(ctx) as service:
        items = await service.run_batch(
            models.pop(), requests, batch_id=batch.batch_id, on_submit=batch.submitted
        )
    return [item.response if item.response is not None else _item_error(item) for item in items]


def _item_error(item: BatchItemResult) -> ProviderError:
    error = item.exception()
    assert error is not None  # a result without a response carries its error
    return error


def _service(ctx: typer.Context) -> ProviderService:
    make = getattr(ctx.obj, "service", None)
    if callable(make):  # the global --config and --env, through the app's State
        service: ProviderService = make()
        return service
    from aiport._service import ProviderService

    return ProviderService()


def _write(sink: TextIO, lines: list[_Line], responses: dict[int, ModelCompletionResponse]) -> None:
    for line in lines:
        record: dict[str, Any] = {}
        if line.has_custom_id:
            record["custom_id"] = line.custom_id
        record["index"] = line.index
        response = responses.get(line.index)
        if response is not None:
            record["response"] = completion_document(response)
        else:
            assert line.error is not None
            record["line"] = line.line
            record["error"] = error_document(line.error)
        sink.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _summarise(
    out: Output, input_path: Path, output_path: Path, lines: list[_Line], failed: list[_Line]
) -> None:
    ok = len(lines) - len(failed)
    if out.json_mode:
        out.json(
            {
                "input": str(input_path),
                "output": str(output_path),
                "total": len(lines),
                "ok": ok,
                "failed": len(failed),
                "failed_lines": [line.line for line in failed],
            }
        )
    for line in failed[:_MAX_LISTED_FAILURES]:
        assert line.error is not None
        for message in error_lines(line.error):
            # error_lines starts with "error: "; say which line first.
            out.info(f"line {line.line}: {message}")
    if len(failed) > _MAX_LISTED_FAILURES:
        out.info(f"... and {len(failed) - _MAX_LISTED_FAILURES} more failed lines")
    if not out.json_mode:
        out.info(f"{ok} ok, {len(failed)} failed, {len(lines)} in all -> {output_path}")


# ---------------------------------------------------------------------- progress


def _stderr_is_terminal(out: Output) -> bool:
    return out.err_console.is_terminal


class _progress:  # noqa: N801  (used as a context manager, reads like one)
    """A progress display on stderr: a rich bar on a terminal, counts otherwise, none
    under ``--json``. Gives ``complete_many`` its callback (``None`` for no display)."""

    def __init__(self, out: Output, total: int) -> None:
        self._out = out
        self._total = total
        self._bar: Any = None
        self._task: Any = None
        self._next_count = 0

    def __enter__(self) -> Callable[[int, int], None] | None:
        if self._out.json_mode or not self._total:
            return None
        if _stderr_is_terminal(self._out):
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]batch[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self._out.err_console,
            )
            self._bar.start()
            self._task = self._bar.add_task("batch", total=self._total)
            return self._advance_bar
        self._next_count = max(1, self._total // _PLAIN_STEPS)
        return self._count

    def _advance_bar(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def _count(self, done: int, total: int) -> None:
        # Logs and CI output get a line per tenth, not a redraw per request.
        if done >= self._next_count or done == total:
            self._out.info(f"batch: {done}/{total} done")
            step = max(1, total // _PLAIN_STEPS)
            self._next_count = (done // step + 1) * step

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
