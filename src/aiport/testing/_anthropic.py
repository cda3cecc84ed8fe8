"""Anthropic wire format: messages (plain and streamed), token counting, models, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _content as c
from ._faults import ANTHROPIC_MESSAGES, ANTHROPIC_STATUS_TYPES, Call, Fault, Reply, SSEEvent

VERSIONS = ("2023-06-01", "2026-10-21")
#: API version that removed the sampling knobs (and that the current SDK sends).
_STRICT_VERSION = "2026-10-21"
_REMOVED_FIELDS = ("temperature", "top_p", "top_k")
_CHOICES = ("auto", "any", "tool", "none")
_REQUEST_LIMIT = 4000
_TOKEN_LIMIT = 2_000_000
#: (id, display name, created_at), newest first as the real list is.
MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _result_text(block: dict[str, Any]) -> str:
    return " ".join(
        b["text"] for b in c.anthropic_blocks(block.get("content", "")) if b.get("type") == "text"
    )


class AnthropicRoutes:
    """Answers Anthropic requests."""

    def __init__(
        self,
        *,
        api_keys: frozenset[str] | None,
        window: Callable[[str], int],
        reject_prefill: frozenset[str] = frozenset(),
    ) -> None:
        self._keys = api_keys
        self._window = window
        self._reject_prefill = reject_prefill

    # ------------------------------------------------------------------ plumbing

    def headers(self, call: Call, *, tokens: int = 0, limited: bool = False) -> dict[str, str]:
        """Headers every Anthropic response carries: request id and rate-limit state."""
        reset = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        requests = 0 if limited else _REQUEST_LIMIT - 1 - call.seq % _REQUEST_LIMIT
        left = 0 if limited else max(_TOKEN_LIMIT - tokens, 0)
        headers = {
            "request-id": self.request_id(call),
            "anthropic-organization-id": "00000000-0000-4000-8000-00000000e1a7",
            "anthropic-ratelimit-requests-limit": str(_REQUEST_LIMIT),
            "anthropic-ratelimit-requests-remaining": str(requests),
            "anthropic-ratelimit-requests-reset": reset,
        }
        for kind in ("tokens", "input-tokens", "output-tokens"):
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(_TOKEN_LIMIT)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(left)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset
        return headers

    @staticmethod
    def request_id(call: Call) -> str:
        return "req_01" + c.base62(c.digest(call.raw, str(call.seq), "anthropic"), 22)

    def error(
        self,
        call: Call,
        status: int,
        type_: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        payload = {
            "type": "error",
            "error": {"type": type_, "message": message},
            "request_id": self.request_id(call),
        }
        hdrs = {**self.headers(call, limited=status == 429), **(headers or {})}
        return Reply.json(status, payload, hdrs)

    def _bad(self, call: Call, message: str) -> Reply:
        return self.error(call, 400, "invalid_request_error", message)

    def _credentials(self, call: Call) -> tuple[str, str]:
        """(key, how it was sent): ``x-api-key`` wins over ``Authorization: Bearer``."""
        key = call.headers.get("x-api-key", "").strip()
        if key:
            return key, "x-api-key"
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), "bearer token"
        return "", "x-api-key"

    def status_error(self, call: Call, fault: Fault) -> Reply:
        status = fault.code or 500
        type_ = fault.error_type or ANTHROPIC_STATUS_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        message = ANTHROPIC_MESSAGES.get(type_, "Error")
        if type_ == "authentication_error":
            message = f"invalid {self._credentials(call)[1]}"
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        return self.error(call, status, type_, fault.message or message, headers)

    def context_length_error(self, call: Call, used: int | None = None) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        window = self._window(str(body.get("model") or ""))
        used = max(used if used is not None else c.anthropic_prompt_tokens(body)[0], window + 1)
        return self._bad(call, f"prompt is too long: {used} tokens > {window} maximum")

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        type_ = fault.error_type or "overloaded_error"
        error = {"type": type_, "message": fault.message or ANTHROPIC_MESSAGES.get(type_, "Error")}
        return SSEEvent(_dumps({"type": "error", "error": error}), "error")

    def stream_error_status(self, fault: Fault) -> Fault:
        """The status fault a non-streaming request gets for a ``stream_error`` fault."""
        type_ = fault.error_type or "overloaded_error"
        status = next((s for s, t in ANTHROPIC_STATUS_TYPES.items() if t == type_), 500)
        return Fault.status(status, error_type=type_, message=fault.message)

    def not_found(self, call: Call) -> Reply:
        return self.error(call, 404, "not_found_error", "Not Found")

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        key, how = self._credentials(call)
        if not key:
            return self.error(call, 401, "authentication_error", "x-api-key header is required")
        if self._keys is not None and key not in self._keys:
            return self.error(call, 401, "authentication_error", f"invalid {how}")
        version = call.headers.get("anthropic-version")
        if version is None:
            return self._bad(call, "anthropic-version: header is required")
        if version not in VERSIONS:
            return self._bad(
                call,
                f"anthropic-version: '{version}' is not a supported API version "
                f"(supported: {', '.join(VERSIONS)})",
            )
        route = (call.method, call.path)
        if route == ("POST", "/v1/messages"):
            return self._messages(call, version)
        if route == ("POST", "/v1/messages/count_tokens"):
            return self._count(call, version)
        if route == ("GET", "/v1/models"):
            return self._models(call)
        if call.method == "GET" and call.path.startswith("/v1/models/"):
            wanted = call.path.removeprefix("/v1/models/")
            for model in MODELS:
                if model[0] == wanted:
                    return Reply.json(200, self._model(*model), self.headers(call))
            return self.error(call, 404, "not_found_error", f"model: {wanted}")
        return self.not_found(call)

    @staticmethod
    def _model(model_id: str, name: str, created: str) -> dict[str, Any]:
        return {"type": "model", "id": model_id, "display_name": name, "created_at": created}

    def _models(self, call: Call) -> Reply:
        items = [self._model(*m) for m in MODELS]
        ids = [m["id"] for m in items]
        after, before = call.query.get("after_id"), call.query.get("before_id")
        if after in ids:
            items = items[ids.index(after) + 1 :]
        elif before in ids:
            items = items[: ids.index(before)]
        try:
            limit = int(call.query.get("limit", "20"))
        except ValueError:
            return self._bad(call, "limit: Input should be a valid integer")
        page = items[: max(limit, 1)]
        payload = {
            "data": page,
            "has_more": len(items) > len(page),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return Reply.json(200, payload, self.headers(call))

    # ------------------------------------------------------------------ validation

    def _validate(self, call: Call, version: str, *, counting: bool = False) -> Reply | None:
        body = call.body
        if not isinstance(body, dict):
            return self._bad(call, "There was an issue with the request body: invalid JSON")
        if version == _STRICT_VERSION:
            for name in _REMOVED_FIELDS:
                if name in body:
                    return self._bad(call, f"{name}: Extra inputs are not permitted")
        required = ("messages", "model") if counting else ("max_tokens", "messages", "model")
        for name in required:
            if name not in body:
                return self._bad(call, f"{name}: Field required")
        max_tokens = body.get("max_tokens", 0)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            return self._bad(call, "max_tokens: Input should be a valid integer")
        if max_tokens < 0:
            return self._bad(call, "max_tokens: Input should be greater than or equal to 0")
        if not isinstance(body["model"], str) or not body["model"]:
            return self._bad(call, "model: Input should be a valid string")
        messages = body["messages"]
        if not isinstance(messages, list):
            return self._bad(call, "messages: Input should be a valid list")
        if not messages:
            return self._bad(call, "messages: at least one message is required")
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            return self._bad(call, "system: Input should be a valid string")
        for i, msg in enumerate(messages):
            problem = self._message_problem(i, msg, messages[i - 1] if i else None)
            if problem is not None:
                return self._bad(call, problem)
        stops = body.get("stop_sequences")
        if stops is not None and not (
            isinstance(stops, list) and all(isinstance(s, str) for s in stops)
        ):
            return self._bad(call, "stop_sequences: Input should be a valid list of strings")
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int):
                return self._bad(call, "thinking.enabled.budget_tokens: Field required")
            if budget < 1024:
                return self._bad(
                    call,
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                )
            if not counting and max_tokens <= budget:
                return self._bad(call, "`max_tokens` must be greater than `thinking.budget_tokens`")
        return self._tools_problem(call, body)

    @staticmethod
    def _message_problem(i: int, msg: Any, previous: Any) -> str | None:
        if not isinstance(msg, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if msg.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if "content" not in msg:
            return f"messages.{i}.content: Field required"
        content = msg["content"]
        if not isinstance(content, str | list):
            return f"messages.{i}.content: Input should be a valid list"
        offered = {
            b.get("id")
            for b in (
                c.anthropic_blocks(previous.get("content")) if isinstance(previous, dict) else []
            )
            if b.get("type") == "tool_use" and previous.get("role") == "assistant"
        }
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                return f"messages.{i}.content.{j}.type: Field required"
            if block["type"] == "tool_result" and block.get("tool_use_id") not in offered:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        if offered and msg["role"] == "user":
            answered = {
                b.get("tool_use_id")
                for b in c.anthropic_blocks(content)
                if b.get("type") == "tool_result"
            }
            missing = sorted(str(x) for x in offered - answered)
            if missing:
                return (
                    f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message."
                )
        return None

    def _tools_problem(self, call: Call, body: dict[str, Any]) -> Reply | None:
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            return self._bad(call, "tools: Input should be a valid list")
        names = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return self._bad(call, f"tools.{i}: Input should be a valid dictionary")
            if tool.get("type") not in (None, "custom"):
                continue  # server tools (web search, ...) are accepted and never called
            if not isinstance(tool.get("name"), str):
                return self._bad(call, f"tools.{i}.custom.name: Field required")
            if not isinstance(tool.get("input_schema"), dict):
                return self._bad(call, f"tools.{i}.custom.input_schema: Field required")
            names.append(tool["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not isinstance(choice, dict) or choice.get("type") not in _CHOICES:
                message = "tool_choice: Input tag does not match any of the expected tags: "
                return self._bad(call, message + ", ".join(f"'{t}'" for t in _CHOICES))
            if choice["type"] == "tool" and choice.get("name") not in names:
                return self._bad(
                    call, f"tool_choice: tool '{choice.get('name')}' not found in tools"
                )
        return None

    # ------------------------------------------------------------------ messages

    def _count(self, call: Call, version: str) -> Reply:
        invalid = self._validate(call, version, counting=True)
        if invalid is not None:
            return invalid
        total, _ = c.anthropic_prompt_tokens(call.body)
        return Reply.json(200, {"input_tokens": total}, self.headers(call, tokens=total))

    def _messages(self, call: Call, version: str) -> Reply:
        invalid = self._validate(call, version)
        if invalid is not None:
            return invalid
        body: dict[str, Any] = call.body
        total, cached = c.anthropic_prompt_tokens(body)
        if total > self._window(body["model"]):
            return self.context_length_error(call, total)
        messages: list[dict[str, Any]] = body["messages"]
        prefill = ""
        if messages[-1]["role"] == "assistant":
            # A prefilled answer: the model continues it rather than starting over.
            if body["model"] in self._reject_prefill:
                return self._bad(
                    call, "Prefilling assistant messages is not supported for this model."
                )
            prefill = "".join(
                b["text"]
                for b in c.anthropic_blocks(messages[-1]["content"])
                if b.get("type") == "text" and isinstance(b.get("text"), str)
            )
            if prefill != prefill.rstrip():
                return self._bad(
                    call, "messages: final assistant content cannot end with trailing whitespace"
                )
        last_blocks = (
            c.anthropic_blocks(messages[-1]["content"]) if messages[-1]["role"] == "user" else []
        )
        results = [_result_text(b) for b in last_blocks if b.get("type") == "tool_result"]
        texts: list[str] = []
        images = 0
        for msg in reversed(messages):
            if msg["role"] == "user":
                blocks = c.anthropic_blocks(msg["content"])
                texts = [
                    b["text"]
                    for b in blocks
                    if b.get("type") == "text" and isinstance(b.get("text"), str)
                ]
                images = sum(1 for b in blocks if b.get("type") == "image")
                break
        user_text = " ".join(texts)
        content: list[dict[str, Any]] = []
        out_tokens = 0
        thinking = body.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            # Rebuilt from its tokens so the streamed deltas add up to exactly this text.
            thought = "".join(c.output_tokens("Thinking about: " + user_text))
            signature = base64.b64encode(c.digest("signature", thought) * 3).decode("ascii")
            content.append({"type": "thinking", "thinking": thought, "signature": signature})
            out_tokens += len(c.output_tokens(thought))
        calls = [] if results else self._tool_calls(body, user_text)
        stop_sequence = None
        if calls:
            stop_reason = "tool_use"
            intro = "I'll call " + " and ".join(name for name, _ in calls) + "."
            content.append({"type": "text", "text": intro})
            out_tokens += len(c.output_tokens(intro))
            for i, (name, args) in enumerate(calls):
                tool_id = c.tool_call_id("toolu_", call.raw, i)
                content.append({"type": "tool_use", "id": tool_id, "name": name, "input": args})
                out_tokens += len(c.output_tokens(json.dumps(args)))
        else:
            answer = c.tool_results_answer(results) if results else c.user_answer(user_text, images)
            schema = self._output_schema(body)
            if schema is not None:
                answer = _dumps(c.schema_instance(schema))
            if prefill and answer.startswith(prefill):
                answer = answer[len(prefill) :]
            plan = c.plan_text(answer, body["max_tokens"], body.get("stop_sequences") or [])
            stop_reason = {"end": "end_turn", "length": "max_tokens", "stop": "stop_sequence"}[
                plan.reason
            ]
            stop_sequence = plan.stop_sequence
            content.append({"type": "text", "text": plan.text})
            out_tokens += len(plan.tokens)
        usage = {
            "input_tokens": total - cached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": out_tokens,
            "service_tier": "standard",
        }
        message = {
            "id": "msg_01" + c.base62(c.digest(call.raw, str(call.seq), "msg"), 22),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }
        headers = self.headers(call, tokens=total)
        if body.get("stream"):
            return Reply.stream(self._events(message), headers)
        return Reply.json(200, message, headers)

    @staticmethod
    def _output_schema(body: dict[str, Any]) -> Any:
        """The JSON schema of structured output, from ``output_config`` or ``output_format``."""
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return fmt.get("schema") or {"type": "object"}
        return None

    @staticmethod
    def _tool_calls(body: dict[str, Any], text: str) -> list[tuple[str, Any]]:
        tools = {
            t["name"]: t["input_schema"]
            for t in body.get("tools") or []
            if t.get("type") in (None, "custom")
        }
        choice = body.get("tool_choice") or {"type": "auto"}
        if not tools or choice.get("type") == "none":
            return []
        forced = choice.get("name") if choice.get("type") == "tool" else None
        parallel = not choice.get("disable_parallel_tool_use", False)
        names = c.select_tools(list(tools), forced, text, parallel=parallel)
        return [(name, c.schema_instance(tools[name])) for name in names]

    @staticmethod
    def _events(message: dict[str, Any]) -> list[SSEEvent]:
        def ev(kind: str, data: dict[str, Any]) -> SSEEvent:
            return SSEEvent(_dumps({"type": kind, **data}), kind)

        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {**usage, "output_tokens": 1}
        events = [ev("message_start", {"message": start})]
        for index, block in enumerate(message["content"]):
            kind = block["type"]
            if kind == "thinking":
                opening: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            elif kind == "text":
                opening = {"type": "text", "text": ""}
            else:
                opening = {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                }
            events.append(ev("content_block_start", {"index": index, "content_block": opening}))
            if index == 0:
                events.append(SSEEvent('{"type": "ping"}', "ping"))
            deltas: list[dict[str, Any]]
            if kind == "thinking":
                deltas = [
                    {"type": "thinking_delta", "thinking": t}
                    for t in c.output_tokens(block["thinking"])
                ]
                deltas.append({"type": "signature_delta", "signature": block["signature"]})
            elif kind == "text":
                deltas = [{"type": "text_delta", "text": t} for t in c.output_tokens(block["text"])]
            else:
                parts = ["", *c.pieces(json.dumps(block["input"]))]
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in parts]
            events.extend(ev("content_block_delta", {"index": index, "delta": d}) for d in deltas)
            events.append(ev("content_block_stop", {"index": index}))
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        final_usage = {k: v for k, v in usage.items() if k != "service_tier"}
        events.append(ev("message_delta", {"delta": delta, "usage": final_usage}))
        events.append(ev("message_stop", {}))
        return events
