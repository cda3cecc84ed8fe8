"""The providers' Batch APIs: OpenAI Files + Batch, Anthropic Message Batches.

OpenAI: ``POST /v1/files`` (multipart, purpose ``batch`` needs a ``.jsonl`` file),
``GET /v1/files/{id}[/content]``, ``POST /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``. Anthropic: ``POST /v1/messages/batches``,
``GET /v1/messages/batches/{id}[/results]``, ``POST /v1/messages/batches/{id}/cancel``.

Each request of a batch is answered at creation by the ordinary route
(``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/messages``), with the creating
call's credentials, so answers follow the documented deterministic rules; a request
whose model is ``"fail"`` gets the provider's model-not-found error, an invalid one the
route's own 400. Results are revealed when the batch completes: ``Emulator(batch_delay=N)``
with an int answers N status polls ``in_progress`` first (default 1: the second poll sees
the batch done), with a float after that many seconds. Result files list requests in a
shuffled (seeded) order, as the real APIs do not promise input order. A cancelled batch
ran nothing: OpenAI has no result lines for it, Anthropic lists every request
``canceled``. An OpenAI input file with a bad line fails the batch at its first poll.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _content as c
from ._anthropic import AnthropicRoutes
from ._faults import Call, Fault, Reply, SSEEvent
from ._openai import OpenAIRoutes

_ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions")
_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_DAY = 24 * 3600
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_FAIL_MODEL = "fail"
_OPENAI_TERMINAL = ("completed", "failed", "expired", "cancelled")
#: Fields of a new OpenAI batch object that are null until something happens.
_OPENAI_UNSET = (
    *("model", "errors", "output_file_id", "error_file_id", "in_progress_at", "finalizing_at"),
    *("completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at"),
)


def _now_rfc3339(offset: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    data: dict[str, Any]  # the wire object, updated in place
    headers: dict[str, str]  # of the creating call, to serve later requests alike
    created: float  # time.monotonic() at creation
    results: list[dict[str, Any]] = field(default_factory=list)  # result lines
    problems: list[dict[str, Any]] = field(default_factory=list)  # OpenAI validation errors
    polls: int = 0
    cancelled: bool = False


class _Timing:
    """When a batch is done: after ``delay`` polls (an int) or seconds (a float)."""

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError("batch_delay must be >= 0")
        self._delay = delay

    def done(self, batch: _Batch) -> bool:
        if isinstance(self._delay, int):
            return batch.polls > self._delay
        return time.monotonic() - batch.created >= self._delay


class ProviderBatchRoutes(ABC):
    """What the emulator's dispatcher needs of a provider's routes; errors delegate."""

    def __init__(self, base: OpenAIRoutes | AnthropicRoutes, timing: _Timing) -> None:
        self._base = base
        self._timing = timing
        self._batches: dict[str, _Batch] = {}

    @abstractmethod
    def handle(self, call: Call) -> Reply:
        """Answer one batch or file request."""

    def status_error(self, call: Call, fault: Fault) -> Reply:
        return self._base.status_error(call, fault)

    def context_length_error(self, call: Call) -> Reply:
        return self._base.context_length_error(call)

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        return self._base.stream_error_event(fault)

    def stream_error_status(self, fault: Fault) -> Fault:
        return self._base.stream_error_status(fault)

    def _refused(self, call: Call) -> Reply | None:
        """The base routes' answer when auth (or the API version) is wrong, else None.

        An unknown path is the base routes' 404, given only once the credentials passed.
        """
        probe = self._base.handle(call)
        return None if probe.status == 404 else probe

    @staticmethod
    def _item_call(call: Call, index: int, path: str, body: Any) -> Call:
        raw = json.dumps(body, separators=(",", ":")).encode()
        headers = {k: v for k, v in call.headers.items() if k != "x-emulator-fault"}
        return Call("POST", path, {}, headers, body, raw, call.seq * 100_000 + index)


class OpenAIBatchRoutes(ProviderBatchRoutes):
    """OpenAI's Files and Batch endpoints."""

    def __init__(self, base: OpenAIRoutes, timing: _Timing) -> None:
        super().__init__(base, timing)
        self._openai = base
        self._files: dict[str, tuple[dict[str, Any], bytes]] = {}

    def _error(self, call: Call, status: int, message: str, param: str | None = None) -> Reply:
        return self._openai.error(call, status, message, param=param)

    def handle(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused is not None:
            return refused
        parts = call.path.strip("/").split("/")[1:]  # without "v1"
        match call.method, parts:
            case "POST", ["files"]:
                return self._upload(call)
            case "GET", ["files", file_id]:
                return self._file(call, file_id, content=False)
            case "GET", ["files", file_id, "content"]:
                return self._file(call, file_id, content=True)
            case "POST", ["batches"]:
                return self._create(call)
            case "GET", ["batches", batch_id]:
                return self._retrieve(call, batch_id)
            case "POST", ["batches", batch_id, "cancel"]:
                return self._cancel(call, batch_id)
        return self._openai.not_found(call)

    # ------------------------------------------------------------------ files

    def _store(self, call: Call, name: str, purpose: str, content: bytes, seed: str) -> str:
        file_id = "file-" + c.base62(c.digest(seed, str(call.seq), name), 22)
        created = int(time.time())
        self._files[file_id] = (
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": created,
                "expires_at": created + 30 * _DAY if purpose.startswith("batch") else None,
                "filename": name,
                "purpose": purpose,
                "status": "processed",
                "status_details": None,
            },
            content,
        )
        return file_id

    def _upload(self, call: Call) -> Reply:
        content_type = call.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._error(call, 400, "Expected a multipart/form-data body.")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + call.raw
        )
        form: dict[str, str] = {}
        upload: tuple[str, bytes] | None = None
        for part in message.iter_parts() if message.is_multipart() else ():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if name == "file":
                upload = (part.get_filename() or "upload", data)
            elif isinstance(name, str):
                form[name] = data.decode("utf-8", errors="replace")
        purpose = form.get("purpose")
        if purpose is None:
            return self._error(call, 400, "Missing required parameter: 'purpose'.", "purpose")
        if purpose not in _PURPOSES:
            return self._error(call, 400, f"Invalid value for 'purpose': '{purpose}'.", "purpose")
        if upload is None:
            return self._error(call, 400, "Missing required parameter: 'file'.", "file")
        name, data = upload
        if purpose == "batch" and not name.endswith(".jsonl"):
            return self._error(call, 400, "Invalid file format for Batch API. Must be .jsonl")
        file_id = self._store(call, name, purpose, data, call.raw.hex()[:64])
        return Reply.json(200, self._files[file_id][0], self._openai.headers(call))

    def _file(self, call: Call, file_id: str, *, content: bool) -> Reply:
        stored = self._files.get(file_id)
        if stored is None:
            return self._error(call, 404, f"No such File object: {file_id}", "id")
        if not content:
            return Reply.json(200, stored[0], self._openai.headers(call))
        headers = {**self._openai.headers(call), "Content-Type": "application/octet-stream"}
        return Reply(200, headers, stored[1])

    # ------------------------------------------------------------------ batches

    def _create(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else None
        if body is None:
            return self._error(call, 400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(body.get(name), str):
                return self._error(call, 400, f"Missing required parameter: '{name}'.", name)
        if body["endpoint"] not in _ENDPOINTS:
            return self._error(call, 400, f"Invalid value: '{body['endpoint']}'.", "endpoint")
        if body["completion_window"] != "24h":
            message = f"Invalid value: '{body['completion_window']}'. Supported values are: '24h'."
            return self._error(call, 400, message, "completion_window")
        stored = self._files.get(body["input_file_id"])
        if stored is None:
            message = f"No such File object: {body['input_file_id']}"
            return self._error(call, 404, message, "input_file_id")
        if stored[0]["purpose"] != "batch":
            message = "The input file must be uploaded with purpose 'batch'."
            return self._error(call, 400, message, "input_file_id")
        batch_id = "batch_" + c.digest(call.raw, str(call.seq), "batch").hex()[:32]
        created = int(time.time())
        data = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "created_at": created,
            "expires_at": created + _DAY,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "usage": _usage(0, 0),
            **dict.fromkeys(_OPENAI_UNSET),
        }
        batch = _Batch(data, dict(call.headers), time.monotonic())
        self._run(call, batch, stored[1])
        self._batches[batch_id] = batch
        return Reply.json(200, batch.data, self._openai.headers(call))

    def _run(self, call: Call, batch: _Batch, content: bytes) -> None:
        """Validate the input file, then answer every request (revealed when done)."""
        endpoint = batch.data["endpoint"]
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        for number, text in enumerate(content.splitlines(), start=1):
            if not text.strip():
                continue
            problem = _line_problem(text, endpoint, seen)
            if problem is not None:
                code, message = problem
                batch.problems.append({"code": code, "message": message, "line": number})
            else:
                lines.append(json.loads(text))
        if not lines and not batch.problems:
            batch.problems.append({"code": "empty_file", "message": "The input file is empty."})
        if batch.problems:
            return
        batch.data["request_counts"]["total"] = len(lines)
        model = lines[0]["body"].get("model")
        batch.data["model"] = model if isinstance(model, str) else None
        for index, line in enumerate(lines):
            item = self._item_call(call, index, line["url"], line["body"])
            if line["body"].get("model") == _FAIL_MODEL:
                message = (
                    f"The model `{_FAIL_MODEL}` does not exist or you do not have access to it."
                )
                reply = self._openai.error(item, 404, message, code="model_not_found")
            else:
                reply = self._openai.handle(item)
            if reply.events is not None:
                reply = self._error(item, 400, "Streaming is not supported in the Batch API.")
            answer = json.loads(reply.body) if reply.body else None
            batch.results.append(
                {
                    "id": "batch_req_" + c.digest(item.raw, line["custom_id"]).hex()[:32],
                    "custom_id": line["custom_id"],
                    "response": {
                        "status_code": reply.status,
                        "request_id": reply.headers.get("x-request-id"),
                        "body": answer,
                    },
                    "error": None,
                }
            )

    def _retrieve(self, call: Call, batch_id: str) -> Reply:
        batch = self._batches.get(batch_id)
        if batch is None:
            return self._error(call, 404, f"No batch found with id '{batch_id}'.")
        batch.polls += 1
        self._advance(call, batch)
        return Reply.json(200, batch.data, self._openai.headers(call))

    def _advance(self, call: Call, batch: _Batch) -> None:
        data = batch.data
        if data["status"] in _OPENAI_TERMINAL:
            return
        now = int(time.time())
        if batch.cancelled:
            data.update(status="cancelled", cancelled_at=now)
        elif batch.problems:
            data.update(status="failed", failed_at=now)
            data["errors"] = {
                "object": "list",
                "data": [{"param": None, **p} for p in batch.problems],
            }
        elif not self._timing.done(batch):
            data.update(status="in_progress", in_progress_at=data["in_progress_at"] or now)
        else:
            random.Random(data["id"]).shuffle(batch.results)
            ok = [r for r in batch.results if r["response"]["status_code"] < 300]
            bad = [r for r in batch.results if r["response"]["status_code"] >= 300]
            for name, lines in (("output", ok), ("error", bad)):
                if lines:
                    content = b"".join(json.dumps(r).encode() + b"\n" for r in lines)
                    filename = f"batch_{data['id']}_{name}.jsonl"
                    file_id = self._store(call, filename, "batch_output", content, data["id"])
                    data[f"{name}_file_id"] = file_id
            usages = [r["response"]["body"].get("usage") or {} for r in ok]
            data["usage"] = _usage(
                sum(u.get("prompt_tokens", 0) for u in usages),
                sum(u.get("completion_tokens", 0) for u in usages),
            )
            data["request_counts"].update(completed=len(ok), failed=len(bad))
            data.update(
                status="completed",
                in_progress_at=data["in_progress_at"] or now,
                finalizing_at=now,
                completed_at=now,
            )

    def _cancel(self, call: Call, batch_id: str) -> Reply:
        batch = self._batches.get(batch_id)
        if batch is None:
            return self._error(call, 404, f"No batch found with id '{batch_id}'.")
        status = batch.data["status"]
        if status in _OPENAI_TERMINAL or batch.cancelled:
            return self._error(call, 400, f"Cannot cancel a batch with status '{status}'.")
        batch.cancelled = True
        batch.data.update(status="cancelling", cancelling_at=int(time.time()))
        return Reply.json(200, batch.data, self._openai.headers(call))


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _line_problem(text: bytes, endpoint: str, seen: set[str]) -> tuple[str, str] | None:
    """Why a line of an OpenAI input file is refused (code, message), or None."""
    try:
        line = json.loads(text)
    except ValueError:
        return "invalid_json_line", "This line is not parseable as valid JSON."
    if not isinstance(line, dict):
        return "invalid_request", "Each line must be a JSON object."
    for name in ("custom_id", "method", "url", "body"):
        if name not in line:
            return "missing_required_parameter", f"Missing required parameter: '{name}'."
    if line["method"] != "POST":
        return "invalid_method", "The only supported method is POST."
    if line["url"] != endpoint:
        return "mismatched_endpoint", f"The url must match the batch endpoint '{endpoint}'."
    if not isinstance(line["body"], dict):
        return "invalid_request", "The body must be a JSON object."
    custom_id = str(line["custom_id"])
    if custom_id in seen:
        return "duplicate_custom_id", f"The custom_id '{custom_id}' is used more than once."
    seen.add(custom_id)
    return None


class AnthropicBatchRoutes(ProviderBatchRoutes):
    """Anthropic's Message Batches endpoints."""

    def __init__(self, base: AnthropicRoutes, timing: _Timing, base_url: Callable[[], str]):
        super().__init__(base, timing)
        self._anthropic = base
        self._base_url = base_url

    def _bad(self, call: Call, message: str, status: int = 400) -> Reply:
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return self._anthropic.error(call, status, kind, message)

    def handle(self, call: Call) -> Reply:
        refused = self._refused(call)
        if refused is not None:
            return refused
        parts = call.path.strip("/").split("/")[3:]  # after "v1/messages/batches"
        match call.method, parts:
            case "POST", []:
                return self._create(call)
            case "GET", [batch_id]:
                return self._retrieve(call, batch_id)
            case "GET", [batch_id, "results"]:
                return self._results(call, batch_id)
            case "POST", [batch_id, "cancel"]:
                return self._cancel(call, batch_id)
        return self._anthropic.not_found(call)

    def _create(self, call: Call) -> Reply:
        body = call.body
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list):
            return self._bad(call, "requests: Field required")
        if not requests:
            return self._bad(call, "requests: List should have at least 1 item")
        seen: set[str] = set()
        for i, request in enumerate(requests):
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                pattern = "^[a-zA-Z0-9_-]{1,64}$"
                return self._bad(call, f"requests.{i}.custom_id: String should match {pattern!r}")
            if custom_id in seen:
                return self._bad(call, f"requests.{i}.custom_id: duplicate custom_id '{custom_id}'")
            seen.add(custom_id)
            if not isinstance(request.get("params"), dict):
                return self._bad(call, f"requests.{i}.params: Field required")
        batch_id = "msgbatch_01" + c.base62(c.digest(call.raw, str(call.seq), "msgbatch"), 22)
        counts = {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0}
        data = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {**counts, "expired": 0},
            "created_at": _now_rfc3339(),
            "expires_at": _now_rfc3339(_DAY),
            **dict.fromkeys(("ended_at", "archived_at", "cancel_initiated_at", "results_url")),
        }
        batch = _Batch(data, dict(call.headers), time.monotonic())
        # Params are checked as each request runs (as Anthropic does): errors per item.
        for i, request in enumerate(requests):
            params = request["params"]
            item = self._item_call(call, i, "/v1/messages", params)
            if params.get("model") == _FAIL_MODEL:
                reply = self._bad(item, f"model: {_FAIL_MODEL}", 404)
            elif params.get("stream"):
                reply = self._bad(item, "stream: batch requests cannot be streamed")
            else:
                reply = self._anthropic.handle(item)
            answer = json.loads(reply.body)
            result = (
                {"type": "succeeded", "message": answer}
                if reply.status < 300
                else {"type": "errored", "error": answer}
            )
            batch.results.append({"custom_id": request["custom_id"], "result": result})
        self._batches[batch_id] = batch
        return Reply.json(200, batch.data, self._anthropic.headers(call))

    def _find(self, call: Call, batch_id: str) -> _Batch | Reply:
        batch = self._batches.get(batch_id)
        return batch if batch is not None else self._bad(call, f"batch: {batch_id}", 404)

    def _retrieve(self, call: Call, batch_id: str) -> Reply:
        batch = self._find(call, batch_id)
        if isinstance(batch, Reply):
            return batch
        batch.polls += 1
        data = batch.data
        if data["processing_status"] != "ended" and (batch.cancelled or self._timing.done(batch)):
            if batch.cancelled:
                for line in batch.results:
                    line["result"] = {"type": "canceled"}
            kinds = [line["result"]["type"] for line in batch.results]
            data["request_counts"] = {
                "processing": 0,
                "succeeded": kinds.count("succeeded"),
                "errored": kinds.count("errored"),
                "canceled": kinds.count("canceled"),
                "expired": kinds.count("expired"),
            }
            data.update(
                processing_status="ended",
                ended_at=_now_rfc3339(),
                results_url=f"{self._base_url()}/v1/messages/batches/{batch_id}/results",
            )
            random.Random(batch_id).shuffle(batch.results)
        return Reply.json(200, data, self._anthropic.headers(call))

    def _results(self, call: Call, batch_id: str) -> Reply:
        batch = self._find(call, batch_id)
        if isinstance(batch, Reply):
            return batch
        if batch.data["processing_status"] != "ended":
            return self._bad(call, f"Batch {batch_id} has not finished processing.")
        content = b"".join(
            json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in batch.results
        )
        headers = {**self._anthropic.headers(call), "Content-Type": "application/binary"}
        return Reply(200, headers, content)

    def _cancel(self, call: Call, batch_id: str) -> Reply:
        batch = self._find(call, batch_id)
        if isinstance(batch, Reply):
            return batch
        if batch.data["processing_status"] == "ended":
            return self._bad(call, f"Batch {batch_id} has already ended and cannot be canceled.")
        batch.cancelled = True
        batch.data.update(processing_status="canceling", cancel_initiated_at=_now_rfc3339())
        return Reply.json(200, batch.data, self._anthropic.headers(call))


class BatchRoutes:
    """Both providers' batch endpoints; ``route`` tells which paths they own."""

    def __init__(
        self,
        *,
        openai: OpenAIRoutes,
        anthropic: AnthropicRoutes,
        base_url: Callable[[], str],
        delay: float = 1,
    ) -> None:
        timing = _Timing(delay)
        self.openai = OpenAIBatchRoutes(openai, timing)
        self.anthropic = AnthropicBatchRoutes(anthropic, timing, base_url)

    def route(self, path: str) -> ProviderBatchRoutes | None:
        """The routes serving ``path``, or None for a path that is not a batch endpoint."""
        if path == "/v1/messages/batches" or path.startswith("/v1/messages/batches/"):
            return self.anthropic
        for prefix in ("/v1/files", "/v1/batches"):
            if path == prefix or path.startswith(prefix + "/"):
                return self.openai
        return None
