"""The unified request and response shapes every provider speaks.

Messages are lists of typed parts (text, image, tool call, tool result). Plain dicts in
the OpenAI chat style are accepted and normalised, so code written for the OpenAI SDK
ports with its message lists unchanged.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    create_model,
    field_validator,
    model_validator,
)

__all__ = [
    "Attempt",
    "FinishReason",
    "GeneratedImage",
    "ImageGenerationOptions",
    "ImageGenerationResponse",
    "ImagePart",
    "JsonSchemaFormat",
    "Message",
    "ModelCapabilities",
    "ModelCompletionOptions",
    "ModelCompletionResponse",
    "ModelEmbeddingOptions",
    "ModelEmbeddingResponse",
    "NamedToolChoice",
    "Part",
    "ProviderModel",
    "ReasoningDeltaEvent",
    "RestartEvent",
    "StreamEvent",
    "StreamFinishEvent",
    "TextDeltaEvent",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDeltaEvent",
    "ToolCallEvent",
    "ToolResultPart",
    "Usage",
    "UsageEvent",
]

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "error"]

# Schemas are built on first use, not at import (defer_build): `import aiport` stays light,
# and a program pays only for the shapes it uses (docs/decisions.md 17).
_FROZEN = ConfigDict(frozen=True, extra="forbid", defer_build=True)
BaseModelT = TypeVar("BaseModelT", bound=BaseModel)


# --------------------------------------------------------------------------- parts


class TextPart(BaseModel):
    """A piece of text."""

    model_config = _FROZEN
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image given by URL, or inline as bytes with their media type.

    A ``data:`` URL is decoded into ``data`` and ``media_type``, so adapters only ever
    see the two clean forms.
    """

    model_config = _FROZEN
    type: Literal["image"] = "image"
    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _decode_data_url(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            url = value.get("url")
            if isinstance(url, str) and url.startswith("data:"):
                header, _, payload = url.partition(",")
                media_type = header[5:].split(";")[0] or None
                if ";base64" not in header:
                    raise ValueError("only base64 data: URLs are supported for images")
                try:
                    data = base64.b64decode(payload, validate=True)
                except binascii.Error as exc:
                    raise ValueError(f"invalid base64 in image data URL: {exc}") from None
                return {**value, "url": None, "data": data, "media_type": media_type}
        return value

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image needs exactly one of `url` or `data`")
        if self.data is not None and not self.media_type:
            raise ValueError("an image given as bytes needs its `media_type` (e.g. image/png)")
        return self

    def data_url(self) -> str:
        """The image as a URL: its own, or a base64 ``data:`` URL for inline bytes."""
        if self.url is not None:
            return self.url
        assert self.data is not None
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def base64_data(self) -> str:
        """The inline bytes, base64-encoded (only for images given as bytes)."""
        if self.data is None:
            raise ValueError("this image is a URL, not inline bytes")
        return base64.b64encode(self.data).decode("ascii")


class ToolCall(BaseModel):
    """A call the model asks the caller to make.

    ``arguments`` is the JSON text the model produced, exactly; ``parse_arguments()``
    decodes it. A mapping given as ``arguments`` is encoded to JSON.
    """

    model_config = _FROZEN
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_mapping(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return value

    def parse_arguments(self) -> Any:
        """The arguments decoded from JSON (``ValueError`` if the model produced invalid JSON)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


class ToolResultPart(BaseModel):
    """The result of a tool call, sent back to the model."""

    model_config = _FROZEN
    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    content: str | list[TextPart | ImagePart]
    is_error: bool = False

    def text(self) -> str:
        """The result's text (text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


Part: TypeAlias = Annotated[TextPart | ImagePart | ToolCall | ToolResultPart, Discriminator("type")]


def _normalise_openai_part(part: Any) -> Any:
    """Accept the OpenAI chat part shapes (``image_url``, ``input_text``...) as ours."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            return {"type": "image", "url": image}
        if isinstance(image, Mapping):
            out: dict[str, Any] = {"type": "image", "url": image.get("url")}
            if image.get("detail") is not None:
                out["detail"] = image["detail"]
            return out
    if kind == "input_text":
        return {"type": "text", "text": part.get("text")}
    return part


# --------------------------------------------------------------------------- messages


class Message(BaseModel):
    """One message of a conversation.

    ``content`` is a string or a list of parts. Assistant tool calls are ``ToolCall``
    parts and tool results are ``ToolResultPart`` parts; the OpenAI dict forms
    (``tool_calls`` on an assistant message, ``role="tool"`` with ``tool_call_id``) are
    accepted and turned into parts.
    """

    model_config = _FROZEN
    role: Role
    content: str | list[Part] = ""
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_openai_style(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        if (
            type(value) is dict
            and isinstance(value.get("content"), str)
            and "tool_calls" not in value
            and "tool_call_id" not in value
        ):
            # Text content and no OpenAI tool fields: nothing to normalise (the common
            # message; validating it does not change the dict, so no copy is needed).
            return value
        data = dict(value)
        content = data.get("content")
        if content is None:
            content = ""
        if isinstance(content, list):
            content = [_normalise_openai_part(p) for p in content]
        tool_calls = data.pop("tool_calls", None)
        tool_call_id = data.pop("tool_call_id", None)
        if tool_calls:
            parts: list[Any] = []
            if isinstance(content, str):
                if content:
                    parts.append({"type": "text", "text": content})
            else:
                parts.extend(content)
            for call in tool_calls:
                if isinstance(call, Mapping) and "function" in call:
                    function = call["function"]
                    parts.append(
                        {
                            "type": "tool_call",
                            "id": call.get("id"),
                            "name": function.get("name"),
                            "arguments": function.get("arguments", "{}"),
                        }
                    )
                else:
                    parts.append(call)
            content = parts
        if tool_call_id is not None:
            if data.get("role") != "tool":
                raise ValueError("`tool_call_id` is only valid on messages with role 'tool'")
            is_error = bool(data.pop("is_error", False))
            result_content: Any = content
            if isinstance(content, list):
                result_content = [p for p in content if not _is_tool_result(p)]
            content = [
                {
                    "type": "tool_result",
                    "tool_call_id": tool_call_id,
                    "content": result_content,
                    "is_error": is_error,
                }
            ]
        data["content"] = content
        return data

    @model_validator(mode="after")
    def _check_parts_fit_role(self) -> Message:
        if isinstance(self.content, str):
            if self.role == "tool":
                raise ValueError("a 'tool' message needs a tool result (give `tool_call_id`)")
            return self
        for part in self.content:
            if isinstance(part, ToolCall) and self.role != "assistant":
                raise ValueError("tool calls may only appear in assistant messages")
            if isinstance(part, ToolResultPart) and self.role not in ("tool", "user"):
                raise ValueError("tool results may only appear in 'tool' (or 'user') messages")
            if isinstance(part, ImagePart) and self.role in ("system", "developer"):
                raise ValueError(f"images are not allowed in {self.role} messages")
        return self

    # Constructors that read well at call sites.
    @classmethod
    def system(cls, text: str) -> Message:
        """A system message."""
        return cls(role="system", content=text)

    @classmethod
    def user(cls, *content: str | TextPart | ImagePart) -> Message:
        """A user message from text and images (a single string stays a string)."""
        if len(content) == 1 and isinstance(content[0], str):
            return cls(role="user", content=content[0])
        parts = [TextPart(text=c) if isinstance(c, str) else c for c in content]
        return cls(role="user", content=cast("list[Part]", parts))

    @classmethod
    def assistant(cls, text: str = "", tool_calls: Sequence[ToolCall] = ()) -> Message:
        """An assistant message (text and/or tool calls), e.g. to replay history."""
        if not tool_calls:
            return cls(role="assistant", content=text)
        parts: list[Part] = [TextPart(text=text)] if text else []
        parts.extend(tool_calls)
        return cls(role="assistant", content=parts)

    @classmethod
    def tool_result(
        cls, tool_call_id: str, content: str | list[TextPart | ImagePart], *, is_error: bool = False
    ) -> Message:
        """The result of the tool call ``tool_call_id``."""
        part = ToolResultPart(tool_call_id=tool_call_id, content=content, is_error=is_error)
        return cls(role="tool", content=[part])

    @property
    def parts(self) -> list[Part]:
        """``content`` as a list of parts (a string becomes one text part)."""
        if isinstance(self.content, str):
            return [TextPart(text=self.content)] if self.content else []
        return self.content

    @property
    def text(self) -> str:
        """The text of the message (text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls in the message."""
        if isinstance(self.content, str):
            return []
        return [p for p in self.content if isinstance(p, ToolCall)]


def _is_tool_result(part: Any) -> bool:
    return isinstance(part, ToolResultPart) or (
        isinstance(part, Mapping) and part.get("type") == "tool_result"
    )


# --------------------------------------------------------------------------- tools


class Tool(BaseModel):
    """A function the model may call: a name, a description and JSON-schema parameters."""

    model_config = _FROZEN
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_openai_style(cls, value: Any) -> Any:
        # {"type": "function", "function": {...}} as the OpenAI SDK takes it.
        if isinstance(value, Mapping) and value.get("type") == "function" and "function" in value:
            return dict(value["function"])
        return value

    @classmethod
    def from_function(
        cls, function: Callable[..., Any], *, name: str | None = None, strict: bool | None = None
    ) -> Tool:
        """A tool from a typed Python function; its docstring becomes the description."""
        signature = inspect.signature(function)
        fields: dict[str, Any] = {}
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(f"{function.__name__}: *args/**kwargs cannot become a tool schema")
            annotation = (
                Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation
            )
            default = ... if parameter.default is inspect.Parameter.empty else parameter.default
            fields[parameter.name] = (annotation, default)
        model = create_model(function.__name__, **fields)
        return cls(
            name=name or function.__name__,
            description=inspect.getdoc(function) or "",
            parameters=_clean_schema(model.model_json_schema()),
            strict=strict,
        )

    @classmethod
    def from_model(
        cls, model: type[BaseModel], *, name: str | None = None, strict: bool | None = None
    ) -> Tool:
        """A tool whose arguments are a Pydantic model."""
        return cls(
            name=name or model.__name__,
            description=inspect.getdoc(model) or "",
            parameters=_clean_schema(model.model_json_schema()),
            strict=strict,
        )


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the top-level title pydantic adds; providers show it as noise."""
    return {k: v for k, v in schema.items() if k != "title"}


class NamedToolChoice(BaseModel):
    """Force the model to call one named tool."""

    model_config = _FROZEN
    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_wire_styles(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            if value.get("type") == "function" and isinstance(value.get("function"), Mapping):
                return {"name": value["function"].get("name")}
            if value.get("type") == "tool":
                return {"name": value.get("name")}
        return value


ToolChoice: TypeAlias = Literal["auto", "none", "required"] | NamedToolChoice


class JsonSchemaFormat(BaseModel):
    """Ask for JSON output that matches a JSON schema."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True, populate_by_name=True)
    name: str = Field(default="response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool = True

    @classmethod
    def from_model(cls, model: type[BaseModel], *, strict: bool = True) -> JsonSchemaFormat:
        """The format for a Pydantic model's JSON schema."""
        return cls(
            name=model.__name__, schema_=_strict_schema(model.model_json_schema()), strict=strict
        )


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a pydantic schema acceptable to strict structured output.

    Strict mode (OpenAI) needs every object to forbid extra keys and list every property
    as required; pydantic leaves both open by default.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: visit(v) for k, v in node.items()}
            if out.get("type") == "object" and "properties" in out:
                out.setdefault("additionalProperties", False)
                out["required"] = list(out["properties"])
            return out
        if isinstance(node, list):
            return [visit(v) for v in node]
        return node

    return cast("dict[str, Any]", visit(schema))


ResponseFormat: TypeAlias = Literal["text", "json"] | JsonSchemaFormat


# --------------------------------------------------------------------------- completion


class ModelCompletionOptions(BaseModel):
    """A completion request, the same for every provider.

    ``provider_options`` is merged into the provider's request body untouched, for
    anything not unified here (``{"logprobs": True}``, ``{"top_k": 5}``...).
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", defer_build=True, arbitrary_types_allowed=True
    )

    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    provider_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_from_strings(cls, value: Any) -> Any:
        # `messages="Hi"` is a common shortcut for one user message.
        return [{"role": "user", "content": value}] if isinstance(value, str) else value

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_from_callables(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        out: list[Any] = []
        for tool in value:
            if isinstance(tool, type) and issubclass(tool, BaseModel):
                out.append(Tool.from_model(tool))
            elif callable(tool) and not isinstance(tool, (BaseModel, Mapping)):
                out.append(Tool.from_function(tool))
            else:
                out.append(tool)
        return out

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_forms(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("auto", "none", "required"):
            return {"name": value}
        return value

    @field_validator("response_format", mode="before")
    @classmethod
    def _response_format_forms(cls, value: Any) -> Any:
        if isinstance(value, type) and issubclass(value, BaseModel):
            return JsonSchemaFormat.from_model(value)
        if isinstance(value, Mapping):
            # The OpenAI wire forms, for code ported from the SDK.
            kind = value.get("type")
            if kind == "json_object":
                return "json"
            if kind == "text":
                return "text"
            if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping):
                return dict(value["json_schema"])
        return value


class Usage(BaseModel):
    """Token counts of one call.

    ``input_tokens`` counts every input token, cached ones included;
    ``cached_input_tokens`` is the part read from the provider's prompt cache and
    ``cache_creation_input_tokens`` the part written to it (Anthropic).
    ``output_tokens`` counts every generated token, reasoning (thinking) ones included,
    as OpenAI, Anthropic and Gemini bill them; ``reasoning_tokens`` is that part (an
    adapter whose provider reports thinking tokens apart, like Gemini, adds them in).
    """

    model_config = _FROZEN
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0

    @model_validator(mode="after")
    def _fill_total(self) -> Usage:
        if not self.total_tokens and (self.input_tokens or self.output_tokens):
            object.__setattr__(self, "total_tokens", self.input_tokens + self.output_tokens)
        return self


class Attempt(BaseModel):
    """One attempt of a call: which deployment, how it ended, and how long it took.

    ``waited`` is the time spent before the attempt (backoff, Retry-After, a queue).
    """

    model_config = _FROZEN
    provider: str
    model: str
    number: int = Field(description="1 for the first try of this deployment, 2 for its retry...")
    outcome: Literal["ok", "error"]
    error_code: str | None = None
    reason: str | None = None
    status_code: int | None = None
    latency: float = 0.0
    waited: float = 0.0


class ModelCompletionResponse(BaseModel):
    """The result of a completion, the same for every provider.

    ``raw`` keeps the provider's own JSON for anything not unified; ``warnings`` lists
    requested settings the provider could not honour (never silently dropped).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    id: str
    model: str
    provider: str
    message: Message
    finish_reason: FinishReason
    raw_finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency: float = 0.0
    cost: float | None = None
    request_id: str | None = None
    warnings: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(
        default_factory=list,
        description="Every attempt made, fallbacks included; the last one served this response.",
    )
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        """The assistant's text."""
        return self.message.text

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the model asked for."""
        return self.message.tool_calls

    def parse(self, model: type[BaseModelT]) -> BaseModelT:
        """The text parsed as JSON into a Pydantic model (for ``response_format=Model``)."""
        return model.model_validate_json(self.text)


# --------------------------------------------------------------------------- streaming


class TextDeltaEvent(BaseModel):
    """A piece of the assistant's text."""

    model_config = _FROZEN
    type: Literal["text-delta"] = "text-delta"
    text: str


class ReasoningDeltaEvent(BaseModel):
    """A piece of the model's visible reasoning (Anthropic thinking)."""

    model_config = _FROZEN
    type: Literal["reasoning-delta"] = "reasoning-delta"
    text: str


class ToolCallDeltaEvent(BaseModel):
    """A piece of a tool call; ``index`` says which call of the response it belongs to."""

    model_config = _FROZEN
    type: Literal["tool-call-delta"] = "tool-call-delta"
    index: int
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""


class ToolCallEvent(BaseModel):
    """A tool call, complete (sent once its last delta has arrived)."""

    model_config = _FROZEN
    type: Literal["tool-call"] = "tool-call"
    index: int
    tool_call: ToolCall


class UsageEvent(BaseModel):
    """Token usage, as soon as the provider reports it, and its price in US dollars
    (``None`` when the model's prices are unknown)."""

    model_config = _FROZEN
    type: Literal["usage"] = "usage"
    usage: Usage
    cost: float | None = None


class RestartEvent(BaseModel):
    """The stream broke and starts over: discard everything received so far.

    Sent only with stream recovery on, when the answer could not be continued where it
    stopped (the model does not accept a prefilled answer).
    """

    model_config = _FROZEN
    type: Literal["restart"] = "restart"
    reason: str
    provider: str
    model: str


class StreamFinishEvent(BaseModel):
    """The last event: the complete response, as ``complete`` would have returned it."""

    model_config = _FROZEN
    type: Literal["finish"] = "finish"
    response: ModelCompletionResponse


StreamEvent: TypeAlias = Annotated[
    TextDeltaEvent
    | ReasoningDeltaEvent
    | ToolCallDeltaEvent
    | ToolCallEvent
    | UsageEvent
    | RestartEvent
    | StreamFinishEvent,
    Discriminator("type"),
]


# --------------------------------------------------------------------------- embeddings


class ModelEmbeddingOptions(BaseModel):
    """An embedding request: one text or many, and optionally the vector size."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str
    input: list[str] = Field(min_length=1)
    dimensions: int | None = Field(default=None, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    provider_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ModelEmbeddingResponse(BaseModel):
    """Vectors in the order of the inputs."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str
    provider: str
    embeddings: list[list[float]]
    usage: Usage = Field(default_factory=Usage)
    latency: float = 0.0
    cost: float | None = None
    request_id: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


# --------------------------------------------------------------------------- images


class ImageGenerationOptions(BaseModel):
    """An image generation request."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str
    prompt: str = Field(min_length=1)
    n: int = Field(default=1, ge=1)
    size: str | None = Field(default=None, pattern=r"^(\d+x\d+|auto)$")
    quality: str | None = None
    style: str | None = None
    output: Literal["bytes", "url"] | None = None
    timeout: float | None = Field(default=None, gt=0)
    provider_options: dict[str, Any] = Field(default_factory=dict)


class GeneratedImage(BaseModel):
    """One generated image: bytes, a URL, or both."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    data: bytes | None = Field(default=None, repr=False)
    url: str | None = None
    media_type: str = "image/png"
    revised_prompt: str | None = None


class ImageGenerationResponse(BaseModel):
    """The images of one generation call."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model: str
    provider: str
    images: list[GeneratedImage]
    usage: Usage = Field(default_factory=Usage)
    latency: float = 0.0
    cost: float | None = None
    request_id: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


# --------------------------------------------------------------------------- models


class ModelCapabilities(BaseModel):
    """What a model can do."""

    model_config = _FROZEN
    chat: bool = False
    streaming: bool = False
    tools: bool = False
    vision: bool = False
    json_output: bool = False
    embeddings: bool = False
    images: bool = False

    def names(self) -> list[str]:
        """The names of the capabilities the model has."""
        return [name for name, value in self if value]


class ProviderModel(BaseModel):
    """What is known of one model of one provider."""

    model_config = _FROZEN
    id: str
    provider: str
    description: str = ""
    capabilities: ModelCapabilities = Field(default_factory=ModelCapabilities)
    context_window: int | None = None
    max_output_tokens: int | None = None
    input_price_per_million: float | None = None
    output_price_per_million: float | None = None
    cached_input_price_per_million: float | None = None
    cache_write_price_per_million: float | None = None
    reasoning_price_per_million: float | None = None
    deprecated: datetime.date | None = None
    aliases: tuple[str, ...] = ()

    @property
    def qualified_id(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.id}"

    def cost(self, usage: Usage) -> float | None:
        """The price of ``usage`` in US dollars, or ``None`` when a needed price is unknown.

        Each kind of token is priced at its own rate (per million)::

            (input - cache reads - cache writes) * input
              + cache reads * cached_input        (default: the input price)
              + cache writes * cache_write        (default: the input price)
              + (output - reasoning) * output
              + reasoning * reasoning             (default: the output price)

        ``output_tokens`` includes ``reasoning_tokens`` (see ``Usage``); counts that
        overlap more than their total (a cache or reasoning part larger than the whole)
        are clamped so no part is negative. An input price is always needed; an output
        price only when output tokens were produced (embeddings produce none).
        """
        input_price = self.input_price_per_million
        if input_price is None:
            return None
        reasoning = min(usage.reasoning_tokens, usage.output_tokens)
        visible = usage.output_tokens - reasoning
        output_price = self.output_price_per_million
        reasoning_price = _known_or(self.reasoning_price_per_million, output_price)
        if (visible and output_price is None) or (reasoning and reasoning_price is None):
            return None
        read = usage.cached_input_tokens
        write = usage.cache_creation_input_tokens
        plain = max(usage.input_tokens - read - write, 0)
        return (
            plain * input_price
            + read * _first_known(self.cached_input_price_per_million, input_price)
            + write * _first_known(self.cache_write_price_per_million, input_price)
            + visible * (output_price or 0.0)
            + reasoning * (reasoning_price or 0.0)
        ) / 1_000_000


def _known_or(value: float | None, default: float | None) -> float | None:
    return value if value is not None else default


def _first_known(value: float | None, default: float) -> float:
    return value if value is not None else default
