"""Gemini API (Generative Language API) wire format: generateContent, streams, embeddings,
Imagen, models and Google-style errors.

Routes, all under ``/v1beta/``: ``POST models/<model>:generateContent``,
``:streamGenerateContent`` (SSE with ``?alt=sse``, else one JSON array), ``:countTokens``,
``:embedContent``, ``:batchEmbedContents``, ``:predict`` (Imagen); ``GET models`` (paged
with ``pageSize``/``pageToken``) and ``GET models/<model>``.

Deterministic behaviour (on top of the rules in :mod:`aiport.testing`):

Auth
    An API key in ``x-goog-api-key`` (or the ``key`` query parameter, which the real API
    also accepts), or ``Authorization: Bearer <token>`` (an OAuth token the emulator's
    token endpoint issued, or any key the emulator accepts). No credential: 403
    ``PERMISSION_DENIED`` ("Method doesn't allow unregistered callers"); a wrong key: 400
    ``INVALID_ARGUMENT`` with ErrorInfo reason ``API_KEY_INVALID``, as Google answers; a
    wrong bearer token: 401 ``UNAUTHENTICATED``.
Validation
    Unknown fields are 400 ``Invalid JSON payload received. Unknown name "x" at '...':
    Cannot find field.``; so are schema keywords Gemini's ``Schema`` lacks (``$ref``,
    ``additionalProperties``, ``const``, ``oneOf``...), ``format`` values other than
    ``enum``/``date-time`` on strings, ``enum`` on non-strings, objects without
    properties, arrays without items and ``required`` names that are not properties.
    ``parametersJsonSchema`` / ``responseJsonSchema`` take any JSON Schema. Function names
    must match ``[A-Za-z_][A-Za-z0-9_.:-]{0,63}``. A user turn answering a model turn with
    N function calls must hold N ``functionResponse`` parts. On ``gemini-3*`` models the
    first function call of each model turn after the last user message must carry the
    ``thoughtSignature`` the emulator issued (or one of Google's documented dummy values),
    else 400. Tools together with JSON output are refused (400) except on ``gemini-3*``.
Tokens
    Prompt tokens: each content's text (function-call args and function responses as
    their JSON) plus 3 per content; ``systemInstruction`` text without the 3; each
    ``inlineData``/``fileData`` part 258 (Gemini's per-image count). A prompt above the
    model's context window gets 400 "The input token count (N) exceeds the maximum number
    of tokens allowed (W)."
Answers
    As for OpenAI: ``"You said: <last user text>"`` (``" [images: N]"``), ``"Tool
    results: ..."`` after function responses (each response's ``output`` or ``error``
    value, else its JSON), ``responseMimeType: application/json`` answers
    ``{"echo": <text>}`` or an instance of ``responseSchema``/``responseJsonSchema``;
    ``text/x.enum`` answers the schema's first enum value. ``stopSequences`` and
    ``maxOutputTokens`` cut the answer (finishReason ``STOP`` / ``MAX_TOKENS``).
    ``candidateCount`` N answers N identical candidates.
Function calling
    With ``functionDeclarations`` and a mode other than ``NONE``, unless the last content
    holds function responses: the functions are chosen as OpenAI's (``ANY`` with one
    ``allowedFunctionNames`` entry forces it); arguments are generated from the schema.
    The answer is the ``functionCall`` parts (no ids), finishReason ``STOP``, and in the
    plain answer ``finishMessage: "Model generated function call(s)."``. On ``gemini-3*``
    models the first call carries a ``thoughtSignature``.
Thinking
    ``thinkingConfig`` with ``includeThoughts``, a positive ``thinkingBudget`` or a
    ``thinkingLevel``: ``thoughtsTokenCount`` counts the tokens of ``"Thinking about: <last
    user text>"``; with ``includeThoughts`` that text is a first part marked
    ``thought: true``.
Safety
    ``BLOCK_PROMPT`` in the last user text: no candidates, ``promptFeedback.blockReason``
    ``SAFETY`` (Imagen: an empty ``{}`` answer, or ``raiFilteredReason`` entries with
    ``includeRaiReason``). ``BLOCK_OUTPUT``: a candidate without content, finishReason
    ``SAFETY`` and a ``HIGH`` safety rating.
Usage and caching
    ``usageMetadata`` has ``promptTokenCount``, ``candidatesTokenCount``,
    ``totalTokenCount`` (prompt + candidates + thoughts), ``promptTokensDetails`` by
    modality and ``thoughtsTokenCount`` when thinking; a request naming ``cachedContent``
    reports ``cachedContentTokenCount`` = prompt tokens rounded down to a multiple of 64.
    A generated image counts 1290 output tokens.
Streams
    ``data: <chunk>\\r\\n\\r\\n`` events; each chunk holds the new parts, cumulative usage,
    ``modelVersion`` and ``responseId``: one chunk per thought token, per answer token
    (the last one with ``finishReason``), or one chunk with every function call followed
    by a chunk with an empty text part and ``finishReason`` (as recorded from the API).
    A ``stream-error`` fault sends ``data: {"error": {...}}`` (default ``INTERNAL``).
Embeddings
    Vectors as for OpenAI (seeded from model and text); native sizes
    ``gemini-embedding-001`` 3072, ``text-embedding-004``/``embedding-001`` 768 (others
    768); ``outputDimensionality`` gives the renormalised prefix. ``batchEmbedContents``
    takes at most 100 requests, each naming the URL's model.
Images
    Imagen ``:predict``: ``sampleCount`` (1-4) PNGs (``bytesBase64Encoded``) as for OpenAI;
    ``aspectRatio`` one of 1:1, 3:4, 4:3, 9:16, 16:9. Gemini image models (ids with
    ``-image``) asked for ``responseModalities`` with ``IMAGE`` answer one
    ``inlineData`` PNG part per candidate.
Errors
    Status faults answer Google's body ``{"error": {"code", "message", "status",
    "details"}}``; a 429 carries ``google.rpc.QuotaFailure`` and, when the fault has a
    ``retry_after`` in seconds (or ``retry_after_ms``), ``google.rpc.RetryInfo`` with that
    ``retryDelay`` (``"2s"``) instead of a ``Retry-After`` header, as Google does (an HTTP
    date goes in ``Retry-After``). ``error_type`` overrides the status name. No request-id
    header: the Gemini API sends none.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _content as c
from ._faults import Call, Fault, Reply

if TYPE_CHECKING:
    from ._emulator import RoutesContext

__all__ = ["GeminiRoutes", "GoogleSSEEvent"]

_PREFIX = "/v1beta/"
_API_VERSION = "v1beta"
#: Tokens Gemini charges per image in a prompt.
IMAGE_TOKENS = 258
#: Output tokens of one generated image.
IMAGE_OUTPUT_TOKENS = 1290
_OVERHEAD = c.MESSAGE_OVERHEAD
_BLOCK_PROMPT = "BLOCK_PROMPT"
_BLOCK_OUTPUT = "BLOCK_OUTPUT"
_DUMMY_SIGNATURES = frozenset(
    {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
)
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_MAX_STOPS = 5
_MAX_BATCH = 100
_ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
_MIME_TYPES = (
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
)
_TASK_TYPES = (
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
)
_EMBED_DIMS: Mapping[str, int] = {
    "gemini-embedding-001": 3072,
    "text-embedding-004": 768,
    "embedding-001": 768,
}
_MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
_SCHEMA_TYPES = (
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
)
_SCHEMA_FORMATS: Mapping[str, tuple[str, ...]] = {
    "STRING": ("enum", "date-time"),
    "INTEGER": ("int32", "int64"),
    "NUMBER": ("float", "double"),
}

# Field names (camelCase; snake_case is accepted too, as the real API does).
_REQUEST_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
        "serviceTier",
        "store",
    }
)
_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
    }
)
_PART_DATA = frozenset(
    {
        "text",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    }
)
_PART_FIELDS = _PART_DATA | {
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "partMetadata",
    "mediaResolution",
}
_DECLARATION_FIELDS = frozenset(
    {
        "name",
        "description",
        "parameters",
        "parametersJsonSchema",
        "response",
        "responseJsonSchema",
        "behavior",
    }
)
_SCHEMA_FIELDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
_EMBED_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})

_GENERATE = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
#: (id, display name, input limit, output limit, methods, thinking) of ``GET models``.
MODELS: tuple[tuple[str, str, int, int, tuple[str, ...], bool], ...] = (
    ("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536, _GENERATE, True),
    ("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536, _GENERATE, True),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1_048_576, 65_536, _GENERATE, True),
    ("gemini-2.0-flash", "Gemini 2.0 Flash", 1_048_576, 8_192, _GENERATE, False),
    ("gemini-2.0-flash-lite", "Gemini 2.0 Flash-Lite", 1_048_576, 8_192, _GENERATE, False),
    ("gemini-3-pro-preview", "Gemini 3 Pro Preview", 1_048_576, 65_536, _GENERATE, True),
    ("gemini-2.5-flash-image", "Nano Banana", 32_768, 32_768, _GENERATE, False),
    (
        "gemini-embedding-001",
        "Gemini Embedding 001",
        2_048,
        1,
        ("embedContent", "countTextTokens", "countTokens"),
        False,
    ),
    ("text-embedding-004", "Text Embedding 004", 2_048, 1, ("embedContent",), False),
    ("imagen-4.0-generate-001", "Imagen 4", 480, 8_192, ("predict",), False),
    ("imagen-4.0-ultra-generate-001", "Imagen 4 Ultra", 480, 8_192, ("predict",), False),
    ("imagen-4.0-fast-generate-001", "Imagen 4 Fast", 480, 8_192, ("predict",), False),
    ("imagen-3.0-generate-002", "Imagen 3", 480, 8_192, ("predict",), False),
)

#: Per HTTP status: Google's canonical status name and its usual message.
STATUS_ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For "
        "more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    499: ("CANCELLED", "The operation was cancelled."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    501: ("UNIMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_STATUS_OF_NAME: Mapping[str, int] = {name: code for code, (name, _) in STATUS_ERRORS.items()}
_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_KEY_INVALID = "API key not valid. Please pass a valid API key."
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_RESPONSE_HEADERS: Mapping[str, str] = {
    "Vary": "Origin, X-Origin, Referer",
    "Server": "scaffolding on HTTPServer2",
    "X-XSS-Protection": "0",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class GoogleSSEEvent:
    """One SSE event as Google frames it: ``data: <json>`` ended by ``\\r\\n\\r\\n``."""

    data: str

    def render(self) -> bytes:
        return f"data: {self.data}\r\n\r\n".encode()

    def broken(self) -> bytes:
        """The same event with its JSON cut in half, so it no longer parses."""
        return GoogleSSEEvent(self.data[: max(1, len(self.data) // 2)]).render()


class _InvalidError(Exception):
    """A 400 ``INVALID_ARGUMENT`` raised by validation and answered by ``handle``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _fields(obj: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    """``obj`` with camelCase keys, or 400 for a key Gemini does not know."""
    if not isinstance(obj, dict):
        at = f" at '{where}'" if where else ""
        raise _InvalidError(f"Invalid JSON payload received. Expected an object{at}.")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in allowed:
            at = f" at '{where}'" if where else ""
            raise _InvalidError(
                f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
            )
        out[name] = value
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bytes(value: Any) -> bytes | None:
    """Protobuf ``bytes`` from JSON: base64 in the standard or the URL-safe alphabet."""
    if not isinstance(value, str):
        return None
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def _signature(name: str, args: Any) -> str:
    """The thought signature the emulator attaches to a function call (and checks)."""
    return base64.b64encode(c.digest("gemini-thought", name, _dumps(args)) * 2).decode("ascii")


@dataclass(slots=True)
class _Prompt:
    """What the emulated model reads from a generateContent request."""

    tokens: int
    text_tokens: int
    images: int
    user_text: str
    user_images: int
    results: list[str]


class GeminiRoutes:
    """Answers Gemini API requests (see the module docstring)."""

    def __init__(self, context: RoutesContext) -> None:
        self._keys = context.api_keys
        self._window: Callable[[str], int] = context.window

    # ------------------------------------------------------------------ errors

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        body = json.dumps(payload, indent=2).encode()
        hdrs = {
            **_RESPONSE_HEADERS,
            **(headers or {}),
            "Content-Type": "application/json; charset=UTF-8",
        }
        return Reply(status, hdrs, body)

    def error(
        self,
        status: int,
        message: str,
        *,
        status_name: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Google's error body for ``status``."""
        name = (
            status_name
            or STATUS_ERRORS.get(status, STATUS_ERRORS[500 if status >= 500 else 400])[0]
        )
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        if details:
            error["details"] = details
        return self._reply(status, {"error": error}, headers)

    def _bad(self, message: str) -> Reply:
        return self.error(400, message)

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """The error Google sends with ``fault.code``, honouring the fault's overrides."""
        status = fault.code or 500
        name, message = STATUS_ERRORS.get(status, STATUS_ERRORS[500 if status >= 500 else 400])
        model = self._model_of(call.path) or "gemini-2.5-flash"
        if status == 404:
            message = (
                f"models/{model} is not found for API version {_API_VERSION}, or is not "
                "supported for generateContent. Call ListModels to see the list of available "
                "models and their supported methods."
            )
        details: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        if status == 429:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": _QUOTA_METRIC,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaDimensions": {"location": "global", "model": model},
                            "quotaValue": "10",
                        }
                    ],
                }
            )
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                }
            )
        delay = _retry_delay(fault)
        if delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
            )
        elif fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        return self.error(
            status,
            fault.message or message,
            status_name=fault.error_type or name,
            details=details,
            headers=headers,
        )

    def context_length_error(self, call: Call, used: int | None = None) -> Reply:
        model = self._model_of(call.path) or ""
        window = self._window(model)
        if used is None:
            body = call.body if isinstance(call.body, dict) else {}
            try:
                used = self._prompt(body).tokens
            except (_InvalidError, TypeError, AttributeError, KeyError):
                used = 0
        used = max(used, window + 1)
        return self._bad(
            f"The input token count ({used}) exceeds the maximum number of tokens allowed "
            f"({window})."
        )

    def stream_error_event(self, fault: Fault) -> GoogleSSEEvent:
        name = fault.error_type or "INTERNAL"
        status = _STATUS_OF_NAME.get(name, 500)
        message = fault.message or STATUS_ERRORS.get(status, STATUS_ERRORS[500])[1]
        error = {"code": status, "message": message, "status": name}
        return GoogleSSEEvent(_dumps({"error": error}))

    def stream_error_status(self, fault: Fault) -> Fault:
        """The status fault a non-streaming request gets for a ``stream_error`` fault."""
        name = fault.error_type or "INTERNAL"
        return Fault.status(_STATUS_OF_NAME.get(name, 500), error_type=name, message=fault.message)

    # ------------------------------------------------------------------ routing

    @staticmethod
    def _model_of(path: str) -> str | None:
        rest = path.removeprefix(_PREFIX)
        if not rest.startswith("models/"):
            return None
        return rest.removeprefix("models/").split(":", 1)[0] or None

    def _auth(self, call: Call) -> Reply | None:
        key = call.headers.get("x-goog-api-key", "").strip() or call.query.get("key", "").strip()
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if key:
            if self._keys is not None and key not in self._keys:
                info = {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
                localized = {
                    "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US",
                    "message": _KEY_INVALID,
                }
                return self.error(400, _KEY_INVALID, details=[info, localized])
            return None
        if token:
            if self._keys is not None and token not in self._keys:
                info = {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
                return self.error(401, STATUS_ERRORS[401][1], details=[info])
            return None
        return self.error(403, _UNREGISTERED)

    def handle(self, call: Call) -> Reply:
        denied = self._auth(call)
        if denied is not None:
            return denied
        rest = call.path.removeprefix(_PREFIX)
        if call.method == "GET":
            if rest == "models":
                return self._list(call)
            if rest.startswith("models/") and ":" not in rest:
                return self._get(rest.removeprefix("models/"))
        if call.method != "POST" or not rest.startswith("models/") or ":" not in rest:
            return self.error(404, f"Method not found: {call.method} {call.path}")
        model, _, method = rest.removeprefix("models/").rpartition(":")
        handler = {
            "generateContent": self._generate,
            "streamGenerateContent": self._generate,
            "countTokens": self._count,
            "embedContent": self._embed,
            "batchEmbedContents": self._batch_embed,
            "predict": self._predict,
        }.get(method)
        if handler is None or not model:
            return self.error(404, f"Method not found: {method}")
        if not _supports(model, method):
            return self.error(
                404,
                f"models/{model} is not found for API version {_API_VERSION}, or is not "
                f"supported for {method}. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        if not isinstance(call.body, dict):
            return self._bad("Invalid JSON payload received. Expected an object.")
        try:
            return handler(call, model, method)
        except _InvalidError as exc:
            return self._bad(exc.message)

    # ------------------------------------------------------------------ models

    @staticmethod
    def _model(row: tuple[str, str, int, int, tuple[str, ...], bool]) -> dict[str, Any]:
        model_id, display, input_limit, output_limit, methods, thinking = row
        out: dict[str, Any] = {
            "name": f"models/{model_id}",
            "version": "001",
            "displayName": display,
            "description": f"{display} (emulated)",
            "inputTokenLimit": input_limit,
            "outputTokenLimit": output_limit,
            "supportedGenerationMethods": list(methods),
        }
        if "generateContent" in methods:
            out.update(temperature=1, topP=0.95, topK=64, maxTemperature=2, thinking=thinking)
        return out

    def _list(self, call: Call) -> Reply:
        try:
            size = int(call.query.get("pageSize", "50"))
            offset = int(call.query.get("pageToken") or "0")
        except ValueError:
            return self._bad("Invalid value for pageSize or pageToken.")
        size = min(max(size, 1), 1000)
        page = MODELS[offset : offset + size]
        payload: dict[str, Any] = {"models": [self._model(row) for row in page]}
        if offset + size < len(MODELS):
            payload["nextPageToken"] = str(offset + size)
        return self._reply(200, payload)

    def _get(self, model_id: str) -> Reply:
        for row in MODELS:
            if row[0] == model_id:
                return self._reply(200, self._model(row))
        return self.error(404, f"models/{model_id} is not found for API version {_API_VERSION}")

    # ------------------------------------------------------------------ validation

    def _request(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """The request with camelCase keys, checked (400 on the first problem)."""
        request = _fields(body, _REQUEST_FIELDS, "")
        contents = request.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _InvalidError("* GenerateContentRequest.contents: contents is not specified")
        request["contents"] = [
            self._content(item, f"contents[{i}]") for i, item in enumerate(contents)
        ]
        system = request.get("systemInstruction")
        if system is not None:
            request["systemInstruction"] = self._content(system, "system_instruction", role=False)
        self._check_turns(request["contents"], model)
        names = self._check_tools(request)
        config = _fields(request.get("generationConfig") or {}, _CONFIG_FIELDS, "generation_config")
        request["generationConfig"] = config
        self._check_config(config, model, has_tools=bool(names))
        return request

    def _content(self, item: Any, where: str, *, role: bool = True) -> dict[str, Any]:
        content = _fields(item, frozenset({"role", "parts"}), where)
        who = content.get("role")
        if role and who not in (None, "user", "model"):
            raise _InvalidError("Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _InvalidError(
                f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            )
        content["parts"] = [self._part(p, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
        content.setdefault("role", "user")
        return content

    def _part(self, raw: Any, where: str) -> dict[str, Any]:
        part = _fields(raw, _PART_FIELDS, where)
        data = [k for k in part if k in _PART_DATA]
        if len(data) != 1:
            raise _InvalidError(
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
                "one initialized field"
            )
        kind = data[0]
        if kind == "text" and not isinstance(part["text"], str):
            raise _InvalidError(f"Invalid value at '{where}.text' (TYPE_STRING)")
        if kind == "inlineData":
            inline = _fields(
                part["inlineData"],
                frozenset({"mimeType", "data", "displayName"}),
                f"{where}.inline_data",
            )
            if not inline.get("mimeType"):
                raise _InvalidError(
                    f"* GenerateContentRequest.{where}.inline_data.mime_type: required field"
                )
            if _bytes(inline.get("data", "")) is None:
                raise _InvalidError(
                    f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), "
                    "Base64 decoding failed"
                )
            part["inlineData"] = inline
        elif kind == "fileData":
            data_ = _fields(
                part["fileData"],
                frozenset({"mimeType", "fileUri", "displayName"}),
                f"{where}.file_data",
            )
            if not data_.get("fileUri"):
                raise _InvalidError(
                    f"* GenerateContentRequest.{where}.file_data.file_uri: required field"
                )
            part["fileData"] = data_
        elif kind == "functionCall":
            call = _fields(
                part["functionCall"], frozenset({"id", "name", "args"}), f"{where}.function_call"
            )
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise _InvalidError(
                    f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty."
                )
            if "args" in call and not isinstance(call["args"], dict):
                raise _InvalidError(
                    f"Invalid value at '{where}.function_call.args' "
                    "(type.googleapis.com/google.protobuf.Struct)"
                )
            part["functionCall"] = call
        elif kind == "functionResponse":
            response = _fields(
                part["functionResponse"],
                frozenset({"id", "name", "response", "parts", "willContinue", "scheduling"}),
                f"{where}.function_response",
            )
            if not isinstance(response.get("name"), str) or not response["name"]:
                raise _InvalidError(
                    f"* GenerateContentRequest.{where}.function_response.name: "
                    "Name cannot be empty."
                )
            if not isinstance(response.get("response"), dict):
                raise _InvalidError(
                    f"Invalid value at '{where}.function_response.response' "
                    "(type.googleapis.com/google.protobuf.Struct)"
                )
            part["functionResponse"] = response
        return part

    def _check_turns(self, contents: list[dict[str, Any]], model: str) -> None:
        previous: dict[str, Any] | None = None
        for content in contents:
            calls = [p for p in content["parts"] if "functionCall" in p]
            responses = [p for p in content["parts"] if "functionResponse" in p]
            if (
                calls
                and content["role"] == "model"
                and previous is not None
                and previous["role"] == "model"
            ):
                raise _InvalidError(
                    "Please ensure that function call turn comes immediately after a user turn or "
                    "after a function response turn."
                )
            asked = [p for p in (previous or {}).get("parts", []) if "functionCall" in p]
            if (
                previous is not None
                and previous["role"] == "model"
                and asked
                and content["role"] == "user"
            ) and len(responses) != len(asked):
                raise _InvalidError(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
            previous = content
        if model.startswith("gemini-3"):
            self._check_signatures(contents)

    @staticmethod
    def _check_signatures(contents: list[dict[str, Any]]) -> None:
        start = 0
        for i, content in enumerate(contents):
            if content["role"] == "user" and any(
                "functionResponse" not in p for p in content["parts"]
            ):
                start = i + 1
        for content in contents[start:]:
            if content["role"] != "model":
                continue
            position = 0
            for part in content["parts"]:
                if "functionCall" not in part:
                    position += 1
                    continue
                call = part["functionCall"]
                signature = part.get("thoughtSignature")
                if not signature:
                    raise _InvalidError(
                        "Function call is missing a thought_signature in functionCall parts. This "
                        "is required for tools to work correctly, and missing thought_signature "
                        "may lead to degraded model performance. Additional data, function call "
                        f"`default_api:{call['name']}` , position {position + 1}. Please refer to "
                        "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                    )
                if signature not in _DUMMY_SIGNATURES and _bytes(signature) != _bytes(
                    _signature(call["name"], call.get("args") or {})
                ):
                    raise _InvalidError("Corrupted thought signature.")
                break  # only the first call of a step carries a signature

    def _check_tools(self, request: dict[str, Any]) -> list[str]:
        tools = request.get("tools") or []
        if not isinstance(tools, list):
            raise _InvalidError("Invalid JSON payload received. Expected an array at 'tools'.")
        declarations: dict[str, dict[str, Any]] = {}
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _InvalidError(
                    f"Invalid JSON payload received. Expected an object at 'tools[{i}]'."
                )
            for key, value in tool.items():
                if _camel(key) != "functionDeclarations":
                    continue  # googleSearch, codeExecution, urlContext...: accepted, never used
                for j, raw in enumerate(value if isinstance(value, list) else []):
                    where = f"tools[{i}].function_declarations[{j}]"
                    declaration = _fields(raw, _DECLARATION_FIELDS, where)
                    name = declaration.get("name")
                    if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
                        raise _InvalidError(
                            f"* GenerateContentRequest.{where}.name: Invalid function name. Must "
                            "start with a letter or an underscore. Must be a-z, A-Z, 0-9, or "
                            "contain underscores, dots, colons and dashes, with a maximum length "
                            "of 64."
                        )
                    if "parameters" in declaration and "parametersJsonSchema" in declaration:
                        raise _InvalidError(
                            f"* GenerateContentRequest.{where}: parameters and "
                            "parameters_json_schema cannot both be set"
                        )
                    if "parameters" in declaration:
                        declaration["parameters"] = _check_schema(
                            declaration["parameters"], f"{where}.parameters"
                        )
                    elif not isinstance(declaration.get("parametersJsonSchema", {}), dict):
                        raise _InvalidError(f"Invalid value at '{where}.parameters_json_schema'")
                    declarations[name] = declaration
        request["_declarations"] = declarations
        raw_config = request.get("toolConfig")
        if raw_config is not None:
            config = _fields(
                raw_config, frozenset({"functionCallingConfig", "retrievalConfig"}), "tool_config"
            )
            calling = _fields(
                config.get("functionCallingConfig") or {},
                frozenset({"mode", "allowedFunctionNames", "streamFunctionCallArguments"}),
                "tool_config.function_calling_config",
            )
            mode = calling.get("mode", "AUTO")
            if mode not in _MODES:
                raise _InvalidError(
                    "Invalid value at 'tool_config.function_calling_config.mode' "
                    f"(type.googleapis.com/google.ai.generativelanguage.{_API_VERSION}."
                    f'FunctionCallingConfig.Mode), "{mode}"'
                )
            allowed = calling.get("allowedFunctionNames")
            if allowed:
                if mode not in ("ANY", "VALIDATED"):
                    raise _InvalidError(
                        "* GenerateContentRequest.tool_config.function_calling_config."
                        "allowed_function_names: allowed_function_names is only allowed when "
                        "mode is ANY."
                    )
                for k, name in enumerate(allowed):
                    if name not in declarations:
                        raise _InvalidError(
                            "* GenerateContentRequest.tool_config.function_calling_config."
                            f"allowed_function_names[{k}]: function name {name!r} is not declared"
                        )
            request["_calling"] = {"mode": mode, "allowed": list(allowed or [])}
        return list(declarations)

    def _check_config(self, config: dict[str, Any], model: str, *, has_tools: bool) -> None:
        where = "* GenerateContentRequest.generation_config"
        if config.get("thinkingConfig") is not None:
            config["thinkingConfig"] = _fields(
                config["thinkingConfig"],
                frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"}),
                "generation_config.thinking_config",
            )
        temperature = config.get("temperature")
        if temperature is not None and not (
            isinstance(temperature, int | float) and 0 <= temperature <= 2
        ):
            raise _InvalidError(f"{where}.temperature: temperature must be in the range [0.0, 2.0]")
        top_p = config.get("topP")
        if top_p is not None and not (isinstance(top_p, int | float) and 0 <= top_p <= 1):
            raise _InvalidError(f"{where}.top_p: top_p must be in the range [0.0, 1.0]")
        limit = config.get("maxOutputTokens")
        if limit is not None and not (_is_int(limit) and limit > 0):
            raise _InvalidError(f"{where}.max_output_tokens: must be a positive integer")
        stops = config.get("stopSequences")
        if stops is not None:
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
                raise _InvalidError(
                    "Invalid value at 'generation_config.stop_sequences' (TYPE_STRING)"
                )
            if len(stops) > _MAX_STOPS:
                raise _InvalidError(
                    f"{where}.stop_sequences: the number of stop_sequences must not exceed "
                    f"{_MAX_STOPS}"
                )
        count = config.get("candidateCount")
        if count is not None and not (_is_int(count) and 1 <= count <= 8):
            raise _InvalidError(f"{where}.candidate_count: must be in the range [1, 8]")
        mime = config.get("responseMimeType")
        if mime is not None and mime not in _MIME_TYPES:
            raise _InvalidError(
                f"{where}.response_mime_type: allowed mimetypes are `text/plain`, "
                "`application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
            )
        if "responseSchema" in config and "responseJsonSchema" in config:
            raise _InvalidError(
                f"{where}: response_schema and response_json_schema cannot both be set"
            )
        if ("responseSchema" in config or "responseJsonSchema" in config) and mime not in (
            "application/json",
            "text/x.enum",
        ):
            raise _InvalidError(
                f"{where}.response_mime_type: response_mime_type must be application/json or "
                "text/x.enum when a response schema is set"
            )
        if "responseSchema" in config:
            config["responseSchema"] = _check_schema(
                config["responseSchema"], "generation_config.response_schema"
            )
        elif "responseJsonSchema" in config and not isinstance(
            config["responseJsonSchema"], dict | bool
        ):
            raise _InvalidError("Invalid value at 'generation_config.response_json_schema'")
        if has_tools and mime == "application/json" and not model.startswith("gemini-3"):
            raise _InvalidError(
                "Function calling with a response mime type: 'application/json' is unsupported"
            )
        modalities = [str(m).upper() for m in config.get("responseModalities") or []]
        if "IMAGE" in modalities and "-image" not in model:
            raise _InvalidError("Model does not support the requested response modalities: image")

    # ------------------------------------------------------------------ prompts

    def _prompt(self, request: dict[str, Any]) -> _Prompt:
        text_tokens = images = 0
        system = request.get("systemInstruction")
        if isinstance(system, dict):
            for part in system.get("parts") or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    text_tokens += c.count_tokens(part["text"])
        user_text, user_images, results = "", 0, []
        contents = request.get("contents") or []
        for content in contents:
            text_tokens += _OVERHEAD
            for part in content.get("parts") or []:
                text_tokens += _part_tokens(part)
                if "inlineData" in part or "fileData" in part:
                    images += 1
        for content in reversed(contents):
            parts = content.get("parts") or []
            if content.get("role", "user") != "user":
                continue
            texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
            pictures = sum(1 for p in parts if "inlineData" in p or "fileData" in p)
            if texts or pictures:
                user_text, user_images = " ".join(texts), pictures
                break
        last = contents[-1] if contents else {}
        if last.get("role", "user") == "user":
            results = [
                _result_text(p["functionResponse"])
                for p in last.get("parts") or []
                if "functionResponse" in p
            ]
        return _Prompt(
            tokens=text_tokens + IMAGE_TOKENS * images,
            text_tokens=text_tokens,
            images=images,
            user_text=user_text,
            user_images=user_images,
            results=results,
        )

    # ------------------------------------------------------------------ generateContent

    def _count(self, call: Call, model: str, method: str) -> Reply:
        body: dict[str, Any] = call.body
        inner = body.get("generateContentRequest")
        request = self._request(
            inner if isinstance(inner, dict) else {"contents": body.get("contents")}, model
        )
        prompt = self._prompt(request)
        return self._reply(
            200, {"totalTokens": prompt.tokens, "promptTokensDetails": _modalities(prompt)}
        )

    def _generate(self, call: Call, model: str, method: str) -> Reply:
        request = self._request(call.body, model)
        prompt = self._prompt(request)
        if prompt.tokens > self._window(model):
            return self.context_length_error(call, prompt.tokens)
        config: dict[str, Any] = request["generationConfig"]
        head = {
            "modelVersion": model,
            "responseId": c.base62(c.digest(call.raw, str(call.seq), "gemini"), 23),
        }
        usage = _usage(prompt, 0, 0, request)
        stream = method == "streamGenerateContent"
        if _BLOCK_PROMPT in prompt.user_text:
            blocked = {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _ratings("HIGH")},
                "usageMetadata": usage,
                **head,
            }
            return self._answer(call, [blocked], stream)
        count = config.get("candidateCount") or 1
        if _BLOCK_OUTPUT in prompt.user_text:
            candidates = [
                {"finishReason": "SAFETY", "index": k, "safetyRatings": _ratings("HIGH")}
                for k in range(count)
            ]
            return self._answer(
                call, [{"candidates": candidates, "usageMetadata": usage, **head}], stream
            )

        raw_thinking = config.get("thinkingConfig")
        thinking: dict[str, Any] = raw_thinking if isinstance(raw_thinking, dict) else {}
        include = thinking.get("includeThoughts") is True
        budget = thinking.get("thinkingBudget")
        thinks = (
            include
            or (isinstance(budget, int) and not isinstance(budget, bool) and budget > 0)
            or bool(thinking.get("thinkingLevel"))
        )
        thought_tokens = c.output_tokens("Thinking about: " + prompt.user_text) if thinks else []
        steps: list[_Step] = []
        if include:
            steps.extend(_Step([{"text": t, "thought": True}], 0) for t in thought_tokens)
        finish = "STOP"
        calls = self._calls(request, prompt, model)
        modalities = [str(m).upper() for m in config.get("responseModalities") or []]
        finish_message: str | None = None
        if calls:
            steps.append(
                _Step(
                    calls,
                    sum(len(c.output_tokens(_dumps(p["functionCall"]["args"]))) for p in calls),
                )
            )
            steps.append(_Step([{"text": ""}], 0))
            finish_message = "Model generated function call(s)."
        elif "IMAGE" in modalities:
            image = c.png(f"{model}\0{prompt.user_text}")
            inline = {"mimeType": "image/png", "data": base64.b64encode(image).decode("ascii")}
            steps.append(_Step([{"inlineData": inline}], IMAGE_OUTPUT_TOKENS))
        else:
            limit = config.get("maxOutputTokens")
            plan = c.plan_text(
                self._text(request, prompt),
                limit if _is_int(limit) else None,
                config.get("stopSequences") or [],
            )
            finish = "MAX_TOKENS" if plan.reason == "length" else "STOP"
            steps.extend(_Step([{"text": t}], 1) for t in plan.tokens)
            if not plan.tokens:
                steps.append(_Step([{"text": ""}], 0))
        thoughts = len(thought_tokens)
        if stream:
            chunks = []
            emitted = 0
            for i, step in enumerate(steps):
                emitted += step.tokens
                last = i == len(steps) - 1
                candidates = []
                for k in range(count):
                    candidate: dict[str, Any] = {"content": {"parts": step.parts, "role": "model"}}
                    if last:
                        candidate["finishReason"] = finish
                    candidate["index"] = k
                    candidates.append(candidate)
                chunks.append(
                    {
                        "candidates": candidates,
                        "usageMetadata": _usage(prompt, emitted * count, thoughts, request),
                        **head,
                    }
                )
            return self._answer(call, chunks, stream)
        parts = _merged([p for step in steps for p in step.parts])
        total = sum(step.tokens for step in steps)
        candidates = []
        for k in range(count):
            candidate = {
                "content": {"parts": parts, "role": "model"},
                "finishReason": finish,
                "index": k,
            }
            if finish_message:
                candidate["finishMessage"] = finish_message
            candidates.append(candidate)
        payload = {
            "candidates": candidates,
            "usageMetadata": _usage(prompt, total * count, thoughts, request),
            **head,
        }
        return self._reply(200, payload)

    def _answer(self, call: Call, chunks: list[dict[str, Any]], stream: bool) -> Reply:
        """One body, or the chunks as SSE (``alt=sse``) or as a JSON array."""
        if not stream:
            return self._reply(200, chunks[0])
        if call.query.get("alt") == "sse":
            return Reply.stream(
                [GoogleSSEEvent(_dumps(chunk)) for chunk in chunks], _RESPONSE_HEADERS
            )
        body = ("[" + ",\r\n".join(_dumps(chunk) for chunk in chunks) + "]").encode()
        return Reply(
            200, {**_RESPONSE_HEADERS, "Content-Type": "application/json; charset=UTF-8"}, body
        )

    def _calls(self, request: dict[str, Any], prompt: _Prompt, model: str) -> list[dict[str, Any]]:
        declarations: dict[str, dict[str, Any]] = request.get("_declarations") or {}
        calling = request.get("_calling") or {"mode": "AUTO", "allowed": []}
        if not declarations or calling["mode"] == "NONE" or prompt.results:
            return []
        names = list(declarations)
        forced: str | None = None
        if calling["mode"] in ("ANY", "VALIDATED") and calling["allowed"]:
            names = [n for n in names if n in calling["allowed"]]
            forced = names[0] if len(names) == 1 else None
        chosen = c.select_tools(names, forced, prompt.user_text, parallel=True)
        parts: list[dict[str, Any]] = []
        for name in chosen:
            declaration = declarations[name]
            if "parameters" in declaration:
                args = c.schema_instance(_json_schema(declaration["parameters"]))
            elif isinstance(declaration.get("parametersJsonSchema"), dict):
                args = c.schema_instance(declaration["parametersJsonSchema"])
            else:
                args = {}
            part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
            if model.startswith("gemini-3") and not parts:
                part["thoughtSignature"] = _signature(name, args)
            parts.append(part)
        return parts

    @staticmethod
    def _text(request: dict[str, Any], prompt: _Prompt) -> str:
        config = request["generationConfig"]
        mime = config.get("responseMimeType")
        if mime == "text/x.enum":
            schema = config.get("responseSchema") or config.get("responseJsonSchema") or {}
            values = schema.get("enum") if isinstance(schema, dict) else None
            return str(values[0]) if values else ""
        if mime == "application/json":
            if "responseSchema" in config:
                return _dumps(c.schema_instance(_json_schema(config["responseSchema"])))
            if "responseJsonSchema" in config:
                return _dumps(c.schema_instance(config["responseJsonSchema"]))
            return json.dumps({"echo": prompt.user_text})
        if prompt.results:
            return c.tool_results_answer(prompt.results)
        return c.user_answer(prompt.user_text, prompt.user_images)

    # ------------------------------------------------------------------ embeddings

    def _embed_one(self, raw: Any, model: str, where: str) -> list[float]:
        request = _fields(raw, _EMBED_FIELDS, where)
        content = self._content(
            request.get("content"),
            f"{where}content" if not where else f"{where}.content",
            role=False,
        )
        texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
        task = request.get("taskType")
        if task is not None and task not in _TASK_TYPES:
            raise _InvalidError(
                f"Invalid value at '{where + '.' if where else ''}task_type' "
                f"(type.googleapis.com/google.ai.generativelanguage.{_API_VERSION}.TaskType), "
                f'"{task}"'
            )
        native = _EMBED_DIMS.get(model, 768)
        dims = request.get("outputDimensionality")
        if dims is not None:
            if not _is_int(dims) or not 1 <= dims <= native:
                raise _InvalidError(
                    f"* EmbedContentRequest.output_dimensionality: must be between 1 and {native} "
                    f"for models/{model}"
                )
        else:
            dims = native
        return c.embedding(model, " ".join(texts), dims)

    def _embed(self, call: Call, model: str, method: str) -> Reply:
        vector = self._embed_one(call.body, model, "")
        return self._reply(200, {"embedding": {"values": vector}})

    def _batch_embed(self, call: Call, model: str, method: str) -> Reply:
        body = _fields(call.body, frozenset({"requests"}), "")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _InvalidError("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(requests) > _MAX_BATCH:
            raise _InvalidError(
                f"* BatchEmbedContentsRequest.requests: at most {_MAX_BATCH} requests can be "
                "in one batch"
            )
        vectors = []
        for i, request in enumerate(requests):
            named = request.get("model") if isinstance(request, dict) else None
            if named != f"models/{model}":
                raise _InvalidError(
                    f"* BatchEmbedContentsRequest.requests[{i}].model: Model in request "
                    f"({named}) does not match the model in the URL (models/{model})."
                )
            vectors.append({"values": self._embed_one(request, model, f"requests[{i}]")})
        return self._reply(200, {"embeddings": vectors})

    # ------------------------------------------------------------------ images

    def _predict(self, call: Call, model: str, method: str) -> Reply:
        body = _fields(call.body, frozenset({"instances", "parameters"}), "")
        instances = body.get("instances")
        if (
            not isinstance(instances, list)
            or len(instances) != 1
            or not isinstance(instances[0], dict)
        ):
            raise _InvalidError("Exactly one instance is required.")
        prompt = instances[0].get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _InvalidError("The prompt is empty.")
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise _InvalidError(
                "Invalid JSON payload received. Expected an object at 'parameters'."
            )
        count = parameters.get("sampleCount", 4)
        if not _is_int(count) or not 1 <= count <= 4:
            raise _InvalidError("sampleCount must be in the range [1, 4].")
        ratio = parameters.get("aspectRatio", "1:1")
        if ratio not in _ASPECT_RATIOS:
            raise _InvalidError(
                f"Unsupported aspect ratio: {ratio}. Supported: {', '.join(_ASPECT_RATIOS)}."
            )
        if _BLOCK_PROMPT in prompt:
            if parameters.get("includeRaiReason"):
                reason = (
                    "Your current safety filter threshold filtered out the generated image. "
                    "Try rephrasing the prompt."
                )
                return self._reply(200, {"predictions": [{"raiFilteredReason": reason}]})
            return self._reply(200, {})
        predictions = []
        for i in range(count):
            image = c.png(f"{model}\0{prompt}\0{i}")
            predictions.append(
                {
                    "mimeType": "image/png",
                    "bytesBase64Encoded": base64.b64encode(image).decode("ascii"),
                }
            )
        return self._reply(200, {"predictions": predictions})


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class _Step:
    """One streamed chunk's parts, and the candidate tokens they add."""

    parts: list[dict[str, Any]]
    tokens: int


def _supports(model: str, method: str) -> bool:
    if "embedding" in model:
        return method in ("embedContent", "batchEmbedContents", "countTokens")
    if model.startswith("imagen"):
        return method == "predict"
    return method in ("generateContent", "streamGenerateContent", "countTokens")


def _retry_delay(fault: Fault) -> str | None:
    """``retryDelay`` for a fault: its seconds, or its milliseconds, as a Duration."""
    if fault.retry_after_ms is not None:
        return f"{fault.retry_after_ms / 1000:g}s"
    if fault.retry_after is not None:
        try:
            seconds = float(fault.retry_after)
        except ValueError:
            return None  # an HTTP date: sent as Retry-After instead
        return f"{seconds:g}s"
    return None


def _part_tokens(part: dict[str, Any]) -> int:
    if isinstance(part.get("text"), str):
        return c.count_tokens(part["text"])
    if "functionCall" in part:
        return c.count_tokens(_dumps(part["functionCall"].get("args") or {}))
    if "functionResponse" in part:
        return c.count_tokens(_dumps(part["functionResponse"].get("response") or {}))
    return 0


def _result_text(response: dict[str, Any]) -> str:
    value = response.get("response") or {}
    for key in ("output", "result", "error"):
        if key in value:
            item = value[key]
            return item if isinstance(item, str) else _dumps(item)
    return _dumps(value)


def _modalities(prompt: _Prompt) -> list[dict[str, Any]]:
    details = [{"modality": "TEXT", "tokenCount": prompt.text_tokens}]
    if prompt.images:
        details.append({"modality": "IMAGE", "tokenCount": IMAGE_TOKENS * prompt.images})
    return details


def _usage(
    prompt: _Prompt, candidates: int, thoughts: int, request: dict[str, Any]
) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt.tokens}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt.tokens + candidates + thoughts
    if request.get("cachedContent"):
        cached = (prompt.tokens // 64) * 64
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    usage["promptTokensDetails"] = _modalities(prompt)
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _ratings(level: str) -> list[dict[str, Any]]:
    categories = (
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
    )
    out: list[dict[str, Any]] = []
    for category in categories:
        rating: dict[str, Any] = {"category": category, "probability": "NEGLIGIBLE"}
        if category == "HARM_CATEGORY_DANGEROUS_CONTENT":
            rating = {"category": category, "probability": level, "blocked": True}
        out.append(rating)
    return out


def _merged(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed parts as one answer: text of the same kind joined, empty texts dropped."""
    out: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text")
        if isinstance(text, str):
            if not text:
                continue
            last = out[-1] if out else None
            if (
                last is not None
                and isinstance(last.get("text"), str)
                and last.get("thought") == part.get("thought")
            ):
                last["text"] += text
                continue
        out.append(dict(part))
    return out


def _json_schema(schema: Any) -> Any:
    """A Gemini ``Schema`` as JSON Schema (lower-case types), to generate values from."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [_json_schema(sub) for sub in value]
        elif key in ("nullable", "propertyOrdering", "format"):
            continue
        else:
            out[key] = value
    return out


def _check_schema(raw: Any, where: str) -> dict[str, Any]:
    """A Gemini ``Schema`` with camelCase keys, checked as the API checks it."""
    schema = _fields(raw, _SCHEMA_FIELDS, where)
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES:
            raise _InvalidError(
                f"Invalid value at '{where}.type' "
                f'(type.googleapis.com/google.ai.generativelanguage.{_API_VERSION}.Type), "{kind}"'
            )
        kind = kind.upper()
    fmt = schema.get("format")
    formats = _SCHEMA_FORMATS.get(kind or "")
    if fmt is not None and formats is not None and fmt not in formats:
        allowed = " and ".join(f"'{f}'" for f in formats)
        raise _InvalidError(
            f"* GenerateContentRequest.{where}.format: only {allowed} are supported for {kind} type"
        )
    if "enum" in schema and kind not in (None, "STRING"):
        raise _InvalidError(f"* GenerateContentRequest.{where}.enum: only allowed for STRING type")
    properties = schema.get("properties")
    if kind == "OBJECT" and not properties and not schema.get("anyOf"):
        raise _InvalidError(
            f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
        )
    if isinstance(properties, dict):
        schema["properties"] = {
            name: _check_schema(sub, f"{where}.properties[{name}].value")
            for name, sub in properties.items()
        }
    for k, name in enumerate(schema.get("required") or []):
        if not isinstance(properties, dict) or name not in properties:
            raise _InvalidError(
                f"* GenerateContentRequest.{where}.required[{k}]: property is not defined"
            )
    if kind == "ARRAY" and "items" not in schema:
        raise _InvalidError(f"* GenerateContentRequest.{where}.items: missing field.")
    if "items" in schema:
        schema["items"] = _check_schema(schema["items"], f"{where}.items")
    if "anyOf" in schema:
        branches = schema["anyOf"]
        if not isinstance(branches, list):
            raise _InvalidError(f"Invalid value at '{where}.any_of'")
        schema["anyOf"] = [
            _check_schema(sub, f"{where}.any_of[{k}]") for k, sub in enumerate(branches)
        ]
    return schema
