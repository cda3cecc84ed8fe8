"""Unified shapes <-> the Gemini API (Generative Language API) JSON. Pure: no I/O.

Requests (``generateContent`` / ``streamGenerateContent``):

- System and developer messages, wherever they are, become ``systemInstruction``.
- User messages are ``user`` contents, assistant messages ``model`` contents; tool results
  (``role="tool"`` messages, or tool results inside a user message) are ``functionResponse``
  parts of a ``user`` content, named after the call they answer (Gemini matches results by
  function name and order, not by id). Consecutive contents of the same role are merged,
  so the results of parallel calls travel together, as Gemini requires.
- A tool result is sent as ``{"output": text}`` (``{"error": text}`` when ``is_error``),
  the keys Gemini documents; images in it follow as ``inlineData`` parts.
- Images given as bytes are ``inlineData``. An image URL is sent as ``fileData`` only where
  Gemini fetches it itself: a Files API URI, a ``gs://`` URI or a YouTube link. Any other
  URL raises ``ValueError`` (the provider turns it into ``InvalidRequestError``) rather
  than silently dropping the picture: download it and pass the bytes.
- Tools become ``functionDeclarations`` with their JSON schema rewritten to Gemini's
  ``Schema`` dialect (:mod:`._schema`); a schema that dialect cannot express (recursive,
  free-form objects, arrays of anything) goes unchanged as ``parametersJsonSchema``.
  ``tool_choice`` becomes ``toolConfig.functionCallingConfig`` (``auto`` AUTO, ``none``
  NONE, ``required`` ANY, a name ANY + ``allowedFunctionNames``).
- ``response_format="json"`` is ``responseMimeType: application/json``; a JSON schema adds
  ``responseSchema`` (or, for what that cannot express, ``responseJsonSchema``).
- temperature, top_p, max_tokens, stop (at most 5) and seed go in ``generationConfig``.
  ``parallel_tool_calls=False``, ``metadata``, message names and ``strict`` tools have no
  Gemini equivalent: each becomes a warning and is not sent.
- ``provider_options`` are merged into the body last; object values (``generationConfig``,
  ``toolConfig``...) are merged key by key, so ``{"generationConfig": {"topK": 40}}``
  keeps the unified settings.

Responses:

- Only the first candidate is unified (others stay in ``raw``). Text parts marked
  ``thought: true`` are reasoning, never answer text (streams give them as
  ``ReasoningDeltaEvent``; ``complete`` keeps them in ``raw`` only).
- ``functionCall`` parts become ``ToolCall`` s. Gemini gives no call ids (or sometimes
  its own ``id``): aiport's id is ``call_<responseId>_<n>``. A call's ``thoughtSignature``
  (Gemini 3 refuses a tool round trip without it) rides in the id after ``__thought__``
  and is put back on the ``functionCall`` part when the call is sent back in history.
  A history call without one (made by another model) gets Google's documented placeholder
  ``skip_thought_signature_validator`` on Gemini 3 models, with a warning.
- Finish reasons: STOP -> stop (tool_calls when the answer calls tools), MAX_TOKENS ->
  length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/... -> content_filter,
  MALFORMED_FUNCTION_CALL and other failures -> error.
- A prompt refused outright (``promptFeedback.blockReason``, no candidates) raises
  ``ContentFilterError``: there is no answer to return.
- ``usageMetadata``: input = ``promptTokenCount`` (+ ``toolUsePromptTokenCount``), cached =
  ``cachedContentTokenCount``, output = ``candidatesTokenCount`` + ``thoughtsTokenCount``
  (Google bills thinking as output), reasoning = ``thoughtsTokenCount``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import mimetypes
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from aiport._catalogue import find_model
from aiport._errors import ContentFilterError, MalformedResponseError
from aiport._types import (
    FinishReason,
    GeneratedImage,
    ImageGenerationOptions,
    ImageGenerationResponse,
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
    TextPart,
    ToolCall,
    ToolResultPart,
    Usage,
)
from aiport.providers.gemini._schema import (
    UnsupportedSchemaError,
    is_empty_object,
    to_gemini_schema,
)

__all__ = [
    "MAX_EMBED_BATCH",
    "MAX_STOP_SEQUENCES",
    "SKIP_SIGNATURE",
    "THOUGHT_SEPARATOR",
    "blocked_prompt_error",
    "build_embed_request",
    "build_generate_request",
    "build_image_request",
    "build_predict_request",
    "embedding_response",
    "is_imagen",
    "lookup_model",
    "model_path",
    "parse_embed_response",
    "parse_generate_response",
    "parse_image_response",
    "parse_predict_response",
    "parse_usage",
    "requires_thought_signatures",
    "split_call_id",
    "tool_call_from_part",
]

logger = logging.getLogger("aiport")

#: Gemini accepts at most this many stop sequences.
MAX_STOP_SEQUENCES = 5
#: ``batchEmbedContents`` takes at most this many requests.
MAX_EMBED_BATCH = 100
#: Separates a tool-call id from the call's thought signature.
THOUGHT_SEPARATOR = "__thought__"
#: The value Google documents for function calls that have no real thought signature
#: (a conversation from another model): Gemini 3 then skips its validation.
SKIP_SIGNATURE = "skip_thought_signature_validator"

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "PUP_LIMITED_DISABLED": "content_filter",
    "ESCALATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "MALFORMED_RESPONSE": "error",
    "OTHER": "error",
    "NO_IMAGE": "error",
    "IMAGE_OTHER": "error",
}
_GENERATION = re.compile(r"^gemini-(\d+)")
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
#: Image URLs Gemini fetches itself (``fileData``); anything else must be sent as bytes.
_FETCHED_HOSTS = ("generativelanguage.googleapis.com", "www.youtube.com", "youtube.com", "youtu.be")
#: Imagen's aspect ratios, as width / height.
_ASPECT_RATIOS: Mapping[str, float] = {
    "1:1": 1.0,
    "3:4": 3 / 4,
    "4:3": 4 / 3,
    "9:16": 9 / 16,
    "16:9": 16 / 9,
}


def _dumps(value: Any) -> str:
    # The same encoding ToolCall uses for a mapping given as arguments.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def model_path(model: str) -> str:
    """The resource name of a model: ``models/<id>`` unless it already names its collection
    (``models/...``, ``tunedModels/...``)."""
    return model if "/" in model else f"models/{model}"


def lookup_model(
    models: Mapping[str, ProviderModel] | None, *names: str | None
) -> ProviderModel | None:
    """The catalogue row of the first of ``names`` that is known (``models/`` stripped)."""
    if not models:
        return None
    for name in names:
        if not name:
            continue
        found = find_model(models, name.removeprefix("models/"))
        if found is not None:
            return found
    return None


def _merge(body: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Merge ``extra`` into ``body``; objects present on both sides merge key by key."""
    for key, value in extra.items():
        current = body.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged = dict(current)
            _merge(merged, value)
            body[key] = merged
        else:
            body[key] = value


# --------------------------------------------------------------------------- request


def split_call_id(call_id: str) -> tuple[str, str | None]:
    """``(id, thought signature)`` of a tool-call id made by :func:`tool_call_from_part`."""
    base, separator, signature = call_id.partition(THOUGHT_SEPARATOR)
    return (base, signature) if separator and signature else (call_id, None)


def build_generate_request(
    options: ModelCompletionOptions,
) -> tuple[dict[str, Any], list[str]]:
    """The ``generateContent`` body for ``options``, and warnings for what was not sent.

    The model is not in the body: it is part of the URL (see :func:`model_path`).

    Raises:
        ValueError: the messages cannot be expressed for Gemini: no user or assistant
            message, a tool call whose arguments are not a JSON object, a tool result
            for a call that is not in the history, an image URL Gemini cannot fetch.
    """
    warnings: list[str] = []
    system: list[dict[str, Any]] = []
    contents = _contents(options.messages, system, warnings)
    if requires_thought_signatures(options.model):
        _sign_unsigned_calls(contents, warnings)
    if not contents:
        raise ValueError("Gemini needs at least one user or assistant message")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    _add_tools(body, options, warnings)
    config = _generation_config(options, warnings)
    if config:
        body["generationConfig"] = config
    if options.metadata:
        warnings.append("metadata is not supported by the Gemini API and was not sent")
    _merge(body, options.provider_options)
    return body, warnings


def _generation_config(options: ModelCompletionOptions, warnings: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if options.temperature is not None:
        config["temperature"] = options.temperature
    if options.top_p is not None:
        config["topP"] = options.top_p
    if options.max_tokens is not None:
        config["maxOutputTokens"] = options.max_tokens
    if options.stop:
        stop = list(options.stop)
        if len(stop) > MAX_STOP_SEQUENCES:
            warnings.append(
                f"Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences; "
                f"{len(stop) - MAX_STOP_SEQUENCES} were not sent"
            )
            stop = stop[:MAX_STOP_SEQUENCES]
        config["stopSequences"] = stop
    if options.seed is not None:
        config["seed"] = options.seed
    fmt = options.response_format
    if fmt == "json":
        config["responseMimeType"] = "application/json"
    elif isinstance(fmt, JsonSchemaFormat):
        config["responseMimeType"] = "application/json"
        try:
            schema, dropped = to_gemini_schema(fmt.schema_)
        except UnsupportedSchemaError:
            schema, dropped = {}, []
        if is_empty_object(schema):
            # Gemini's dialect cannot say it (or it is a free-form object): JSON Schema can.
            config["responseJsonSchema"] = fmt.schema_
        else:
            config["responseSchema"] = schema
            if dropped:
                warnings.append(_dropped_note("the response schema", dropped))
    return config


def _dropped_note(where: str, dropped: Sequence[str]) -> str:
    return f"JSON schema keywords Gemini does not support were removed from {where}: " + ", ".join(
        dropped
    )


def _add_tools(body: dict[str, Any], options: ModelCompletionOptions, warnings: list[str]) -> None:
    if options.parallel_tool_calls is False:
        warnings.append(
            "parallel_tool_calls=False is not supported by Gemini (it may call several "
            "functions at once) and was not sent"
        )
    if not options.tools:
        if options.tool_choice is not None:
            warnings.append("tool_choice was given without tools; not sent")
        return
    declarations: list[dict[str, Any]] = []
    strict = False
    for tool in options.tools:
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        strict = strict or bool(tool.strict)
        try:
            parameters, dropped = to_gemini_schema(tool.parameters)
        except UnsupportedSchemaError:
            declaration["parametersJsonSchema"] = tool.parameters
        else:
            if not is_empty_object(parameters):
                declaration["parameters"] = parameters
            if dropped:
                warnings.append(_dropped_note(f"the parameters of tool {tool.name!r}", dropped))
        declarations.append(declaration)
    if strict:
        warnings.append(
            "strict tool schemas are not supported by Gemini; the tools were sent as "
            "ordinary function declarations"
        )
    body["tools"] = [{"functionDeclarations": declarations}]

    choice = options.tool_choice
    if choice is None:
        return
    config: dict[str, Any]
    if isinstance(choice, NamedToolChoice):
        config = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    elif choice in _TOOL_MODES:
        config = {"mode": _TOOL_MODES[choice]}
    else:  # a bare tool name that skipped validation (model_copy)
        config = {"mode": "ANY", "allowedFunctionNames": [str(choice)]}
    body["toolConfig"] = {"functionCallingConfig": config}


def _contents(
    messages: Sequence[Message], system: list[dict[str, Any]], warnings: list[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool-call id -> function name, latest call wins
    named = False
    for message in messages:
        if message.name is not None and not named:
            named = True
            warnings.append("message names are not supported by Gemini and were not sent")
        if message.role in ("system", "developer"):
            system.extend(
                {"text": p.text} for p in message.parts if isinstance(p, TextPart) and p.text
            )
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, call_names)
        if not parts:
            continue  # Gemini refuses a content without parts
        if out and out[-1]["role"] == role:
            out[-1]["parts"].extend(parts)
        else:
            out.append({"role": role, "parts": parts})
    for content in out:
        if content["role"] == "user":
            # Function responses first: Gemini pairs them with the calls of the turn before.
            parts = content["parts"]
            responses = [p for p in parts if "functionResponse" in p]
            if responses and len(responses) < len(parts):
                content["parts"] = responses + [p for p in parts if "functionResponse" not in p]
    return out


def requires_thought_signatures(model: str) -> bool:
    """Whether ``model`` refuses function calls in history without their thought
    signature (Gemini 3 and later)."""
    match = _GENERATION.match(model.rsplit("/", 1)[-1])
    return match is not None and int(match.group(1)) >= 3


def _sign_unsigned_calls(contents: list[dict[str, Any]], warnings: list[str]) -> None:
    """Give the first function call of each model turn that lacks a thought signature
    Google's documented placeholder (a history made by another model has none)."""
    unsigned = 0
    for content in contents:
        if content["role"] != "model":
            continue
        first = next((p for p in content["parts"] if "functionCall" in p), None)
        if first is not None and "thoughtSignature" not in first:
            first["thoughtSignature"] = SKIP_SIGNATURE
            unsigned += 1
    if unsigned:
        warnings.append(
            f"{unsigned} tool call(s) in the history carry no Gemini thought signature (made "
            f"by another model?); sent with Google's placeholder {SKIP_SIGNATURE!r}, which "
            "may lower answer quality"
        )


def _parts(message: Message, call_names: dict[str, str]) -> list[dict[str, Any]]:
    content = message.content
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            if part.text:
                parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_part(part))
        elif isinstance(part, ToolCall):
            call_names[part.id] = part.name
            parts.append(_function_call_part(part))
        elif isinstance(part, ToolResultPart):
            parts.extend(_function_response_parts(part, call_names))
    return parts


def _image_part(part: ImagePart) -> dict[str, Any]:
    if part.data is not None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.base64_data()}}
    url = part.url or ""
    if not _fetched_by_gemini(url):
        raise ValueError(
            "Gemini cannot fetch images from arbitrary URLs (only Files API URIs, gs:// "
            "URIs and YouTube links); download the image and pass its bytes "
            "(ImagePart(data=..., media_type=...))"
        )
    file_data: dict[str, Any] = {"fileUri": url}
    media_type = part.media_type or mimetypes.guess_type(urlsplit(url).path)[0]
    if media_type:
        file_data["mimeType"] = media_type
    return {"fileData": file_data}


def _fetched_by_gemini(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme == "gs":
        return bool(parts.netloc)
    return parts.scheme == "https" and (parts.hostname or "") in _FETCHED_HOSTS


def _function_call_part(call: ToolCall) -> dict[str, Any]:
    try:
        args = call.parse_arguments()
    except ValueError:
        raise ValueError(f"tool call {call.id!r} has arguments that are not valid JSON") from None
    if not isinstance(args, dict):
        raise ValueError(  # noqa: TRY004  (ValueError is the documented contract)
            f"tool call {call.id!r} has arguments that are not a JSON object"
        )
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
    _, signature = split_call_id(call.id)
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response_parts(
    result: ToolResultPart, call_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    name = call_names.get(result.tool_call_id)
    if name is None:
        raise ValueError(
            f"tool result {result.tool_call_id!r} answers no tool call of an earlier "
            "assistant message; Gemini needs the function's name, so the call must be "
            "in the history"
        )
    key = "error" if result.is_error else "output"
    parts: list[dict[str, Any]] = [
        {"functionResponse": {"name": name, "response": {key: result.text()}}}
    ]
    if not isinstance(result.content, str):
        parts.extend(_image_part(p) for p in result.content if isinstance(p, ImagePart))
    return parts


# --------------------------------------------------------------------------- response


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def parse_usage(data: Any) -> Usage:
    """``usageMetadata`` -> ``Usage`` (see the module docstring for the arithmetic)."""
    if not isinstance(data, Mapping):
        return Usage()
    prompt = _int(data.get("promptTokenCount")) + _int(data.get("toolUsePromptTokenCount"))
    thoughts = _int(data.get("thoughtsTokenCount"))
    output = _int(data.get("candidatesTokenCount")) + thoughts
    return Usage(
        input_tokens=prompt,
        output_tokens=output,
        total_tokens=_int(data.get("totalTokenCount")) or prompt + output,
        cached_input_tokens=_int(data.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def tool_call_from_part(
    function_call: Mapping[str, Any], part: Mapping[str, Any], *, response_id: str, position: int
) -> ToolCall:
    """The ``ToolCall`` of a ``functionCall`` part (the ``position``-th call of the answer).

    The id is Gemini's own when it gave one, else ``call_<responseId>_<position>``; a
    ``thoughtSignature`` on the part is appended after :data:`THOUGHT_SEPARATOR`.
    """
    own = function_call.get("id")
    if isinstance(own, str) and own:
        call_id = own
    else:
        call_id = f"call_{response_id}_{position}" if response_id else f"call_{position}"
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        call_id += THOUGHT_SEPARATOR + signature
    args = function_call.get("args")
    name = function_call.get("name")
    return ToolCall(
        id=call_id,
        name=name if isinstance(name, str) else "",
        arguments=_dumps(args if args is not None else {}),
    )


def blocked_prompt_error(
    data: Mapping[str, Any], *, provider: str, model: str | None, request_id: str | None
) -> ContentFilterError | None:
    """The error for an answer whose prompt was refused (``promptFeedback.blockReason``
    and no candidates), else ``None``."""
    feedback = data.get("promptFeedback")
    if not isinstance(feedback, Mapping) or data.get("candidates"):
        return None
    reason = feedback.get("blockReason")
    if not isinstance(reason, str) or not reason:
        return None
    detail = feedback.get("blockReasonMessage")
    message = f"{provider} refused the prompt (blockReason {reason})"
    if isinstance(detail, str) and detail:
        message += f": {detail}"
    return ContentFilterError(
        message,
        provider=provider,
        model=model,
        error_type=reason,
        request_id=request_id,
        body=dict(data),
    )


def parse_generate_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    latency: float,
    request_id: str | None,
    warnings: Iterable[str] = (),
    models: Mapping[str, ProviderModel] | None = None,
    requested_model: str | None = None,
) -> ModelCompletionResponse:
    """A ``GenerateContentResponse`` -> the unified response.

    Raises:
        ContentFilterError: the prompt was blocked (no candidates).
        MalformedResponseError: there is no candidate at all.
        TypeError, ValueError, AttributeError: fields of the wrong shape (the provider
            turns these into ``MalformedResponseError``).
    """
    blocked = blocked_prompt_error(
        data, provider=provider, model=requested_model, request_id=request_id
    )
    if blocked is not None:
        raise blocked
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], Mapping):
        raise MalformedResponseError(
            f"{provider} answered without any candidate",
            provider=provider,
            model=requested_model,
            request_id=request_id,
        )
    candidate = candidates[0]
    response_id = data.get("responseId")
    response_id = response_id if isinstance(response_id, str) else ""
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    texts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        text = part.get("text")
        if isinstance(text, str):
            if text and part.get("thought") is not True:
                texts.append(text)
            continue
        function_call = part.get("functionCall")
        if isinstance(function_call, Mapping):
            calls.append(
                tool_call_from_part(
                    function_call, part, response_id=response_id, position=len(calls)
                )
            )
        # inlineData (generated images), executableCode...: kept in raw only.
    text = "".join(texts)
    raw_finish = candidate.get("finishReason")
    raw_finish = raw_finish if isinstance(raw_finish, str) else None
    finish: FinishReason = _FINISH_REASONS.get(raw_finish, "stop") if raw_finish else "stop"
    if calls and finish == "stop":
        finish = "tool_calls"
    message: Message
    if calls:
        message_parts: list[Part] = [TextPart(text=text)] if text else []
        message_parts.extend(calls)
        message = Message(role="assistant", content=message_parts)
    else:
        message = Message(role="assistant", content=text)
    usage = parse_usage(data.get("usageMetadata"))
    version = data.get("modelVersion")
    model = version if isinstance(version, str) and version else (requested_model or "")
    row = lookup_model(models, model, requested_model)
    return ModelCompletionResponse(
        id=response_id,
        model=model,
        provider=provider,
        message=message,
        finish_reason=finish,
        raw_finish_reason=raw_finish,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None else None,
        request_id=request_id,
        warnings=list(warnings),
        raw=dict(data),
    )


# --------------------------------------------------------------------------- embeddings


def _embed_content(text: str, options: ModelEmbeddingOptions) -> dict[str, Any]:
    request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    if options.dimensions is not None:
        request["outputDimensionality"] = options.dimensions
    _merge(request, options.provider_options)
    return request


def build_embed_request(
    options: ModelEmbeddingOptions, inputs: Sequence[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """``(method, body)`` embedding ``inputs`` (default: all of ``options.input``).

    One text uses ``embedContent``; several use ``batchEmbedContents`` (at most
    :data:`MAX_EMBED_BATCH` per call: the caller splits longer lists). ``dimensions`` is
    ``outputDimensionality``; ``provider_options`` (``taskType``, ``title``...) go in
    each request.
    """
    texts = list(options.input if inputs is None else inputs)
    if len(texts) == 1:
        return "embedContent", _embed_content(texts[0], options)
    name = model_path(options.model)
    requests = [{"model": name, **_embed_content(text, options)} for text in texts]
    return "batchEmbedContents", {"requests": requests}


def _vector(item: Any) -> list[float]:
    values = item.get("values") if isinstance(item, Mapping) else None
    if not isinstance(values, list):
        raise TypeError("an embedding has no list of values")
    return values


def parse_embed_response(data: Mapping[str, Any]) -> tuple[list[list[float]], Usage | None]:
    """The vectors of an ``embedContent`` or ``batchEmbedContents`` answer, in input
    order, and the usage when Gemini reported it (``None``: not reported).

    Raises ``TypeError`` when the answer holds no vectors.
    """
    if "embedding" in data:
        vectors = [_vector(data["embedding"])]
    else:
        items = data.get("embeddings")
        if not isinstance(items, list):
            raise TypeError("no embeddings in the answer")
        vectors = [_vector(item) for item in items]
    usage_data = data.get("usageMetadata")
    usage = parse_usage(usage_data) if isinstance(usage_data, Mapping) else None
    return vectors, usage


def embedding_response(
    vectors: list[list[float]],
    usage: Usage | None,
    raw: dict[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel] | None,
) -> ModelEmbeddingResponse:
    """The unified embedding response. ``cost`` is ``None`` when Gemini reported no usage
    (the API's embedding answers usually carry none): a made-up count would mislead."""
    row = lookup_model(models, model)
    return ModelEmbeddingResponse.model_construct(
        model=model,
        provider=provider,
        embeddings=vectors,
        usage=usage or Usage(),
        latency=latency,
        cost=row.cost(usage) if row is not None and usage is not None else None,
        request_id=request_id,
        attempts=[],
        raw=raw,
    )


# --------------------------------------------------------------------------- images


def is_imagen(model: str) -> bool:
    """Whether ``model`` is an Imagen model (``:predict``), not a Gemini image model."""
    return model.removeprefix("models/").startswith("imagen")


def _aspect_ratio(size: str | None, notes: list[str]) -> str | None:
    if size is None or size == "auto":
        return None
    width, _, height = size.partition("x")
    ratio = int(width) / int(height) if int(height) else 1.0
    name = min(_ASPECT_RATIOS, key=lambda key: abs(_ASPECT_RATIOS[key] - ratio))
    if abs(_ASPECT_RATIOS[name] - ratio) > 1e-3:
        notes.append(f"size {size} is not an aspect ratio Gemini offers; sent as {name}")
    return name


def _image_notes(options: ImageGenerationOptions) -> list[str]:
    notes: list[str] = []
    if options.quality is not None:
        notes.append("quality is not supported by Gemini image models and was not sent")
    if options.style is not None:
        notes.append("style is not supported by Gemini image models and was not sent")
    if options.output == "url":
        notes.append("Gemini image models give no URLs; the images are returned as bytes")
    return notes


def build_predict_request(options: ImageGenerationOptions) -> tuple[dict[str, Any], list[str]]:
    """The Imagen ``:predict`` body, and notes about settings not sent.

    ``n`` is ``sampleCount``, ``size`` the nearest ``aspectRatio`` (1:1, 3:4, 4:3, 9:16,
    16:9); ``provider_options`` are merged into ``parameters`` (``personGeneration``,
    ``imageSize``, ``includeRaiReason``...).
    """
    notes = _image_notes(options)
    parameters: dict[str, Any] = {"sampleCount": options.n}
    ratio = _aspect_ratio(options.size, notes)
    if ratio is not None:
        parameters["aspectRatio"] = ratio
    _merge(parameters, options.provider_options)
    return {"instances": [{"prompt": options.prompt}], "parameters": parameters}, notes


def build_image_request(options: ImageGenerationOptions) -> tuple[dict[str, Any], list[str]]:
    """The ``generateContent`` body asking a Gemini image model for pictures.

    ``n`` > 1 is sent as ``candidateCount``; ``size`` becomes ``imageConfig.aspectRatio``;
    ``provider_options`` are merged into the body.
    """
    notes = _image_notes(options)
    config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    if options.n > 1:
        config["candidateCount"] = options.n
    ratio = _aspect_ratio(options.size, notes)
    if ratio is not None:
        config["imageConfig"] = {"aspectRatio": ratio}
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": options.prompt}]}],
        "generationConfig": config,
    }
    _merge(body, options.provider_options)
    return body, notes


def _decode(data: Any) -> bytes:
    if not isinstance(data, str):
        raise TypeError("image data is not a base64 string")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"image data is not valid base64: {exc}") from None


def parse_predict_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
) -> ImageGenerationResponse:
    """An Imagen ``:predict`` answer -> images.

    Raises:
        ContentFilterError: no image came back (Imagen answers ``{}``, or only
            ``raiFilteredReason`` entries, when its safety filters removed every image).
        TypeError, ValueError: an image of the wrong shape.
    """
    predictions = data.get("predictions")
    images: list[GeneratedImage] = []
    reasons: list[str] = []
    for item in predictions if isinstance(predictions, list) else ():
        if not isinstance(item, Mapping):
            continue
        if item.get("bytesBase64Encoded") is None:
            reason = item.get("raiFilteredReason")
            if isinstance(reason, str):
                reasons.append(reason)
            continue
        images.append(
            GeneratedImage.model_construct(
                data=_decode(item["bytesBase64Encoded"]),
                url=None,
                media_type=str(item.get("mimeType") or "image/png"),
                revised_prompt=item.get("prompt") if isinstance(item.get("prompt"), str) else None,
            )
        )
    if not images:
        detail = "; ".join(reasons) or "every image was removed by its safety filters"
        raise ContentFilterError(
            f"{provider} generated no image: {detail}",
            provider=provider,
            model=model,
            request_id=request_id,
            body=_without_images(data),
        )
    return ImageGenerationResponse.model_construct(
        model=model,
        provider=provider,
        images=images,
        usage=Usage(),
        latency=latency,
        cost=None,
        request_id=request_id,
        attempts=[],
        raw=_without_images(data),
    )


def _without_images(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with image bytes left out (they are in ``images``)."""
    out = dict(data)
    predictions = out.get("predictions")
    if isinstance(predictions, list):
        out["predictions"] = [
            {k: v for k, v in p.items() if k != "bytesBase64Encoded"}
            if isinstance(p, Mapping)
            else p
            for p in predictions
        ]
    candidates = out.get("candidates")
    if isinstance(candidates, list):
        out["candidates"] = [_candidate_without_images(c) for c in candidates]
    return out


def _candidate_without_images(candidate: Any) -> Any:
    if not isinstance(candidate, Mapping) or not isinstance(candidate.get("content"), Mapping):
        return candidate
    content = dict(candidate["content"])
    parts = content.get("parts")
    if isinstance(parts, list):
        content["parts"] = [
            {
                **p,
                "inlineData": {k: v for k, v in p["inlineData"].items() if k != "data"},
            }
            if isinstance(p, Mapping) and isinstance(p.get("inlineData"), Mapping)
            else p
            for p in parts
        ]
    return {**candidate, "content": content}


def parse_image_response(
    data: Mapping[str, Any],
    *,
    provider: str,
    model: str,
    latency: float,
    request_id: str | None,
    models: Mapping[str, ProviderModel] | None,
) -> ImageGenerationResponse:
    """A Gemini image model's ``generateContent`` answer -> the ``inlineData`` images of
    every candidate, with usage and cost.

    Raises:
        ContentFilterError: the prompt was blocked, or no candidate holds an image and
            one finished for a safety reason.
        MalformedResponseError: no image and no safety reason.
    """
    blocked = blocked_prompt_error(data, provider=provider, model=model, request_id=request_id)
    if blocked is not None:
        raise blocked
    images: list[GeneratedImage] = []
    finishes: list[str] = []
    candidates = data.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else ():
        if not isinstance(candidate, Mapping):
            continue
        reason = candidate.get("finishReason")
        if isinstance(reason, str):
            finishes.append(reason)
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else ():
            inline = part.get("inlineData") if isinstance(part, Mapping) else None
            if isinstance(inline, Mapping) and part.get("thought") is not True:
                images.append(
                    GeneratedImage.model_construct(
                        data=_decode(inline.get("data")),
                        url=None,
                        media_type=str(inline.get("mimeType") or "image/png"),
                        revised_prompt=None,
                    )
                )
    raw = _without_images(data)
    if not images:
        filtered = [r for r in finishes if _FINISH_REASONS.get(r) == "content_filter"]
        cls = ContentFilterError if filtered else MalformedResponseError
        detail = ", ".join(finishes) or "no candidate"
        raise cls(
            f"{provider} generated no image (finishReason: {detail})",
            provider=provider,
            model=model,
            request_id=request_id,
            body=raw,
        )
    usage = parse_usage(data.get("usageMetadata"))
    row = lookup_model(models, model)
    return ImageGenerationResponse.model_construct(
        model=model,
        provider=provider,
        images=images,
        usage=usage,
        latency=latency,
        cost=row.cost(usage) if row is not None and "usageMetadata" in data else None,
        request_id=request_id,
        attempts=[],
        raw=raw,
    )
