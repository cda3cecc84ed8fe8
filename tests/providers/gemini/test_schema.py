"""JSON Schema -> Gemini's Schema dialect: examples, and properties over generated schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from aiport._types import JsonSchemaFormat, Tool
from aiport.providers.gemini._schema import (
    GEMINI_SCHEMA_KEYS,
    GEMINI_TYPES,
    UnsupportedSchemaError,
    is_empty_object,
    to_gemini_schema,
)
from aiport.testing._content import schema_instance


class Address(BaseModel):
    street: str
    city: str | None = None


class Person(BaseModel):
    name: str
    age: int
    home: Address
    tags: list[str] = []
    kind: str = "person"


class Node(BaseModel):
    value: int
    next: Node | None = None


def test_pydantic_model_with_refs_and_optionals() -> None:
    schema, dropped = to_gemini_schema(JsonSchemaFormat.from_model(Person).schema_)
    assert dropped == []
    assert schema["type"] == "OBJECT"
    assert schema["required"] == ["name", "age", "home", "tags", "kind"]
    assert schema["propertyOrdering"] == ["name", "age", "home", "tags", "kind"]
    home = schema["properties"]["home"]
    assert home["type"] == "OBJECT"  # the $ref was inlined
    city = {"type": "STRING", "title": "City", "default": None, "nullable": True}
    assert home["properties"]["city"] == city
    assert schema["properties"]["tags"]["items"] == {"type": "STRING"}
    assert "$defs" not in str(schema)
    assert "additionalProperties" not in str(schema)


def test_recursive_schema_is_unsupported() -> None:
    with pytest.raises(UnsupportedSchemaError):
        to_gemini_schema(Node.model_json_schema())


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"tags": {"type": "array"}}},
        {"type": "object", "properties": {"extra": {"type": "object"}}},
        {"type": "object", "properties": {"map": {"type": "object", "additionalProperties": {}}}},
    ],
)
def test_inexpressible_nested_schemas(schema: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedSchemaError):
        to_gemini_schema(schema)


def test_root_object_without_properties_is_empty() -> None:
    schema, _ = to_gemini_schema({"type": "object", "properties": {}})
    assert schema == {"type": "OBJECT"}
    assert is_empty_object(schema)
    assert not is_empty_object({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"type": ["string", "null"]}, {"type": "STRING", "nullable": True}),
        ({"type": "null"}, {"nullable": True}),
        ({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"]}),
        ({"enum": ["a", None]}, {"type": "STRING", "enum": ["a"], "nullable": True}),
        ({"type": "string", "format": "uri"}, {"type": "STRING"}),
        ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
        ({"type": "integer", "format": "int64"}, {"type": "INTEGER", "format": "int64"}),
        (
            {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        ),
        (
            {"type": ["string", "integer"], "description": "id"},
            {"description": "id", "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        ),
        (
            {"allOf": [{"properties": {"a": {"type": "string"}}}, {"required": ["a"]}]},
            {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
        ),
        ({"type": "string", "examples": ["x", "y"]}, {"type": "STRING", "example": "x"}),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]},
            {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
        ),
    ],
)
def test_rewrites(source: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_gemini_schema(source) == (expected, [])


def test_constraints_that_cannot_be_kept_are_named() -> None:
    source = {
        "type": "object",
        "properties": {
            "n": {"type": "number", "multipleOf": 0.5, "exclusiveMinimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "level": {"type": "integer", "enum": [1, 2, 3]},
        },
        "additionalProperties": False,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    schema, dropped = to_gemini_schema(source)
    assert dropped == [
        "enum (not of strings)",
        "exclusiveMinimum (sent as minimum)",
        "multipleOf",
        "uniqueItems",
    ]
    assert schema["properties"]["n"] == {"type": "NUMBER", "minimum": 0}
    assert schema["properties"]["level"] == {"type": "INTEGER"}


def test_the_input_is_not_modified() -> None:
    source = JsonSchemaFormat.from_model(Person).schema_
    before = repr(source)
    to_gemini_schema(source)
    assert repr(source) == before


def test_tool_from_function_converts() -> None:
    def search(query: str, limit: int = 10, exact: bool | None = None) -> list[str]:
        """Search."""
        return []

    schema, dropped = to_gemini_schema(Tool.from_function(search).parameters)
    assert dropped == []
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"] == {"type": "INTEGER", "title": "Limit", "default": 10}
    assert schema["properties"]["exact"]["nullable"] is True


# --------------------------------------------------------------------------- properties

_names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
_leaf = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "number", "boolean"])}),
    st.fixed_dictionaries(
        {"type": st.just("string"), "enum": st.lists(_names, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("string"), "format": st.sampled_from(["date-time", "email", "uuid"])}
    ),
    st.fixed_dictionaries({"type": st.just(["integer", "null"])}),
    st.fixed_dictionaries({"const": _names}),
    st.fixed_dictionaries({"type": st.just("number"), "minimum": st.integers(-5, 5)}),
)


def _extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": children},
            optional={"minItems": st.integers(0, 3)},
        ),
        st.builds(
            lambda props, extra: {
                "type": "object",
                "properties": props,
                "required": list(props)[:1],
                "additionalProperties": extra,
            },
            st.dictionaries(_names, children, min_size=1, max_size=3),
            st.booleans(),
        ),
        st.builds(lambda a, b: {"anyOf": [a, b, {"type": "null"}]}, children, children),
        st.builds(lambda a: {"allOf": [a]}, children),
    )


_schemas = st.recursive(_leaf, _extend, max_leaves=8)


def _walk(node: Any, seen: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        seen.append(node)
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    _walk(sub, seen)
            elif key == "items":
                _walk(value, seen)
            elif key == "anyOf":
                for sub in value:
                    _walk(sub, seen)


@settings(max_examples=150, deadline=None)
@given(_schemas)
def test_output_uses_only_what_gemini_accepts(source: dict[str, Any]) -> None:
    try:
        schema, _ = to_gemini_schema(source)
    except UnsupportedSchemaError:
        return
    nodes: list[dict[str, Any]] = []
    _walk(schema, nodes)
    for node in nodes:
        assert set(node) <= GEMINI_SCHEMA_KEYS, node
        if "type" in node:
            assert node["type"] in GEMINI_TYPES
        if "enum" in node:
            assert node.get("type") == "STRING"
            assert all(isinstance(v, str) for v in node["enum"])
        if node.get("type") == "OBJECT" and node is not schema:
            assert node["properties"]
        if node.get("type") == "ARRAY":
            assert "items" in node
        for name in node.get("required", []):
            assert name in node["properties"]


@settings(max_examples=150, deadline=None)
@given(_schemas)
def test_conversion_is_idempotent(source: dict[str, Any]) -> None:
    try:
        once, _ = to_gemini_schema(source)
    except UnsupportedSchemaError:
        return
    assert to_gemini_schema(once) == (once, [])


@settings(max_examples=100, deadline=None)
@given(_schemas)
def test_values_of_the_converted_schema_fit_the_original(source: dict[str, Any]) -> None:
    """An instance generated from the Gemini schema validates against the JSON Schema."""
    jsonschema = pytest.importorskip("jsonschema")
    try:
        converted, _ = to_gemini_schema(source)
    except UnsupportedSchemaError:
        return
    value = schema_instance(_as_json_schema(converted))
    jsonschema.validate(value, source)


def _as_json_schema(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            out["type"] = value.lower()
        elif key == "properties":
            out["properties"] = {k: _as_json_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = _as_json_schema(value)
        elif key == "anyOf":
            out["anyOf"] = [_as_json_schema(v) for v in value]
        elif key not in ("nullable", "propertyOrdering", "format"):
            out[key] = value
    return out
