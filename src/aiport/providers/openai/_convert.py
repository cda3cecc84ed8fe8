"""Pure conversions between aiport's unified shapes and the OpenAI Chat Completions wire.

No I/O, no clock, no credentials: everything here is unit-tested without a network.
The same functions serve OpenAI itself and OpenAI-compatible servers (``compatible=True``:
vLLM, Ollama, llama.cpp, Groq, Together...), which differ in a few request fields and
leave fields out of their answers.

Building the unified objects: every value that comes from the wire is type-checked and
normalised here first (``_str``, ``_int``, ``_text_of``, the finish-reason table), so odd
answers from compatible servers cannot raise a bare ``ValidationError``, and the other
values are ours (the provider's name, the clock, the request id, the catalogue's cost).
So the answer's objects (response, message, usage, tool calls, text deltas) are valid by
construction and are made with ``aiport._replace.trusted``, without a second check by
pydantic: ~2 µs less per answer and ~0.2 µs per stream event (docs/decisions.md 18;
``model_construct`` itself runs in Python and is slower than validating a small model).
What each builder must uphold (every field, in order, valid) is tested against the
validating constructors in tests/test_trusted_models.py. Embedding and image responses
use ``model_construct``: validating thousands of floats, or large byte strings, would
cost time for nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiport._errors import MalformedResponseError
from aiport._replace import trusted
from aiport._types import (
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    NamedToolChoice,
    Part,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
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
    "image_part",
    "lookup_model",
    "parse_chat_response",
    "parse_usage",
]

#: OpenAI accepts at most this many stop sequences.
MAX_STOP_SEQUENCES = 4

_FINISH_REASONS: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

# --------------------------------------------------------------------------- request


def image_part(part: ImagePart) -> dict[str, Any]:
    """An ``image_url`` content part (also Mistral's and Cohere's wire shape)."""
    image: dict[str, Any] = {"url": part.data_url()}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _tool_message(result: ToolResultPart, warnings: list[str]) -> dict[str, Any]:
    if not isinstance(result.content, str) and any(
        isinstance(p, ImagePart) for p in result.content
    ):
        # OpenAI tool messages take text parts only.
        warnings.append(
            f"tool result {result.tool_call_id}: images in tool results are not supported "
            "by OpenAI tool messages; only the text was sent"
        )
    if result.is_error:
        warnings.append(
            f"tool result {result.tool_call_id}: OpenAI has no error flag for tool results; "
            "it was sent as an ordinary result"
        )
    return {"role": "tool", "tool_call_id": result.tool_call_id, "content": result.text()}


def _convert_message(
    message: Message, out: list[dict[str, Any]], warnings: list[str], compatible: bool
) -> None:
    role = message.role
    content = message.content
    if role in ("system", "developer"):
        wire_role = "system" if compatible else role
        entry: dict[str, Any] = {"role": wire_role, "content": message.text}
    elif role == "tool":
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                out.append(_tool_message(part, warnings))
            else:
                warnings.append(
                    f"a {part.type} part outside a tool result in a 'tool' message has no "
                    "OpenAI equivalent and was not sent"
                )
        return
    elif role == "assistant":
        entry = {"role": "assistant"}
        if isinstance(content, str):
            entry["content"] = content
        else:
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in content:
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
                        f"a {part.type} part in an assistant message has no OpenAI "
                        "equivalent and was not sent"
                    )
            text = "".join(texts)
            # OpenAI wants content null (not "") on a message that only calls tools.
            entry["content"] = text if (text or not calls) else None
            if calls:
                entry["tool_calls"] = calls
    elif isinstance(content, str):
        entry = {"role": "user", "content": content}
    else:
        parts: list[dict[str, Any]] = []
        only_text = True
        had_results = False
        for part in content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                only_text = False
                parts.append(image_part(part))
            elif isinstance(part, ToolResultPart):
                # Anthropic-style results inside a user message: OpenAI wants them as
                # tool messages, right after the assistant message that made the calls.
                out.append(_tool_message(part, warnings))
                had_results = True
        if not parts:
            if had_results:
                return  # the message held tool results only
            entry = {"role": "user", "content": ""}
        elif only_text and compatible:
            # Several compatible servers accept only string content.
            entry = {"role": "user", "content": "".join(p["text"] for p in parts)}
        else:
            entry = {"role": "user", "content": parts}
    if message.name is not None:
        entry["name"] = message.name
    out.append(entry)


def _response_format(value: Any) -> dict[str, Any] | None:
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, JsonSchemaFormat):
        schema: dict[str, Any] = {"name": value.name, "schema": value.schema_}
        schema["strict"] = value.strict
        if value.description:
            schema["description"] = value.description
        return {"type": "json_schema", "json_schema": schema}
    return None  # "text" is the default: nothing to send


def build_chat_request(
    options: ModelCompletionOptions, *, compatible: bool, stream: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The Chat Completions request body for ``options``, and warnings about it.

    ``compatible`` targets OpenAI-compatible servers: ``max_tokens`` instead of
    ``max_completion_tokens``, developer messages sent as system messages, text-only
    user content as a plain string. ``provider_options`` are merged last, untouched.
    """
    warnings: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in options.messages:
        _convert_message(message, messages, warnings, compatible)
    body: dict[str, Any] = {"model": options.model, "messages": messages}
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.max_tokens is not None:
        body["max_tokens" if compatible else "max_completion_tokens"] = options.max_tokens
    if options.stop:
        stop = options.stop
        if not compatible and len(stop) > MAX_STOP_SEQUENCES:
            warnings.append(
                f"OpenAI accepts at most {MAX_STOP_SEQUENCES} stop sequences; "
                f"{len(stop) - MAX_STOP_SEQUENCES} were not sent"
            )
            stop = stop[:MAX_STOP_SEQUENCES]
        body["stop"] = stop
    if options.seed is not None:
        body["seed"] = options.seed
    if options.tools:
        tools: list[dict[str, Any]] = []
        for tool in options.tools:
            function: dict[str, Any] = {"name": tool.name}
            if tool.description:
                function["description"] = tool.description
            function["parameters"] = tool.parameters
            if tool.strict is not None:
                function["strict"] = tool.strict
            tools.append({"type": "function", "function": function})
        body["tools"] = tools
        # Both settings are refused by OpenAI without tools (and mean nothing then),
        # so they are only sent along with tools.
        choice = options.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        if options.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = options.parallel_tool_calls
    response_format = _response_format(options.response_format)
    if response_format is not None:
        body["response_format"] = response_format
    if options.metadata:
        body["metadata"] = options.metadata
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if options.provider_options:
        body.update(options.provider_options)
    return body, warnings


# --------------------------------------------------------------------------- response


def _int(value: Any) -> int:
    # int(): a JSON true counts 1, as pydantic's int fields take it.
    return int(value) if isinstance(value, int) else 0


_USAGE_FIELDS_GIVEN = frozenset(
    ("input_tokens", "output_tokens", "total_tokens", "cached_input_tokens", "reasoning_tokens")
)


def usage_of(
    input_tokens: int,
    output_tokens: int,
    total_tokens: int,
    cached_input_tokens: int,
    reasoning_tokens: int,
) -> Usage:
    """``Usage(...)`` of these counts, without validation (ints by construction; the total
    already filled in as ``Usage`` fills it)."""
    return trusted(
        Usage,
        {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": total_tokens or input_tokens + output_tokens,
            "cached_input_tokens": cached_input_tokens,
            "cache_creation_input_tokens": 0,
            "reasoning_tokens": reasoning_tokens,
        },
        set(_USAGE_FIELDS_GIVEN),
    )


def finish_event(response: ModelCompletionResponse) -> StreamFinishEvent:
    """``StreamFinishEvent(response=response)`` without validation (a response is one)."""
    return trusted(StreamFinishEvent, {"type": "finish", "response": response}, {"response"})


def text_delta(text: str) -> TextDeltaEvent:
    """``TextDeltaEvent(text=text)`` for a ``str``, without validation (one per event)."""
    return trusted(TextDeltaEvent, {"type": "text-delta", "text": text}, {"text"})


def parse_usage(data: Any) -> Usage:
    """Chat or embedding ``usage`` -> ``Usage`` (missing fields count as 0)."""
    if not isinstance(data, Mapping):
        return Usage()
    prompt = _int(data.get("prompt_tokens"))
    completion = _int(data.get("completion_tokens"))
    prompt_details = data.get("prompt_tokens_details")
    completion_details = data.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if prompt_details else 0
    if not cached:
        # DeepSeek reports its cache hits at the top level (prompt_cache_hit_tokens, with
        # prompt_cache_miss_tokens the rest of prompt_tokens).
        cached = _int(data.get("prompt_cache_hit_tokens"))
    reasoning = _int(completion_details.get("reasoning_tokens")) if completion_details else 0
    return usage_of(prompt, completion, _int(data.get("total_tokens")), cached, reasoning)


def lookup_model(
    models: Mapping[str, ProviderModel], reported: str | None, requested: str | None
) -> ProviderModel | None:
    """The catalogue row for an answer: the model reported, without its date suffix
    (``gpt-4o-2024-08-06`` -> ``gpt-4o``), or the model requested."""
    if not models:
        return None
    for name in (reported, requested):
        if not name:
            continue
        found = models.get(name)
        if found is not None:
            return found
        # Snapshots end in -YYYY-MM-DD.
        if len(name) > 11 and name[-11] == "-" and name[-10:-6].isdigit():
            found = models.get(name[:-11])
            if found is not None:
                return found
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some compatible servers answer with parts
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


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
        if not isinstance(arguments, str):
            # Some compatible servers send the arguments as an object.
            arguments = "{}" if arguments is None else json.dumps(arguments, ensure_ascii=False)
        out.append(
            _tool_call(
                _str(call.get("id")) or f"call_{position}", _str(function.get("name")), arguments
            )
        )
    return out


def _tool_call(call_id: str, name: str, arguments: str) -> ToolCall:
    """``ToolCall(...)`` of three ``str``, without validation."""
    return trusted(
        ToolCall,
        {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments},
        {"id", "name", "arguments"},
    )


def _assistant(text: str, calls: list[ToolCall]) -> Message:
    """The assistant message of an answer, without validation: text and tool calls are
    what an assistant message may hold (``Message``'s role check passes by construction)."""
    content: str | list[Part]
    if not calls:
        content = text
    else:
        content = [trusted(TextPart, {"type": "text", "text": text}, {"text"})] if text else []
        content.extend(calls)
    return trusted(
        Message, {"role": "assistant", "content": content, "name": None}, {"role", "content"}
    )


_RESPONSE_FIELDS_GIVEN = frozenset(
    (
        "id",
        "model",
        "provider",
        "message",
        "finish_reason",
        "raw_finish_reason",
        "usage",
        "latency",
        "cost",
        "request_id",
        "warnings",
        "raw",
    )
)


def parse_chat_response(
    data: dict[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: list[str],
    models: Mapping[str, ProviderModel],
    requested_model: str | None = None,
) -> ModelCompletionResponse:
    """A Chat Completions answer -> ``ModelCompletionResponse``.

    Only the first choice is unified; with ``n > 1`` (through ``provider_options``) the
    other choices stay in ``raw["choices"]``. A refusal becomes the message text with
    finish reason ``content_filter``. Missing fields (compatible servers) get defaults:
    the requested model, an empty id, zero usage.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise MalformedResponseError(
            f"{provider} answered without any choice",
            provider=provider,
            model=requested_model,
            request_id=request_id,
        )
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    return _response(
        data,
        text=_text_of(message.get("content")),
        refusal=message.get("refusal"),
        raw_finish=choice.get("finish_reason"),
        calls=_tool_calls_of(message.get("tool_calls")),
        usage=parse_usage(data.get("usage")),
        provider=provider,
        latency=latency,
        request_id=request_id,
        warnings=warnings,
        models=models,
        requested_model=requested_model,
    )


def _response(
    data: dict[str, Any],
    *,
    text: str,
    refusal: Any,
    raw_finish: Any,
    calls: list[ToolCall],
    usage: Usage,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: list[str],
    models: Mapping[str, ProviderModel],
    requested_model: str | None,
) -> ModelCompletionResponse:
    """The response for the answer ``data``, given its first choice's parts, read
    (``parse_chat_response``) or already known (``ChatStreamAssembler.finish``)."""
    if not isinstance(raw_finish, str):
        raw_finish = None
    finish = _FINISH_REASONS.get(raw_finish, "stop")
    if refusal and isinstance(refusal, str):
        text += refusal
        finish = "content_filter"
    model = _str(data.get("model")) or requested_model or ""
    row = lookup_model(models, model, requested_model)
    # Valid by construction (see the module's docstring); ``warnings`` copied as
    # validation would copy it (the caller's list may still grow), ``data`` kept as the
    # response's own ``raw``.
    return trusted(
        ModelCompletionResponse,
        {
            "id": _str(data.get("id")),
            "model": model,
            "provider": provider,
            "message": _assistant(text, calls),
            "finish_reason": finish,
            "raw_finish_reason": raw_finish,
            "usage": usage,
            "latency": float(latency),
            "cost": row.cost(usage) if row is not None else None,
            "request_id": request_id,
            "warnings": list(warnings),
            "attempts": [],
            "raw": data,
        },
        set(_RESPONSE_FIELDS_GIVEN),
    )


# --------------------------------------------------------------------------- streams


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class _Choice:
    """What the deltas of one choice add up to."""

    __slots__ = ("calls", "content", "finish_reason", "has_content", "logprobs", "refusal")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.has_content = False
        self.refusal: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def as_wire(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.has_content else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{position}",
                    "type": "function",
                    "function": {"name": call.name or "", "arguments": "".join(call.arguments)},
                }
                for position, (_, call) in enumerate(sorted(self.calls.items()))
            ]
        return {
            "index": index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


class ChatStreamAssembler:
    """Turns parsed stream chunks into unified events and, at the end, the response.

    Feed it every chunk (``feed`` returns the events to yield); ``finished`` says
    whether a finish reason arrived. ``finish`` builds the response by assembling the
    chunks into the equivalent non-streamed answer and parsing that with
    ``parse_chat_response``, so a stream and ``complete`` give equal responses.
    That assembled answer (all choices, content, refusal, tool calls, logprobs,
    usage) is the response's ``raw``.

    Only the first choice produces events; other choices (``n > 1``) are assembled
    into ``raw`` only.
    """

    __slots__ = (
        "_choices",
        "_emitted",
        "_head",
        "_open_call",
        "_usage",
        "_usage_parsed",
        "finished",
    )

    def __init__(self) -> None:
        self._head: dict[str, Any] | None = None
        self._choices: dict[int, _Choice] = {}
        self._usage: Any = None
        # ``parse_usage(self._usage)``, made when it arrived (for its event), kept for the end.
        self._usage_parsed: Usage | None = None
        self._open_call: int | None = None
        self._emitted: set[int] = set()
        #: Whether a finish reason arrived for the first choice.
        self.finished = False

    @property
    def text(self) -> str:
        """The text delivered so far (first choice)."""
        choice = self._choices.get(0)
        if choice is None:
            return ""
        return "".join(choice.content) + "".join(choice.refusal)

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """The events one chunk produces (text, tool-call deltas, finished calls, usage)."""
        if self._head is None:
            self._head = {
                k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk
            }
        events: list[StreamEvent] = []
        choices = chunk.get("choices")
        if choices:
            for choice in choices:
                index = choice.get("index")
                if not isinstance(index, int):
                    index = 0
                state = self._choices.get(index)
                if state is None:
                    state = self._choices[index] = _Choice()
                delta = choice.get("delta")
                if delta:
                    self._delta(state, delta, events if index == 0 else None)
                logprobs = choice.get("logprobs")
                if logprobs:
                    self._logprobs(state, logprobs)
                reason = choice.get("finish_reason")
                if reason:
                    state.finish_reason = reason
                    if index == 0:
                        self.finished = True
                        self._close_calls(state, events)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
            parsed = self._usage_parsed = parse_usage(usage)
            events.append(
                trusted(UsageEvent, {"type": "usage", "usage": parsed, "cost": None}, {"usage"})
            )
        return events

    def _delta(
        self, state: _Choice, delta: Mapping[str, Any], events: list[StreamEvent] | None
    ) -> None:
        content = delta.get("content")
        if content is not None:
            state.has_content = True
            if content and isinstance(content, str):
                state.content.append(content)
                if events is not None:
                    events.append(text_delta(content))
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            state.refusal.append(refusal)
            if events is not None:
                events.append(text_delta(refusal))
        calls = delta.get("tool_calls")
        if calls:
            for call in calls:
                self._call_delta(state, call, events)

    def _call_delta(
        self, state: _Choice, call: Mapping[str, Any], events: list[StreamEvent] | None
    ) -> None:
        index = call.get("index")
        call_id = call.get("id")
        if not isinstance(index, int):
            # Some compatible servers leave the index out: a new id starts a new call.
            last = max(state.calls) if state.calls else None
            if last is None or (call_id and state.calls[last].id not in (None, call_id)):
                index = 0 if last is None else last + 1
            else:
                index = last
        current = state.calls.get(index)
        if current is None:
            current = state.calls[index] = _Call()
            if events is not None and self._open_call is not None:
                # A new call started: the previous one is complete.
                self._close_call(state, self._open_call, events)
            if events is not None:
                self._open_call = index
        function = call.get("function") or {}
        name = function.get("name")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False) if arguments else None
        call_id = _str(call_id) or None
        name = _str(name) or None
        if call_id and not current.id:
            current.id = call_id
        if name and not current.name:
            current.name = name
        if arguments:
            current.arguments.append(arguments)
        if events is not None:
            events.append(
                ToolCallDeltaEvent(
                    index=index,
                    id=call_id or None,
                    name=name or None,
                    arguments_delta=arguments or "",
                )
            )

    def _close_call(self, state: _Choice, index: int, events: list[StreamEvent]) -> None:
        if index in self._emitted:
            return
        self._emitted.add(index)
        call = state.calls[index]
        position = sorted(state.calls).index(index)
        tool_call = _tool_call(
            call.id or f"call_{position}", call.name or "", "".join(call.arguments)
        )
        events.append(ToolCallEvent(index=index, tool_call=tool_call))

    def _close_calls(self, state: _Choice, events: list[StreamEvent]) -> None:
        for index in sorted(state.calls):
            self._close_call(state, index, events)
        self._open_call = None

    @staticmethod
    def _logprobs(state: _Choice, logprobs: Mapping[str, Any]) -> None:
        if state.logprobs is None:
            state.logprobs = {"content": [], "refusal": []}
        for key in ("content", "refusal"):
            values = logprobs.get(key)
            if values:
                state.logprobs[key].extend(values)

    def assembled(self) -> dict[str, Any]:
        """The non-streamed answer the chunks so far add up to (the response's ``raw``)."""
        data: dict[str, Any] = dict(self._head or {})
        data["object"] = "chat.completion"
        data["choices"] = [state.as_wire(index) for index, state in sorted(self._choices.items())]
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
        requested_model: str | None = None,
    ) -> ModelCompletionResponse:
        """The complete response: what ``parse_chat_response`` gives for the same answer.

        Built from what the chunks already said (the text, tool calls and usage as read),
        not by reading the assembled answer (its ``raw``) a second time.
        """
        first = self._choices.get(0)
        if first is None:
            first = self._choices[0] = _Choice()
        usage = self._usage_parsed if self._usage is not None else None
        return _response(
            self.assembled(),
            text="".join(first.content),
            refusal="".join(first.refusal) if first.refusal else None,
            raw_finish=first.finish_reason,
            calls=[
                _tool_call(call.id or f"call_{position}", call.name or "", "".join(call.arguments))
                for position, (_, call) in enumerate(sorted(first.calls.items()))
            ],
            usage=usage if usage is not None else parse_usage(None),
            provider=provider,
            latency=latency,
            request_id=request_id,
            warnings=warnings,
            models=models,
            requested_model=requested_model,
        )
