"""Cohere v2 wire format: chat (plain and streamed), embed, rerank and errors.

Routes: ``POST /v2/chat``, ``POST /v2/embed``, ``POST /v2/rerank``
(``Emulator.cohere_base_url`` is the emulator's root, as ``https://api.cohere.com`` is).
Answers follow the rules of :mod:`aiport.testing` (echo answers, tool selection,
schema-driven JSON, token counts, stop sequences and ``max_tokens``), in Cohere's shapes,
which match the responses Cohere recorded for the Vercel AI SDK's tests:

- Requests: ``Authorization: Bearer``; an unknown field anywhere is a 400; roles
  ``system``/``user``/``assistant``/``tool`` with their own fields only; ``tool_choice`` is
  ``REQUIRED`` or ``NONE`` (and needs tools); at most 5 ``stop_sequences``; ``p`` within
  0.01-0.99; a tool message must answer a call of the assistant message before it; images
  only for vision models (``*vision*``).
- Chat answers: ids are UUIDs; ``message.content`` is a list of ``text`` (and, with
  thinking, a first ``thinking``) items. With tools offered, ``tool_choice`` not ``NONE``
  and the last message not a tool result, the model calls the tools named in the last
  user text (else the first), always in parallel: ``tool_plan`` "I will use the <a> tool
  and the <b> tool.", calls with ids ``<name>_<12 base36 chars>``, finish ``TOOL_CALL``.
  ``response_format`` ``json_object`` answers ``{"echo": <text>}``, or an instance of its
  ``json_schema``. Finish reasons ``COMPLETE``, ``MAX_TOKENS``, ``STOP_SEQUENCE``.
  Thinking (``thinking: {"type": "enabled"}``, or a ``*reasoning*`` model unless
  disabled) adds "Thinking about: <text>", counted in the output tokens.
- Usage: ``billed_units`` counts the prompt (as OpenAI's rules) and the answer;
  ``tokens`` adds Cohere's prompt template: 495 input and 3 output tokens more;
  ``cached_tokens`` is 0.
- Streams: ``event: <type>`` + ``data:`` SSE events ``message-start``, per content item
  ``content-start``/``content-delta`` (one per token)/``content-end``, ``tool-plan-delta``
  (one per token), per call ``tool-call-start``/``tool-call-delta`` (8-character argument
  pieces)/``tool-call-end``, and ``message-end`` with ``finish_reason`` and ``usage``; no
  ``[DONE]``. The in-stream error is a ``message-end`` with ``finish_reason`` ``ERROR`` and
  an ``error`` message.
- Embed: ``input_type`` is required by v3 and later models (``*-v3.0``, ``embed-v4.0``);
  ``embed-v4.0`` gives 1536 dimensions (``output_dimension`` 256, 512, 1024 or 1536),
  ``*-light-v3.0`` 384, other models 1024 (and refuse ``output_dimension``); only
  ``float`` embeddings; at most 96 texts. Answers ``embeddings_by_type`` with ``meta``.
- Rerank: each document scores ``0.1 + 0.85 * (share of the query's words it contains)``
  plus a hash-derived jitter below 0.04; results best first, ``top_n`` kept; one search
  unit per 100 documents.
- Errors: ``{"id": <uuid>, "message": ...}`` (401 "invalid api token", 404 "model ... not
  found", 429 the trial-key limit message, 498, 499...); the context-length 400 says "too
  many tokens: total number of tokens in the prompt cannot exceed N - received M...".
  Request ids in ``x-debug-trace-id``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _content as c
from ._faults import Call, Fault, Reply, SSEEvent

if TYPE_CHECKING:
    from ._emulator import RoutesContext

#: Tokens Cohere's prompt template adds to every chat call (``usage.tokens`` only).
TEMPLATE_INPUT_TOKENS = 495
TEMPLATE_OUTPUT_TOKENS = 3

_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "strict_tools",
        "documents",
        "citation_options",
        "response_format",
        "safety_mode",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "k",
        "p",
        "logprobs",
        "tool_choice",
        "thinking",
        "priority",
        "stream",
    }
)
_MESSAGE_FIELDS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "tool_plan", "citations"}),
    "tool": frozenset({"role", "tool_call_id", "content"}),
}
_EMBED_FIELDS = frozenset(
    {
        "model",
        "input_type",
        "texts",
        "images",
        "inputs",
        "embedding_types",
        "output_dimension",
        "max_tokens",
        "truncate",
        "priority",
    }
)
_RERANK_FIELDS = frozenset(
    {"model", "query", "documents", "top_n", "max_tokens_per_doc", "relevant_spans", "priority"}
)
_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
_V4_DIMENSIONS = (256, 512, 1024, 1536)
_MAX_EMBED_TEXTS = 96
_MAX_RERANK_DOCUMENTS = 1000
_WORD = re.compile(r"\w+")
_STATUS_MESSAGES: Mapping[int, str] = {
    400: "invalid request: the request could not be understood",
    401: "invalid api token",
    403: "You do not have access to this resource",
    404: (
        "model '{model}' not found, make sure the correct model ID was used and that you "
        "have access to the model."
    ),
    422: "invalid request: the request could not be processed",
    429: (
        "You are using a Trial key, which is limited to 20 API calls / minute. You can "
        "continue to use the Trial key for free or upgrade to a Production key with higher "
        "rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on "
        "'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions"
    ),
    498: "invalid api token",
    499: "request cancelled by the client",
    500: "internal server error, this has been reported to our developers",
    502: "bad gateway",
    503: "service unavailable, please try again later",
    504: "gateway timeout",
}


class _RefusedError(Exception):
    """A request Cohere refuses with a 400 and this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _unknown_fields(where: str, body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for key in body:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise _RefusedError(
                f"invalid request: unknown field: parameter {name} is not a valid field"
            )


def _uuid(*parts: bytes | str) -> str:
    return str(uuid.UUID(bytes=c.digest(*parts)[:16], version=4))


def _base36(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 36)
        chars.append("0123456789abcdefghijklmnopqrstuvwxyz"[rest])
    return "".join(chars)


def _text_of(content: Any) -> tuple[list[str], int]:
    """Texts and image count of a Cohere message's content (documents as their JSON)."""
    texts, images = c.openai_text(content)
    if isinstance(content, list):
        for item in content:
            if isinstance(item, dict) and item.get("type") == "document":
                document = item.get("document") or {}
                texts.append(json.dumps(document.get("data", document), sort_keys=True))
    return texts, images


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    total = 0
    for msg in messages:
        texts, images = _text_of(msg.get("content"))
        total += c.MESSAGE_OVERHEAD + c.IMAGE_TOKENS * images
        total += sum(c.count_tokens(t) for t in texts)
        for tool_call in msg.get("tool_calls") or []:
            function = tool_call.get("function") if isinstance(tool_call, dict) else None
            args = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(args, str):
                total += c.count_tokens(args)
    return total


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "billed_units": {"input_tokens": prompt, "output_tokens": output},
        "tokens": {
            "input_tokens": prompt + TEMPLATE_INPUT_TOKENS,
            "output_tokens": output + TEMPLATE_OUTPUT_TOKENS,
        },
        "cached_tokens": 0,
    }


def _sse(payload: dict[str, Any]) -> SSEEvent:
    return SSEEvent(json.dumps(payload, separators=(",", ":")), event=payload["type"])


class CohereRoutes:
    """Answers Cohere v2 requests (see the module docstring for the rules)."""

    def __init__(self, context: RoutesContext) -> None:
        self._context = context

    # ------------------------------------------------------------------ errors and headers

    def headers(self, call: Call) -> dict[str, str]:
        """The trace-id header every Cohere answer carries."""
        return {"x-debug-trace-id": c.digest(call.raw, str(call.seq), "cohere").hex()[:32]}

    def error(
        self, call: Call, status: int, message: str, extra: Mapping[str, str] | None = None
    ) -> Reply:
        payload = {"id": _uuid(call.raw, str(call.seq), "cohere-error"), "message": message}
        return Reply.json(status, payload, {**self.headers(call), **(extra or {})})

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """The error Cohere sends with ``fault.code``, honouring the fault's overrides."""
        status = fault.code or 500
        model = call.body.get("model") if isinstance(call.body, dict) else None
        template = _STATUS_MESSAGES.get(status, _STATUS_MESSAGES[500 if status >= 500 else 400])
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        message = fault.message or template.format(model=model or "command-a-03-2025")
        return self.error(call, status, message, headers)

    def context_length_error(self, call: Call, used: int | None = None) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        window = self._context.window(str(body.get("model") or ""))
        messages = body.get("messages")
        if used is None:
            used = (
                _prompt_tokens([m for m in messages if isinstance(m, dict)])
                if isinstance(messages, list)
                else 0
            )
        used = max(used, window + 1)
        message = (
            f"too many tokens: total number of tokens in the prompt cannot exceed {window} - "
            f"received {used}. Try using a shorter prompt, or enabling prompt truncating. See "
            "https://docs.cohere.com/reference/chat for more details."
        )
        return self.error(call, 400, message)

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        delta = {"finish_reason": "ERROR", "error": fault.message or _STATUS_MESSAGES[500]}
        return _sse({"type": "message-end", "delta": delta})

    def stream_error_status(self, fault: Fault) -> Fault:
        status = 429 if fault.error_type in ("rate_limit", "too_many_requests") else 500
        return Fault.status(status, error_type=fault.error_type, message=fault.message)

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        scheme, _, key = call.headers.get("authorization", "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        if not key:
            return self.error(call, 401, "no api key supplied")
        keys = self._context.api_keys
        if keys is not None and key not in keys:
            return self.error(call, 401, _STATUS_MESSAGES[401])
        routes = {"/v2/chat": self._chat, "/v2/embed": self._embed, "/v2/rerank": self._rerank}
        handler = routes.get(call.path) if call.method == "POST" else None
        if handler is None:
            return self.error(call, 404, f"Not Found: {call.method} {call.path}")
        if not isinstance(call.body, dict):
            return self.error(call, 400, "invalid request: the body is not a JSON object")
        try:
            return handler(call, call.body)
        except _RefusedError as exc:
            return self.error(call, 400, exc.message)

    # ------------------------------------------------------------------ chat

    @staticmethod
    def _validate_chat(body: dict[str, Any]) -> list[dict[str, Any]]:
        _unknown_fields("", body, _CHAT_FIELDS)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _RefusedError("invalid request: model must be a non-empty string")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _RefusedError("invalid request: messages must be a non-empty list")
        vision = "vision" in model
        pending: set[str] = set()
        for i, msg in enumerate(messages):
            role = msg.get("role") if isinstance(msg, dict) else None
            if not isinstance(role, str) or role not in _MESSAGE_FIELDS:
                raise _RefusedError(
                    f"invalid request: messages[{i}].role must be one of system, user, "
                    "assistant, tool"
                )
            _unknown_fields(f"messages[{i}]", msg, _MESSAGE_FIELDS[role])
            if role == "assistant":
                pending = set()
                for tool_call in msg.get("tool_calls") or []:
                    if isinstance(tool_call, dict) and isinstance(tool_call.get("id"), str):
                        pending.add(tool_call["id"])
            elif role == "tool":
                call_id = msg.get("tool_call_id")
                if call_id not in pending:
                    raise _RefusedError(
                        f"invalid request: messages[{i}]: tool call id {call_id} does not match "
                        "any tool call of the previous assistant message"
                    )
            elif role == "user" and not vision and _text_of(msg.get("content"))[1]:
                raise _RefusedError(
                    f"invalid request: model '{model}' does not support image inputs"
                )
        tools = body.get("tools") or []
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _RefusedError(f"invalid request: tools[{i}].function.name is required")
        choice = body.get("tool_choice")
        if choice is not None:
            if choice not in ("REQUIRED", "NONE"):
                raise _RefusedError("invalid request: tool_choice must be one of REQUIRED, NONE")
            if not tools:
                raise _RefusedError("invalid request: tool_choice requires tools to be provided")
        stops = body.get("stop_sequences")
        if isinstance(stops, list) and len(stops) > 5:
            raise _RefusedError("invalid request: stop_sequences can contain at most 5 items")
        p = body.get("p")
        if isinstance(p, int | float) and not 0.01 <= p <= 0.99:
            raise _RefusedError("invalid request: p must be between 0.01 and 0.99")
        fmt = body.get("response_format")
        if fmt is not None:
            kind = fmt.get("type") if isinstance(fmt, dict) else None
            if kind not in ("text", "json_object"):
                raise _RefusedError(
                    "invalid request: response_format.type must be text or json_object"
                )
            if kind == "text" and fmt.get("json_schema") is not None:
                raise _RefusedError("invalid request: json_schema requires type json_object")
        return messages

    @staticmethod
    def _last_user_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
        for msg in reversed(messages):
            if msg.get("role") == "user":
                texts, images = _text_of(msg.get("content"))
                return " ".join(texts), images
        return "", 0

    def _answer(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> str:
        text, images = self._last_user_text(messages)
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            schema = fmt.get("json_schema")
            if isinstance(schema, dict):
                return json.dumps(c.schema_instance(schema), separators=(",", ":"))
            return json.dumps({"echo": text})
        if messages[-1].get("role") == "tool":
            results: list[str] = []
            for msg in reversed(messages):
                if msg.get("role") != "tool":
                    break
                results.insert(0, " ".join(_text_of(msg.get("content"))[0]))
            return c.tool_results_answer(results)
        return c.user_answer(text, images)

    def _tool_calls(
        self, call: Call, body: dict[str, Any], messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        tools = {
            t["function"]["name"]: t["function"].get("parameters") or {"type": "object"}
            for t in body.get("tools") or []
        }
        if not tools or body.get("tool_choice") == "NONE" or messages[-1].get("role") == "tool":
            return []
        text, _ = self._last_user_text(messages)
        names = c.select_tools(list(tools), None, text, parallel=True)
        return [
            {
                "id": f"{name}_{_base36(c.digest(call.raw, str(i)), 12)}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": json.dumps(c.schema_instance(tools[name]), separators=(",", ":")),
                },
            }
            for i, name in enumerate(names)
        ]

    @staticmethod
    def _thinks(model: str, body: dict[str, Any]) -> bool:
        thinking = body.get("thinking")
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        return kind == "enabled" or ("reasoning" in model and kind != "disabled")

    def _chat(self, call: Call, body: dict[str, Any]) -> Reply:
        messages = self._validate_chat(body)
        model: str = body["model"]
        prompt = _prompt_tokens(messages)
        if prompt > self._context.window(model):
            return self.context_length_error(call, prompt)
        calls = self._tool_calls(call, body, messages)
        thought = ""
        if self._thinks(model, body) and not calls:
            thought = "Thinking about: " + self._last_user_text(messages)[0]
        thought_tokens = c.output_tokens(thought)
        plan_tokens: list[str] = []
        text_plan: c.TextPlan | None = None
        if calls:
            names = [tc["function"]["name"] for tc in calls]
            plan_tokens = c.output_tokens(
                "I will use " + " and ".join(f"the {n} tool" for n in names) + "."
            )
            output = len(plan_tokens) + sum(
                len(c.output_tokens(tc["function"]["arguments"])) for tc in calls
            )
            finish = "TOOL_CALL"
        else:
            stops = [s for s in body.get("stop_sequences") or [] if isinstance(s, str)]
            limit = body.get("max_tokens")
            text_plan = c.plan_text(
                self._answer(body, messages), limit if isinstance(limit, int) else None, stops
            )
            output = len(text_plan.tokens)
            finish = {"length": "MAX_TOKENS", "stop": "STOP_SEQUENCE"}.get(
                text_plan.reason, "COMPLETE"
            )
        usage = _usage(prompt, output + len(thought_tokens))
        answer_id = _uuid(call.raw, str(call.seq), "cohere-chat")
        if body.get("stream"):
            events = _chat_events(
                answer_id,
                thought_tokens=thought_tokens,
                text_plan=text_plan,
                plan_tokens=plan_tokens,
                calls=calls,
                finish=finish,
                usage=usage,
            )
            return Reply.stream(events, self.headers(call))
        message: dict[str, Any] = {"role": "assistant"}
        if calls:
            message["tool_plan"] = "".join(plan_tokens)
            message["tool_calls"] = calls
        else:
            assert text_plan is not None
            content: list[dict[str, Any]] = []
            if thought:
                content.append({"type": "thinking", "thinking": "".join(thought_tokens)})
            content.append({"type": "text", "text": text_plan.text})
            message["content"] = content
        payload = {"id": answer_id, "message": message, "finish_reason": finish, "usage": usage}
        return Reply.json(200, payload, self.headers(call))

    # ------------------------------------------------------------------ embed

    def _embed(self, call: Call, body: dict[str, Any]) -> Reply:
        _unknown_fields("", body, _EMBED_FIELDS)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _RefusedError("invalid request: model must be a non-empty string")
        texts = body.get("texts")
        if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
            raise _RefusedError("invalid request: texts must be a non-empty list of strings")
        if len(texts) > _MAX_EMBED_TEXTS:
            raise _RefusedError(
                f"invalid request: texts must have at most {_MAX_EMBED_TEXTS} elements, "
                f"but it has {len(texts)}"
            )
        input_type = body.get("input_type")
        modern = "-v3" in model or "-v4" in model
        if input_type is None and modern:
            raise _RefusedError(
                "invalid request: valid input_type must be provided with the provided model"
            )
        if input_type is not None and input_type not in _INPUT_TYPES:
            raise _RefusedError(
                f"invalid request: input_type must be one of {', '.join(_INPUT_TYPES)}"
            )
        kinds = body.get("embedding_types") or ["float"]
        if kinds != ["float"]:
            raise _RefusedError(
                f"invalid request: the emulator only produces float embeddings, not {kinds}"
            )
        dims = 1536 if "-v4" in model else 384 if "light" in model else 1024
        wanted = body.get("output_dimension")
        if wanted is not None:
            if "-v4" not in model:
                raise _RefusedError(
                    f"invalid request: output_dimension is not supported for model {model}"
                )
            if wanted not in _V4_DIMENSIONS:
                raise _RefusedError(
                    "invalid request: output_dimension must be one of 256, 512, 1024, 1536"
                )
            dims = wanted
        seed = f"{model}\0{input_type}" if input_type else model
        vectors = [c.embedding(seed, text, dims) for text in texts]
        payload = {
            "id": _uuid(call.raw, str(call.seq), "cohere-embed"),
            "embeddings": {"float": vectors},
            "texts": texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": sum(c.count_tokens(t) for t in texts)},
            },
            "response_type": "embeddings_by_type",
        }
        return Reply.json(200, payload, self.headers(call))

    # ------------------------------------------------------------------ rerank

    def _rerank(self, call: Call, body: dict[str, Any]) -> Reply:
        _unknown_fields("", body, _RERANK_FIELDS)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _RefusedError("invalid request: model must be a non-empty string")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise _RefusedError("invalid request: query must be a non-empty string")
        documents = body.get("documents")
        if not (
            isinstance(documents, list) and documents and all(isinstance(d, str) for d in documents)
        ):
            raise _RefusedError("invalid request: documents must be a non-empty list of strings")
        if len(documents) > _MAX_RERANK_DOCUMENTS:
            raise _RefusedError(
                f"invalid request: documents must have at most {_MAX_RERANK_DOCUMENTS} items"
            )
        top_n = body.get("top_n")
        if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
            raise _RefusedError("invalid request: top_n must be a positive integer")
        words = set(_WORD.findall(query.lower()))
        scored = []
        for index, document in enumerate(documents):
            share = len(words & set(_WORD.findall(document.lower()))) / len(words) if words else 0.0
            jitter = c.digest(model, query, document)[0] / 255 * 0.04
            scored.append((round(0.1 + 0.85 * share + jitter, 8), index))
        scored.sort(key=lambda item: (-item[0], item[1]))
        kept = scored[:top_n] if top_n is not None else scored
        payload = {
            "id": _uuid(call.raw, str(call.seq), "cohere-rerank"),
            "results": [{"index": index, "relevance_score": score} for score, index in kept],
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": math.ceil(len(documents) / 100)},
            },
        }
        return Reply.json(200, payload, self.headers(call))


def _chat_events(
    answer_id: str,
    *,
    thought_tokens: list[str],
    text_plan: c.TextPlan | None,
    plan_tokens: list[str],
    calls: list[dict[str, Any]],
    finish: str,
    usage: dict[str, Any],
) -> list[SSEEvent]:
    """The SSE events of a streamed ``/v2/chat`` answer."""
    start = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}
    events = [_sse({"id": answer_id, "type": "message-start", "delta": {"message": start}})]
    blocks: list[tuple[str, list[str]]] = []
    if thought_tokens:
        blocks.append(("thinking", thought_tokens))
    if text_plan is not None:
        blocks.append(("text", text_plan.tokens))
    for index, (kind, tokens) in enumerate(blocks):
        events.append(
            _sse(
                {
                    "type": "content-start",
                    "index": index,
                    "delta": {"message": {"content": {"type": kind, kind: ""}}},
                }
            )
        )
        events.extend(
            _sse(
                {
                    "type": "content-delta",
                    "index": index,
                    "delta": {"message": {"content": {kind: token}}},
                }
            )
            for token in tokens
        )
        events.append(_sse({"type": "content-end", "index": index}))
    events.extend(
        _sse({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": token}}})
        for token in plan_tokens
    )
    for i, tool_call in enumerate(calls):
        function = tool_call["function"]
        opening = {**tool_call, "function": {"name": function["name"], "arguments": ""}}
        events.append(
            _sse(
                {
                    "type": "tool-call-start",
                    "index": i,
                    "delta": {"message": {"tool_calls": opening}},
                }
            )
        )
        events.extend(
            _sse(
                {
                    "type": "tool-call-delta",
                    "index": i,
                    "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}},
                }
            )
            for piece in c.pieces(function["arguments"])
        )
        events.append(_sse({"type": "tool-call-end", "index": i}))
    events.append(_sse({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}))
    return events
