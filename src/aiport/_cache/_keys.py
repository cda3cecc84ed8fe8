"""Cache keys: a short digest of the normalised request and the caller's scope.

A key is ``aiport:c:v1:`` followed by 32 hex characters (the first 128 bits of a
SHA-256), 44 bytes whatever the size of the request: a 500-message conversation makes a
key as short as a one-word prompt (a key holding the payload made Redis slow and hit
"key too long" in other gateways).

What goes into the digest is a canonical JSON document of the request: every field of
the options *except* those listed in ``NON_OUTPUT_FIELDS`` (only ``timeout``). The list
is of exclusions, not inclusions, on purpose: a field added to the options later enters
the key without anyone remembering to add it, so two requests that could get different
answers never share a key. Fields whose value is ``None`` are left out (an unset field
and one set to ``None`` are one request; values inside mappings are all kept). Mappings
are written with sorted keys (``{"a":1,"b":2}`` and ``{"b":2,"a":1}`` are one request); a
message's string content is written as its one text part (the model reads the same
tokens); inline bytes (images) enter as their SHA-256, which keeps the document small.

The scope (the caller's identity: provider, API key or tenant, already digested by the
service) is hashed in with the request, so callers never share answers across scopes
and no credential is ever part of a key in clear.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiport._types import ModelCompletionOptions, ModelEmbeddingOptions

__all__ = [
    "KEY_PREFIX",
    "NON_OUTPUT_FIELDS",
    "UncacheableRequestError",
    "canonical_completion",
    "completion_key",
    "embedding_keys",
    "scope_digest",
]

#: Every cache key starts with this (bump the version when the document changes shape).
KEY_PREFIX = "aiport:c:v1:"
#: Option fields that cannot change the answer, left out of keys.
NON_OUTPUT_FIELDS = frozenset({"timeout"})
_EXCLUDED = set(NON_OUTPUT_FIELDS)
#: Hex characters of the digest kept in a key (128 bits: collisions are not a concern).
_DIGEST_HEX = 32


class UncacheableRequestError(ValueError):
    """The request holds a value with no canonical JSON form (the call skips the cache)."""


def _default(value: Any) -> Any:
    """JSON for what ``json`` cannot write: bytes by digest, tuples and sets as arrays."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": hashlib.sha256(value).hexdigest()}
    if isinstance(value, frozenset | set):
        # Sorted by their own canonical JSON, so the order of a set never matters.
        return sorted(value, key=_dumps)
    raise UncacheableRequestError(
        f"a value of type {type(value).__name__} has no canonical form for the cache key"
    )


#: Built once: ``json.dumps`` with options makes a new encoder per call (~1.5 us).
_ENCODER = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=True,
    default=_default,
)
#: The same encoding with the C encoder made once too (``JSONEncoder.encode`` makes one per
#: call): about 2 us of a memory-cache hit. ``None`` where the C accelerator is missing.
_C_ENCODE = (
    c_make_encoder(None, _default, encode_basestring, None, ":", ",", True, False, True)
    if c_make_encoder is not None
    else None
)


def _dumps(value: Any) -> str:
    try:
        if _C_ENCODE is not None and isinstance(value, dict):
            return "".join(_C_ENCODE(value, 0))
        return _ENCODER.encode(value)
    except TypeError as exc:  # mapping keys of mixed types cannot be sorted
        raise UncacheableRequestError(str(exc)) from exc
    except RecursionError as exc:  # a value that contains itself
        raise UncacheableRequestError("a value refers to itself") from exc


def _normalise_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with string content written as parts (``"Hi"`` == ``[text "Hi"]``)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        normalised = dict(message)
        content = normalised.get("content")
        if isinstance(content, str):
            normalised["content"] = [{"type": "text", "text": content}] if content else []
        out.append(normalised)
    return out


#: Completion fields that must all be ``None`` for ``_plain_completion``.
_PLAIN_UNSET = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "metadata",
)


def _plain_completion(options: ModelCompletionOptions, scope: str) -> str | None:
    """``canonical_completion``'s document for the common request, written directly:
    text messages and nothing else set (no sampling setting, tool, format, metadata or
    provider option). ``None`` for any other request.

    The same text the general path makes (sorted keys, compact, strings through the
    same ``encode_basestring``), without dumping the options to dicts and encoding them
    again: ~2.5 µs less per key, most of a memory-cache hit's key (tests/cache checks
    that both paths agree).
    """
    fields = options.__dict__
    for name in _PLAIN_UNSET:
        if fields[name] is not None:
            return None
    if fields["provider_options"]:
        return None
    written: list[str] = []
    for message in fields["messages"]:
        values = message.__dict__
        content = values["content"]
        if type(content) is not str:
            return None
        text = '[{"text":' + encode_basestring(content) + ',"type":"text"}]' if content else "[]"
        name = values["name"]
        named = "" if name is None else ',"name":' + encode_basestring(name)
        written.append(
            '{"content":' + text + named + ',"role":' + encode_basestring(values["role"]) + "}"
        )
    return (
        '{"op":"chat","request":{"messages":['
        + ",".join(written)
        + '],"model":'
        + encode_basestring(fields["model"])
        + ',"provider_options":{}},"scope":'
        + encode_basestring(scope)
        + ',"v":2}'
    )


def canonical_completion(options: ModelCompletionOptions, scope: str) -> bytes:
    """The canonical JSON document a completion key digests (for tests and debugging)."""
    plain = _plain_completion(options, scope)
    if plain is not None:
        return plain.encode()
    return _general_completion(options, scope)


def _general_completion(options: ModelCompletionOptions, scope: str) -> bytes:
    """``canonical_completion`` for any request."""
    # Fields that are None are left out (a smaller document: about 2 us less per key);
    # no other value writes nothing, so requests that differ still differ. The document
    # version says so ("v": 2), so no key of the earlier form can be produced again.
    document = options.model_dump(exclude=_EXCLUDED, exclude_none=True)
    document["messages"] = _normalise_messages(document["messages"])
    return _dumps({"v": 2, "op": "chat", "scope": scope, "request": document}).encode()


def _key(hexdigest: str) -> str:
    return KEY_PREFIX + hexdigest[:_DIGEST_HEX]


def completion_key(options: ModelCompletionOptions, scope: str) -> str:
    """The key of a completion; ``complete`` and ``stream`` share it (same answer).

    Raises ``UncacheableRequestError`` when ``provider_options`` hold a value with no
    JSON form.
    """
    return _key(hashlib.sha256(canonical_completion(options, scope)).hexdigest())


def embedding_keys(options: ModelEmbeddingOptions, scope: str) -> list[str]:
    """One key per input text: model, dimensions, provider options, scope and the text.

    The common part is hashed once and copied per text, so 100 texts cost 100 small
    hash updates, not 100 JSON documents.
    """
    common = options.model_dump(exclude={"input", *NON_OUTPUT_FIELDS})
    head = hashlib.sha256(
        _dumps({"v": 1, "op": "embed", "scope": scope, "request": common}).encode()
    )
    keys: list[str] = []
    for text in options.input:
        digest = head.copy()
        # A JSON object is self-delimiting, so "object then JSON string" is unambiguous.
        digest.update(_dumps(text).encode())
        keys.append(_key(digest.hexdigest()))
    return keys


def scope_digest(*parts: str) -> str:
    """A digest of the caller's identity (``scope_digest(provider_name, api_key)``).

    For the service to pass as ``CacheLayer(scope=...)``: the secret is never kept. Each
    part is length-prefixed, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    digest = hashlib.sha256(b"aiport-cache-scope\0")
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
