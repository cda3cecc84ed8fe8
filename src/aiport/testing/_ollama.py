"""Ollama's native wire format: ``/api/chat``, ``/api/embed``, ``/api/tags``, ``/api/version``.

Served under the emulator's root (``Emulator.ollama_base_url``), as a local Ollama serves
them under ``http://localhost:11434``. The shared rules of :mod:`aiport.testing` apply
(token counting, answers, tool selection, schema-driven JSON, embeddings); what is
Ollama's own:

Models
    Only the models in :data:`PULLED` exist (a name without a tag means ``:latest``); any
    other gets Ollama's 404, ``model 'x' not found`` from ``/api/chat`` and ``model "x" not
    found, try pulling it first`` from ``/api/embed``. ``GET /api/tags`` lists them. Chat
    with an embedding-only model is a 400 (``"x" does not support chat``), tools with a
    model without tool support a 400 (``does not support tools``), images for a model
    without vision a 500 (``this model is missing data required for image input``).
Requests
    ``stream`` defaults to true, as in Ollama: only ``"stream": false`` gets one JSON
    object. ``options.num_predict`` (> 0) is the output budget, ``options.stop`` the stop
    sequences; ``format`` is ``"json"`` (answer ``{"echo": <last user text>}``) or a JSON
    schema (an instance of it). Images are base64 strings in a message's ``images``; each
    counts 85 prompt tokens. Tool-call arguments in the history count their compact JSON.
    A request with no messages loads the model (``done_reason`` ``load``; ``unload``
    with ``keep_alive`` 0).
Tools
    As for OpenAI (offered tools whose names occur in the last user text, else the first;
    Ollama has no ``tool_choice`` and always allows parallel calls); calls are
    ``{"id": "call_" + 8 characters from a hash, "function": {"index", "name",
    "arguments": <object>}}`` with empty ``content`` and ``done_reason`` ``stop``. After
    ``tool`` messages the answer is ``"Tool results: " + "; ".join(contents)``.
Thinking
    Models with the ``thinking`` capability think unless ``think`` is false (Ollama's
    default for them): ``message.thinking`` is ``"Thinking about: <last user text>"``,
    streamed token by token before the answer and counted in ``eval_count`` but not in
    ``num_predict``. ``think`` on a model without it is a 400.
Context length
    What Ollama does: the context is ``options.num_ctx`` when given, else 4096 (Ollama's
    default), capped by the emulator's window for the model (``context_window`` /
    ``context_windows``). A prompt over it is *truncated silently* by default: the oldest
    messages are dropped (system messages and the last message are always kept) until it
    fits, and if the last message alone is still too long ``prompt_eval_count`` is capped
    at the context size; the answer is computed from what was kept. With ``"truncate":
    false`` the request fails instead with a 400 ``the input length exceeds the context
    length`` (also what the ``context-length`` fault sends). ``/api/embed`` truncates each
    input to the model's window the same way unless ``truncate`` is false.
Streams
    NDJSON (``application/x-ndjson``): one line per thinking token, then per answer token
    (``content``), one line with all tool calls, and a last line with empty content,
    ``done: true``, ``done_reason`` and the metrics (``prompt_eval_count``, ``eval_count``,
    durations in nanoseconds derived from the counts). ``stream_delay`` passes between
    lines; faults cut, stall or damage whole lines; the ``stream-error`` fault sends
    ``{"error": "..."}`` as a line, as Ollama does once a stream has started.
Errors
    Every error body is ``{"error": "<text>"}`` with the status (status faults use
    Ollama-style texts and honour ``retry-after``).
Auth
    A local Ollama needs no key: requests without ``Authorization`` are served. A request
    with a bearer key is checked against the emulator's ``api_keys`` (when set), as
    ollama.com does: an unknown key gets a 401 ``unauthorized``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _content as c
from ._faults import Call, Fault, Reply

if TYPE_CHECKING:
    from ._emulator import RoutesContext

__all__ = ["PULLED", "NDJSONLine", "OllamaRoutes", "PulledModel"]

#: Ollama's context size when a request sets no ``num_ctx``.
DEFAULT_NUM_CTX = 4096
#: What ``GET /api/version`` reports.
VERSION = "0.12.6"
NDJSON = "application/x-ndjson"
_STREAM_ERROR = "an error was encountered while running the model"
_CONTEXT_ERROR = "the input length exceeds the context length"
_NO_VISION = "this model is missing data required for image input"
_TOOL_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Deterministic stand-ins for Ollama's timings (nanoseconds).
_LOAD_NS = 1_000_000
_PROMPT_NS_PER_TOKEN = 100_000
_EVAL_NS_PER_TOKEN = 1_000_000


@dataclass(frozen=True, slots=True)
class NDJSONLine:
    """One line of an NDJSON stream (a :class:`~aiport.testing._faults.StreamEvent`)."""

    data: str

    def render(self) -> bytes:
        return self.data.encode() + b"\n"

    def broken(self) -> bytes:
        """The line with its JSON cut in half, so it no longer parses."""
        return self.data[: max(1, len(self.data) // 2)].encode() + b"\n"


@dataclass(frozen=True, slots=True)
class PulledModel:
    """A model the emulated server has pulled."""

    name: str  # with its tag
    family: str
    parameter_size: str
    quantization: str
    size: int  # bytes on disk
    capabilities: frozenset[str]  # completion, tools, vision, thinking, embedding
    embedding_length: int

    @property
    def digest(self) -> str:
        return c.digest(self.name, "ollama-model").hex()

    def tags_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": "2025-06-01T12:00:00.000000000Z",
            "size": self.size,
            "digest": self.digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": self.family,
                "families": [self.family],
                "parameter_size": self.parameter_size,
                "quantization_level": self.quantization,
            },
        }


_CHAT = frozenset({"completion"})
#: The models the emulated server has pulled.
PULLED: tuple[PulledModel, ...] = (
    PulledModel("llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2019393189, _CHAT | {"tools"}, 3072),
    PulledModel(
        "qwen3:latest", "qwen3", "8.2B", "Q4_K_M", 5225388164, _CHAT | {"tools", "thinking"}, 4096
    ),
    PulledModel("llava:latest", "llama", "7B", "Q4_0", 4733363377, _CHAT | {"vision"}, 4096),
    PulledModel("gemma3:latest", "gemma3", "4.3B", "Q4_K_M", 3338801804, _CHAT | {"vision"}, 2560),
    PulledModel(
        "nomic-embed-text:latest",
        "nomic-bert",
        "137M",
        "F16",
        274302450,
        frozenset({"embedding"}),
        768,
    ),
    PulledModel(
        "mxbai-embed-large:latest", "bert", "334M", "F16", 669615493, frozenset({"embedding"}), 1024
    ),
)


class _RefusedError(Exception):
    """An error answer, raised by validation and sent by ``handle``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _message_tokens(message: Mapping[str, Any]) -> int:
    tokens = c.MESSAGE_OVERHEAD + c.count_tokens(_text(message))
    images = message.get("images")
    tokens += c.IMAGE_TOKENS * (len(images) if isinstance(images, list) else 0)
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            arguments = function.get("arguments")
            tokens += c.count_tokens(json.dumps(arguments, separators=(",", ":")))
    return tokens


def _first_tokens(text: str, limit: int) -> str:
    """``text`` up to the end of its ``limit``-th prompt token."""
    ends = [match.end() for match in _TOKEN.finditer(text)]
    return text[: ends[limit - 1]] if 0 < limit <= len(ends) else text if limit > 0 else ""


def _now() -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp + "000Z"  # Ollama prints nanoseconds


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class OllamaRoutes:
    """Answers Ollama's native API. Holds no state of its own."""

    def __init__(self, context: RoutesContext) -> None:
        self._context = context
        self._models = {model.name: model for model in PULLED}

    # ------------------------------------------------------------------ errors

    @staticmethod
    def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
        return Reply.json(status, {"error": message}, headers)

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """Ollama's error body for ``fault.code`` (texts as Ollama and ollama.com send)."""
        status = fault.code or 500
        name = call.body.get("model") if isinstance(call.body, dict) else None
        name = name if isinstance(name, str) and name else "llama3.2"
        if status == 404:
            default = (
                f'model "{name}" not found, try pulling it first'
                if call.path == "/api/embed"
                else f"model '{name}' not found"
            )
        else:
            default = {
                400: "invalid request",
                401: "unauthorized",
                403: "forbidden",
                429: "too many requests, please try again later",
                502: "bad gateway",
                503: "server busy, please try again.  maximum pending requests exceeded",
            }.get(status, _STREAM_ERROR if status >= 500 else "invalid request")
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        return self.error(status, fault.message or default, headers)

    def context_length_error(self, call: Call) -> Reply:
        """What Ollama answers a prompt over the context when ``truncate`` is false."""
        return self.error(400, _CONTEXT_ERROR)

    def stream_error_event(self, fault: Fault) -> NDJSONLine:
        return NDJSONLine(_compact({"error": fault.message or _STREAM_ERROR}))

    def stream_error_status(self, fault: Fault) -> Fault:
        """Before a stream starts, Ollama reports the error as a status (500)."""
        return Fault.status(500, message=fault.message or _STREAM_ERROR)

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        refused = self._check_key(call)
        if refused is not None:
            return refused
        try:
            if call.method == "GET" and call.path == "/api/tags":
                return Reply.json(200, {"models": [m.tags_entry() for m in PULLED]})
            if call.method == "GET" and call.path == "/api/version":
                return Reply.json(200, {"version": VERSION})
            if call.method == "POST" and call.path in ("/api/chat", "/api/embed"):
                body = self._body(call)
                if call.path == "/api/chat":
                    return self._chat(call, body)
                return self._embed(body)
        except _RefusedError as exc:
            return self.error(exc.status, exc.message)
        return Reply(404, {"Content-Type": "text/plain"}, b"404 page not found")

    def _check_key(self, call: Call) -> Reply | None:
        header = call.headers.get("authorization")
        if header is None or self._context.api_keys is None:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self._context.api_keys:
            return self.error(401, "unauthorized")
        return None

    @staticmethod
    def _body(call: Call) -> dict[str, Any]:
        if not call.raw.strip():
            raise _RefusedError(400, "missing request body")
        if not isinstance(call.body, dict):
            first = call.raw.strip()[:1].decode("latin-1")
            raise _RefusedError(400, f"invalid character {first!r} looking for beginning of value")
        return call.body

    def _model(self, body: dict[str, Any], *, embed: bool = False) -> tuple[str, PulledModel]:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise _RefusedError(400, "model is required")
        model = self._models.get(name if ":" in name else f"{name}:latest")
        if model is None:
            if embed:
                raise _RefusedError(404, f'model "{name}" not found, try pulling it first')
            raise _RefusedError(404, f"model '{name}' not found")
        return name, model

    def _limit(self, name: str, model: PulledModel, options: Mapping[str, Any]) -> int:
        window = min(self._context.window(name), self._context.window(model.name))
        num_ctx = options.get("num_ctx")
        wanted = num_ctx if isinstance(num_ctx, int) and num_ctx > 0 else DEFAULT_NUM_CTX
        return min(wanted, window)

    # ------------------------------------------------------------------ chat

    def _chat(self, call: Call, body: dict[str, Any]) -> Reply:
        name, model = self._model(body)
        messages = body.get("messages")
        if messages is None:
            messages = []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
        ):
            raise _RefusedError(
                400, "json: cannot unmarshal messages: expected objects with a string role"
            )
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise _RefusedError(400, "json: cannot unmarshal options: expected an object")
        stream = body.get("stream") is not False
        if not messages:
            reason = "unload" if body.get("keep_alive") in (0, "0", "0s") else "load"
            return self._reply(name, stream, reason=reason)
        # A thinking model thinks unless told not to (Ollama's default); "high", "low"...
        # ask for it too.
        think = body.get("think")
        asked = think not in (None, False, "")
        if asked and "thinking" not in model.capabilities:
            raise _RefusedError(400, f'"{name}" does not support thinking')
        thinks = "thinking" in model.capabilities and (asked or think is None)
        if "completion" not in model.capabilities:
            raise _RefusedError(400, f'"{name}" does not support chat')
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        if tools and "tools" not in model.capabilities:
            raise _RefusedError(400, "does not support tools")
        self._check_images(messages, model)
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            raise _RefusedError(400, 'invalid format: expected "json" or a valid JSON schema')
        kept, prompt = self._fit(messages, self._limit(name, model, options), body)
        last = kept[-1]
        user_text, images = self._last_user(kept)
        calls: list[dict[str, Any]] = []
        text = ""
        reason = "stop"
        output = 0
        if tools and last.get("role") != "tool":
            calls = self._tool_calls(call, tools, user_text)
            output = sum(
                len(c.output_tokens(_compact(tc["function"]["arguments"]))) for tc in calls
            )
        else:
            limit = options.get("num_predict")
            stop = options.get("stop")
            stops = (
                [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
            )
            plan = c.plan_text(
                self._answer(kept, fmt, user_text, images),
                limit if isinstance(limit, int) and limit > 0 else None,
                stops,
            )
            text = plan.text
            output = len(plan.tokens)
            reason = "length" if plan.reason == "length" else "stop"
        thinking = "Thinking about: " + user_text if thinks else ""
        output += len(c.output_tokens(thinking))
        return self._reply(
            name,
            stream,
            text=text,
            thinking=thinking,
            calls=calls,
            reason=reason,
            prompt=prompt,
            output=output,
        )

    def _check_images(self, messages: list[dict[str, Any]], model: PulledModel) -> None:
        for message in messages:
            images = message.get("images")
            if not images:
                continue
            if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
                raise _RefusedError(400, "json: cannot unmarshal images: expected base64 strings")
            for image in images:
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    raise _RefusedError(400, "illegal base64 data at input byte 0") from None
            if "vision" not in model.capabilities:
                raise _RefusedError(500, _NO_VISION)

    @staticmethod
    def _fit(
        messages: list[dict[str, Any]], limit: int, body: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], int]:
        """The messages Ollama keeps within ``limit`` tokens, and the prompt tokens counted."""
        costs = [_message_tokens(m) for m in messages]
        total = sum(costs)
        if total <= limit:
            return messages, total
        if body.get("truncate") is False:
            raise _RefusedError(400, _CONTEXT_ERROR)
        # Drop from the front (keeping system messages) until it fits; the last message
        # always stays.
        for start in range(len(messages)):
            kept = [i for i in range(start) if messages[i].get("role") == "system"]
            kept += list(range(start, len(messages)))
            used = sum(costs[i] for i in kept)
            if used <= limit or start == len(messages) - 1:
                return [messages[i] for i in kept], min(used, limit)
        raise AssertionError("unreachable: the last message is always kept")

    @staticmethod
    def _last_user(messages: list[dict[str, Any]]) -> tuple[str, int]:
        for message in reversed(messages):
            if message.get("role") == "user":
                images = message.get("images")
                return _text(message), len(images) if isinstance(images, list) else 0
        return "", 0

    @staticmethod
    def _answer(messages: list[dict[str, Any]], fmt: Any, text: str, images: int) -> str:
        if fmt == "json":
            return json.dumps({"echo": text})
        if isinstance(fmt, dict):
            return _compact(c.schema_instance(fmt))
        if messages[-1].get("role") == "tool":
            results: list[str] = []
            for message in reversed(messages):
                if message.get("role") != "tool":
                    break
                results.insert(0, _text(message))
            return c.tool_results_answer(results)
        return c.user_answer(text, images)

    @staticmethod
    def _tool_calls(call: Call, tools: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
        schemas: dict[str, Any] = {}
        for tool in tools:
            function = tool.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                schemas[function["name"]] = function.get("parameters") or {"type": "object"}
        names = c.select_tools(list(schemas), None, text, parallel=True)
        calls = []
        for index, name in enumerate(names):
            seed = c.digest(call.raw, str(index), "ollama-tool")
            suffix = "".join(_TOOL_ID_CHARS[b % len(_TOOL_ID_CHARS)] for b in seed[:8])
            arguments = c.schema_instance(schemas[name])
            if not isinstance(arguments, dict):
                arguments = {"value": arguments}
            calls.append(
                {
                    "id": "call_" + suffix,
                    "function": {"index": index, "name": name, "arguments": arguments},
                }
            )
        return calls

    def _reply(
        self,
        name: str,
        stream: bool,
        *,
        text: str = "",
        thinking: str = "",
        calls: list[dict[str, Any]] | None = None,
        reason: str = "stop",
        prompt: int = 0,
        output: int = 0,
    ) -> Reply:
        metrics = {
            "done_reason": reason,
            "total_duration": _LOAD_NS
            + prompt * _PROMPT_NS_PER_TOKEN
            + output * _EVAL_NS_PER_TOKEN,
            "load_duration": _LOAD_NS,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": prompt * _PROMPT_NS_PER_TOKEN,
            "eval_count": output,
            "eval_duration": output * _EVAL_NS_PER_TOKEN,
        }
        if not stream:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            payload = {
                "model": name,
                "created_at": _now(),
                "message": message,
                "done": True,
                **metrics,
            }
            return Reply.json(200, payload)

        def line(message: dict[str, Any], done: bool = False) -> NDJSONLine:
            data: dict[str, Any] = {"model": name, "created_at": _now(), "message": message}
            data["done"] = done
            if done:
                data.update(metrics)
            return NDJSONLine(_compact(data))

        lines = [
            line({"role": "assistant", "content": "", "thinking": token})
            for token in c.output_tokens(thinking)
        ]
        lines += [line({"role": "assistant", "content": token}) for token in c.output_tokens(text)]
        if calls:
            lines.append(line({"role": "assistant", "content": "", "tool_calls": calls}))
        lines.append(line({"role": "assistant", "content": ""}, done=True))
        return Reply.stream(lines, content_type=NDJSON)

    # ------------------------------------------------------------------ embeddings

    def _embed(self, body: dict[str, Any]) -> Reply:
        name, model = self._model(body, embed=True)
        raw = body.get("input")
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
            texts = list(raw)
        elif raw is None:
            texts = []
        else:
            raise _RefusedError(400, "invalid input type")
        if not texts:
            return Reply.json(200, {"model": name, "embeddings": []})
        options = body.get("options")
        limit = self._limit(name, model, options if isinstance(options, dict) else {})
        truncate = body.get("truncate") is not False
        dims = model.embedding_length
        wanted = body.get("dimensions")
        if isinstance(wanted, int) and 0 < wanted < dims:
            dims = wanted
        vectors: list[list[float]] = []
        total = 0
        for text in texts:
            tokens = c.count_tokens(text)
            seen = text
            if tokens > limit:
                if not truncate:
                    raise _RefusedError(400, _CONTEXT_ERROR)
                seen, tokens = _first_tokens(text, limit), limit
            vectors.append(c.embedding(model.name, seen, dims))
            total += tokens
        payload = {
            "model": name,
            "embeddings": vectors,
            "total_duration": _LOAD_NS + total * _PROMPT_NS_PER_TOKEN,
            "load_duration": _LOAD_NS,
            "prompt_eval_count": total,
        }
        return Reply.json(200, payload)
