"""Pure conversions between aiport's unified shapes and Ollama's native chat and embed API.

No I/O, no clock, no credentials. The wire format is Ollama's ``/api/chat`` and
``/api/embed`` (see the ``ollama`` Python SDK's ``_types`` and the server's ``api/types.go``):

- messages carry ``content`` as one string and images as a list of base64 strings
  (``images``); Ollama fetches nothing, so an image given by URL cannot be sent;
- assistant tool calls are ``{"id", "function": {"name", "arguments": {...}}}`` with the
  arguments as a JSON *object*, not a string; tool results are ``role: "tool"`` messages
  naming the tool (``tool_name``) and, on recent servers, the call (``tool_call_id``);
- sampling settings live in ``options`` (``temperature``, ``top_p``, ``num_predict``,
  ``stop``, ``seed``, ``num_ctx``...); JSON output is ``format``: ``"json"`` or a JSON
  schema; ``think`` and ``keep_alive`` are top-level;
- answers are ``{"model", "created_at", "message", "done", "done_reason",
  "prompt_eval_count", "eval_count", ...durations in ns}``; a stream sends the same object
  once per piece (NDJSON) and the metrics only on the last line (``done: true``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._errors import MalformedResponseError
from aiport._types import (
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
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

__all__ = [
    "ChatStreamAssembler",
    "build_chat_request",
    "build_embed_request",
    "find_model",
    "parse_chat_response",
    "parse_embed_response",
    "parse_usage",
]

_FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length"}
#: The metrics Ollama puts on a finished answer (the last line of a stream).
_METRICS = (
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)

# --------------------------------------------------------------------------- request


def _images(parts: list[Any], warnings: list[str], where: str) -> list[str]:
    """Base64 strings of the inline images among ``parts``; URL images become warnings."""
    images: list[str] = []
    for part in parts:
        if not isinstance(part, ImagePart):
            continue
        if part.data is None:
            warnings.append(
                f"{where}: an image given by URL was not sent: Ollama takes only inline "
                "images (give the image bytes instead)"
            )
            continue
        if part.detail is not None:
            warnings.append(f"{where}: image detail {part.detail!r} has no Ollama equivalent")
        images.append(part.base64_data())
    return images


def _arguments_object(call: ToolCall, warnings: list[str]) -> dict[str, Any]:
    """A tool call's JSON-text arguments as the object Ollama wants."""
    try:
        value = call.parse_arguments()
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    warnings.append(
        f"tool call {call.id}: its arguments are not a JSON object, which Ollama requires; "
        "they were sent as {}"
    )
    return {}


def _tool_message(
    result: ToolResultPart, names: Mapping[str, str], warnings: list[str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": "tool", "content": result.text()}
    if not isinstance(result.content, str):
        images = _images(list(result.content), warnings, f"tool result {result.tool_call_id}")
        if images:
            entry["images"] = images
    name = names.get(result.tool_call_id)
    if name is not None:
        entry["tool_name"] = name
    entry["tool_call_id"] = result.tool_call_id
    if result.is_error:
        warnings.append(
            f"tool result {result.tool_call_id}: Ollama has no error flag for tool results; "
            "it was sent as an ordinary result"
        )
    return entry


def _convert_message(
    message: Message, out: list[dict[str, Any]], names: dict[str, str], warnings: list[str]
) -> None:
    """Append the wire form of ``message`` to ``out``; ``names`` maps call ids to tool names
    (filled from assistant messages, read by the tool results after them)."""
    role = message.role
    if message.name is not None:
        warnings.append(f"the name of a {role} message has no Ollama equivalent and was not sent")
    if role in ("system", "developer"):
        out.append({"role": "system", "content": message.text})
        return
    parts = message.parts
    if role == "tool":
        for part in parts:
            if isinstance(part, ToolResultPart):
                out.append(_tool_message(part, names, warnings))
            else:
                warnings.append(
                    f"a {part.type} part outside a tool result in a 'tool' message has no "
                    "Ollama equivalent and was not sent"
                )
        return
    if role == "assistant":
        entry: dict[str, Any] = {"role": "assistant", "content": message.text}
        calls: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part, ToolCall):
                names[part.id] = part.name
                calls.append(
                    {
                        "id": part.id,
                        "function": {
                            "name": part.name,
                            "arguments": _arguments_object(part, warnings),
                        },
                    }
                )
            elif not isinstance(part, TextPart):
                warnings.append(
                    f"a {part.type} part in an assistant message has no Ollama equivalent "
                    "and was not sent"
                )
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
        return
    # A user message: its text, its inline images, and any tool results it carries
    # (Anthropic style), which Ollama wants as tool messages before it.
    texts: list[str] = []
    for part in parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolResultPart):
            out.append(_tool_message(part, names, warnings))
    images = _images(list(parts), warnings, "user message")
    if not texts and not images and any(isinstance(p, ToolResultPart) for p in parts):
        return  # the message held tool results only
    user: dict[str, Any] = {"role": "user", "content": "".join(texts)}
    if images:
        user["images"] = images
    out.append(user)


def _tools(options: ModelCompletionOptions, warnings: list[str]) -> list[dict[str, Any]] | None:
    """The ``tools`` to send. Ollama has no ``tool_choice``: ``"none"`` is honoured by
    sending no tools, a named choice by offering only that tool; forcing a call cannot be."""
    tools = options.tools or []
    choice = options.tool_choice
    if not tools or choice == "none":
        return None
    if isinstance(choice, NamedToolChoice):
        tools = [tool for tool in tools if tool.name == choice.name] or tools
        warnings.append(
            f"Ollama cannot force a tool call: only the tool {choice.name!r} was offered, "
            "and the model may still answer in text"
        )
    elif choice == "required":
        warnings.append(
            "Ollama cannot force a tool call (tool_choice 'required'): the model may answer in text"
        )
    if options.parallel_tool_calls is False:
        warnings.append("Ollama cannot turn off parallel tool calls (parallel_tool_calls)")
    wire: list[dict[str, Any]] = []
    for tool in tools:
        if tool.strict is not None:
            warnings.append(f"tool {tool.name!r}: 'strict' has no Ollama equivalent")
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.parameters
        wire.append({"type": "function", "function": function})
    return wire


def build_chat_request(
    options: ModelCompletionOptions, *, stream: bool
) -> tuple[dict[str, Any], list[str]]:
    """The ``/api/chat`` body for ``options``, and warnings about what could not be sent.

    ``stream`` is always sent: Ollama streams unless told ``false``. ``provider_options``
    are merged last: their ``options`` table into ``options`` (``num_ctx``, ``top_k``...),
    everything else at the top level (``think``, ``keep_alive``, ``truncate``...).
    """
    warnings: list[str] = []
    messages: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in options.messages:
        _convert_message(message, messages, names, warnings)
    body: dict[str, Any] = {"model": options.model, "messages": messages, "stream": stream}
    tools = _tools(options, warnings)
    if tools:
        body["tools"] = tools
    response_format = options.response_format
    if response_format == "json":
        body["format"] = "json"
    elif isinstance(response_format, JsonSchemaFormat):
        body["format"] = response_format.schema_
    sampling: dict[str, Any] = {}
    if options.temperature is not None:
        sampling["temperature"] = options.temperature
    if options.top_p is not None:
        sampling["top_p"] = options.top_p
    if options.max_tokens is not None:
        sampling["num_predict"] = options.max_tokens
    if options.stop:
        sampling["stop"] = list(options.stop)
    if options.seed is not None:
        sampling["seed"] = options.seed
    if options.metadata:
        warnings.append("request metadata has no Ollama equivalent and was not sent")
    extra = dict(options.provider_options)
    more = extra.pop("options", None)
    if isinstance(more, Mapping):
        sampling.update(more)
    elif more is not None:
        extra["options"] = more  # not a table: the server will say what is wrong with it
    if sampling:
        body["options"] = sampling
    body.update(extra)
    return body, warnings


def build_embed_request(options: ModelEmbeddingOptions) -> dict[str, Any]:
    """The ``/api/embed`` body: every input in one request (Ollama answers in order)."""
    body: dict[str, Any] = {"model": options.model, "input": list(options.input)}
    if options.dimensions is not None:
        body["dimensions"] = options.dimensions
    extra = dict(options.provider_options)
    more = extra.pop("options", None)
    if isinstance(more, Mapping):
        body["options"] = dict(more)
    elif more is not None:
        extra["options"] = more
    body.update(extra)
    return body


# --------------------------------------------------------------------------- response


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_usage(data: Mapping[str, Any]) -> Usage:
    """``prompt_eval_count`` and ``eval_count`` (thinking included) -> ``Usage``.

    Ollama leaves ``prompt_eval_count`` out when the whole prompt came from its cache;
    missing counts are 0.
    """
    return Usage(
        input_tokens=_int(data.get("prompt_eval_count")),
        output_tokens=_int(data.get("eval_count")),
    )


def find_model(models: Mapping[str, ProviderModel], name: str | None) -> ProviderModel | None:
    """The catalogue row of an Ollama model name: by id or alias, or without the default
    ``:latest`` tag (``llama3.2:latest`` -> ``llama3.2``)."""
    if not models or not name:
        return None
    from aiport._catalogue import find_model as find

    row = find(models, name)
    if row is None and name.endswith(":latest"):
        row = find(models, name.removesuffix(":latest"))
    return row


def _tool_calls_of(calls: Any) -> list[ToolCall]:
    out: list[ToolCall] = []
    if not isinstance(calls, list):
        return out
    for position, call in enumerate(calls):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            text = arguments  # not Ollama's form, but some proxies send a string
        else:
            text = (
                "{}"
                if arguments is None
                else json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
            )
        out.append(
            ToolCall(
                # Servers before 0.12 send no id: a position keeps calls apart in one turn.
                id=_str(call.get("id")) or f"call_{position}",
                name=_str(function.get("name")),
                arguments=text,
            )
        )
    return out


def parse_chat_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: list[str],
    models: Mapping[str, ProviderModel],
    requested_model: str | None = None,
) -> ModelCompletionResponse:
    """An ``/api/chat`` answer (``stream: false``) -> ``ModelCompletionResponse``.

    The finish reason is ``tool_calls`` when the model called tools (Ollama still says
    ``stop``), else ``done_reason`` (``stop``, ``length``). The model's thinking
    (``message.thinking``) stays in ``raw``; streams deliver it as reasoning deltas.
    Ollama answers carry no id: ``id`` is empty.
    """
    message = data.get("message")
    if not isinstance(message, Mapping):
        raise MalformedResponseError(
            f"{provider} answered without a message",
            provider=provider,
            model=requested_model,
            request_id=request_id,
        )
    text = _str(message.get("content"))
    calls = _tool_calls_of(message.get("tool_calls"))
    raw_finish = data.get("done_reason")
    raw_finish = raw_finish if isinstance(raw_finish, str) and raw_finish else None
    finish: FinishReason = (
        "tool_calls" if calls else _FINISH_REASONS.get(raw_finish or "stop", "stop")
    )
    content: str | list[Part] = text
    if calls:
        parts: list[Part] = [TextPart(text=text)] if text else []
        parts.extend(calls)
        content = parts
    usage = parse_usage(data)
    model = _str(data.get("model")) or requested_model or ""
    row = find_model(models, model) or find_model(models, requested_model)
    return ModelCompletionResponse(
        id="",
        model=model,
        provider=provider,
        message=Message(role="assistant", content=content),
        finish_reason=finish,
        raw_finish_reason=raw_finish,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        warnings=warnings,
        raw=dict(data),
    )


def parse_embed_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel],
) -> ModelEmbeddingResponse:
    """An ``/api/embed`` answer -> vectors in input order (``raw`` without the vectors)."""
    vectors = data.get("embeddings")
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise MalformedResponseError(
            f"{provider} answered without a list of embeddings",
            provider=provider,
            model=model,
            request_id=request_id,
        )
    usage = Usage(input_tokens=_int(data.get("prompt_eval_count")))
    reported = _str(data.get("model")) or model
    row = find_model(models, reported) or find_model(models, model)
    return ModelEmbeddingResponse.model_construct(
        model=reported,
        provider=provider,
        embeddings=vectors,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        attempts=[],
        raw={k: v for k, v in data.items() if k != "embeddings"},
    )


# --------------------------------------------------------------------------- streams


class ChatStreamAssembler:
    """Turns the parsed lines of an ``/api/chat`` stream into events and, at the end,
    the response.

    ``feed`` returns the events of one line: reasoning and text deltas, and for each
    tool call (Ollama sends calls whole) one ``ToolCallDeltaEvent`` with all its
    arguments followed by its ``ToolCallEvent``; the ``done`` line adds a
    ``UsageEvent``. ``finish`` assembles the lines into the answer ``stream: false``
    would have given and parses it with ``parse_chat_response``, so a stream and
    ``complete`` give equal responses.
    """

    __slots__ = ("_calls", "_content", "_final", "_head", "_thinking", "finished")

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._content: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[Any] = []
        self._final: dict[str, Any] = {}
        #: Whether the ``done: true`` line arrived.
        self.finished = False

    @property
    def text(self) -> str:
        """The text delivered so far."""
        return "".join(self._content)

    def feed(self, line: Mapping[str, Any]) -> list[StreamEvent]:
        """The events one parsed line produces."""
        events: list[StreamEvent] = []
        for key in ("model", "created_at"):
            if key in line:
                self._head[key] = line[key]
        message = line.get("message")
        if isinstance(message, Mapping):
            thinking = message.get("thinking")
            if thinking and isinstance(thinking, str):
                self._thinking.append(thinking)
                events.append(ReasoningDeltaEvent(text=thinking))
            content = message.get("content")
            if content and isinstance(content, str):
                self._content.append(content)
                events.append(TextDeltaEvent(text=content))
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for wire in calls:
                    if not isinstance(wire, Mapping):
                        continue
                    index = len(self._calls)
                    self._calls.append(dict(wire))
                    [call] = _tool_calls_of([wire])
                    if not _str(wire.get("id")):
                        # No id from the server: number the call within the whole answer,
                        # as parse_chat_response does for the assembled answer.
                        call = ToolCall(
                            id=f"call_{index}", name=call.name, arguments=call.arguments
                        )
                    events.append(
                        ToolCallDeltaEvent(
                            index=index,
                            id=call.id,
                            name=call.name,
                            arguments_delta=call.arguments,
                        )
                    )
                    events.append(ToolCallEvent(index=index, tool_call=call))
        if line.get("done") is True:
            self.finished = True
            self._final = {k: line[k] for k in _METRICS if k in line}
            events.append(UsageEvent(usage=parse_usage(line)))
        return events

    def assembled(self) -> dict[str, Any]:
        """The non-streamed answer the lines so far add up to (the response's ``raw``)."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._content)}
        if self._thinking:
            message["thinking"] = "".join(self._thinking)
        if self._calls:
            message["tool_calls"] = self._calls
        return {**self._head, "message": message, "done": self.finished, **self._final}

    def finish(
        self,
        *,
        provider: str,
        latency: float,
        request_id: str | None,
        warnings: list[str],
        models: Mapping[str, ProviderModel],
        requested_model: str | None = None,
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
