"""Mistral wire format: chat completions (plain and streamed), embeddings and errors.

Served under ``/mistral`` (``Emulator.mistral_base_url`` is ``url + "/mistral/v1"``):
``POST /mistral/v1/chat/completions`` and ``POST /mistral/v1/embeddings``.

Mistral's chat API is a dialect of OpenAI's, so the answers reuse the OpenAI routes'
logic (the same echo answers, tool selection, schema-driven JSON, token counts and stop
rules; see :mod:`aiport.testing`). What differs is checked and answered the Mistral way:

- Requests are validated like Mistral's API does: an unknown field anywhere (``seed``,
  ``stream_options``, ``max_completion_tokens``, a ``name`` on a user message...) is a
  422 ``{"detail": [{"type": "extra_forbidden", "loc": [...], "msg": ...}]}``;
  ``tool_choice`` is ``auto``/``none``/``any``/``required`` or a named function; tool-call
  ids must be nine letters or digits; the last message must be a user or tool message, or
  an assistant message with ``prefix: true``.
- A prefix (prefill) is continued: the answer is the full answer with the prefix removed
  from its start when it starts with it, and the content returned is the prefix followed
  by that continuation (Mistral repeats the prefix). Output tokens count the continuation.
- Answers: ids of 32 hex characters, ``usage`` with prompt/completion/total tokens only,
  tool-call ids of nine base62 characters derived from the request, each tool call sent
  whole in one stream delta; a stream's last chunk carries ``finish_reason`` and ``usage``,
  then ``data: [DONE]``. Request ids in ``x-kong-request-id`` and
  ``mistral-correlation-id``.
- Errors: ``{"object": "error", "message", "type", "param", "code"}``; 401 is the
  gateway's ``{"message": "Unauthorized", "request_id": ...}``; 429 has type
  ``rate_limited`` (code ``"1300"``); the context-length 400 says "Prompt contains N
  tokens and 0 draft tokens, too large for model with M maximum context length". The
  in-stream error is that error object as a ``data:`` event.
- Embeddings: ``mistral-embed`` gives 1024 dimensions and refuses ``output_dimension``;
  ``codestral-embed*`` gives 1536 by default and accepts ``output_dimension`` up to 3072;
  ``encoding_format`` ``float`` or ``base64``; ``output_dtype`` only ``float``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _content as c
from ._faults import Call, Fault, Reply, SSEEvent

if TYPE_CHECKING:
    from ._emulator import RoutesContext

PREFIX = "/mistral"

_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "metadata",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "min_tokens",
        "repetition_penalty",
        "top_k",
        "logprobs",
        "top_logprobs",
        "prompt_logprobs",
        "top_prompt_logprobs",
        "n",
        "prediction",
        "parallel_tool_calls",
        "reasoning_effort",
        "prompt_mode",
        "guardrails",
        "prompt_cache_key",
        "service_tier",
        "safe_prompt",
    }
)
_MESSAGE_FIELDS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_EMBED_FIELDS = frozenset(
    {"model", "input", "metadata", "output_dimension", "output_dtype", "encoding_format"}
)
_TOOL_CHOICES = ("auto", "none", "any", "required")
_TOOL_CALL_ID = re.compile(r"^[A-Za-z0-9]{9}$")
_STATUS_TYPES: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    429: ("rate_limited", "1300", "Rate limit exceeded"),
    500: ("internal_server_error", None, "Internal server error"),
    502: ("bad_gateway", None, "Bad gateway"),
    503: ("service_unavailable", None, "Service unavailable"),
    504: ("gateway_timeout", None, "Gateway timeout"),
}


class _RefusedError(Exception):
    """A request the API refuses: the status and the JSON body it answers with."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.payload = status, payload


def _api_error(
    message: str, type_: str = "invalid_request_error", code: str | None = None
) -> _RefusedError:
    return _RefusedError(
        400, {"object": "error", "message": message, "type": type_, "param": None, "code": code}
    )


def _detail(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def _unprocessable(details: list[dict[str, Any]]) -> _RefusedError:
    return _RefusedError(422, {"detail": details})


def _extra(loc: list[Any], fields: Mapping[str, Any], allowed: frozenset[str]) -> list[Any]:
    return [
        _detail("extra_forbidden", [*loc, key], "Extra inputs are not permitted", value)
        for key, value in fields.items()
        if key not in allowed
    ]


def _hex_id(call: Call, salt: str) -> str:
    return c.digest(call.raw, str(call.seq), salt).hex()[:32]


class MistralRoutes:
    """Answers Mistral requests (see the module docstring for the rules)."""

    def __init__(self, context: RoutesContext) -> None:
        self._context = context

    # ------------------------------------------------------------------ errors and headers

    def headers(self, call: Call) -> dict[str, str]:
        """The request-id headers every Mistral answer carries."""
        rid = _hex_id(call, "mistral-request")
        return {
            "x-kong-request-id": rid,
            "mistral-correlation-id": str(uuid.UUID(rid)),
        }

    def _reply(
        self, call: Call, status: int, payload: Any, extra: Mapping[str, str] | None = None
    ) -> Reply:
        return Reply.json(status, payload, {**self.headers(call), **(extra or {})})

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """The error Mistral sends with ``fault.code``, honouring the fault's overrides."""
        status = fault.code or 500
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        payload: dict[str, Any]
        if status in (401, 403) and fault.error_type is None:
            message = fault.message or ("Unauthorized" if status == 401 else "Forbidden")
            payload = {"message": message, "request_id": _hex_id(call, "mistral-request")}
        elif status == 404 and fault.error_type is None:
            payload = {"detail": fault.message or "Not Found"}
        elif status == 422 and fault.error_type is None:
            message = fault.message or "Value error, the request could not be processed"
            payload = {"detail": [_detail("value_error", ["body"], message, None)]}
        else:
            type_, code, message = _STATUS_TYPES.get(
                status, _STATUS_TYPES[500 if status >= 500 else 400]
            )
            payload = {
                "object": "error",
                "message": fault.message or message,
                "type": fault.error_type or type_,
                "param": None,
                "code": code,
            }
        return self._reply(call, status, payload, headers)

    def context_length_error(self, call: Call, used: int | None = None) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        window = self._context.window(str(body.get("model") or ""))
        if used is None:
            used = c.openai_prompt_tokens(body.get("messages"))
        used = max(used, window + 1)
        message = (
            f"Prompt contains {used} tokens and 0 draft tokens, too large for model with "
            f"{window} maximum context length"
        )
        payload = {
            "object": "error",
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        return self._reply(call, 400, payload)

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        error = {
            "object": "error",
            "message": fault.message or "Internal server error",
            "type": fault.error_type or "internal_server_error",
            "param": None,
            "code": None,
        }
        return SSEEvent(json.dumps(error, separators=(",", ":")))

    def stream_error_status(self, fault: Fault) -> Fault:
        status = 429 if fault.error_type == "rate_limited" else 500
        return Fault.status(status, error_type=fault.error_type, message=fault.message)

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        scheme, _, key = call.headers.get("authorization", "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        keys = self._context.api_keys
        if not key or (keys is not None and key not in keys):
            return self.status_error(call, Fault.status(401))
        path = call.path.removeprefix(PREFIX)
        if call.method != "POST" or path not in ("/v1/chat/completions", "/v1/embeddings"):
            return self._reply(call, 404, {"detail": "Not Found"})
        if not isinstance(call.body, dict):
            detail = _detail("json_invalid", ["body"], "JSON decode error", None)
            return self._reply(call, 422, {"detail": [detail]})
        try:
            if path == "/v1/embeddings":
                return self._embeddings(call, call.body)
            return self._chat(call, call.body)
        except _RefusedError as exc:
            return self._reply(call, exc.status, exc.payload)

    # ------------------------------------------------------------------ chat

    @staticmethod
    def _validate_chat(body: dict[str, Any]) -> None:
        details = _extra(["body"], body, _CHAT_FIELDS)
        for field in ("model", "messages"):
            if field not in body:
                details.append(_detail("missing", ["body", field], "Field required", body))
        messages = body.get("messages")
        if "messages" in body and not (isinstance(messages, list) and messages):
            details.append(
                _detail(
                    "too_short",
                    ["body", "messages"],
                    "List should have at least 1 item after validation, not 0",
                    messages,
                )
            )
            messages = []
        for i, msg in enumerate(messages if isinstance(messages, list) else []):
            role = msg.get("role") if isinstance(msg, dict) else None
            if not isinstance(role, str) or role not in _MESSAGE_FIELDS:
                details.append(
                    _detail(
                        "union_tag_invalid",
                        ["body", "messages", i],
                        "Input tag does not match any of the expected tags: 'assistant', "
                        "'system', 'tool', 'user'",
                        msg,
                    )
                )
                continue
            details.extend(_extra(["body", "messages", i, role], msg, _MESSAGE_FIELDS[role]))
        for i, tool in enumerate(body.get("tools") or []):
            function = tool.get("function") if isinstance(tool, dict) else None
            for field, expected in (("name", str), ("parameters", dict)):
                if not isinstance(function, dict) or not isinstance(function.get(field), expected):
                    loc = ["body", "tools", i, "function", field]
                    details.append(_detail("missing", loc, "Field required", tool))
        choice = body.get("tool_choice")
        if isinstance(choice, str) and choice not in _TOOL_CHOICES:
            details.append(
                _detail(
                    "literal_error",
                    ["body", "tool_choice"],
                    "Input should be 'auto', 'none', 'any' or 'required'",
                    choice,
                )
            )
        elif isinstance(choice, dict):
            function = choice.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                details.append(
                    _detail(
                        "missing",
                        ["body", "tool_choice", "function", "name"],
                        "Field required",
                        choice,
                    )
                )
        fmt = body.get("response_format")
        if isinstance(fmt, dict):
            kind = fmt.get("type")
            if kind not in ("text", "json_object", "json_schema"):
                details.append(
                    _detail(
                        "literal_error",
                        ["body", "response_format", "type"],
                        "Input should be 'text', 'json_object' or 'json_schema'",
                        kind,
                    )
                )
            schema = fmt.get("json_schema")
            if kind == "json_schema" and not (
                isinstance(schema, dict)
                and schema.get("name")
                and isinstance(schema.get("schema"), dict)
            ):
                details.append(
                    _detail(
                        "missing", ["body", "response_format", "json_schema"], "Field required", fmt
                    )
                )
        if details:
            raise _unprocessable(details)

    @staticmethod
    def _check_conversation(messages: list[dict[str, Any]]) -> None:
        pending: set[str] = set()
        for msg in messages:
            role = msg["role"]
            if role == "assistant":
                pending = set()
                for tool_call in msg.get("tool_calls") or []:
                    call_id = str(tool_call.get("id")) if isinstance(tool_call, dict) else ""
                    if not _TOOL_CALL_ID.match(call_id):
                        raise _api_error(
                            f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a "
                            "length of 9."
                        )
                    pending.add(call_id)
            elif role == "tool":
                call_id = str(msg.get("tool_call_id"))
                if call_id not in pending:
                    raise _api_error(f"Unexpected tool call id {call_id} in tool results")
        last = messages[-1]
        if last["role"] not in ("user", "tool") and not (
            last["role"] == "assistant" and last.get("prefix") is True
        ):
            raise _api_error(
                f"Expected last role User or Tool (or Assistant with prefix True) for serving "
                f"but got {last['role']}"
            )

    def _chat(self, call: Call, body: dict[str, Any]) -> Reply:
        self._validate_chat(body)
        messages: list[dict[str, Any]] = body["messages"]
        self._check_conversation(messages)
        model = str(body["model"])
        prompt = c.openai_prompt_tokens(messages)
        if prompt > self._context.window(model):
            return self.context_length_error(call, prompt)
        openai = self._context.openai
        prefix: str | None = None
        answering = body
        if messages[-1]["role"] == "assistant":
            prefix = " ".join(c.openai_text(messages[-1].get("content"))[0])
            answering = {**body, "messages": messages[:-1]}
        tool_calls = [] if prefix is not None else openai._tool_calls(answering)
        plan: c.TextPlan | None = None
        if tool_calls:
            finish = "tool_calls"
            completion = sum(len(c.output_tokens(args)) for _, args in tool_calls)
        else:
            full = openai._answer(answering)
            if prefix is not None and full.startswith(prefix):
                full = full[len(prefix) :]
            stop = body.get("stop")
            stops = (
                [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
            )
            limit = body.get("max_tokens")
            plan = c.plan_text(full, limit if isinstance(limit, int) else None, stops)
            finish = "length" if plan.reason == "length" else "stop"
            completion = len(plan.tokens)
        raw_n = body.get("n")
        n = raw_n if isinstance(raw_n, int) and raw_n > 0 else 1
        usage = {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion * n,
            "completion_tokens": completion * n,
        }
        calls = [
            {
                "id": c.base62(c.digest(call.raw, str(i)), 9),
                "type": "function",
                "function": {"name": name, "arguments": args},
                "index": i,
            }
            for i, (name, args) in enumerate(tool_calls)
        ]
        head = {
            "id": _hex_id(call, "mistral-chat"),
            "created": int(time.time()),
            "model": model,
        }
        if body.get("stream"):
            events = _chunks(
                head, prefix=prefix, plan=plan, calls=calls, finish=finish, usage=usage, n=n
            )
            return Reply.stream(events, self.headers(call))
        content = (prefix or "") + (plan.text if plan is not None else "")
        choices = [
            {
                "index": k,
                "message": {"role": "assistant", "tool_calls": calls or None, "content": content},
                "finish_reason": finish,
            }
            for k in range(n)
        ]
        payload = {**head, "object": "chat.completion", "choices": choices, "usage": usage}
        return self._reply(call, 200, payload)

    # ------------------------------------------------------------------ embeddings

    def _embeddings(self, call: Call, body: dict[str, Any]) -> Reply:
        details = _extra(["body"], body, _EMBED_FIELDS)
        for field in ("model", "input"):
            if field not in body:
                details.append(_detail("missing", ["body", field], "Field required", body))
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if "input" in body and not (
            isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)
        ):
            details.append(
                _detail("string_type", ["body", "input"], "Input should be a valid string", raw)
            )
        if details:
            raise _unprocessable(details)
        model = str(body["model"])
        if "embed" not in model:
            raise _api_error(f"Invalid model: {model}", "invalid_model", "1500")
        dims = 1536 if model.startswith("codestral-embed") else 1024
        wanted = body.get("output_dimension")
        if wanted is not None:
            if not model.startswith("codestral-embed"):
                raise _api_error(f"output_dimension is not supported for model {model}")
            if not isinstance(wanted, int) or isinstance(wanted, bool) or not 1 <= wanted <= 3072:
                raise _api_error("output_dimension must be an integer between 1 and 3072")
            dims = wanted
        dtype = body.get("output_dtype", "float")
        if dtype != "float":
            raise _api_error(f"the emulator only produces float embeddings, not {dtype!r}")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _api_error(f"encoding_format must be 'float' or 'base64', not {fmt!r}")
        data = []
        total = 0
        assert isinstance(texts, list)  # checked above
        for i, text in enumerate(texts):
            vector = c.embedding(model, text, dims)
            total += c.count_tokens(text)
            value: Any = c.embedding_base64(vector) if fmt == "base64" else vector
            data.append({"object": "embedding", "embedding": value, "index": i})
        payload = {
            "id": _hex_id(call, "mistral-embed"),
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0},
        }
        return self._reply(call, 200, payload)


def _chunks(
    head: dict[str, Any],
    *,
    prefix: str | None,
    plan: c.TextPlan | None,
    calls: list[dict[str, Any]],
    finish: str,
    usage: dict[str, Any],
    n: int,
) -> list[SSEEvent]:
    """The SSE events of a streamed Mistral chat completion."""
    base = {"id": head["id"], "object": "chat.completion.chunk", **head}

    def chunk(k: int, delta: dict[str, Any], reason: str | None = None, **extra: Any) -> SSEEvent:
        choice = {"index": k, "delta": delta, "finish_reason": reason}
        return SSEEvent(json.dumps({**base, "choices": [choice], **extra}, separators=(",", ":")))

    events: list[SSEEvent] = []
    for k in range(n):
        events.append(chunk(k, {"role": "assistant", "content": ""}))
        if prefix:
            events.append(chunk(k, {"content": prefix}))
        if plan is not None:
            events.extend(chunk(k, {"content": token}) for token in plan.tokens)
        if calls:
            events.append(chunk(k, {"tool_calls": calls}))
        last = k == n - 1
        events.append(chunk(k, {"content": ""}, finish, **({"usage": usage} if last else {})))
    events.append(SSEEvent("[DONE]"))
    return events
