"""Unified shapes <-> Bedrock Converse JSON (pure: no I/O, clock or credentials).

- System and developer messages become the top-level ``system`` list of ``{"text"}``
  blocks; the other messages alternate ``user``/``assistant`` (consecutive turns of one
  role merge, tool results travel in a user turn, ``toolResult`` blocks first).
- Images travel as bytes (``{"image": {"format", "source": {"bytes": <base64>}}}``) or,
  for ``s3://`` URLs, as ``s3Location``. Bedrock cannot fetch an ``http(s)`` URL: such
  an image is an ``InvalidRequestError`` before anything is sent (download it and pass
  the bytes).
- JSON output: Converse has no JSON mode that every model honours, so
  ``response_format`` (``"json"`` or a schema) is a *forced tool*: a tool named after
  the format (``json_response`` for plain JSON) whose input schema is the wanted schema
  (any object for ``"json"``), chosen with ``toolChoice: {"tool": ...}``. Its input
  becomes the response text (compact JSON), the finish reason ``stop``. Tool choice is
  supported by Claude, Mistral Large and Nova; other models answer a
  ``ValidationException``. With other tools offered the choice is ``any`` instead: the
  model calls one of them or answers through the JSON tool. Native structured output
  (``outputConfig.textFormat``, on the models that have it) can be asked for through
  ``provider_options={"outputConfig": {...}}``.
- ``provider_options``: keys that are Converse request fields (``guardrailConfig``,
  ``performanceConfig``, ``serviceTier``, ``outputConfig``, ``promptVariables``,
  ``requestMetadata``, ``additionalModelResponseFieldPaths``, ``inferenceConfig``,
  ``additionalModelRequestFields``) go to the top level (the mappings merged with what
  aiport built); every other key is a model-specific field and goes into
  ``additionalModelRequestFields`` (``{"top_k": 5}``, Claude's ``thinking``...).
- ``reasoningContent`` blocks are not assistant text: they stay in ``response.raw``;
  streams give them as ``ReasoningDeltaEvent``.
- Tool-call arguments are the compact JSON of ``input``, streamed or not, so a stream's
  final response equals ``complete``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
    "JSON_TOOL_DESCRIPTION",
    "PLAIN_JSON_TOOL",
    "build_converse_request",
    "find_known_model",
    "json_tool_name",
    "parse_converse_response",
    "usage_from",
]

#: The forced tool that carries ``response_format="json"``.
PLAIN_JSON_TOOL = "json_response"
JSON_TOOL_DESCRIPTION = (
    "Give your complete answer by calling this tool: its input is the answer, as one JSON object."
)

#: Converse request fields a caller may set through ``provider_options``.
_TOP_LEVEL_FIELDS = frozenset(
    {
        "guardrailConfig",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
        "promptVariables",
        "requestMetadata",
        "additionalModelResponseFieldPaths",
        "inferenceConfig",
        "additionalModelRequestFields",
    }
)
_MERGED_FIELDS = frozenset({"inferenceConfig", "additionalModelRequestFields"})

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    # The prompt plus the answer filled the context window: the answer is truncated.
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_EXTENSION_FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}

#: Cross-region inference profile prefixes (``us.anthropic.claude-...``): the profile
#: serves the model named after the prefix, at that model's price.
_PROFILE_PREFIXES = ("us-gov.", "us.", "eu.", "apac.", "ap.", "jp.", "au.", "ca.", "global.")


def _dumps(value: Any) -> str:
    # The same encoding ToolCall uses for a mapping given as arguments.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def find_known_model(
    models: Mapping[str, ProviderModel] | None, model: str
) -> ProviderModel | None:
    """The catalogue row of ``model``: by id or alias, else of the foundation model an
    inference profile (``us.``, ``eu.``, ``global.``...) serves."""
    if not models:
        return None
    from aiport._catalogue import find_model

    known = find_model(models, model)
    if known is not None:
        return known
    for prefix in _PROFILE_PREFIXES:
        if model.startswith(prefix):
            return find_model(models, model[len(prefix) :])
    return None


def json_tool_name(options: ModelCompletionOptions) -> str | None:
    """The name of the forced tool carrying JSON output, or ``None`` without JSON output."""
    fmt = options.response_format
    if isinstance(fmt, JsonSchemaFormat):
        return fmt.name
    if fmt == "json":
        return PLAIN_JSON_TOOL
    return None


# --------------------------------------------------------------------------- request


def build_converse_request(options: ModelCompletionOptions) -> tuple[dict[str, Any], list[str]]:
    """The Converse body for ``options`` (the model goes in the URL), and warnings.

    Raises ``ValueError`` for what Bedrock cannot take at all: an image given by an
    http(s) URL or in a format it does not read, a tool call whose arguments are not a
    JSON object, a named ``tool_choice`` that is not among the tools.
    """
    warnings: list[str] = []
    system: list[dict[str, Any]] = []
    messages = _convert_messages(options.messages, system, warnings)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system

    inference: dict[str, Any] = {}
    if options.max_tokens is not None:
        inference["maxTokens"] = options.max_tokens
    if options.temperature is not None:
        if options.temperature > 1:
            warnings.append(
                f"temperature {options.temperature} is above Bedrock's maximum of 1; sent as 1"
            )
            inference["temperature"] = 1.0
        else:
            inference["temperature"] = options.temperature
    if options.top_p is not None:
        inference["topP"] = options.top_p
    if options.stop:
        inference["stopSequences"] = list(options.stop)
    if inference:
        body["inferenceConfig"] = inference
    if options.seed is not None:
        warnings.append("seed is not supported by Bedrock Converse and was not sent")
    if options.metadata:
        # Shown in Bedrock's model invocation logs, to filter them.
        body["requestMetadata"] = dict(options.metadata)

    has_tool_blocks = any(
        "toolUse" in block or "toolResult" in block
        for turn in messages
        for block in turn["content"]
    )
    _add_tools(body, options, warnings, has_tool_blocks=has_tool_blocks)
    _merge_provider_options(body, options.provider_options)
    return body, warnings


def _add_tools(
    body: dict[str, Any],
    options: ModelCompletionOptions,
    warnings: list[str],
    *,
    has_tool_blocks: bool,
) -> None:
    json_tool = json_tool_name(options)
    tools: list[dict[str, Any]] = []
    names: list[str] = []
    choice = options.tool_choice
    # Without the tools the model cannot call one: "none" is honoured exactly, unless the
    # conversation already holds tool blocks (Bedrock then insists on the tool list).
    if options.tools and not (choice == "none" and not has_tool_blocks):
        for tool in options.tools:
            spec: dict[str, Any] = {"name": tool.name}
            if tool.description:
                spec["description"] = tool.description
            spec["inputSchema"] = {"json": tool.parameters}
            if tool.strict is not None:
                spec["strict"] = tool.strict
            tools.append({"toolSpec": spec})
            names.append(tool.name)
    if options.parallel_tool_calls is not None and options.tools:
        warnings.append("parallel_tool_calls is not supported by Bedrock Converse; not sent")
    if not options.tools and (choice is not None or options.parallel_tool_calls is not None):
        warnings.append("tool_choice/parallel_tool_calls were given without tools; not sent")

    wire_choice: dict[str, Any] | None = None
    if isinstance(choice, NamedToolChoice):
        if choice.name not in names:
            raise ValueError(f"tool_choice names {choice.name!r}, which is not among the tools")
        wire_choice = {"tool": {"name": choice.name}}
    elif choice == "required" and tools:
        wire_choice = {"any": {}}
    elif choice == "auto" and tools:
        wire_choice = {"auto": {}}
    elif choice == "none" and tools:
        warnings.append(
            "tool_choice 'none' is not supported by Bedrock Converse when the conversation "
            "holds tool calls: the tools were sent with the default (auto) choice"
        )

    if json_tool is not None:
        fmt = options.response_format
        schema: dict[str, Any] = {"type": "object"}
        description = JSON_TOOL_DESCRIPTION
        if isinstance(fmt, JsonSchemaFormat):
            schema = fmt.schema_
            if fmt.description:
                description = f"{JSON_TOOL_DESCRIPTION} {fmt.description}"
        if json_tool in names:
            raise ValueError(
                f"the response format {json_tool!r} has the name of one of the tools; "
                "rename one of them"
            )
        spec = {"name": json_tool, "description": description, "inputSchema": {"json": schema}}
        tools.append({"toolSpec": spec})
        if wire_choice is None or "tool" not in wire_choice:
            # Alone, the JSON tool is forced; beside other tools the model must call
            # one of them or answer through it.
            wire_choice = {"any": {}} if names else {"tool": {"name": json_tool}}

    if tools:
        config: dict[str, Any] = {"tools": tools}
        if wire_choice is not None:
            config["toolChoice"] = wire_choice
        body["toolConfig"] = config


def _merge_provider_options(body: dict[str, Any], provider_options: Mapping[str, Any]) -> None:
    extra: dict[str, Any] = {}
    for key, value in provider_options.items():
        if key in _MERGED_FIELDS and isinstance(value, Mapping):
            body[key] = {**body.get(key, {}), **value}
        elif key in _TOP_LEVEL_FIELDS:
            body[key] = value
        else:
            extra[key] = value
    if extra:
        body["additionalModelRequestFields"] = {
            **body.get("additionalModelRequestFields", {}),
            **extra,
        }


def _convert_messages(
    messages: Sequence[Message], system: list[dict[str, Any]], warnings: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    noted: set[str] = set()
    for message in messages:
        if message.name is not None and "name" not in noted:
            noted.add("name")
            warnings.append("message names are not supported by Bedrock and were not sent")
        if message.role in ("system", "developer"):
            system.extend(
                {"text": p.text} for p in message.parts if isinstance(p, TextPart) and p.text
            )
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message, warnings, noted)
        if not blocks:
            continue  # Bedrock rejects empty turns; an empty message says nothing
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and len(content) > 1:
            results = [b for b in content if "toolResult" in b]
            if results and len(results) < len(content):
                turn["content"] = results + [b for b in content if "toolResult" not in b]
    return out


def _blocks(message: Message, warnings: list[str], noted: set[str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, warnings, noted))
        elif isinstance(part, ToolCall):
            blocks.append(
                {"toolUse": {"toolUseId": part.id, "name": part.name, "input": _input(part)}}
            )
        elif isinstance(part, ToolResultPart):
            blocks.append(_tool_result_block(part, warnings, noted))
    return blocks


def _image_block(part: ImagePart, warnings: list[str], noted: set[str]) -> dict[str, Any]:
    if part.detail is not None and "detail" not in noted:
        noted.add("detail")
        warnings.append("image detail is not supported by Bedrock and was not sent")
    if part.data is not None:
        media_type = (part.media_type or "").lower()
        fmt = _IMAGE_FORMATS.get(media_type)
        if fmt is None:
            raise ValueError(
                f"Bedrock reads png, jpeg, gif and webp images, not {part.media_type!r}"
            )
        return {"image": {"format": fmt, "source": {"bytes": part.base64_data()}}}
    url = part.url or ""
    if url.startswith("s3://"):
        extension = url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
        fmt = _EXTENSION_FORMATS.get(extension)
        if fmt is None:
            raise ValueError(
                f"cannot tell the format of the S3 image {url!r} from its name "
                "(expected .png, .jpg, .jpeg, .gif or .webp)"
            )
        return {"image": {"format": fmt, "source": {"s3Location": {"uri": url}}}}
    raise ValueError(
        "Bedrock takes images as bytes or s3:// URLs, not http(s) URLs: download the "
        "image and pass its bytes"
    )


def _tool_result_block(
    part: ToolResultPart, warnings: list[str], noted: set[str]
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if isinstance(part.content, str):
        content.append({"text": part.content})
    else:
        for item in part.content:
            if isinstance(item, TextPart):
                content.append({"text": item.text})
            else:
                content.append(_image_block(item, warnings, noted))
    if not content:
        content.append({"text": ""})
    block: dict[str, Any] = {"toolUseId": part.tool_call_id, "content": content}
    if part.is_error:
        block["status"] = "error"
    return {"toolResult": block}


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


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """The unified usage of a Converse ``usage`` object.

    Bedrock's ``inputTokens`` leaves out the tokens read from or written to the prompt
    cache; ours counts every input token.
    """
    fresh = raw.get("inputTokens") or 0
    read = raw.get("cacheReadInputTokens") or 0
    written = raw.get("cacheWriteInputTokens") or 0
    output = raw.get("outputTokens") or 0
    total_input = fresh + read + written
    return Usage(
        input_tokens=total_input,
        output_tokens=output,
        total_tokens=total_input + output,
        cached_input_tokens=read,
        cache_creation_input_tokens=written,
    )


def parse_converse_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    json_tool: str | None = None,
    warnings: Iterable[str] = (),
    models: Mapping[str, ProviderModel] | None = None,
) -> ModelCompletionResponse:
    """The unified response for a Converse answer.

    ``json_tool`` names the forced tool that carries JSON output: its input becomes the
    text. Raises ``KeyError``/``TypeError``/``ValueError`` when ``data`` is not shaped
    like a Converse answer (the provider turns those into ``MalformedResponseError``).
    """
    out_warnings = list(warnings)
    message_data = data["output"]["message"]
    texts: list[str] = []
    calls: list[ToolCall] = []
    answered_json = False
    for block in message_data["content"]:
        if "text" in block:
            text = block["text"]
            if not isinstance(text, str):
                raise TypeError("a text block holds no text")
            texts.append(text)
        elif "toolUse" in block:
            use = block["toolUse"]
            if "partialInput" in use:
                out_warnings.append(
                    f"the tool call {use.get('name')!r} ({use.get('toolUseId')}) was cut off "
                    "before its arguments were complete and is not in tool_calls (see raw)"
                )
                continue
            value = use.get("input")
            arguments = value if isinstance(value, str) else _dumps({} if value is None else value)
            if json_tool is not None and use["name"] == json_tool:
                texts.append(arguments)
                answered_json = True
                continue
            calls.append(ToolCall(id=use["toolUseId"], name=use["name"], arguments=arguments))
        # reasoningContent, citationsContent...: kept in raw only.
    text = "".join(texts)
    content: str | list[Any] = text
    if calls:
        content = ([TextPart(text=text)] if text else []) + calls
    message = Message(role="assistant", content=content)

    stop_reason = data.get("stopReason")
    raw_reason = stop_reason if isinstance(stop_reason, str) else None
    finish: FinishReason = _FINISH_REASONS.get(raw_reason or "", "stop")
    if finish == "tool_calls" and not calls:
        # Only the JSON tool was called: that is the answer, not a call to make.
        finish = "stop"
    if json_tool is not None and not answered_json and not calls and finish == "stop":
        out_warnings.append(
            f"the model did not answer through the JSON output tool {json_tool!r}: the "
            "text may not be JSON"
        )
    usage = usage_from(data.get("usage") or {})
    known = find_known_model(models, model)
    return ModelCompletionResponse(
        id=request_id or "",
        model=model,
        provider=provider,
        message=message,
        finish_reason=finish,
        raw_finish_reason=raw_reason,
        usage=usage,
        latency=latency,
        cost=known.cost(usage) if known is not None else None,
        request_id=request_id,
        warnings=out_warnings,
        raw=dict(data),
    )
