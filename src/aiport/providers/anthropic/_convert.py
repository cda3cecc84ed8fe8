"""Unified shapes <-> Anthropic Messages API JSON (pure: no I/O, clock or secrets).

- System and developer messages, wherever they are, become the top-level ``system``.
- Turns must alternate: consecutive same-role messages merge, tool results travel in a
  user turn, ``tool_result`` blocks first (the API rejects text before them).
- ``response_format="json"`` has no Anthropic equivalent: an instruction to answer with
  one JSON object is appended to the system prompt (with a warning). A JSON schema uses
  structured outputs (``output_config.format``).
- ``thinking`` blocks are not assistant text and the unified message has no place for
  them: they stay in ``response.raw``; streams give them as ``ReasoningDeltaEvent``.
- Tool-call arguments are the compact JSON of ``input``, streamed or not, so a stream's
  final response equals ``complete``'s.
- A ``tool_use`` block cut off by ``max_tokens`` mid-stream has incomplete JSON: it is
  left out of ``tool_calls`` (with a warning) and kept in ``raw`` under ``partial_json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiport._catalogue import find_model
from aiport._types import (
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    NamedToolChoice,
    ProviderModel,
    TextPart,
    ToolCall,
    ToolResultPart,
    Usage,
)

__all__ = [
    "JSON_INSTRUCTION",
    "LEGACY_API_VERSION",
    "build_messages_request",
    "parse_messages_response",
    "sends_sampling_params",
    "uses_bearer_auth",
]

logger = logging.getLogger("aiport")

#: The API version of the 0.x SDKs: ``x-api-key`` auth, sampling knobs accepted.
LEGACY_API_VERSION = "2023-06-01"
#: The version of the 2.x SDKs: ``Authorization: Bearer`` auth, no sampling knobs.
BEARER_API_VERSION = "2026-10-21"

#: Appended to the system prompt for ``response_format="json"``.
JSON_INSTRUCTION = (
    "Respond with a single JSON object and nothing else: no prose before or after it "
    "and no Markdown code fences."
)

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    # The prompt plus the answer filled the context window: the answer is truncated.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


def uses_bearer_auth(api_version: str) -> bool:
    """Whether ``api_version`` (an ISO date, so comparable as text) uses Bearer auth."""
    return api_version >= BEARER_API_VERSION


def sends_sampling_params(api_version: str) -> bool:
    """Whether ``api_version`` still accepts ``temperature`` / ``top_p``."""
    return api_version < BEARER_API_VERSION


def _dumps(value: Any) -> str:
    # The same encoding ToolCall uses for a mapping given as arguments.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- request


def build_messages_request(
    options: ModelCompletionOptions,
    *,
    api_version: str,
    max_tokens_default: int,
    models: Mapping[str, ProviderModel] | None = None,
    stream: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The ``/v1/messages`` body for ``options``, and warnings for what was not sent.

    ``max_tokens`` (required by Anthropic) is ``options.max_tokens``, else the smaller of
    the model's output limit (from ``models``) and ``max_tokens_default``. Raises
    ``ValueError`` for a tool call whose arguments are not a JSON object.
    """
    warnings: list[str] = []
    system: list[str] = []
    messages = _convert_messages(options.messages, system, warnings)
    body: dict[str, Any] = {
        "model": options.model,
        "max_tokens": _max_tokens(options, max_tokens_default, models),
        "messages": messages,
    }

    if options.response_format == "json":
        system.append(JSON_INSTRUCTION)
        warnings.append(
            "response_format 'json' (without a schema) is not supported by Anthropic: an "
            "instruction to answer with one JSON object was added to the system prompt"
        )
    elif isinstance(options.response_format, JsonSchemaFormat):
        body["output_config"] = {
            "format": {"type": "json_schema", "schema": options.response_format.schema_}
        }
    if len(system) == 1:
        body["system"] = system[0]
    elif system:
        body["system"] = [{"type": "text", "text": text} for text in system]

    for name in ("temperature", "top_p"):
        value = getattr(options, name)
        if value is None:
            continue
        if not sends_sampling_params(api_version):
            warnings.append(
                f"{name} is not supported by Anthropic API version {api_version} and was not sent"
            )
        elif name == "temperature" and value > 1:
            warnings.append(f"temperature {value} is above Anthropic's maximum of 1; sent as 1")
            body[name] = 1.0
        else:
            body[name] = value
    if options.seed is not None:
        warnings.append("seed is not supported by Anthropic and was not sent")
    if options.stop:
        body["stop_sequences"] = list(options.stop)

    _add_tools(body, options, warnings)

    if options.metadata:
        extra = sorted(k for k in options.metadata if k != "user_id")
        if "user_id" in options.metadata:
            body["metadata"] = {"user_id": options.metadata["user_id"]}
        if extra:
            warnings.append(
                "metadata keys other than user_id are not supported by Anthropic and were "
                f"not sent: {', '.join(extra)}"
            )
    if stream:
        body["stream"] = True
    _merge_provider_options(body, options.provider_options)
    return body, warnings


def _max_tokens(
    options: ModelCompletionOptions,
    default: int,
    models: Mapping[str, ProviderModel] | None,
) -> int:
    if options.max_tokens is not None:
        return options.max_tokens
    limit = None
    if models:
        known = find_model(models, options.model)
        limit = known.max_output_tokens if known is not None else None
    # Not the model's full limit: Anthropic reserves output-token rate limit by
    # max_tokens, and very long non-streamed answers run into HTTP timeouts.
    value = min(limit, default) if limit else default
    thinking = options.provider_options.get("thinking")
    if isinstance(thinking, Mapping):
        budget = thinking.get("budget_tokens")
        # The API requires max_tokens > budget_tokens; leave room for the answer.
        if isinstance(budget, int) and budget >= value:
            value = budget + default
    return value


def _merge_provider_options(body: dict[str, Any], provider_options: Mapping[str, Any]) -> None:
    for key, value in provider_options.items():
        current = body.get(key)
        if key == "output_config" and isinstance(current, dict) and isinstance(value, Mapping):
            # Keep the JSON schema format when the caller only adds e.g. `effort`.
            body[key] = {**current, **value}
        else:
            body[key] = value


def _add_tools(body: dict[str, Any], options: ModelCompletionOptions, warnings: list[str]) -> None:
    if not options.tools:
        if options.tool_choice is not None or options.parallel_tool_calls is not None:
            warnings.append("tool_choice/parallel_tool_calls were given without tools; not sent")
        return
    tools: list[dict[str, Any]] = []
    for tool in options.tools:
        wire: dict[str, Any] = {"name": tool.name}
        if tool.description:
            wire["description"] = tool.description
        wire["input_schema"] = tool.parameters
        if tool.strict is not None:
            wire["strict"] = tool.strict
        tools.append(wire)
    body["tools"] = tools

    choice = options.tool_choice
    wire_choice: dict[str, Any] | None
    if choice is None:
        wire_choice = None
    elif isinstance(choice, NamedToolChoice):
        wire_choice = {"type": "tool", "name": choice.name}
    elif choice in _TOOL_CHOICES:
        wire_choice = {"type": _TOOL_CHOICES[choice]}
    else:  # a bare tool name that skipped validation (model_copy)
        wire_choice = {"type": "tool", "name": str(choice)}
    if options.parallel_tool_calls is False:
        if wire_choice is None:
            wire_choice = {"type": "auto"}
        if wire_choice["type"] != "none":
            wire_choice["disable_parallel_tool_use"] = True
    if wire_choice is not None:
        body["tool_choice"] = wire_choice


def _convert_messages(
    messages: Sequence[Message], system: list[str], warnings: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    noted: set[str] = set()
    for message in messages:
        if message.name is not None and "name" not in noted:
            noted.add("name")
            warnings.append("message names are not supported by Anthropic and were not sent")
        if message.role in ("system", "developer"):
            system.extend(p.text for p in message.parts if isinstance(p, TextPart) and p.text)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message, warnings, noted)
        if not blocks:
            continue  # the API rejects empty turns; an empty message says nothing
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and len(content) > 1:
            results = [b for b in content if b["type"] == "tool_result"]
            if results and len(results) < len(content):
                turn["content"] = results + [b for b in content if b["type"] != "tool_result"]
        elif len(content) == 1 and content[0]["type"] == "text" and len(content[0]) == 2:
            turn["content"] = content[0]["text"]
    return out


def _blocks(message: Message, warnings: list[str], noted: set[str]) -> list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, warnings, noted))
        elif isinstance(part, ToolCall):
            blocks.append(
                {"type": "tool_use", "id": part.id, "name": part.name, "input": _input(part)}
            )
        elif isinstance(part, ToolResultPart):
            blocks.append(_tool_result_block(part, warnings, noted))
    return blocks


def _image_block(part: ImagePart, warnings: list[str], noted: set[str]) -> dict[str, Any]:
    if part.detail is not None and "detail" not in noted:
        noted.add("detail")
        warnings.append("image detail is not supported by Anthropic and was not sent")
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.base64_data()}
    else:
        source = {"type": "url", "url": part.url}
    return {"type": "image", "source": source}


def _tool_result_block(
    part: ToolResultPart, warnings: list[str], noted: set[str]
) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.tool_call_id}
    if isinstance(part.content, str):
        if part.content:
            block["content"] = part.content
    else:
        content: list[dict[str, Any]] = []
        for item in part.content:
            if isinstance(item, TextPart):
                if item.text:
                    content.append({"type": "text", "text": item.text})
            else:
                content.append(_image_block(item, warnings, noted))
        if content:
            block["content"] = content
    if part.is_error:
        block["is_error"] = True
    return block


def _input(call: ToolCall) -> dict[str, Any]:
    try:
        value = call.parse_arguments()
    except ValueError:
        raise ValueError(f"tool call {call.id!r} has arguments that are not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004  (ValueError is the documented contract)
            f"tool call {call.id!r} has arguments that are not a JSON object"
        )
    return value


# --------------------------------------------------------------------------- response


def _usage(raw: Mapping[str, Any]) -> Usage:
    # Anthropic's input_tokens excludes the cached part; ours counts every input token.
    fresh = raw.get("input_tokens") or 0
    read = raw.get("cache_read_input_tokens") or 0
    written = raw.get("cache_creation_input_tokens") or 0
    output = raw.get("output_tokens") or 0
    details = raw.get("output_tokens_details")
    reasoning = (details.get("thinking_tokens") or 0) if isinstance(details, Mapping) else 0
    total_input = fresh + read + written
    return Usage(
        input_tokens=total_input,
        output_tokens=output,
        total_tokens=total_input + output,
        cached_input_tokens=read,
        cache_creation_input_tokens=written,
        reasoning_tokens=reasoning,
    )


def parse_messages_response(
    data: dict[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: Iterable[str] = (),
    models: Mapping[str, ProviderModel] | None = None,
    requested_model: str | None = None,
) -> ModelCompletionResponse:
    """The unified response for a Messages API ``message`` object.

    Raises ``KeyError``/``TypeError``/``ValueError`` when ``data`` is not shaped like a
    message (the provider turns those into ``MalformedResponseError``).
    """
    out_warnings = list(warnings)
    parts: list[Any] = []
    has_calls = False
    for block in data["content"]:
        kind = block.get("type")
        if kind == "text":
            text = block["text"]
            if text:
                parts.append(TextPart(text=text))
        elif kind == "tool_use":
            if "partial_json" in block:
                out_warnings.append(
                    f"the tool call {block.get('name')!r} ({block.get('id')}) was cut off before "
                    "its arguments were complete and is not in tool_calls (see raw)"
                )
                continue
            value = block.get("input")
            arguments = value if isinstance(value, str) else _dumps({} if value is None else value)
            call = ToolCall(id=block["id"], name=block["name"], arguments=arguments)
            parts.append(call)
            has_calls = True
        # thinking, redacted_thinking, server tool blocks...: kept in raw only.
    content = parts if has_calls else "".join(p.text for p in parts if isinstance(p, TextPart))
    message = Message(role="assistant", content=content, name=None)

    stop_reason = data.get("stop_reason")
    finish = _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    usage = _usage(data.get("usage") or {})
    model = data.get("model") or requested_model or ""
    known = find_model(models, model) if models else None
    if known is None and models and requested_model:
        known = find_model(models, requested_model)
    return ModelCompletionResponse(
        id=data.get("id") or "",
        model=model,
        provider=provider,
        message=message,
        finish_reason=finish,
        raw_finish_reason=stop_reason if isinstance(stop_reason, str) else None,
        usage=usage,
        latency=latency,
        cost=known.cost(usage) if known is not None else None,
        request_id=request_id,
        warnings=out_warnings,
        raw=data,
    )
