"""Pure conversions between aiport's unified shapes and Mistral's chat and embeddings wire.

No I/O, no clock, no credentials. Mistral's API is a dialect of OpenAI's Chat Completions:
parts, tools, response formats and usage are the same on the wire, and the OpenAI
conversions are reused for them (``aiport.providers.openai._convert``). The differences,
translated here explicitly:

- ``seed`` is ``random_seed``; the token budget is ``max_tokens``; there is no
  ``stream_options`` (a stream's last chunk always carries the usage). Mistral refuses
  any field it does not know (HTTP 422 ``extra_forbidden``), so nothing OpenAI-only is
  ever sent.
- ``tool_choice="required"`` is sent as ``"any"``, the value every Mistral deployment
  accepts (newer ones also take ``"required"``).
- Developer messages become system messages. Only tool messages have a ``name`` (the
  function's name, filled in from the call); a name on any other message is a warning.
- Tool-call ids must be nine letters or digits. Ids from other providers (``call_...``,
  ``toolu_...``) are mapped to such ids deterministically, so a call and its result still
  match after the mapping.
- A conversation that ends with an assistant text is a prefill: sent with
  ``prefix: true``. Mistral's answer repeats the prefix; it is removed, so the response
  holds only the continuation, as with Anthropic.
- Tool results take text only and have no error flag: images and ``is_error`` become
  warnings.
- Answers of reasoning models carry ``content`` as a list of chunks; ``thinking`` chunks
  are not assistant text: they stay in ``raw`` and stream as ``ReasoningDeltaEvent``.
  Finish reason ``model_length`` (the context window filled up) is ``length``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from aiport._catalogue import find_model
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
    UsageEvent,
)
from aiport.providers.openai._convert import (
    _response_format,
    image_part,
    parse_usage,
)
from aiport.providers.openai._convert import (
    parse_chat_response as parse_openai_chat_response,
)
from aiport.providers.openai._media import parse_embedding_response as parse_openai_embeddings

__all__ = [
    "MistralStreamAssembler",
    "build_chat_request",
    "build_embedding_request",
    "mistral_tool_call_id",
    "parse_chat_response",
    "parse_embedding_response",
]

_TOOL_CALL_ID = re.compile(r"^[A-Za-z0-9]{9}$")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",
    "tool_calls": "tool_calls",
    "error": "error",
}

# --------------------------------------------------------------------------- request


def mistral_tool_call_id(call_id: str) -> str:
    """``call_id`` as Mistral accepts it: nine letters or digits.

    An id already of that form is kept; any other is replaced by nine base62 characters
    of its SHA-256, so the same id always maps to the same one.
    """
    if _TOOL_CALL_ID.match(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest(), "big")
    chars: list[str] = []
    for _ in range(9):
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(chars)


def _tool_message(
    result: ToolResultPart, names: Mapping[str, str], warnings: list[str]
) -> dict[str, Any]:
    if not isinstance(result.content, str) and any(
        isinstance(p, ImagePart) for p in result.content
    ):
        warnings.append(
            f"tool result {result.tool_call_id}: Mistral tool messages take text only; "
            "the images were not sent"
        )
    if result.is_error:
        warnings.append(
            f"tool result {result.tool_call_id}: Mistral has no error flag for tool results; "
            "it was sent as an ordinary result"
        )
    call_id = mistral_tool_call_id(result.tool_call_id)
    entry: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": result.text()}
    name = names.get(call_id)
    if name:
        entry["name"] = name
    return entry


def _assistant_entry(
    message: Message, names: dict[str, str], warnings: list[str]
) -> tuple[dict[str, Any], str, bool]:
    """The wire message, its text, and whether it calls tools."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            call_id = mistral_tool_call_id(part.id)
            names[call_id] = part.name
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": part.name, "arguments": part.arguments},
                }
            )
        else:
            warnings.append(
                f"a {part.type} part in an assistant message has no Mistral equivalent "
                "and was not sent"
            )
    text = "".join(texts)
    entry: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
    if calls:
        entry["tool_calls"] = calls
    return entry, text, bool(calls)


def _user_entries(
    message: Message, names: Mapping[str, str], out: list[dict[str, Any]], warnings: list[str]
) -> None:
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
            parts.append(image_part(part))
        elif isinstance(part, ToolResultPart):
            # Results inside a user message (Anthropic style) are tool messages here.
            out.append(_tool_message(part, names, warnings))
            had_results = True
    if not parts:
        if not had_results:
            out.append({"role": "user", "content": ""})
        return
    if only_text:
        out.append({"role": "user", "content": "".join(p["text"] for p in parts)})
    else:
        out.append({"role": "user", "content": parts})


def _messages(
    options: ModelCompletionOptions, warnings: list[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """The wire messages, and the prefill text when the last message is one."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # wire tool-call id -> function name
    prefix: str | None = None
    last = len(options.messages) - 1
    for position, message in enumerate(options.messages):
        role = message.role
        if message.name is not None and role != "tool":
            warnings.append(
                f"Mistral {role} messages have no name; the name {message.name!r} was not sent"
            )
        if role in ("system", "developer"):
            out.append({"role": "system", "content": message.text})
        elif role == "assistant":
            entry, text, calls = _assistant_entry(message, names, warnings)
            if position == last and text and not calls:
                # A prefill: Mistral continues the answer from this text.
                entry["prefix"] = True
                prefix = text
            out.append(entry)
        elif role == "tool":
            for part in message.parts:
                if isinstance(part, ToolResultPart):
                    out.append(_tool_message(part, names, warnings))
                else:
                    warnings.append(
                        f"a {part.type} part outside a tool result in a 'tool' message has no "
                        "Mistral equivalent and was not sent"
                    )
        else:
            _user_entries(message, names, out, warnings)
    return out, prefix


def _tools(options: ModelCompletionOptions) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for tool in options.tools or []:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.parameters
        if tool.strict is not None:
            function["strict"] = tool.strict
        tools.append({"type": "function", "function": function})
    return tools


def build_chat_request(
    options: ModelCompletionOptions, *, stream: bool = False, safe_prompt: bool = False
) -> tuple[dict[str, Any], list[str], str | None]:
    """The ``/chat/completions`` body for ``options``, warnings about it, and the prefill.

    ``safe_prompt`` asks Mistral to prepend its safety system prompt. ``provider_options``
    are merged last, untouched (``{"safe_prompt": True}``, ``{"prompt_mode":
    "reasoning"}``, ``{"top_k": 5}``...). The prefill is the text of a final assistant
    message, sent with ``prefix: true``; ``parse_chat_response`` needs it to remove the
    repeated prefix from the answer.
    """
    warnings: list[str] = []
    messages, prefix = _messages(options, warnings)
    body: dict[str, Any] = {"model": options.model, "messages": messages}
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    if options.max_tokens is not None:
        body["max_tokens"] = options.max_tokens
    if options.stop:
        body["stop"] = options.stop
    if options.seed is not None:
        body["random_seed"] = options.seed
    if options.tools:
        body["tools"] = _tools(options)
        # Without tools both settings mean nothing, so they travel only with tools.
        choice = options.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice == "required":
            body["tool_choice"] = "any"
        elif choice is not None:
            body["tool_choice"] = choice
        if options.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = options.parallel_tool_calls
    response_format = _response_format(options.response_format)
    if response_format is not None:
        body["response_format"] = response_format
    if options.metadata:
        body["metadata"] = options.metadata
    if safe_prompt:
        body["safe_prompt"] = True
    if stream:
        body["stream"] = True
    if options.provider_options:
        body.update(options.provider_options)
    return body, warnings, prefix


# --------------------------------------------------------------------------- response


def _without_prefix(response: ModelCompletionResponse, prefix: str) -> ModelCompletionResponse:
    """The response with the repeated prefill removed from the start of its text."""
    parts = response.message.parts
    if not parts or not isinstance(parts[0], TextPart) or not parts[0].text.startswith(prefix):
        return response
    rest = parts[0].text[len(prefix) :]
    remaining: list[Part] = [TextPart(text=rest)] if rest else []
    remaining.extend(parts[1:])
    texts = [p.text for p in remaining if isinstance(p, TextPart)]
    if len(texts) == len(remaining):  # text only: a plain string, as the parser gives it
        message = Message(role="assistant", content="".join(texts))
    else:
        message = Message(role="assistant", content=remaining)
    return response.model_copy(update={"message": message})


def parse_chat_response(
    data: dict[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: list[str],
    models: Mapping[str, ProviderModel],
    requested_model: str | None = None,
    prefix: str | None = None,
) -> ModelCompletionResponse:
    """A Mistral chat answer -> ``ModelCompletionResponse``.

    The OpenAI parser reads the first choice (text chunks joined, tool calls, usage);
    then the Mistral finish reasons are mapped, the cost is priced from the catalogue
    (ids, aliases and dated snapshots), and a repeated ``prefix`` is removed.
    """
    response = parse_openai_chat_response(
        data,
        provider=provider,
        latency=latency,
        request_id=request_id,
        warnings=warnings,
        models={},
        requested_model=requested_model,
    )
    update: dict[str, Any] = {}
    raw_finish = response.raw_finish_reason
    if raw_finish is not None:
        update["finish_reason"] = _FINISH_REASONS.get(raw_finish, "stop")
    row = find_model(models, response.model) if response.model else None
    if row is None and requested_model:
        row = find_model(models, requested_model)
    if row is not None:
        update["cost"] = row.cost(response.usage)
    if update:
        response = response.model_copy(update=update)
    return _without_prefix(response, prefix) if prefix else response


# --------------------------------------------------------------------------- streams


def _thinking_text(chunk: Mapping[str, Any]) -> str:
    """The text of a ``thinking`` chunk (a list of text chunks, or a plain string)."""
    value = chunk.get("thinking")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            p["text"] for p in value if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


class _Call:
    __slots__ = ("arguments", "closed", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []
        self.closed = False


class MistralStreamAssembler:
    """Turns parsed Mistral stream chunks into unified events and, at the end, the response.

    ``feed`` returns the events of one chunk; ``finished`` says whether a finish reason
    arrived. ``finish`` assembles the chunks into the equivalent non-streamed answer (the
    response's ``raw``) and parses it with ``parse_chat_response``, so a stream and
    ``complete`` give equal responses.

    Mistral sends each tool call whole in one delta; a delta whose id is new starts a new
    call even when its ``index`` repeats an earlier one. With a ``prefix`` (a prefill), the
    text deltas that repeat it are held back and dropped. Only the first choice is read.
    """

    def __init__(self, *, prefix: str | None = None) -> None:
        self._head: dict[str, Any] = {}
        self._texts: list[str] = []
        self._thinking: list[str] = []
        self._calls: list[_Call] = []
        self._ids: dict[str, int] = {}
        self._finish_reason: str | None = None
        self._usage: Any = None
        self._prefix = prefix or ""
        self._held = ""  # text that may still turn out to be the repeated prefix
        self._delivered: list[str] = []
        #: Whether a finish reason arrived.
        self.finished = False

    @property
    def text(self) -> str:
        """The text delivered to the caller so far."""
        return "".join(self._delivered)

    def feed(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        """The events one chunk produces (text, reasoning, tool calls, usage)."""
        if not self._head:
            self._head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if index not in (0, None):
                continue  # n > 1 through provider_options: only the first choice is read
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._content(delta.get("content"), events)
                for call in delta.get("tool_calls") or ():
                    self._call_delta(call, events)
            reason = choice.get("finish_reason")
            if reason:
                self._finish_reason = reason
                self.finished = True
                self._close_calls(events)
                self._release_held(events)
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
            events.append(UsageEvent(usage=parse_usage(usage)))
        return events

    def _content(self, content: Any, events: list[StreamEvent]) -> None:
        if isinstance(content, str):
            if content:
                self._text(content, events)
            return
        if not isinstance(content, list):
            return
        for chunk in content:
            if not isinstance(chunk, Mapping):
                continue
            kind = chunk.get("type")
            if kind == "text" and isinstance(chunk.get("text"), str) and chunk["text"]:
                self._text(chunk["text"], events)
            elif kind == "thinking":
                thought = _thinking_text(chunk)
                if thought:
                    self._thinking.append(thought)
                    events.append(ReasoningDeltaEvent(text=thought))

    def _text(self, text: str, events: list[StreamEvent]) -> None:
        self._texts.append(text)
        if not self._prefix:
            self._emit(text, events)
            return
        held = self._held + text
        if self._prefix.startswith(held):
            self._held = held  # all of it may still be the repeated prefix
            return
        self._held = ""
        prefix, self._prefix = self._prefix, ""
        self._emit(held[len(prefix) :] if held.startswith(prefix) else held, events)

    def _emit(self, text: str, events: list[StreamEvent]) -> None:
        if text:
            self._delivered.append(text)
            events.append(TextDeltaEvent(text=text))

    def _release_held(self, events: list[StreamEvent]) -> None:
        # The answer ended inside the prefix: it did not repeat it whole, so it is text.
        if self._held:
            held, self._held, self._prefix = self._held, "", ""
            self._emit(held, events)

    def _call_delta(self, call: Any, events: list[StreamEvent]) -> None:
        if not isinstance(call, Mapping):
            return
        call_id = call.get("id")
        if not isinstance(call_id, str) or call_id in ("", "null"):
            call_id = None
        if call_id is not None and call_id not in self._ids:
            if self._calls:
                self._close_call(len(self._calls) - 1, events)
            self._ids[call_id] = len(self._calls)
            self._calls.append(_Call())
        if call_id is not None:
            index = self._ids[call_id]
        else:
            # A continuation piece: it belongs to the call its index names, or the last.
            wanted = call.get("index")
            if not self._calls:
                self._calls.append(_Call())
            in_range = isinstance(wanted, int) and 0 <= wanted < len(self._calls)
            index = wanted if isinstance(wanted, int) and in_range else len(self._calls) - 1
        state = self._calls[index]
        function = call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        name = function.get("name") if isinstance(function.get("name"), str) else None
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):
            arguments = json.dumps(arguments, ensure_ascii=False)
        if not isinstance(arguments, str):
            arguments = ""
        if call_id and not state.id:
            state.id = call_id
        if name and not state.name:
            state.name = name
        if arguments:
            state.arguments.append(arguments)
        events.append(
            ToolCallDeltaEvent(index=index, id=call_id, name=name, arguments_delta=arguments)
        )

    def _close_call(self, index: int, events: list[StreamEvent]) -> None:
        state = self._calls[index]
        if state.closed:
            return
        state.closed = True
        tool_call = ToolCall(
            id=state.id or f"call_{index}",
            name=state.name or "",
            arguments="".join(state.arguments),
        )
        events.append(ToolCallEvent(index=index, tool_call=tool_call))

    def _close_calls(self, events: list[StreamEvent]) -> None:
        for index in range(len(self._calls)):
            self._close_call(index, events)

    def assembled(self) -> dict[str, Any]:
        """The non-streamed answer the chunks so far add up to (the response's ``raw``)."""
        text = "".join(self._texts)
        content: Any = text
        if self._thinking:
            content = [
                {
                    "type": "thinking",
                    "thinking": [{"type": "text", "text": "".join(self._thinking)}],
                },
                {"type": "text", "text": text},
            ]
        message: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": None}
        if self._calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{index}",
                    "type": "function",
                    "function": {"name": call.name or "", "arguments": "".join(call.arguments)},
                    "index": index,
                }
                for index, call in enumerate(self._calls)
            ]
        data: dict[str, Any] = {**self._head, "object": "chat.completion"}
        data["choices"] = [{"index": 0, "message": message, "finish_reason": self._finish_reason}]
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
        prefix: str | None = None,
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
            prefix=prefix,
        )


# --------------------------------------------------------------------------- embeddings


def build_embedding_request(options: ModelEmbeddingOptions) -> dict[str, Any]:
    """The ``/embeddings`` body: ``input``, and ``output_dimension`` for ``dimensions``
    (Mistral's name; only some models, such as ``codestral-embed``, accept it).
    ``provider_options`` (``output_dtype``...) are merged last."""
    body: dict[str, Any] = {"model": options.model, "input": options.input}
    if options.dimensions is not None:
        body["output_dimension"] = options.dimensions
    if options.provider_options:
        body.update(options.provider_options)
    return body


def parse_embedding_response(
    data: dict[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel],
) -> ModelEmbeddingResponse:
    """An ``/embeddings`` answer -> vectors in input order (the OpenAI shape), priced
    from the catalogue."""
    response = parse_openai_embeddings(
        data, provider=provider, model=model, latency=latency, request_id=request_id, models={}
    )
    row = find_model(models, response.model) or find_model(models, model)
    if row is None:
        return response
    return response.model_copy(update={"cost": row.cost(response.usage)})
