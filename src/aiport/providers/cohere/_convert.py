"""Pure conversions between aiport's unified shapes and Cohere's v2 API wire format.

No I/O, no clock, no credentials. ``POST /v2/chat`` (plain and streamed) and
``POST /v2/embed``; ``/v2/rerank`` lives in ``_rerank``. What is translated:

- Messages: system (developer) / user / assistant / tool roles; user content is a string
  or ``text`` and ``image_url`` parts; tool results are ``tool`` messages with a
  ``tool_call_id``. Cohere has no message ``name``, no error flag on tool results and no
  images in them: each becomes a warning.
- An assistant message's text next to its tool calls is Cohere's ``tool_plan`` (the
  model's plan before calling tools), both ways: a response's ``tool_plan`` is the text of
  its message (and streams as text deltas), so history sent back keeps it.
- ``top_p`` is ``p`` (Cohere takes 0.01-0.99: other values are clamped, with a warning),
  ``stop`` is ``stop_sequences`` (at most 5), ``seed`` is ``seed``.
- ``tool_choice``: ``required`` -> ``REQUIRED``, ``none`` -> ``NONE``; a named tool is
  honoured by offering only that tool with ``REQUIRED``. A tool's ``strict`` becomes the
  request-wide ``strict_tools``. ``parallel_tool_calls=False`` and ``metadata`` have no
  Cohere equivalent (warnings).
- ``response_format``: JSON is ``{"type": "json_object"}``, a schema adds ``json_schema``.
- Answers: ``text`` content items joined; ``thinking`` items are not assistant text (kept
  in ``raw``, streamed as ``ReasoningDeltaEvent``); citations stay in ``raw``. Finish
  reasons ``COMPLETE``/``STOP_SEQUENCE`` -> stop, ``MAX_TOKENS`` -> length, ``TOOL_CALL``
  -> tool_calls, ``ERROR``/``TIMEOUT`` -> error. The answer names no model: the requested
  one is reported.
- Usage: ``billed_units`` (the tokens of the caller's own prompt and answer, what Cohere
  bills), else ``tokens`` (which also count the prompt template Cohere adds). Both stay
  in ``raw["usage"]``, with ``cached_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._catalogue import find_model
from aiport._errors import MalformedResponseError
from aiport._types import (
    FinishReason,
    ImagePart,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    NamedToolChoice,
    Part,
    ProviderModel,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    TextPart,
    ToolCall,
    ToolCallDeltaEvent,
    ToolCallEvent,
    ToolResultPart,
    Usage,
    UsageEvent,
)
from aiport.providers.openai._convert import image_part

__all__ = [
    "DEFAULT_INPUT_TYPE",
    "CohereStreamAssembler",
    "build_chat_request",
    "build_embed_request",
    "parse_chat_response",
    "parse_embed_response",
    "parse_usage",
]

#: Cohere accepts at most this many stop sequences.
MAX_STOP_SEQUENCES = 5
#: ``p`` must lie in this range.
_P_RANGE = (0.01, 0.99)
#: The ``input_type`` of an embed call that names none in ``provider_options``.
DEFAULT_INPUT_TYPE = "search_document"

_FINISH_REASONS: dict[str, FinishReason] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "error",
    "TIMEOUT": "error",
}

# --------------------------------------------------------------------------- request


def _tool_message(result: ToolResultPart, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(result.content, str) and any(
        isinstance(p, ImagePart) for p in result.content
    ):
        warnings.append(
            f"tool result {result.tool_call_id}: Cohere tool messages take text and documents "
            "only; the images were not sent"
        )
    if result.is_error:
        warnings.append(
            f"tool result {result.tool_call_id}: Cohere has no error flag for tool results; "
            "it was sent as an ordinary result"
        )
    return {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.text()}


def _assistant(message: Message, warnings: list[str]) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            calls.append(
                {
                    "id": part.id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments},
                }
            )
        else:
            warnings.append(
                f"a {part.type} part in an assistant message has no Cohere equivalent "
                "and was not sent"
            )
    text = "".join(texts)
    if not calls:
        return {"role": "assistant", "content": text}
    entry: dict[str, Any] = {"role": "assistant"}
    if text:
        entry["tool_plan"] = text  # the text that came with the calls
    entry["tool_calls"] = calls
    return entry


def _user(message: Message, out: list[dict[str, Any]], warnings: list[str]) -> None:
    if isinstance(message.content, str):
        out.append({"role": "user", "content": message.content})
        return
    parts: list[dict[str, Any]] = []
    only_text = True
    had_results = False
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            only_text = False
            parts.append(image_part(part))  # the same shape as OpenAI's
        elif isinstance(part, ToolResultPart):
            # Results inside a user message (Anthropic style) are tool messages here.
            out.append(_tool_message(part, warnings))
            had_results = True
    if not parts:
        if not had_results:
            out.append({"role": "user", "content": ""})
        return
    if only_text:
        out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
    else:
        out.append({"role": "user", "content": parts})


def _messages(options: ModelCompletionOptions, warnings: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in options.messages:
        if message.name is not None:
            warnings.append(f"Cohere messages have no name; the name {message.name!r} was not sent")
        role = message.role
        if role in ("system", "developer"):
            out.append({"role": "system", "content": message.text})
        elif role == "assistant":
            out.append(_assistant(message, warnings))
        elif role == "tool":
            for part in message.parts:
                if isinstance(part, ToolResultPart):
                    out.append(_tool_message(part, warnings))
                else:
                    warnings.append(
                        f"a {part.type} part outside a tool result in a 'tool' message has no "
                        "Cohere equivalent and was not sent"
                    )
        else:
            _user(message, out, warnings)
    return out


def _tools(options: ModelCompletionOptions, body: dict[str, Any], warnings: list[str]) -> None:
    tools = list(options.tools or [])
    choice = options.tool_choice
    if isinstance(choice, NamedToolChoice):
        # Cohere cannot force one named tool: offering only that one, required, can.
        tools = [t for t in tools if t.name == choice.name]
        if not tools:
            warnings.append(
                f"tool_choice names {choice.name!r}, which is not among the tools; "
                "no tool was offered"
            )
            return
        body["tool_choice"] = "REQUIRED"
    elif choice == "required":
        body["tool_choice"] = "REQUIRED"
    elif choice == "none":
        body["tool_choice"] = "NONE"
    wire: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.parameters
        wire.append({"type": "function", "function": function})
    body["tools"] = wire
    strict = {t.strict for t in tools if t.strict is not None}
    if True in strict:
        body["strict_tools"] = True
        if False in strict or any(t.strict is None for t in tools):
            warnings.append(
                "Cohere's strict_tools applies to every tool: the tools not marked strict "
                "are strict too"
            )
    if options.parallel_tool_calls is False:
        warnings.append(
            "Cohere cannot disable parallel tool calls; the model may call several tools"
        )


def build_chat_request(
    options: ModelCompletionOptions, *, stream: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The ``/v2/chat`` body for ``options``, and warnings about it.

    ``provider_options`` are merged last, untouched (``{"safety_mode": "STRICT"}``,
    ``{"thinking": {"type": "disabled"}}``, ``{"documents": [...]}``, ``{"k": 50}``...).
    """
    warnings: list[str] = []
    body: dict[str, Any] = {"model": options.model, "messages": _messages(options, warnings)}
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        low, high = _P_RANGE
        p = min(max(options.top_p, low), high)
        if p != options.top_p:
            warnings.append(f"Cohere takes top_p (p) between {low} and {high}: {p} was sent")
        body["p"] = p
    if options.max_tokens is not None:
        body["max_tokens"] = options.max_tokens
    if options.stop:
        stop = options.stop
        if len(stop) > MAX_STOP_SEQUENCES:
            warnings.append(
                f"Cohere accepts at most {MAX_STOP_SEQUENCES} stop sequences; "
                f"{len(stop) - MAX_STOP_SEQUENCES} were not sent"
            )
            stop = stop[:MAX_STOP_SEQUENCES]
        body["stop_sequences"] = stop
    if options.seed is not None:
        body["seed"] = options.seed
    if options.tools:
        _tools(options, body, warnings)
    fmt = options.response_format
    if fmt == "json":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt != "text":
        body["response_format"] = {"type": "json_object", "json_schema": fmt.schema_}
    if options.metadata:
        warnings.append("Cohere has no request metadata; metadata was not sent")
    if stream:
        body["stream"] = True
    if options.provider_options:
        body.update(options.provider_options)
    return body, warnings


# --------------------------------------------------------------------------- response


def _count(value: Any) -> int:
    # Cohere's counts are JSON numbers that its SDK types as floats.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def parse_usage(data: Any) -> Usage:
    """Cohere ``usage`` (or embed/rerank ``meta``) -> ``Usage``: billed units, else tokens."""
    if not isinstance(data, Mapping):
        return Usage()
    for key in ("billed_units", "tokens"):
        counts = data.get(key)
        if isinstance(counts, Mapping) and ("input_tokens" in counts or "output_tokens" in counts):
            return Usage(
                input_tokens=_count(counts.get("input_tokens")),
                output_tokens=_count(counts.get("output_tokens")),
            )
    return Usage()


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tool_calls(calls: Any) -> list[ToolCall]:
    out: list[ToolCall] = []
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):
            arguments = json.dumps(arguments, ensure_ascii=False)
        out.append(
            ToolCall(
                id=_str(call.get("id")) or f"call_{position}",
                name=_str(function.get("name")),
                arguments=arguments if isinstance(arguments, str) else "{}",
            )
        )
    return out


def parse_chat_response(
    data: dict[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: list[str],
    models: Mapping[str, ProviderModel],
    requested_model: str,
) -> ModelCompletionResponse:
    """A ``/v2/chat`` answer -> ``ModelCompletionResponse`` (see the module docstring)."""
    message = data.get("message")
    if not isinstance(message, Mapping):
        raise MalformedResponseError(
            f"{provider} answered without a message",
            provider=provider,
            model=requested_model,
            request_id=request_id,
        )
    text = _str(message.get("tool_plan"))
    content = message.get("content")
    if isinstance(content, str):
        text += content
    elif isinstance(content, list):
        text += "".join(
            item["text"]
            for item in content
            if isinstance(item, Mapping)
            and item.get("type", "text") == "text"
            and isinstance(item.get("text"), str)
        )
    calls = _tool_calls(message.get("tool_calls"))
    if calls:
        parts: list[Part] = [TextPart(text=text)] if text else []
        parts.extend(calls)
        assistant = Message(role="assistant", content=parts)
    else:
        assistant = Message(role="assistant", content=text)
    raw_finish = data.get("finish_reason")
    raw_finish = raw_finish if isinstance(raw_finish, str) else None
    usage = parse_usage(data.get("usage"))
    row = find_model(models, requested_model)
    return ModelCompletionResponse(
        id=_str(data.get("id")),
        model=requested_model,
        provider=provider,
        message=assistant,
        finish_reason=_FINISH_REASONS.get(raw_finish or "", "stop"),
        raw_finish_reason=raw_finish,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        warnings=warnings,
        raw=data,
    )


# --------------------------------------------------------------------------- streams


def _delta_message(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    delta = payload.get("delta")
    message = delta.get("message") if isinstance(delta, Mapping) else None
    return message if isinstance(message, Mapping) else {}


class _Content:
    __slots__ = ("kind", "pieces")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pieces: list[str] = []


class _Call:
    __slots__ = ("arguments", "closed", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []
        self.closed = False


class CohereStreamAssembler:
    """Turns the events of a streamed ``/v2/chat`` call into unified events.

    Feed each parsed event with ``feed`` (it returns the unified events it produced).
    ``finished`` says whether ``message-end`` arrived; ``error`` holds the error message
    that ended the answer, if one did. ``finish`` assembles the events into the equivalent
    non-streamed answer (the response's ``raw``) and parses it with
    ``parse_chat_response``, so a stream and ``complete`` give equal responses. The tool
    plan streams as text deltas, before the tool calls.
    """

    def __init__(self) -> None:
        self._id = ""
        self._plan: list[str] = []
        self._contents: dict[int, _Content] = {}
        self._calls: dict[int, _Call] = {}
        self._citations: list[Any] = []
        self._finish_reason: str | None = None
        self._usage: Any = None
        self._delivered: list[str] = []
        #: Whether ``message-end`` arrived.
        self.finished = False
        #: The error message of a ``message-end`` that reported one.
        self.error: str | None = None

    @property
    def text(self) -> str:
        """The text delivered so far (tool plan and answer)."""
        return "".join(self._delivered)

    def feed(self, payload: Mapping[str, Any], event: str = "") -> list[StreamEvent]:
        """The unified events of one stream event (``event`` is the SSE event name)."""
        kind = payload.get("type") or event
        if kind == "content-delta":
            return self._content_delta(payload)
        if kind == "tool-plan-delta":
            piece = _str(_delta_message(payload).get("tool_plan"))
            return self._text(piece, self._plan)
        if kind == "tool-call-delta":
            return self._call_delta(payload)
        if kind == "content-start":
            return self._content_start(payload)
        if kind == "tool-call-start":
            return self._call_start(payload)
        if kind == "tool-call-end":
            return self._call_end(payload.get("index"))
        if kind == "citation-start":
            citation = _delta_message(payload).get("citations")
            if citation is not None:
                self._citations.append(citation)
            return []
        if kind == "message-start":
            self._id = _str(payload.get("id"))
            return []
        if kind == "message-end":
            return self._message_end(payload)
        return []  # content-end, citation-end, debug, and types added after this was written

    def _text(self, piece: str, into: list[str]) -> list[StreamEvent]:
        if not piece:
            return []
        event = TextDeltaEvent(text=piece)
        into.append(piece)
        self._delivered.append(piece)
        return [event]

    def _content_start(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        content = _delta_message(payload).get("content")
        kind = content.get("type") if isinstance(content, Mapping) else None
        index = payload.get("index")
        if not isinstance(index, int):
            index = len(self._contents)
        block = self._contents[index] = _Content(kind if isinstance(kind, str) else "text")
        if not isinstance(content, Mapping):
            return []
        if block.kind == "thinking":
            thought = _str(content.get("thinking"))
            if thought:
                block.pieces.append(thought)
                return [ReasoningDeltaEvent(text=thought)]
            return []
        return self._text(_str(content.get("text")), block.pieces)

    def _content_delta(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        content = _delta_message(payload).get("content")
        if not isinstance(content, Mapping):
            return []
        index = payload.get("index")
        block = self._contents.get(index) if isinstance(index, int) else None
        if block is None:
            # A delta without its start: its own keys say what it is.
            block = _Content("thinking" if "thinking" in content else "text")
            self._contents[index if isinstance(index, int) else len(self._contents)] = block
        if block.kind == "thinking":
            thought = _str(content.get("thinking"))
            if not thought:
                return []
            event = ReasoningDeltaEvent(text=thought)
            block.pieces.append(thought)
            return [event]
        return self._text(_str(content.get("text")), block.pieces)

    def _call_start(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        call = _delta_message(payload).get("tool_calls")
        if not isinstance(call, Mapping):
            return []
        index = payload.get("index")
        if not isinstance(index, int):
            index = len(self._calls)
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        state = _Call(_str(call.get("id")), _str(function.get("name")))
        arguments = _str(function.get("arguments"))
        event = ToolCallDeltaEvent(
            index=index, id=state.id or None, name=state.name or None, arguments_delta=arguments
        )
        if arguments:
            state.arguments.append(arguments)
        self._calls[index] = state
        return [event]

    def _call_delta(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        index = payload.get("index")
        state = self._calls.get(index) if isinstance(index, int) else None
        call = _delta_message(payload).get("tool_calls")
        function = call.get("function") if isinstance(call, Mapping) else None
        piece = _str(function.get("arguments")) if isinstance(function, Mapping) else ""
        if state is None or not piece or not isinstance(index, int):
            return []
        event = ToolCallDeltaEvent(index=index, arguments_delta=piece)
        state.arguments.append(piece)
        return [event]

    def _call_end(self, index: Any) -> list[StreamEvent]:
        state = self._calls.get(index) if isinstance(index, int) else None
        if state is None or state.closed or not isinstance(index, int):
            return []
        state.closed = True
        call = ToolCall(
            id=state.id or f"call_{index}", name=state.name, arguments="".join(state.arguments)
        )
        return [ToolCallEvent(index=index, tool_call=call)]

    def _message_end(self, payload: Mapping[str, Any]) -> list[StreamEvent]:
        delta = payload.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        events: list[StreamEvent] = []
        for index in sorted(self._calls):
            events.extend(self._call_end(index))
        reason = delta.get("finish_reason")
        self._finish_reason = reason if isinstance(reason, str) else None
        error = delta.get("error")
        self.error = error if isinstance(error, str) and error else None
        usage = delta.get("usage")
        if isinstance(usage, Mapping):
            self._usage = dict(usage)
            events.append(UsageEvent(usage=parse_usage(usage)))
        self.finished = True
        return events

    def assembled(self) -> dict[str, Any]:
        """The non-streamed answer the events so far add up to (the response's ``raw``)."""
        message: dict[str, Any] = {"role": "assistant"}
        if self._plan:
            message["tool_plan"] = "".join(self._plan)
        if self._calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": "".join(call.arguments)},
                }
                for index, call in sorted(self._calls.items())
            ]
        content: list[dict[str, Any]] = []
        for _, block in sorted(self._contents.items()):
            if block.kind == "thinking":
                content.append({"type": "thinking", "thinking": "".join(block.pieces)})
            else:
                content.append({"type": block.kind, "text": "".join(block.pieces)})
        if content:
            message["content"] = content
        if self._citations:
            message["citations"] = list(self._citations)
        data: dict[str, Any] = {"id": self._id, "message": message}
        if self._finish_reason is not None:
            data["finish_reason"] = self._finish_reason
        if self._usage is not None:
            data["usage"] = self._usage
        return data

    def finish(
        self,
        *,
        provider: str,
        latency: float,
        request_id: str | None,
        warnings: list[str],
        models: Mapping[str, ProviderModel],
        requested_model: str,
    ) -> ModelCompletionResponse:
        """The complete response: what ``parse_chat_response`` gives for the same answer."""
        return parse_chat_response(
            self.assembled(),
            provider=provider,
            latency=latency,
            request_id=request_id,
            warnings=warnings,
            models=models,
            requested_model=requested_model,
        )


# --------------------------------------------------------------------------- embeddings


def build_embed_request(
    options: ModelEmbeddingOptions, *, default_input_type: str = DEFAULT_INPUT_TYPE
) -> dict[str, Any]:
    """The ``/v2/embed`` body: the texts, float vectors, ``output_dimension`` for
    ``dimensions``, and ``input_type`` (``default_input_type`` unless
    ``provider_options`` names one; v3 and later models require it).
    ``provider_options`` are merged last (``truncate``, ``max_tokens``...)."""
    body: dict[str, Any] = {
        "model": options.model,
        "texts": options.input,
        "input_type": default_input_type,
        "embedding_types": ["float"],
    }
    if options.dimensions is not None:
        body["output_dimension"] = options.dimensions
    if options.provider_options:
        body.update(options.provider_options)
    return body


def parse_embed_response(
    data: dict[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel],
) -> ModelEmbeddingResponse:
    """A ``/v2/embed`` answer -> float vectors in input order.

    Reads ``embeddings.float`` (``embeddings_by_type``) or a plain list of vectors
    (``embeddings_floats``). ``raw`` is the answer without the vectors.
    """
    embeddings = data.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, Mapping) else embeddings
    if not (isinstance(vectors, list) and all(isinstance(v, list) for v in vectors) and vectors):
        kinds = sorted(embeddings) if isinstance(embeddings, Mapping) else []
        raise MalformedResponseError(
            f"{provider} answered without float embeddings"
            + (f" (it sent {', '.join(kinds)}; aiport reads 'float')" if kinds else ""),
            provider=provider,
            model=model,
            request_id=request_id,
        )
    usage = parse_usage(data.get("meta"))
    row = find_model(models, model)
    return ModelEmbeddingResponse.model_construct(
        model=model,
        provider=provider,
        embeddings=vectors,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        attempts=[],
        raw={k: v for k, v in data.items() if k != "embeddings"},
    )
