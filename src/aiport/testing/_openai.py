"""OpenAI wire format: chat completions, embeddings, images, models and errors."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from . import _content as c
from ._faults import OPENAI_QUOTA_MESSAGE, OPENAI_STATUS_ERRORS, Call, Fault, Reply, SSEEvent

_DOCS_KEYS = "https://platform.openai.com/account/api-keys"
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    f"a username and password. You can obtain an API key from {_DOCS_KEYS}."
)
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
_UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
)
_REQUEST_LIMIT = 10_000
_TOKEN_LIMIT = 30_000_000
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_EMBED_DIMS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_EMBED_MAX_INPUT = 8192
_IMAGE_SIZES: Mapping[str, tuple[str, ...]] = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image": ("auto", "1024x1024", "1536x1024", "1024x1536"),
}
_QUALITIES = ("standard", "hd", "low", "medium", "high", "auto")
#: (id, created, owned_by) of the models GET /v1/models lists.
MODELS: tuple[tuple[str, int, str], ...] = (
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-4.1-mini", 1744318173, "system"),
    ("o3-mini", 1737146383, "system"),
    ("text-embedding-3-small", 1705948997, "system"),
    ("text-embedding-3-large", 1705953180, "system"),
    ("text-embedding-ada-002", 1671217299, "openai-internal"),
    ("dall-e-2", 1698798177, "system"),
    ("dall-e-3", 1698785189, "system"),
    ("gpt-image-1", 1745517030, "system"),
)


class _InvalidRequestError(Exception):
    """A 400 invalid_request_error, raised by validation and answered by ``handle``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _missing(param: str) -> _InvalidRequestError:
    message = f"Missing required parameter: '{param}'."
    return _InvalidRequestError(message, param, "missing_required_parameter")


def _not_one_of(
    param: str, value: Any, allowed: tuple[str, ...] | list[str]
) -> _InvalidRequestError:
    quoted = [f"'{v}'" for v in allowed]
    listed = ", ".join(quoted[:-1]) + ", and " + quoted[-1] if len(quoted) > 1 else quoted[0]
    return _InvalidRequestError(
        f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value"
    )


def _out_of_range(param: str, value: Any, lo: int, hi: int) -> _InvalidRequestError:
    message = (
        f"Invalid '{param}': expected an integer between {lo} and {hi}, but got {value} instead."
    )
    return _InvalidRequestError(message, param, "invalid_value")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mask_key(key: str) -> str:
    """What OpenAI shows of a key in errors: never more than its last four characters."""
    return "****" + key[-4:] if len(key) >= 8 else "****"


class OpenAIRoutes:
    """Answers OpenAI requests. Holds only per-emulator state (the image store)."""

    def __init__(
        self,
        *,
        api_keys: frozenset[str] | None,
        window: Callable[[str], int],
        files: MutableMapping[str, bytes],
        base_url: Callable[[], str],
    ) -> None:
        self._keys = api_keys
        self._window = window
        self._files = files
        self._base_url = base_url
        self._posts: dict[str, Callable[[Call, dict[str, Any]], Reply]] = {
            "/v1/chat/completions": self._chat,
            "/v1/embeddings": self._embeddings,
            "/v1/images/generations": self._images,
        }

    # ------------------------------------------------------------------ errors and headers

    def headers(self, call: Call, *, tokens: int = 0, limited: bool = False) -> dict[str, str]:
        """Headers every OpenAI response carries: request id and rate-limit state."""
        remaining = 0 if limited else _REQUEST_LIMIT - 1 - call.seq % _REQUEST_LIMIT
        return {
            "x-request-id": "req_" + c.digest(call.raw, str(call.seq), "openai").hex()[:32],
            "openai-version": "2020-10-01",
            "openai-processing-ms": str(20 + call.seq % 50),
            "x-ratelimit-limit-requests": str(_REQUEST_LIMIT),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-limit-tokens": str(_TOKEN_LIMIT),
            "x-ratelimit-remaining-tokens": str(0 if limited else max(_TOKEN_LIMIT - tokens, 0)),
            "x-ratelimit-reset-tokens": "0s",
        }

    def error(
        self,
        call: Call,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        payload = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        hdrs = {**self.headers(call, limited=status == 429), **(headers or {})}
        return Reply.json(status, payload, hdrs)

    @staticmethod
    def _key(call: Call) -> str:
        scheme, _, key = call.headers.get("authorization", "").partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """The error OpenAI sends with ``fault.code``, honouring the fault's overrides."""
        status = fault.code or 500
        model = call.body.get("model") if isinstance(call.body, dict) else None
        type_, code, message = OPENAI_STATUS_ERRORS.get(
            status, OPENAI_STATUS_ERRORS[500 if status >= 500 else 400]
        )
        if status == 401:
            type_, code = "invalid_request_error", "invalid_api_key"
            message = (
                f"Incorrect API key provided: {mask_key(self._key(call))}. "
                f"You can find your API key at {_DOCS_KEYS}."
            )
        elif status == 429 and fault.error_type == "insufficient_quota":
            type_, code, message = "insufficient_quota", "insufficient_quota", OPENAI_QUOTA_MESSAGE
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        return self.error(
            call,
            status,
            fault.message or message.format(model=model or "gpt-4o"),
            type_=fault.error_type or type_,
            code=code,
            headers=headers,
        )

    def context_length_error(self, call: Call, used: int | None = None) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        window = self._window(str(body.get("model") or ""))
        used = max(
            used if used is not None else c.openai_prompt_tokens(body.get("messages")), window + 1
        )
        message = (
            f"This model's maximum context length is {window} tokens. However, your messages "
            f"resulted in {used} tokens. Please reduce the length of the messages."
        )
        return self.error(call, 400, message, param="messages", code="context_length_exceeded")

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        error = {
            "message": fault.message or OPENAI_STATUS_ERRORS[500][2],
            "type": fault.error_type or "server_error",
            "param": None,
            "code": None,
        }
        return SSEEvent(json.dumps({"error": error}, separators=(",", ":")))

    def stream_error_status(self, fault: Fault) -> Fault:
        """The status fault a non-streaming request gets for a ``stream_error`` fault."""
        status = 429 if fault.error_type in ("requests", "tokens", "rate_limit_exceeded") else 500
        return Fault.status(status, error_type=fault.error_type, message=fault.message)

    def not_found(self, call: Call) -> Reply:
        return self.error(call, 404, f"Invalid URL ({call.method} {call.path})")

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        if call.method == "GET" and call.path.startswith("/files/"):
            image = self._files.get(call.path.removeprefix("/files/"))
            if image is None:
                return self.error(call, 404, "No such file.", code="not_found")
            return Reply(200, {**self.headers(call), "Content-Type": "image/png"}, image)
        key = self._key(call)
        if not key:
            return self.error(call, 401, _NO_KEY)
        if self._keys is not None and key not in self._keys:
            return self.status_error(call, Fault.status(401))
        if call.method == "GET" and call.path == "/v1/models":
            data = [self._model(*m) for m in MODELS]
            return Reply.json(200, {"object": "list", "data": data}, self.headers(call))
        if call.method == "GET" and call.path.startswith("/v1/models/"):
            wanted = call.path.removeprefix("/v1/models/")
            for model in MODELS:
                if model[0] == wanted:
                    return Reply.json(200, self._model(*model), self.headers(call))
            message = f"The model '{wanted}' does not exist"
            return self.error(call, 404, message, param="model", code="model_not_found")
        handler = self._posts.get(call.path) if call.method == "POST" else None
        if handler is None:
            return self.not_found(call)
        if not isinstance(call.body, dict):
            return self.error(call, 400, _NOT_JSON)
        try:
            return handler(call, call.body)
        except _InvalidRequestError as exc:
            return self.error(call, 400, exc.message, param=exc.param, code=exc.code)

    @staticmethod
    def _model(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}

    # ------------------------------------------------------------------ chat

    @staticmethod
    def _validate_messages(messages: Any) -> None:
        if not isinstance(messages, list):
            message = "Invalid type for 'messages': expected an array of objects."
            raise _InvalidRequestError(message, "messages", "invalid_type")
        if not messages:
            message = (
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead."
            )
            raise _InvalidRequestError(message, "messages", "empty_array")
        pending: list[str] = []  # ids of the last assistant tool calls
        pending_at = 0
        answered: set[str] = set()
        for i, msg in enumerate([*messages, None]):  # None: checks after the last message
            if msg is not None and not isinstance(msg, dict):
                message = f"Invalid type for 'messages[{i}]': expected an object."
                raise _InvalidRequestError(message, f"messages[{i}]", "invalid_type")
            role = msg.get("role") if msg is not None else None
            if msg is not None and role not in _ROLES:
                raise _not_one_of(f"messages[{i}].role", role, _ROLES)
            if role == "tool" and msg is not None:
                if not isinstance(msg.get("tool_call_id"), str):
                    raise _missing(f"messages[{i}].tool_call_id")
                if msg["tool_call_id"] not in pending:
                    message = (
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'."
                    )
                    raise _InvalidRequestError(message, f"messages.[{i}].role")
                answered.add(msg["tool_call_id"])
                continue
            unanswered = [t for t in pending if t not in answered]
            if unanswered:
                raise _InvalidRequestError(
                    _UNANSWERED + ", ".join(unanswered), f"messages.[{pending_at}].role"
                )
            if msg is None:
                break
            calls = msg.get("tool_calls") if role == "assistant" else None
            if "content" not in msg and not calls:
                raise _missing(f"messages[{i}].content")
            pending = [str(tc.get("id")) for tc in calls or [] if isinstance(tc, dict)]
            pending_at, answered = i, set()

    def _validate_chat(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _InvalidRequestError("you must provide a model parameter")
        if "messages" not in body:
            raise _missing("messages")
        self._validate_messages(body["messages"])
        n = body.get("n")
        if n is not None and (not _is_int(n) or not 1 <= n <= 128):
            raise _out_of_range("n", n, 1, 128)
        temp = body.get("temperature")
        if isinstance(temp, int | float) and not 0 <= temp <= 2:
            message = f"Invalid 'temperature': expected a value between 0 and 2, but got {temp}."
            raise _InvalidRequestError(message, "temperature", "invalid_value")
        if body.get("stream_options") is not None and not body.get("stream"):
            message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            raise _InvalidRequestError(message, "stream_options", "invalid_value")
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 4:
            message = (
                "Invalid 'stop': array too long. Expected an array with maximum length 4, but "
                f"got an array with length {len(stop)} instead."
            )
            raise _InvalidRequestError(message, "stop", "array_above_max_length")
        names: list[str] = []
        for i, tool in enumerate(body.get("tools") or []):
            if isinstance(tool, dict) and tool.get("type") not in ("function", None):
                continue  # custom tools: accepted, never called
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise _missing(f"tools[{i}].function.name")
            names.append(fn["name"])
        forced = self._forced_tool(body)
        if forced is not None and forced not in names:
            message = f"Invalid value for 'tool_choice': function '{forced}' is not in 'tools'."
            raise _InvalidRequestError(message, "tool_choice", "invalid_value")
        fmt = body.get("response_format")
        if isinstance(fmt, dict):
            kinds = ("json_object", "json_schema", "text")
            if fmt.get("type") not in kinds:
                raise _not_one_of("response_format.type", fmt.get("type"), kinds)
            schema = fmt.get("json_schema")
            if fmt["type"] == "json_schema" and not (
                isinstance(schema, dict) and schema.get("name")
            ):
                raise _missing("response_format.json_schema.name")

    @staticmethod
    def _forced_tool(body: dict[str, Any]) -> str | None:
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "function":
            name = (choice.get("function") or {}).get("name")
            return name if isinstance(name, str) else None
        return None

    def _tool_calls(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(name, arguments JSON) of the tools the model calls, or [] to answer in text."""
        messages = body["messages"]
        tools = {
            t["function"]["name"]: t["function"].get("parameters") or {"type": "object"}
            for t in body.get("tools") or []
            if isinstance(t, dict) and t.get("type", "function") == "function"
        }
        if not tools or body.get("tool_choice") == "none" or messages[-1].get("role") == "tool":
            return []
        text = " ".join(self._last_user(messages)[0])
        parallel = body.get("parallel_tool_calls") is not False
        names = c.select_tools(list(tools), self._forced_tool(body), text, parallel=parallel)
        return [(n, json.dumps(c.schema_instance(tools[n]), separators=(",", ":"))) for n in names]

    @staticmethod
    def _last_user(messages: list[Any]) -> tuple[list[str], int]:
        for msg in reversed(messages):
            if msg.get("role") == "user":
                return c.openai_text(msg.get("content"))
        return [], 0

    def _answer(self, body: dict[str, Any]) -> str:
        messages: list[Any] = body["messages"]
        texts, images = self._last_user(messages)
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            return json.dumps({"echo": " ".join(texts)})
        if fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
            return json.dumps(c.schema_instance(schema), separators=(",", ":"))
        if messages[-1].get("role") == "tool":
            results: list[str] = []
            for msg in reversed(messages):
                if msg.get("role") != "tool":
                    break
                results.insert(0, " ".join(c.openai_text(msg.get("content"))[0]))
            return c.tool_results_answer(results)
        return c.user_answer(" ".join(texts), images)

    def _chat(self, call: Call, body: dict[str, Any]) -> Reply:
        self._validate_chat(body)
        model: str = body["model"]
        prompt = c.openai_prompt_tokens(body["messages"])
        if prompt > self._window(model):
            return self.context_length_error(call, prompt)
        n: int = body.get("n") or 1
        tool_calls = self._tool_calls(body)
        plan: c.TextPlan | None = None
        if tool_calls:
            finish = "tool_calls"
            per_choice = sum(len(c.output_tokens(args)) for _, args in tool_calls)
        else:
            stop = body.get("stop")
            stops = (
                [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
            )
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            plan = c.plan_text(self._answer(body), limit if _is_int(limit) else None, stops)
            finish = "length" if plan.reason == "length" else "stop"
            per_choice = len(plan.tokens)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": per_choice * n,
            "total_tokens": prompt + per_choice * n,
            "prompt_tokens_details": {
                "cached_tokens": (prompt // 64) * 64 if body.get("prompt_cache_key") else 0,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        # Tool-call ids: unique across choices too, hence the running position.
        calls = [
            [
                {
                    "id": c.tool_call_id("call_", call.raw, k * len(tool_calls) + i),
                    "type": "function",
                    "function": {"name": name, "arguments": args},
                }
                for i, (name, args) in enumerate(tool_calls)
            ]
            for k in range(n)
        ]
        head = {
            "id": "chatcmpl-" + c.digest(call.raw, str(call.seq), "chat").hex()[:29],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
        }
        headers = self.headers(call, tokens=prompt)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = _chunks(head, plan, calls, finish, usage if include_usage else None)
            return Reply.stream(events, headers)
        choices = []
        for k in range(n):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": plan.text if plan is not None else None,
                "refusal": None,
                "annotations": [],
            }
            if plan is None:
                message["tool_calls"] = calls[k]
            choices.append(
                {"index": k, "message": message, "logprobs": None, "finish_reason": finish}
            )
        payload = {
            **head,
            "choices": choices,
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        return Reply.json(200, payload, headers)

    # ------------------------------------------------------------------ embeddings

    def _embeddings(self, call: Call, body: dict[str, Any]) -> Reply:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _InvalidRequestError("you must provide a model parameter")
        if "input" not in body:
            raise _missing("input")
        items = c.embedding_inputs(body["input"])
        if items is None:
            raise _InvalidRequestError(
                "'$.input' is invalid. Please check the API reference: "
                "https://platform.openai.com/docs/api-reference."
            )
        for _, tokens in items:
            if tokens > _EMBED_MAX_INPUT:
                raise _InvalidRequestError(
                    f"This model's maximum context length is {_EMBED_MAX_INPUT} tokens, however "
                    f"you requested {tokens} tokens ({tokens} in your prompt; 0 for the "
                    "completion). Please reduce your prompt; or completion length."
                )
        dims = _EMBED_DIMS.get(model, 1536)
        wanted = body.get("dimensions")
        if wanted is not None:
            if "ada" in model:
                raise _InvalidRequestError("This model does not support specifying dimensions.")
            if not _is_int(wanted) or not 1 <= wanted <= dims:
                raise _out_of_range("dimensions", wanted, 1, dims)
            dims = wanted
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise _not_one_of("encoding_format", fmt, ("float", "base64"))
        data = []
        for i, (text, _) in enumerate(items):
            vector = c.embedding(model, text, dims)
            value: Any = c.embedding_base64(vector) if fmt == "base64" else vector
            data.append({"object": "embedding", "index": i, "embedding": value})
        total = sum(tokens for _, tokens in items)
        usage = {"prompt_tokens": total, "total_tokens": total}
        payload = {"object": "list", "data": data, "model": model, "usage": usage}
        return Reply.json(200, payload, self.headers(call, tokens=total))

    # ------------------------------------------------------------------ images

    def _images(self, call: Call, body: dict[str, Any]) -> Reply:
        model = str(body.get("model") or "dall-e-2")
        gpt_image = model.startswith("gpt-image")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _missing("prompt")
        n = 1 if body.get("n") is None else body["n"]
        if not _is_int(n) or not 1 <= n <= 10:
            raise _out_of_range("n", n, 1, 10)
        if model == "dall-e-3" and n != 1:
            raise _InvalidRequestError("You must provide n=1 for this model.", "n")
        size = body.get("size") or ("auto" if gpt_image else "1024x1024")
        _check_size(model, size)
        fmt = body.get("response_format")
        if gpt_image and fmt == "url":
            message = "Unknown parameter: 'response_format'."
            raise _InvalidRequestError(message, "response_format", "unknown_parameter")
        if fmt is not None and fmt not in ("url", "b64_json"):
            raise _not_one_of("response_format", fmt, ("url", "b64_json"))
        fmt = "b64_json" if gpt_image else (fmt or "url")
        quality = body.get("quality")
        if quality is not None and quality not in _QUALITIES:
            raise _not_one_of("quality", quality, _QUALITIES)
        style = body.get("style")
        if style is not None and style not in ("vivid", "natural"):
            raise _not_one_of("style", style, ("vivid", "natural"))
        data = []
        for i in range(n):
            seed = f"{model}\0{prompt}\0{i}"
            image = c.png(seed)
            item: dict[str, Any] = {"revised_prompt": prompt}
            if fmt == "b64_json":
                item["b64_json"] = base64.b64encode(image).decode("ascii")
            else:
                name = "img-" + c.base62(c.digest(seed), 24) + ".png"
                self._files[name] = image
                item["url"] = f"{self._base_url()}/files/{name}"
            data.append(item)
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        if gpt_image:
            tokens = c.count_tokens(prompt)
            payload.update(
                background="opaque",
                output_format="png",
                size="1024x1024" if size == "auto" else size,
                quality=quality if quality in ("low", "medium", "high") else "medium",
                usage={
                    "input_tokens": tokens,
                    "output_tokens": 272 * n,
                    "total_tokens": tokens + 272 * n,
                    "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0},
                },
            )
        return Reply.json(200, payload, self.headers(call))


def _chunks(
    head: dict[str, Any],
    plan: c.TextPlan | None,
    calls: list[list[dict[str, Any]]],
    finish: str,
    usage: dict[str, Any] | None,
) -> list[SSEEvent]:
    """The SSE events of a streamed chat completion (one list of tool calls per choice)."""
    base = {**head, "object": "chat.completion.chunk", "system_fingerprint": "fp_emulator"}

    def chunk(choices: list[Any], last_usage: dict[str, Any] | None = None) -> SSEEvent:
        data: dict[str, Any] = {**base, "choices": choices}
        if usage is not None:
            data["usage"] = last_usage  # null on every chunk but the last
        return SSEEvent(json.dumps(data, separators=(",", ":")))

    def delta(k: int, d: dict[str, Any], reason: str | None = None) -> SSEEvent:
        return chunk([{"index": k, "delta": d, "logprobs": None, "finish_reason": reason}])

    events: list[SSEEvent] = []
    for k, choice_calls in enumerate(calls):
        content = "" if plan is not None else None
        events.append(delta(k, {"role": "assistant", "content": content, "refusal": None}))
        if plan is not None:
            events.extend(delta(k, {"content": tok}) for tok in plan.tokens)
        for i, tc in enumerate(choice_calls):
            fn = tc["function"]
            start = {**tc, "index": i, "function": {"name": fn["name"], "arguments": ""}}
            events.append(delta(k, {"tool_calls": [start]}))
            events.extend(
                delta(k, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
                for piece in c.pieces(fn["arguments"])
            )
        events.append(delta(k, {}, finish))
    if usage is not None:
        events.append(chunk([], usage))
    events.append(SSEEvent("[DONE]"))
    return events


def _check_size(model: str, size: Any) -> None:
    if model.startswith("gpt-image-2") and isinstance(size, str) and size != "auto":
        # gpt-image-2 takes any WxH in multiples of 16 with an aspect ratio up to 3:1.
        w, _, h = size.partition("x")
        width, height = (int(w), int(h)) if w.isdigit() and h.isdigit() else (0, 0)
        if width and height and width % 16 == height % 16 == 0 and 1 / 3 <= width / height <= 3:
            return
        raise _InvalidRequestError(
            f"Invalid value: '{size}'. Supported sizes are WxH, multiples of 16.", "size"
        )
    family = "gpt-image" if model.startswith("gpt-image") else model
    allowed = _IMAGE_SIZES.get(family)
    if allowed is None:  # unknown model: any size some model supports
        allowed = tuple(dict.fromkeys(s for v in _IMAGE_SIZES.values() for s in v))
    if size not in allowed:
        raise _not_one_of("size", size, allowed)
