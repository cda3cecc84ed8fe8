"""AWS Bedrock runtime wire format: Converse, ConverseStream, InvokeModel (embeddings).

Routes (``Emulator.bedrock_endpoint`` is the endpoint clients use):

``POST /model/{modelId}/converse``
    A Converse answer (``output.message``, ``stopReason``, ``usage``, ``metrics``).
``POST /model/{modelId}/converse-stream``
    The same answer as AWS event-stream messages (``application/vnd.amazon.eventstream``):
    ``messageStart``, per content block ``contentBlockStart`` (tool use only), one
    ``contentBlockDelta`` per output token (or 8-character piece of tool input),
    ``contentBlockStop``, then ``messageStop`` and ``metadata``. Each payload carries the
    random-looking padding field ``p`` the real service adds. A ``malformed`` fault
    damages one message's payload without fixing its CRC; a ``stream-error`` fault sends
    an exception message (default ``modelStreamErrorException``).
``POST /model/{modelId}/invoke``
    Embeddings: Amazon Titan text embeddings (``inputText`` -> ``embedding``,
    ``inputTextTokenCount``; v2 takes ``dimensions`` 256/512/1024, default 1024; v1 is
    1536 and refuses ``dimensions``) and Cohere Embed (``texts`` (1-96),
    ``input_type`` required -> ``embeddings``; by type with ``embedding_types``;
    ``output_dimension`` for v4). The input tokens are in
    ``X-Amzn-Bedrock-Input-Token-Count``. Images: Nova Canvas and Titan Image Generator
    ``TEXT_IMAGE`` (1-5 images, sides multiples of 16 in 320-4096) answer
    ``{"images": [<base64 PNG>]}``, each the 16x16 checkerboard PNG of
    :mod:`aiport.testing` seeded from model, prompt and index. Other models are a
    ``ValidationException``.

Content follows the rules of :mod:`aiport.testing` (answers, tokens, stop sequences,
tools, schema-driven JSON, embeddings), with Converse's shapes: the answer is to the
last user message's text blocks; after ``toolResult`` blocks it is ``"Tool results:
..."``. Tools (``toolConfig``) are called when offered and the last user message holds
no tool result: the ``toolChoice`` ``tool`` if named, else every tool named in the text,
else the first; with ``any`` after tool results, the last tool offered (aiport's JSON
output tool). ``outputConfig.textFormat`` with a JSON schema answers an instance of it.
``additionalModelRequestFields.thinking`` (``type`` ``enabled``) or
``reasoning_config`` adds a first ``reasoningContent`` block ``"Thinking about: <text>"``.
A ``cachePoint`` block makes ``cacheReadInputTokens`` the prompt tokens before the last
one (``inputTokens`` the rest; ``totalTokens`` counts both).

Auth: a ``SigV4`` ``Authorization`` header (``AWS4-HMAC-SHA256 Credential=...``) or a
Bedrock API key (``Authorization: Bearer``). With ``api_keys`` set, the access key id
must be one of them (else ``UnrecognizedClientException``); an entry
``"ACCESS_KEY_ID:SECRET"`` also makes the emulator recompute the signature (its own
SigV4 implementation, not botocore's) over the method, the path exactly as it was sent
(as AWS does: ``%3A`` and ``:`` sign differently), the signed headers and the body, and
refuse a mismatch (``InvalidSignatureException``) or an ``X-Amz-Date`` more than 5
minutes off; ``"ACCESS_KEY_ID:SECRET:TOKEN"`` also requires that
``X-Amz-Security-Token`` (``ExpiredTokenException`` otherwise). Errors carry
``x-amzn-ErrorType`` and ``{"message": ...}`` as the real service sends them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from zlib import crc32

from . import _content as c
from ._faults import Call, Fault, Reply

__all__ = ["AwsEvent", "BedrockRoutes", "encode_message"]

_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_EVENT_STREAM = "application/vnd.amazon.eventstream"
_SIGV4 = "AWS4-HMAC-SHA256"
_MAX_SKEW = datetime.timedelta(minutes=5)
_ROLES = ("user", "assistant")
_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")
_BLOCK_KINDS = frozenset(
    {
        "text",
        "image",
        "document",
        "video",
        "audio",
        "toolUse",
        "toolResult",
        "guardContent",
        "cachePoint",
        "reasoningContent",
        "citationsContent",
        "searchResult",
    }
)
_COHERE_BATCH = 96
_COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")

#: Per status: the error type and message Bedrock sends.
STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationException", "The provided request is not valid."),
    401: ("UnrecognizedClientException", "The security token included in the request is invalid."),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: ("ResourceNotFoundException", "The requested resource could not be found."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model returned an error while processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
#: The message of error types a fault may name.
_TYPE_MESSAGES: dict[str, str] = {
    "ModelNotReadyException": "The model is not ready to serve inference requests.",
    "ServiceQuotaExceededException": "Your request exceeds the service quota for your account.",
    "ExpiredTokenException": "The security token included in the request is expired",
    "InvalidSignatureException": (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service "
        "documentation for details."
    ),
    **dict(STATUS_ERRORS.values()),
}
#: In-stream exception name -> (HTTP status, type) of the same error on a plain answer.
_STREAM_EXCEPTIONS: dict[str, tuple[int, str]] = {
    "internalServerException": (500, "InternalServerException"),
    "modelStreamErrorException": (500, "InternalServerException"),
    "validationException": (400, "ValidationException"),
    "throttlingException": (429, "ThrottlingException"),
    "serviceUnavailableException": (503, "ServiceUnavailableException"),
}
_EMBED_DIMENSIONS = {
    "titan-embed-text-v2": 1024,
    "titan-embed-text-v1": 1536,
    "titan-embed-g1-text": 1536,
    "cohere.embed-english-light": 384,
    "cohere.embed-multilingual-light": 384,
    "cohere.embed-english-v3": 1024,
    "cohere.embed-multilingual-v3": 1024,
    "cohere.embed-v4": 1536,
}


# --------------------------------------------------------------------------- event stream


def encode_message(headers: Iterable[tuple[str, str]], payload: bytes) -> bytes:
    """One AWS event-stream message with string headers (type 7) and ``payload``."""
    encoded = bytearray()
    for name, value in headers:
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", 7, len(raw_value)) + raw_value
    total = 16 + len(encoded) + len(payload)
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", crc32(prelude))
    body = head + bytes(encoded) + payload
    return body + struct.pack(">I", crc32(body))


@dataclass(frozen=True, slots=True)
class AwsEvent:
    """One event-stream message of a ConverseStream answer.

    ``kind`` is the ``:event-type`` of an event, or the ``:exception-type`` of an
    exception (``message_type="exception"``).
    """

    kind: str
    payload: dict[str, Any]
    message_type: str = "event"
    padding: str = field(default="", compare=False)

    def _payload(self) -> bytes:
        data = dict(self.payload)
        if self.padding:
            data["p"] = self.padding
        return json.dumps(data, separators=(",", ":")).encode()

    def render(self) -> bytes:
        type_header = ":event-type" if self.message_type == "event" else ":exception-type"
        headers = [
            (type_header, self.kind),
            (":content-type", "application/json"),
            (":message-type", self.message_type),
        ]
        return encode_message(headers, self._payload())

    def broken(self) -> bytes:
        """The message with one payload byte changed and its CRC left as it was."""
        raw = bytearray(self.render())
        raw[-5] ^= 0x5A  # the payload's last byte, just before the message CRC
        return bytes(raw)


def _padding(seed: str) -> str:
    # The real service pads events with random letters so their size does not reveal
    # the tokens; here the length is derived from the event, so replies are repeatable.
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    size = 1 + c.digest(seed)[0] % 40
    return letters[:size]


# --------------------------------------------------------------------------- SigV4


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(
    *,
    secret: str,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signed_headers: list[str],
    body: bytes,
    amz_date: str,
    scope: str,
) -> str:
    """The SigV4 signature of a request (the AWS algorithm, written from its spec).

    ``path`` is the URI path as sent (percent-encoded); for services other than S3 it
    is encoded once more in the canonical request.
    """
    canonical_headers = "".join(
        f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers
    )
    canonical = "\n".join(
        [
            method.upper(),
            quote(path, safe="/~"),
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "\n".join([_SIGV4, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, terminal = scope.split("/")
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, terminal):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _parse_authorization(value: str) -> dict[str, str] | None:
    if not value.startswith(_SIGV4 + " "):
        return None
    fields: dict[str, str] = {}
    for part in value[len(_SIGV4) + 1 :].split(","):
        key, sep, item = part.strip().partition("=")
        if sep:
            fields[key] = item
    return fields


class _InvalidError(Exception):
    """A ValidationException raised by request checks."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- routes


class BedrockRoutes:
    """Answers Bedrock runtime requests (see the module docstring)."""

    def __init__(self, context: Any) -> None:
        self._keys: frozenset[str] | None = context.api_keys
        self._window: Callable[[str], int] = context.window

    # ------------------------------------------------------------------ errors

    @staticmethod
    def request_id(call: Call) -> str:
        return str(uuid.UUID(bytes=c.digest(call.raw, str(call.seq), "bedrock")[:16], version=4))

    def headers(self, call: Call) -> dict[str, str]:
        return {"x-amzn-RequestId": self.request_id(call)}

    def error(
        self,
        call: Call,
        status: int,
        type_: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = {
            **self.headers(call),
            "x-amzn-ErrorType": f"{type_}:{_NAMESPACE}",
            **(headers or {}),
        }
        return Reply.json(status, {"message": message}, hdrs)

    def _invalid(self, call: Call, message: str) -> Reply:
        return self.error(call, 400, "ValidationException", message)

    def status_error(self, call: Call, fault: Fault) -> Reply:
        status = fault.code or 500
        type_, message = STATUS_ERRORS.get(status, STATUS_ERRORS[500 if status >= 500 else 400])
        if fault.error_type is not None:
            type_ = fault.error_type
            message = _TYPE_MESSAGES.get(type_, message)
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        return self.error(call, status, type_, fault.message or message, headers)

    def context_length_error(self, call: Call) -> Reply:
        return self._invalid(call, "Input is too long for requested model.")

    def stream_error_event(self, fault: Fault) -> AwsEvent:
        kind = fault.error_type or "modelStreamErrorException"
        payload: dict[str, Any] = {"message": fault.message or _stream_message(kind)}
        if kind == "modelStreamErrorException":
            payload.update(originalStatusCode=500, originalMessage="Internal model error")
        return AwsEvent(kind, payload, message_type="exception")

    def stream_error_status(self, fault: Fault) -> Fault:
        kind = fault.error_type or "modelStreamErrorException"
        status, type_ = _STREAM_EXCEPTIONS.get(kind, (500, "InternalServerException"))
        return Fault.status(status, error_type=type_, message=fault.message)

    # ------------------------------------------------------------------ auth

    def _auth_problem(self, call: Call) -> Reply | None:
        value = call.headers.get("authorization", "")
        if not value:
            return self.error(
                call, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer":
            if not token.strip() or (self._keys is not None and token.strip() not in self._keys):
                return self.error(
                    call,
                    403,
                    "UnrecognizedClientException",
                    "Authentication failed: Please make sure your API Key is valid.",
                )
            return None
        fields = _parse_authorization(value)
        if fields is None or not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
            return self.error(
                call,
                400,
                "IncompleteSignatureException",
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                "parameters.",
            )
        credential = fields["Credential"].split("/")
        amz_date = call.headers.get("x-amz-date", "")
        if len(credential) != 5 or not amz_date:
            return self.error(
                call,
                400,
                "IncompleteSignatureException",
                "Credential must have exactly 5 slash-delimited elements and the request an "
                "X-Amz-Date header.",
            )
        access_key, date, _region, service, _ = credential
        if service != "bedrock":
            return self.error(
                call,
                403,
                "InvalidSignatureException",
                f"Credential should be scoped to correct service: 'bedrock'. (got '{service}')",
            )
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.UTC
            )
        except ValueError:
            return self.error(
                call, 400, "IncompleteSignatureException", "X-Amz-Date is not a valid date."
            )
        now = datetime.datetime.now(datetime.UTC)
        if abs(now - when) > _MAX_SKEW or not amz_date.startswith(date):
            return self.error(
                call,
                403,
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier than "
                f"{(now - _MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')} "
                f"({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)",
            )
        if self._keys is None:
            return None
        entry = self._key_entry(access_key)
        if entry is None:
            return self.error(
                call,
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        _, _, known = entry.partition(":")
        secret, _, token = known.partition(":")
        if token and call.headers.get("x-amz-security-token") != token:
            return self.error(
                call, 403, "ExpiredTokenException", _TYPE_MESSAGES["ExpiredTokenException"]
            )
        if secret:
            signed = fields["SignedHeaders"].split(";")
            if "host" not in signed:
                return self.error(
                    call, 403, "InvalidSignatureException", "'Host' must be a signed header."
                )
            expected = sigv4_signature(
                secret=secret,
                method=call.method,
                path=call.raw_path or _raw_path(call.path),
                query="",
                headers=dict(call.headers),
                signed_headers=signed,
                body=call.raw,
                amz_date=amz_date,
                scope="/".join(credential[1:]),
            )
            if not hmac.compare_digest(expected, fields["Signature"]):
                return self.error(
                    call,
                    403,
                    "InvalidSignatureException",
                    _TYPE_MESSAGES["InvalidSignatureException"],
                )
        return None

    def _key_entry(self, access_key: str) -> str | None:
        assert self._keys is not None
        for entry in self._keys:
            if entry == access_key or entry.startswith(access_key + ":"):
                return entry
        return None

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        problem = self._auth_problem(call)
        if problem is not None:
            return problem
        model, _, operation = call.path.removeprefix("/model/").rpartition("/")
        handlers = {
            "converse": self._converse,
            "converse-stream": self._converse,
            "invoke": self._invoke,
        }
        handler = handlers.get(operation) if call.method == "POST" and model else None
        if handler is None:
            return self.error(
                call,
                404,
                "UnknownOperationException",
                f"Unknown operation {call.method} {call.path}",
            )
        if not isinstance(call.body, dict):
            return self._invalid(
                call, "Malformed input request, please reformat your input and try again."
            )
        try:
            return handler(call, model, call.body, operation == "converse-stream")
        except _InvalidError as exc:
            return self._invalid(call, exc.message)

    # ------------------------------------------------------------------ converse

    def _validate(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _InvalidError(
                "The messages field is required and must contain at least one message."
            )
        uses_tools = False
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _InvalidError(f"messages.{i}.role must be 'user' or 'assistant'.")
            if i == 0 and message["role"] != "user":
                raise _InvalidError(
                    "A conversation must start with a user message. Try again with a "
                    "conversation that starts with a user message."
                )
            if i and message["role"] == messages[i - 1]["role"]:
                raise _InvalidError(
                    "A conversation must alternate between user and assistant roles. Make sure "
                    "the conversation alternates between user and assistant roles and try again."
                )
            content = message.get("content")
            if not isinstance(content, list) or not content:
                raise _InvalidError(f"messages.{i}.content must be a non-empty list.")
            for j, block in enumerate(content):
                uses_tools |= self._check_block(block, f"messages.{i}.content.{j}")
        for i, block in enumerate(body.get("system") or []):
            if not isinstance(block, dict) or len(block) != 1:
                raise _InvalidError(f"system.{i} must have exactly one member.")
            if "text" in block and not (isinstance(block["text"], str) and block["text"]):
                raise _InvalidError(f"system.{i}.text must be a non-empty string.")
        inference = body.get("inferenceConfig") or {}
        if not isinstance(inference, dict):
            raise _InvalidError("inferenceConfig must be an object.")
        max_tokens = inference.get("maxTokens")
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            raise _InvalidError("The maximum tokens you requested must be at least 1.")
        for name in ("temperature", "topP"):
            value = inference.get(name)
            if value is not None and (not _is_number(value) or not 0 <= value <= 1):
                raise _InvalidError(f"inferenceConfig.{name} must be between 0 and 1.")
        names = self._tool_names(body)
        if uses_tools and names is None:
            raise _InvalidError(
                "The toolConfig field must be defined when using toolUse and toolResult "
                "content blocks."
            )

    @staticmethod
    def _check_block(block: Any, where: str) -> bool:
        """Check one content block; True if it is a tool block."""
        if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _BLOCK_KINDS:
            raise _InvalidError(f"{where} must have exactly one known member.")
        kind, value = next(iter(block.items()))
        if kind == "text" and not (isinstance(value, str) and value.strip()):
            raise _InvalidError(
                f"The text field in the ContentBlock object at {where} is blank. Add text to "
                "the text field, and try again."
            )
        if kind == "image":
            _image_bytes(value, where)
        if kind == "toolUse" and not (
            isinstance(value, dict)
            and isinstance(value.get("toolUseId"), str)
            and isinstance(value.get("name"), str)
            and isinstance(value.get("input"), dict)
        ):
            raise _InvalidError(f"{where}.toolUse needs toolUseId, name and an input object.")
        if kind == "toolResult":
            if not (isinstance(value, dict) and isinstance(value.get("toolUseId"), str)):
                raise _InvalidError(f"{where}.toolResult needs a toolUseId.")
            for k, item in enumerate(value.get("content") or []):
                if not isinstance(item, dict) or len(item) != 1:
                    raise _InvalidError(
                        f"{where}.toolResult.content.{k} must have exactly one member."
                    )
                if "image" in item:
                    _image_bytes(item["image"], f"{where}.toolResult.content.{k}")
        return kind in ("toolUse", "toolResult")

    @staticmethod
    def _tool_names(body: dict[str, Any]) -> list[str] | None:
        config = body.get("toolConfig")
        if config is None:
            return None
        tools = config.get("tools") if isinstance(config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _InvalidError("toolConfig.tools must contain at least one tool.")
        names: list[str] = []
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if spec is None:
                continue  # cachePoint, system tools
            if not isinstance(spec.get("name"), str) or not isinstance(
                (spec.get("inputSchema") or {}).get("json"), dict
            ):
                raise _InvalidError(
                    f"toolConfig.tools.{i}.toolSpec needs a name and inputSchema.json."
                )
            names.append(spec["name"])
        choice = config.get("toolChoice")
        if choice is not None:
            if (
                not isinstance(choice, dict)
                or len(choice) != 1
                or next(iter(choice))
                not in (
                    "auto",
                    "any",
                    "tool",
                )
            ):
                raise _InvalidError("toolConfig.toolChoice must be one of auto, any or tool.")
            forced = (choice.get("tool") or {}).get("name") if "tool" in choice else None
            if "tool" in choice and forced not in names:
                raise _InvalidError(f"The tool {forced} in toolChoice is not in toolConfig.tools.")
        return names

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> tuple[int, int]:
        """(prompt tokens, tokens before the last cachePoint)."""
        total = cached = 0
        for block in body.get("system") or []:
            if "cachePoint" in block:
                cached = total
            total += _block_tokens(block)
        for message in body["messages"]:
            total += c.MESSAGE_OVERHEAD
            for block in message["content"]:
                if "cachePoint" in block:
                    cached = total
                total += _block_tokens(block)
        return total, cached

    def _tool_calls(self, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(name, input) of the tools the model calls, or [] to answer in text."""
        config = body.get("toolConfig")
        if not isinstance(config, dict):
            return []
        schemas = {
            t["toolSpec"]["name"]: t["toolSpec"]["inputSchema"]["json"]
            for t in config.get("tools") or []
            if isinstance(t, dict) and "toolSpec" in t
        }
        if not schemas:
            return []
        choice = config.get("toolChoice") or {"auto": {}}
        last = body["messages"][-1]
        after_results = last["role"] == "user" and any("toolResult" in b for b in last["content"])
        if "tool" in choice:
            names = [choice["tool"]["name"]]
        elif after_results:
            if "any" not in choice:
                return []
            names = [list(schemas)[-1]]
        else:
            text = " ".join(_texts(last["content"])[0])
            names = c.select_tools(list(schemas), None, text, parallel=True)
        return [(name, c.schema_instance(schemas[name])) for name in names]

    def _answer(self, body: dict[str, Any]) -> str:
        output_config = body.get("outputConfig")
        fmt = output_config.get("textFormat") if isinstance(output_config, dict) else None
        structure = fmt.get("structure") if isinstance(fmt, dict) else None
        json_schema = structure.get("jsonSchema") if isinstance(structure, dict) else None
        schema_text = json_schema.get("schema") if isinstance(json_schema, dict) else None
        if isinstance(schema_text, str):
            try:
                schema = json.loads(schema_text)
            except ValueError:
                raise _InvalidError("outputConfig.textFormat schema is not valid JSON.") from None
            return json.dumps(c.schema_instance(schema), separators=(",", ":"))
        last = body["messages"][-1]
        results = [
            " ".join(_texts(b["toolResult"].get("content") or [])[0])
            for b in last["content"]
            if "toolResult" in b
        ]
        if last["role"] == "user" and results:
            return c.tool_results_answer(results)
        for message in reversed(body["messages"]):
            if message["role"] == "user":
                texts, images = _texts(message["content"])
                return c.user_answer(" ".join(texts), images)
        return c.user_answer("", 0)

    def _converse(self, call: Call, model: str, body: dict[str, Any], stream: bool) -> Reply:
        self._validate(body)
        prompt, cached = self._prompt_tokens(body)
        if prompt > self._window(model):
            return self.context_length_error(call)
        inference = body.get("inferenceConfig") or {}
        content: list[dict[str, Any]] = []
        extra = body.get("additionalModelRequestFields")
        thinking = None
        if isinstance(extra, dict):
            thinking = extra.get("thinking") or extra.get("reasoning_config")
        last_user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        reasoning_text = ""
        if isinstance(thinking, dict) and thinking.get("type") == "enabled":
            reasoning_text = "Thinking about: " + " ".join(_texts(last_user["content"])[0])
            signature = base64.b64encode(c.digest(reasoning_text)).decode("ascii")
            content.append(
                {
                    "reasoningContent": {
                        "reasoningText": {"text": reasoning_text, "signature": signature}
                    }
                }
            )
        calls = self._tool_calls(body)
        plan: c.TextPlan | None = None
        if calls:
            stop_reason = "tool_use"
            output = sum(len(c.output_tokens(json.dumps(args))) for _, args in calls)
            for i, (name, args) in enumerate(calls):
                use_id = c.tool_call_id("tooluse_", call.raw, i)
                content.append({"toolUse": {"toolUseId": use_id, "name": name, "input": args}})
        else:
            stops = [s for s in inference.get("stopSequences") or [] if isinstance(s, str)]
            plan = c.plan_text(self._answer(body), inference.get("maxTokens"), stops)
            stop_reason = {"end": "end_turn", "length": "max_tokens", "stop": "stop_sequence"}[
                plan.reason
            ]
            output = len(plan.tokens)
            content.append({"text": plan.text})
        output += len(c.output_tokens(reasoning_text))
        usage: dict[str, int] = {
            "inputTokens": prompt - cached,
            "outputTokens": output,
            "totalTokens": prompt + output,
        }
        if cached:
            usage.update(cacheReadInputTokens=cached, cacheWriteInputTokens=0)
        metrics = {"latencyMs": 100 + call.seq % 400}
        headers = self.headers(call)
        if not stream:
            answer = {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason,
                "usage": usage,
                "metrics": metrics,
            }
            return Reply.json(200, answer, headers)
        events = _stream_events(content, plan, stop_reason, usage, metrics)
        return Reply.stream(events, headers, content_type=_EVENT_STREAM)

    # ------------------------------------------------------------------ invoke

    def _invoke(self, call: Call, model: str, body: dict[str, Any], stream: bool) -> Reply:
        del stream
        lowered = model.lower()
        if "titan-embed" in lowered:
            return self._titan(call, lowered, body)
        if "cohere.embed" in lowered:
            return self._cohere(call, lowered, body)
        if "nova-canvas" in lowered or "titan-image-generator" in lowered:
            return self._image(call, lowered, body)
        raise _InvalidError("The provided model identifier is invalid.")

    def _image(self, call: Call, model: str, body: dict[str, Any]) -> Reply:
        if body.get("taskType") != "TEXT_IMAGE":
            raise _InvalidError("Malformed input request: only taskType TEXT_IMAGE is emulated.")
        params = body.get("textToImageParams")
        text = params.get("text") if isinstance(params, dict) else None
        if not isinstance(text, str) or not 1 <= len(text) <= 1024:
            raise _InvalidError(
                "Malformed input request: #/textToImageParams/text: expected minLength: 1, "
                "maxLength: 1024, please reformat your input and try again."
            )
        config = body.get("imageGenerationConfig") or {}
        n = config.get("numberOfImages", 1)
        if not _is_int(n) or not 1 <= n <= 5:
            raise _InvalidError(
                "Malformed input request: #/imageGenerationConfig/numberOfImages: must be "
                "between 1 and 5, please reformat your input and try again."
            )
        for side in ("width", "height"):
            value = config.get(side, 1024)
            if not _is_int(value) or value % 16 or not 320 <= value <= 4096:
                raise _InvalidError(
                    f"Malformed input request: #/imageGenerationConfig/{side}: must be a "
                    "multiple of 16 between 320 and 4096."
                )
        if config.get("quality", "standard") not in ("standard", "premium"):
            raise _InvalidError(
                "Malformed input request: #/imageGenerationConfig/quality: standard or premium."
            )
        images = [
            base64.b64encode(c.png(f"{model}\0{text}\0{i}")).decode("ascii") for i in range(n)
        ]
        return Reply.json(200, {"images": images}, self.headers(call))

    @staticmethod
    def _native_dimensions(model: str) -> int:
        return next((d for k, d in _EMBED_DIMENSIONS.items() if k in model), 1024)

    def _invoke_headers(self, call: Call, tokens: int) -> dict[str, str]:
        return {
            **self.headers(call),
            "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(20 + call.seq % 80),
        }

    def _titan(self, call: Call, model: str, body: dict[str, Any]) -> Reply:
        text = body.get("inputText")
        if not isinstance(text, str):
            raise _InvalidError(
                "Malformed input request: #: required key [inputText] not found, please "
                "reformat your input and try again."
            )
        v2 = "text-v2" in model
        for key in body:
            allowed = (
                ("inputText", "dimensions", "normalize", "embeddingTypes") if v2 else ("inputText",)
            )
            if key not in allowed:
                raise _InvalidError(
                    f"Malformed input request: #: extraneous key [{key}] is not permitted, "
                    "please reformat your input and try again."
                )
        dims = body.get("dimensions", self._native_dimensions(model))
        if v2 and dims not in (256, 512, 1024):
            raise _InvalidError(
                "Malformed input request: #/dimensions: 256, 512 or 1024 expected, please "
                "reformat your input and try again."
            )
        tokens = c.count_tokens(text)
        vector = c.embedding(model, text, dims)
        answer: dict[str, Any] = {"embedding": vector, "inputTextTokenCount": tokens}
        if v2:
            answer["embeddingsByType"] = {"float": vector}
        return Reply.json(200, answer, self._invoke_headers(call, tokens))

    def _cohere(self, call: Call, model: str, body: dict[str, Any]) -> Reply:
        texts = body.get("texts")
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _InvalidError(
                "Malformed input request: #: required key [texts] not found, please reformat "
                "your input and try again."
            )
        if not 1 <= len(texts) <= _COHERE_BATCH:
            raise _InvalidError(
                f"Malformed input request: #/texts: expected maxLength: {_COHERE_BATCH}, "
                f"actual: {len(texts)}, please reformat your input and try again."
            )
        input_type = body.get("input_type")
        if input_type not in _COHERE_INPUT_TYPES:
            raise _InvalidError(
                "Malformed input request: #: required key [input_type] not found, please "
                "reformat your input and try again."
            )
        dims = self._native_dimensions(model)
        wanted = body.get("output_dimension")
        if wanted is not None:
            if "embed-v4" not in model or wanted not in (256, 512, 1024, 1536):
                raise _InvalidError("Malformed input request: #/output_dimension is not supported.")
            dims = wanted
        vectors = [c.embedding(model, f"{input_type}\0{text}", dims) for text in texts]
        tokens = sum(c.count_tokens(t) for t in texts)
        answer: dict[str, Any] = {
            "id": str(uuid.UUID(bytes=c.digest(call.raw, "cohere")[:16], version=4)),
            "texts": texts,
        }
        types = body.get("embedding_types")
        if types is None:
            answer.update(embeddings=vectors, response_type="embeddings_floats")
        else:
            by_type: dict[str, Any] = {}
            for kind in types if isinstance(types, list) else []:
                if kind == "float":
                    by_type[kind] = vectors
                elif kind in ("int8", "uint8"):
                    shift = 0 if kind == "int8" else 128
                    by_type[kind] = [[round(v * 127) + shift for v in vec] for vec in vectors]
                else:
                    raise _InvalidError(
                        f"Malformed input request: embedding type {kind} is not supported."
                    )
            answer.update(embeddings=by_type, response_type="embeddings_by_type")
        return Reply.json(200, answer, self._invoke_headers(call, tokens))


# --------------------------------------------------------------------------- helpers


def _raw_path(path: str) -> str:
    """The path as boto3 sends it (the model id one percent-encoded segment), for calls
    built without their raw path."""
    if not path.startswith("/model/"):
        return quote(path, safe="/")
    model, _, operation = path.removeprefix("/model/").rpartition("/")
    return f"/model/{quote(model, safe='')}/{operation}"


def _image_bytes(image: Any, where: str) -> None:
    if not isinstance(image, dict) or image.get("format") not in _IMAGE_FORMATS:
        raise _InvalidError(f"{where}.image.format must be one of {', '.join(_IMAGE_FORMATS)}.")
    source = image.get("source")
    if not isinstance(source, dict) or len(source) != 1:
        raise _InvalidError(f"{where}.image.source must have exactly one member.")
    if "bytes" in source:
        try:
            base64.b64decode(source["bytes"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise _InvalidError(f"{where}.image.source.bytes is not valid base64.") from None
    elif "s3Location" not in source:
        raise _InvalidError(f"{where}.image.source must be bytes or s3Location.")


def _texts(blocks: list[Any]) -> tuple[list[str], int]:
    """Text blocks and image count of a content list."""
    texts: list[str] = []
    images = 0
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif "image" in block:
            images += 1
    return texts, images


def _block_tokens(block: dict[str, Any]) -> int:
    if isinstance(block.get("text"), str):
        return c.count_tokens(block["text"])
    if "image" in block or "document" in block:
        return c.IMAGE_TOKENS
    if "toolUse" in block:
        return c.count_tokens(json.dumps(block["toolUse"].get("input", {})))
    if "toolResult" in block:
        total = 0
        for item in block["toolResult"].get("content") or []:
            if "json" in item:
                total += c.count_tokens(json.dumps(item["json"]))
            elif isinstance(item, dict):
                total += _block_tokens(item)
        return total
    return 0


def _stream_message(kind: str) -> str:
    if kind == "throttlingException":
        return STATUS_ERRORS[429][1]
    if kind == "validationException":
        return STATUS_ERRORS[400][1]
    if kind == "serviceUnavailableException":
        return STATUS_ERRORS[503][1]
    return "An error occurred while streaming the response. Retry your request."


def _stream_events(
    content: list[dict[str, Any]],
    plan: c.TextPlan | None,
    stop_reason: str,
    usage: dict[str, Any],
    metrics: dict[str, Any],
) -> list[AwsEvent]:
    """The event-stream messages of a streamed Converse answer."""
    events: list[AwsEvent] = []

    def add(kind: str, payload: dict[str, Any]) -> None:
        seed = f"{kind}\0{len(events)}\0{json.dumps(payload)}"
        events.append(AwsEvent(kind, payload, padding=_padding(seed)))

    add("messageStart", {"role": "assistant"})
    for index, block in enumerate(content):
        if "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            for token in c.output_tokens(reasoning["text"]):
                add(
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": token}}},
                )
            add(
                "contentBlockDelta",
                {
                    "contentBlockIndex": index,
                    "delta": {"reasoningContent": {"signature": reasoning["signature"]}},
                },
            )
        elif "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            add("contentBlockStart", {"contentBlockIndex": index, "start": start})
            arguments = json.dumps(use["input"], separators=(",", ":"))
            for piece in c.pieces(arguments):
                add(
                    "contentBlockDelta",
                    {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}},
                )
        else:
            for token in plan.tokens if plan is not None else []:
                add("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": token}})
        add("contentBlockStop", {"contentBlockIndex": index})
    add("messageStop", {"stopReason": stop_reason})
    add("metadata", {"usage": usage, "metrics": metrics})
    return events
