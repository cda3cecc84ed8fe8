"""Deterministic content for the emulator: tokens, answers, JSON from schemas, vectors, PNGs.

Everything here is a pure function of its inputs, so two runs of the same test see the
same bytes. The rules are summarised in :mod:`aiport.testing` and relied upon by tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

_PROMPT_TOKEN = re.compile(r"\w+|[^\w\s]")
_OUTPUT_TOKEN = re.compile(r"\s*\S+")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: Tokens charged for each message on top of its text (role and framing).
MESSAGE_OVERHEAD = 3
#: Tokens charged for each image (or document) in a prompt.
IMAGE_TOKENS = 85
#: Size of the pieces tool-call arguments are streamed in.
ARGUMENT_PIECE = 8
#: Past this nesting depth the schema generator only fills what is required, so
#: recursive schemas (trees, linked lists) terminate.
_MAX_DEPTH = 6


def count_tokens(text: str) -> int:
    """Prompt tokens of ``text``: words and single punctuation marks."""
    return len(_PROMPT_TOKEN.findall(text))


def output_tokens(text: str) -> list[str]:
    """Split an answer into streamed tokens: each word with its leading whitespace."""
    return _OUTPUT_TOKEN.findall(text)


def pieces(text: str, size: int = ARGUMENT_PIECE) -> list[str]:
    """Cut ``text`` into chunks of ``size`` characters (the last may be shorter)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def digest(*parts: bytes | str) -> bytes:
    """SHA-256 over ``parts`` separated by NUL bytes."""
    h = hashlib.sha256()
    for i, part in enumerate(parts):
        if i:
            h.update(b"\0")
        h.update(part.encode() if isinstance(part, str) else part)
    return h.digest()


def base62(data: bytes, length: int) -> str:
    """``length`` base62 characters derived from ``data`` (stretched by hashing if short)."""
    number = int.from_bytes(data, "big")
    out: list[str] = []
    while len(out) < length:
        if number == 0:
            data = hashlib.sha256(data).digest()
            number = int.from_bytes(data, "big")
        number, rem = divmod(number, 62)
        out.append(_BASE62[rem])
    return "".join(out)


# --------------------------------------------------------------------------- prompt tokens


def openai_text(content: Any) -> tuple[list[str], int]:
    """Text parts and image count of an OpenAI message's ``content``."""
    if isinstance(content, str):
        return [content], 0
    texts: list[str] = []
    images = 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            images += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
    return texts, images


def openai_prompt_tokens(messages: Any) -> int:
    """OpenAI prompt tokens: text, tool results and tool-call arguments, +3 per message."""
    total = 0
    for msg in messages if isinstance(messages, list) else []:
        if not isinstance(msg, dict):
            continue
        texts, images = openai_text(msg.get("content"))
        total += MESSAGE_OVERHEAD + IMAGE_TOKENS * images
        total += sum(count_tokens(t) for t in texts)
        for tc in msg.get("tool_calls") or []:
            args = (tc.get("function") or {}).get("arguments") if isinstance(tc, dict) else None
            if isinstance(args, str):
                total += count_tokens(args)
    return total


def anthropic_blocks(content: Any) -> list[dict[str, Any]]:
    """An Anthropic message's content as blocks (a plain string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _block_tokens(block: dict[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return count_tokens(str(block.get("text", "")))
    if kind in ("image", "document"):
        source = block.get("source") or {}
        if source.get("type") == "text":
            return count_tokens(str(source.get("data", "")))
        return IMAGE_TOKENS
    if kind == "tool_use":
        return count_tokens(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        return sum(_block_tokens(b) for b in anthropic_blocks(block.get("content", "")))
    if kind == "thinking":
        return count_tokens(str(block.get("thinking", "")))
    return 0


def anthropic_prompt_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, tokens up to and including the last ``cache_control`` block).

    The system prompt counts its text; each message adds 3 plus its blocks. A top-level
    ``cache_control`` (automatic caching) marks the whole prompt.
    """
    total = cached = 0
    for block in anthropic_blocks(body.get("system")):
        total += _block_tokens(block)
        if block.get("cache_control"):
            cached = total
    for msg in body.get("messages") or []:
        total += MESSAGE_OVERHEAD
        for block in anthropic_blocks(msg.get("content") if isinstance(msg, dict) else None):
            total += _block_tokens(block)
            if block.get("cache_control"):
                cached = total
    if body.get("cache_control"):
        cached = total
    return total, cached


# --------------------------------------------------------------------------- answers


StopKind = Literal["end", "length", "stop"]


@dataclass(frozen=True, slots=True)
class TextPlan:
    """What the emulated model emits for a text answer."""

    tokens: list[str]
    reason: StopKind
    stop_sequence: str | None

    @property
    def text(self) -> str:
        return "".join(self.tokens)


def plan_text(full: str, max_tokens: int | None, stops: Sequence[str]) -> TextPlan:
    """Apply stop sequences, then the token budget, to the full answer ``full``.

    The text is cut before the earliest stop sequence; if what remains still has more
    tokens than ``max_tokens`` the budget wins and the reason is ``"length"``.
    """
    cut_at: int | None = None
    matched: str | None = None
    for stop in stops:
        if not stop:
            continue
        pos = full.find(stop)
        if pos >= 0 and (cut_at is None or pos < cut_at):
            cut_at, matched = pos, stop
    text = full if cut_at is None else full[:cut_at]
    tokens = output_tokens(text)
    if max_tokens is not None and len(tokens) > max_tokens:
        return TextPlan(tokens[: max(max_tokens, 0)], "length", None)
    if matched is not None:
        return TextPlan(tokens, "stop", matched)
    return TextPlan(tokens, "end", None)


def user_answer(text: str, images: int) -> str:
    """The chat answer to a user message: an echo, noting how many images it had."""
    answer = "You said: " + text
    if images:
        answer += f" [images: {images}]"
    return answer


def tool_results_answer(results: Iterable[str]) -> str:
    """The chat answer after tool results were sent back."""
    return "Tool results: " + "; ".join(results)


def select_tools(
    names: Sequence[str], forced: str | None, text: str, *, parallel: bool
) -> list[str]:
    """Pick the tools the emulated model calls.

    A forced (named) choice wins; otherwise every tool whose name occurs in the user's
    text, in the order the tools were offered, else the first tool. Without parallel
    tool calls only the first of those is kept.
    """
    if forced is not None:
        return [forced]
    chosen = [name for name in names if name and name in text] or list(names[:1])
    return chosen if parallel else chosen[:1]


def tool_call_id(prefix: str, raw_body: bytes, index: int) -> str:
    """A tool-call id derived from the request bytes, unique per index."""
    return prefix + base62(digest(raw_body, str(index)), 24)


# --------------------------------------------------------------------------- JSON schema


def schema_instance(schema: Any, root: Any = None) -> Any:
    """A JSON value that validates against ``schema`` (the usual subset of JSON Schema).

    object -> every property (required ones first); string -> ``enum[0]``, ``const``, a
    value for well-known formats, else ``"example"`` fitted to minLength/maxLength;
    integer -> minimum or 1; number -> minimum or 1.5; boolean -> true; array -> one item
    (or minItems); null -> null; anyOf/oneOf -> the first branch; allOf -> merged; $ref
    into ``$defs``/``definitions`` resolved. ``pattern`` and float ``multipleOf`` are not
    honoured.
    """
    return _instance(schema, schema if root is None else root, 0, 0)


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref values are supported, got {ref!r}")
    node = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def _merge_all_of(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for raw in schema["allOf"]:
        part = raw
        while isinstance(part, dict) and "$ref" in part:
            part = _resolve(part["$ref"], root)
        if not isinstance(part, dict):
            continue
        if "allOf" in part:
            part = _merge_all_of(part, root)
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            else:
                merged.setdefault(key, value)
    return merged


def _instance(schema: Any, root: Any, depth: int, variant: int) -> Any:
    if schema is True or schema is None:
        return "example"
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return _instance(_resolve(schema["$ref"], root), root, depth, variant)
    if "allOf" in schema:
        return _instance(_merge_all_of(schema, root), root, depth, variant)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        values = schema["enum"]
        return values[variant % len(values)]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            branch = schema[key][0]
            if isinstance(branch, dict):
                # Sibling keywords (e.g. a description or $defs) apply to the branch too.
                branch = {**{k: v for k, v in schema.items() if k != key}, **branch}
            return _instance(branch, root, depth, variant)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind is None:
        if "properties" in schema or "required" in schema:
            kind = "object"
        elif "items" in schema or "prefixItems" in schema:
            kind = "array"
        else:
            kind = "string"
    match kind:
        case "object":
            return _object(schema, root, depth, variant)
        case "array":
            return _array(schema, root, depth, variant)
        case "string":
            return _string(schema, variant)
        case "integer":
            return _integer(schema, variant)
        case "number":
            return _number(schema, variant)
        case "boolean":
            return variant % 2 == 0
        case _:
            return None


def _object(schema: dict[str, Any], root: Any, depth: int, variant: int) -> dict[str, Any]:
    props: dict[str, Any] = schema.get("properties") or {}
    required: list[str] = [name for name in schema.get("required") or [] if isinstance(name, str)]
    names = list(dict.fromkeys([*required, *props]))
    if depth >= _MAX_DEPTH:
        names = required
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for name in names:
        sub = props.get(name, extra if isinstance(extra, dict) else True)
        out[name] = _instance(sub, root, depth + 1, variant)
    return out


def _array(schema: dict[str, Any], root: Any, depth: int, variant: int) -> list[Any]:
    prefix = schema.get("prefixItems")
    items = schema.get("items")
    if isinstance(items, list):  # draft-4 tuple form
        prefix, items = items, schema.get("additionalItems", True)
    lo = int(schema.get("minItems", 0))
    hi = schema.get("maxItems")
    count = max(lo, 0 if depth >= _MAX_DEPTH else 1)
    if prefix:
        count = max(count, len(prefix))
    if hi is not None:
        count = min(count, int(hi))
    unique = bool(schema.get("uniqueItems"))
    out: list[Any] = []
    for i in range(count):
        sub = prefix[i] if prefix and i < len(prefix) else items
        if sub is None:
            sub = True
        # Distinct variants keep items apart when uniqueItems is asked for.
        out.append(_instance(sub, root, depth + 1, variant + i if unique else variant))
    return out


_FORMATS: Mapping[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
}


def _string(schema: dict[str, Any], variant: int) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS and not variant:
        value = _FORMATS[fmt]
    else:
        value = "example" + (str(variant) if variant else "")
    # Length limits are validated everywhere, formats rarely: the limits win.
    lo = int(schema.get("minLength", 0))
    hi = schema.get("maxLength")
    if hi is not None and len(value) > int(hi):
        # Keep the variant digits (at the end) so unique items stay unique.
        value = value[len(value) - int(hi) :]
    if len(value) < lo:
        value += "x" * (lo - len(value))
    return value


def _bounds(schema: dict[str, Any]) -> tuple[float | None, bool, float | None, bool]:
    """(low, low exclusive, high, high exclusive), for draft-4 and later keywords."""
    lo: float | None = schema.get("minimum")
    hi: float | None = schema.get("maximum")
    lo_ex = hi_ex = False
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, bool):
        lo_ex = ex_lo and lo is not None
    elif isinstance(ex_lo, int | float) and (lo is None or ex_lo >= lo):
        lo, lo_ex = ex_lo, True
    if isinstance(ex_hi, bool):
        hi_ex = ex_hi and hi is not None
    elif isinstance(ex_hi, int | float) and (hi is None or ex_hi <= hi):
        hi, hi_ex = ex_hi, True
    return lo, lo_ex, hi, hi_ex


def _integer(schema: dict[str, Any], variant: int) -> int:
    lo_f, lo_ex, hi_f, hi_ex = _bounds(schema)
    lo = None if lo_f is None else (math.floor(lo_f) + 1 if lo_ex else math.ceil(lo_f))
    hi = None if hi_f is None else (math.ceil(hi_f) - 1 if hi_ex else math.floor(hi_f))
    value = (1 if lo is None else lo) + variant
    if hi is not None and value > hi:
        value = hi if lo is None else max(lo, hi)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        up = -(-value // step) * step
        value = up if hi is None or up <= hi else (value // step) * step
    return value


def _number(schema: dict[str, Any], variant: int) -> float | int:
    lo, lo_ex, hi, hi_ex = _bounds(schema)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0:
        # Integers are numbers too, and integer multiples avoid float rounding.
        return _integer({**schema, "type": "integer"}, variant)
    value = 1.5 if lo is None else float(lo) + (0.5 if lo_ex else 0.0)
    value += variant * 0.25
    if hi is not None and (value > hi or (hi_ex and value >= hi)):
        if lo is not None:
            value = (float(lo) + float(hi)) / 2
        else:
            value = float(hi) - (0.5 if hi_ex else 0.0)
    return value


# --------------------------------------------------------------------------- embeddings


def embedding(model: str, text: str, dimensions: int) -> list[float]:
    """A unit vector seeded from ``sha256(model + "\\0" + text)``.

    Components are Gaussian draws from :class:`random.Random`; asking for fewer
    dimensions gives a renormalised prefix of the full vector (like the real
    ``text-embedding-3`` models).
    """
    rng = random.Random(digest(model, text))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embedding_base64(vector: Sequence[float]) -> str:
    """Little-endian float32 bytes of ``vector``, base64-encoded (OpenAI's wire form)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embedding_inputs(raw: Any) -> list[tuple[str, int]] | None:
    """(seed text, tokens) per embeddings input, or None if the input is not valid.

    Accepts a string, a token array, or a list of either (at most 2048). A token array
    is seeded from its ints joined with spaces and counts one token per int.
    """
    if _is_int_list(raw):
        return [(" ".join(map(str, raw)), len(raw))]
    values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    items: list[tuple[str, int]] = []
    for value in values:
        if isinstance(value, str) and value:
            items.append((value, count_tokens(value)))
        elif _is_int_list(value):
            items.append((" ".join(map(str, value)), len(value)))
        else:
            return None
    return items if 0 < len(items) <= 2048 else None


def _is_int_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
    )


# --------------------------------------------------------------------------- images


def png(seed: str, size: int = 16) -> bytes:
    """A valid ``size`` x ``size`` RGB PNG: a two-colour checkerboard derived from ``seed``."""
    h = digest(seed)
    colours = (bytes(h[0:3]), bytes(h[3:6]))
    rows = []
    for y in range(size):
        row = b"".join(colours[((x // 4) + (y // 4)) % 2] for x in range(size))
        rows.append(b"\x00" + row)  # filter type 0 per scanline

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
