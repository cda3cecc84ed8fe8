"""JSON Schema -> the schema dialect Gemini's ``Schema`` object accepts (pure).

Gemini's function ``parameters`` and ``responseSchema`` take a subset of OpenAPI 3.0:
upper-case ``type`` names, ``nullable`` instead of a ``null`` type, ``anyOf`` but no
``oneOf``/``allOf``/``$ref``/``const``, ``enum`` for strings only, ``format`` only where
Gemini knows it, no ``additionalProperties``. Anything else makes the API answer 400
(``Unknown name "additionalProperties"``...). :func:`to_gemini_schema` rewrites a JSON
Schema into that subset:

- ``$ref`` into ``$defs``/``definitions`` (or any local JSON pointer) is inlined;
- ``allOf`` branches are merged, ``oneOf`` becomes ``anyOf``;
- ``type: [X, "null"]``, a ``{"type": "null"}`` branch, or ``null`` in an ``enum`` become
  ``nullable: true``; several non-null types become an ``anyOf``;
- a string ``const`` becomes a one-value ``enum``;
- numeric ``exclusiveMinimum``/``exclusiveMaximum`` become ``minimum``/``maximum``;
- ``examples`` becomes ``example`` (its first value);
- objects get ``propertyOrdering`` (the order the properties were given in), so JSON
  output keeps the schema's key order as the official SDK arranges it;
- ``required`` keeps only names that are properties; empty ``properties`` are dropped.

Three things cannot be expressed at all: a recursive schema (it cannot be inlined), an
array without ``items`` and a nested object without ``properties`` (a free-form map; Gemini
answers "should be non-empty for OBJECT type"). They raise :class:`UnsupportedSchemaError`
and the caller sends the JSON Schema unchanged as ``parametersJsonSchema`` /
``responseJsonSchema`` instead, which Gemini 2.5 and later accept. An object without
properties at the root is returned as ``{"type": "OBJECT"}``: a function without
parameters is declared without them (see :func:`is_empty_object`).

Keywords that only annotate (``$schema``, ``$id``, ``$comment``, ``readOnly``,
``additionalProperties: false``, unsupported ``format`` values...) are dropped quietly;
keywords that constrain values and cannot be expressed (``multipleOf``, ``uniqueItems``,
``not``, ``patternProperties``, non-string ``enum``...) are dropped and named, so the
caller can warn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "GEMINI_SCHEMA_KEYS",
    "GEMINI_TYPES",
    "UnsupportedSchemaError",
    "is_empty_object",
    "to_gemini_schema",
]

#: Every key a Gemini ``Schema`` object may hold (REST names).
GEMINI_SCHEMA_KEYS: frozenset[str] = frozenset(
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
#: The values of a Gemini ``Schema.type``.
GEMINI_TYPES: frozenset[str] = frozenset(
    {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
)
#: The ``format`` values Gemini accepts, per type (others are a 400).
_FORMATS: Mapping[str, frozenset[str]] = {
    "STRING": frozenset({"enum", "date-time"}),
    "INTEGER": frozenset({"int32", "int64"}),
    "NUMBER": frozenset({"float", "double"}),
}
#: Keywords copied as they are (after their sub-schemas are converted).
_KEPT = frozenset(
    {
        "title",
        "description",
        "default",
        "example",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "propertyOrdering",
    }
)
#: Annotations dropped without a note: they change nothing about the values allowed.
_QUIET = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$anchor",
        "$defs",
        "definitions",
        "readOnly",
        "writeOnly",
        "deprecated",
        "strict",
        "contentEncoding",
        "contentMediaType",
    }
)
_MAX_DEPTH = 64


class UnsupportedSchemaError(ValueError):
    """The schema cannot be written in Gemini's dialect (recursive, an array without
    items, a nested object without properties)."""


def to_gemini_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``schema`` rewritten for Gemini, and the constraining keywords it lost (sorted).

    The input is not modified. Type names may be given in any case, so converting a
    converted schema again gives it back unchanged.

    Raises:
        UnsupportedSchemaError: a ``$ref`` cycle (see the module docstring).
    """
    converter = _Converter(schema)
    result = converter.convert(schema, (), 0)
    return result, sorted(converter.dropped)


def is_empty_object(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` is an object schema without properties (``{"type": "OBJECT"}``).

    Gemini refuses such function ``parameters`` ("properties: should be non-empty for
    OBJECT type"): a function without parameters is declared without them.
    """
    kind = schema.get("type")
    return (
        (kind is None or (isinstance(kind, str) and kind.upper() == "OBJECT"))
        and not schema.get("properties")
        and not schema.get("anyOf")
    )


class _Converter:
    __slots__ = ("dropped", "root")

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.dropped: set[str] = set()

    # ---------------------------------------------------------------- references

    def _resolve(self, ref: Any) -> Mapping[str, Any] | None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            self.dropped.add("$ref (not a local reference)")
            return None
        node: Any = self.root
        for raw in ref[1:].split("/"):
            if not raw:
                continue
            key = raw.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(key)] if isinstance(node, list) else node[key]
            except (KeyError, IndexError, ValueError, TypeError):
                self.dropped.add("$ref (unresolvable)")
                return None
        return node if isinstance(node, Mapping) else None

    def _expand(
        self, node: Mapping[str, Any], refs: tuple[str, ...]
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """``node`` with its ``$ref`` and ``allOf`` merged in (siblings of ``$ref`` win)."""
        data = dict(node)
        while "$ref" in data:
            ref = data.pop("$ref")
            if isinstance(ref, str) and ref in refs:
                raise UnsupportedSchemaError(f"the schema refers to itself through {ref}")
            target = self._resolve(ref)
            if target is None:
                continue
            if isinstance(ref, str):
                refs = (*refs, ref)
            data = {**target, **data}
        if "allOf" in data:
            branches = data.pop("allOf")
            for branch in branches if isinstance(branches, list) else []:
                if not isinstance(branch, Mapping):
                    continue
                expanded, refs = self._expand(branch, refs)
                _merge_into(data, expanded)
        return data, refs

    # ---------------------------------------------------------------- conversion

    def convert(self, node: Any, refs: tuple[str, ...], depth: int) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise UnsupportedSchemaError("the schema nests too deeply to convert")
        if node is True or not isinstance(node, Mapping):
            return {}
        data, refs = self._expand(node, refs)
        out: dict[str, Any] = {}
        nullable = bool(data.pop("nullable", False))

        types = _types(data.pop("type", None))
        if "null" in types:
            nullable = True
            types = [t for t in types if t != "null"]

        if "oneOf" in data:
            data["anyOf"] = [*_as_list(data.get("anyOf")), *_as_list(data.pop("oneOf"))]
        branches = [b for b in _as_list(data.pop("anyOf", None)) if isinstance(b, Mapping)]
        if branches:
            kept = []
            for branch in branches:
                if _is_null_schema(branch):
                    nullable = True
                else:
                    kept.append(branch)
            if len(kept) == 1:
                # One real branch: it is the schema (with the outer keywords kept).
                merged, refs = self._expand(kept[0], refs)
                inner = self.convert({**merged, **_outer(data, types)}, refs, depth + 1)
                if nullable:
                    inner["nullable"] = True
                return inner
            if kept:
                out["anyOf"] = [self.convert(b, refs, depth + 1) for b in kept]

        if len(types) > 1 and "anyOf" not in out:
            shared = {k: v for k, v in data.items() if k in ("title", "description")}
            specific = {k: v for k, v in data.items() if k not in shared}
            out.update(shared)
            out["anyOf"] = [
                self.convert({**specific, "type": kind}, refs, depth + 1) for kind in types
            ]
            if nullable:
                out["nullable"] = True
            return out
        kind = types[0].upper() if types else _implied_type(data)
        if kind is not None:
            if kind not in GEMINI_TYPES:
                self.dropped.add(f"type {kind.lower()!r}")
                kind = None
            else:
                out["type"] = kind

        self._values(data, kind, out)
        if kind == "OBJECT" or "properties" in data:
            self._object(data, refs, depth, out)
        if kind == "ARRAY" or "items" in data:
            self._array(data, refs, depth, out)
            if "items" not in out:
                raise UnsupportedSchemaError("an array schema without items")
        if depth and out.get("type") == "OBJECT" and not out.get("properties"):
            raise UnsupportedSchemaError("a nested object schema without properties")
        self._rest(data, out)
        if nullable:
            out["nullable"] = True
        return out

    def _values(self, data: dict[str, Any], kind: str | None, out: dict[str, Any]) -> None:
        """``const``, ``enum`` and ``format``."""
        if "const" in data:
            const = data.pop("const")
            if isinstance(const, str) and kind in (None, "STRING"):
                data.setdefault("enum", [const])
            elif const is None:
                out["nullable"] = True
            else:
                self.dropped.add("const (not a string)")
        if "enum" in data:
            values = data.pop("enum")
            values = values if isinstance(values, list) else []
            if None in values:
                out["nullable"] = True
                values = [v for v in values if v is not None]
            if values and all(isinstance(v, str) for v in values) and kind in (None, "STRING"):
                out["enum"] = list(values)
                if kind is None:
                    out["type"] = "STRING"
            elif values:
                self.dropped.add("enum (not of strings)")
        if "format" in data:
            fmt = data.pop("format")
            allowed = _FORMATS.get(out.get("type") or "", frozenset())
            if isinstance(fmt, str) and fmt in allowed:
                out["format"] = fmt

    def _object(
        self, data: dict[str, Any], refs: tuple[str, ...], depth: int, out: dict[str, Any]
    ) -> None:
        properties = data.pop("properties", None)
        converted: dict[str, Any] = {}
        if isinstance(properties, Mapping):
            for name, sub in properties.items():
                converted[str(name)] = self.convert(sub, refs, depth + 1)
        if converted:
            out["properties"] = converted
        required = data.pop("required", None)
        if isinstance(required, list):
            names = [n for n in dict.fromkeys(required) if isinstance(n, str) and n in converted]
            if names:
                out["required"] = names
        ordering = data.pop("propertyOrdering", None)
        if isinstance(ordering, list) and converted:
            names = [n for n in ordering if isinstance(n, str) and n in converted]
            if names:
                out["propertyOrdering"] = names
        elif len(converted) > 1:
            out["propertyOrdering"] = list(converted)
        extra = data.pop("additionalProperties", None)
        if isinstance(extra, Mapping) and extra:
            self.dropped.add("additionalProperties")

    def _array(
        self, data: dict[str, Any], refs: tuple[str, ...], depth: int, out: dict[str, Any]
    ) -> None:
        items = data.pop("items", None)
        if isinstance(items, list):  # draft-4 tuples
            self.dropped.add("items (tuple form)")
            items = items[0] if items else None
        if items is not None:
            out["items"] = self.convert(items, refs, depth + 1)
        if "prefixItems" in data:
            data.pop("prefixItems")
            self.dropped.add("prefixItems")

    def _rest(self, data: dict[str, Any], out: dict[str, Any]) -> None:
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            value = data.pop(key, None)
            if isinstance(value, bool) or value is None:
                if value:
                    self.dropped.add(key)
                continue
            if isinstance(value, int | float):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                current = data.get(bound)
                tighter = (
                    current is None
                    or (bound == "minimum" and value >= current)
                    or (bound == "maximum" and value <= current)
                )
                if tighter:
                    data[bound] = value
                self.dropped.add(f"{key} (sent as {bound})")
        examples = data.pop("examples", None)
        if isinstance(examples, list) and examples and "example" not in data:
            data["example"] = examples[0]
        for key, value in data.items():
            if key in _KEPT:
                if key in ("minimum", "maximum") and not isinstance(value, int | float):
                    continue
                out[key] = value
            elif key == "additionalProperties" or key in _QUIET:
                continue
            else:
                self.dropped.add(key)


def _types(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.lower()]
    if isinstance(value, list):
        return list(dict.fromkeys(v.lower() for v in value if isinstance(v, str)))
    return []


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_null_schema(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return isinstance(kind, str) and kind.lower() == "null" and len(schema) == 1


def _outer(data: Mapping[str, Any], types: list[str]) -> dict[str, Any]:
    """The keywords around a single ``anyOf`` branch that still apply to it."""
    out = {k: v for k, v in data.items() if k in ("title", "description", "default", "example")}
    if types:
        out["type"] = types[0]
    return out


def _implied_type(data: Mapping[str, Any]) -> str | None:
    if "properties" in data:
        return "OBJECT"
    if "items" in data:
        return "ARRAY"
    return None


def _merge_into(target: dict[str, Any], branch: Mapping[str, Any]) -> None:
    for key, value in branch.items():
        if key == "properties" and isinstance(value, Mapping):
            target["properties"] = {**(target.get("properties") or {}), **value}
        elif key == "required" and isinstance(value, list):
            target["required"] = list(dict.fromkeys([*(target.get("required") or []), *value]))
        else:
            target.setdefault(key, value)
