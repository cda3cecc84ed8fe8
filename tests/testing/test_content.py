"""The deterministic content rules, and properties of the schema generator and fault specs."""

from __future__ import annotations

import math
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiport.testing import Fault
from aiport.testing import _content as c


def test_token_rules() -> None:
    assert c.count_tokens("Hello, world!") == 4
    assert c.count_tokens("") == 0
    assert c.output_tokens("You said: hi  there") == ["You", " said:", " hi", "  there"]
    assert c.pieces("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_plan_text() -> None:
    plan = c.plan_text("You said: a b c", None, [])
    assert (plan.text, plan.reason, plan.stop_sequence) == ("You said: a b c", "end", None)
    plan = c.plan_text("You said: a b c", 3, [])
    assert (plan.text, plan.reason) == ("You said: a", "length")
    plan = c.plan_text("You said: a b c", None, ["b", " a"])
    assert (plan.text, plan.reason, plan.stop_sequence) == ("You said:", "stop", " a")


def test_tool_selection() -> None:
    names = ["alpha", "beta", "gamma"]
    assert c.select_tools(names, None, "nothing", parallel=True) == ["alpha"]
    assert c.select_tools(names, None, "gamma then beta", parallel=True) == ["beta", "gamma"]
    assert c.select_tools(names, None, "gamma then beta", parallel=False) == ["beta"]
    assert c.select_tools(names, "gamma", "beta", parallel=True) == ["gamma"]


def test_embedding_prefix_property() -> None:
    full = c.embedding("m", "text", 32)
    short = c.embedding("m", "text", 8)
    norm = math.sqrt(sum(v * v for v in full[:8]))
    assert all(abs(a - b / norm) < 1e-12 for a, b in zip(short, full[:8], strict=True))


def test_png_is_deterministic() -> None:
    assert c.png("x") == c.png("x")
    assert c.png("x") != c.png("y")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string", "maxLength": 3}, "ple"),
        ({"type": "string", "minLength": 10}, "examplexxx"),
        ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z"),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "integer", "maximum": -3}, -3),
        ({"type": "integer", "minimum": 3, "multipleOf": 5}, 5),
        ({"type": "number", "minimum": 0, "maximum": 1}, 0.0),
        ({"type": "number", "maximum": 1}, 1.0),
        ({"type": ["null", "string"]}, None),
        ({"const": {"a": 1}}, {"a": 1}),
        ({"oneOf": [{"type": "boolean"}, {"type": "string"}]}, True),
        (
            {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["a"]}]},
            {"a": 1},
        ),
        (
            {"type": "array", "items": {"type": "integer"}, "minItems": 3, "uniqueItems": True},
            [1, 2, 3],
        ),
        ({"prefixItems": [{"type": "boolean"}, {"type": "null"}], "type": "array"}, [True, None]),
    ],
)
def test_schema_examples(schema: dict[str, Any], expected: Any) -> None:
    value = c.schema_instance(schema)
    assert value == expected
    jsonschema.validate(value, schema)


def test_recursive_schema_terminates() -> None:
    schema = {
        "$ref": "#/definitions/node",
        "definitions": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/definitions/node"}},
                },
                "required": ["name"],
            }
        },
    }
    value = c.schema_instance(schema)
    jsonschema.validate(value, schema)
    assert value["children"][0]["name"] == "example"


# ----------------------------------------------------------------------------- properties

names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


@st.composite
def integer_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    lo = draw(st.none() | st.integers(-100, 100))
    if lo is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = lo
        if draw(st.booleans()):
            schema["maximum"] = lo + draw(st.integers(2, 50))
        elif draw(st.booleans()):
            schema["multipleOf"] = draw(st.integers(1, 7))
    elif draw(st.booleans()):
        schema["maximum"] = draw(st.integers(-100, 100))
    return schema


@st.composite
def number_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    lo = draw(st.none() | st.floats(-1e6, 1e6))
    hi = draw(st.none() | st.floats(-1e6, 1e6))
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi if lo is None else lo + abs(hi - lo) + 1
    return schema


@st.composite
def string_schema(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {
            "type": "string",
            "enum": draw(st.lists(names, min_size=1, max_size=4, unique=True)),
        }
    lo = draw(st.integers(0, 12))
    schema: dict[str, Any] = {"type": "string", "minLength": lo}
    if draw(st.booleans()):
        schema["maxLength"] = lo + draw(st.integers(0, 10))
    return schema


leaves = (
    integer_schema()
    | number_schema()
    | string_schema()
    | st.just({"type": "boolean"})
    | st.just({"type": "null"})
)


def containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def object_schema(draw: st.DrawFn) -> dict[str, Any]:
        props = draw(st.dictionaries(names, children, max_size=4))
        required = [k for k in props if draw(st.booleans())]
        return {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }

    @st.composite
    def array_schema(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(st.integers(0, 3))
        schema: dict[str, Any] = {"type": "array", "items": draw(children), "minItems": lo}
        if draw(st.booleans()):
            schema["maxItems"] = lo + draw(st.integers(0, 2))
        return schema

    @st.composite
    def unique_array(draw: st.DrawFn) -> dict[str, Any]:
        items = draw(st.just({"type": "string"}) | st.just({"type": "integer", "minimum": 0}))
        return {
            "type": "array",
            "items": items,
            "uniqueItems": True,
            "minItems": draw(st.integers(0, 5)),
        }

    any_of = st.lists(children, min_size=1, max_size=3).map(lambda s: {"anyOf": s})
    return object_schema() | array_schema() | unique_array() | any_of


schemas = st.recursive(leaves, containers, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(schemas)
def test_generated_instances_validate(schema: dict[str, Any]) -> None:
    value = c.schema_instance(schema)
    jsonschema.Draft202012Validator(schema).validate(value)


@settings(max_examples=100, deadline=None)
@given(schemas, names)
def test_generated_instances_validate_through_defs(schema: dict[str, Any], name: str) -> None:
    wrapped = {"$defs": {name: schema}, "$ref": f"#/$defs/{name}"}
    jsonschema.Draft202012Validator(wrapped).validate(c.schema_instance(wrapped))


seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
texts = st.text(max_size=20)
counts = st.integers(0, 1000)
faults = st.one_of(
    st.builds(
        Fault.status,
        st.integers(400, 599),
        retry_after=st.none() | texts,
        retry_after_ms=st.none() | counts,
        error_type=st.none() | texts,
        message=st.none() | texts,
    ),
    st.builds(Fault.hang, seconds),
    st.just(Fault.reset()),
    st.builds(Fault.cut_stream, counts),
    st.builds(Fault.stall, counts, seconds),
    st.just(Fault.malformed_json()),
    st.builds(Fault.malformed_body, st.integers(400, 599)),
    st.just(Fault.context_length()),
    st.builds(Fault.slow_first_token, seconds),
    st.builds(Fault.stream_error, counts, st.none() | texts, st.none() | texts),
)


@settings(max_examples=300, deadline=None)
@given(faults)
def test_fault_spec_round_trip(fault: Fault) -> None:
    assert Fault.parse(fault.spec) == fault


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("429", Fault.status(429)),
        ("429;retry-after=2", Fault.status(429, retry_after="2")),
        ("503;retry-after-ms=1500", Fault.status(503, retry_after_ms=1500)),
        ("529", Fault.status(529)),
        ("hang", Fault.hang()),
        ("hang;seconds=2", Fault.hang(2)),
        ("reset", Fault.reset()),
        ("cut;after=3", Fault.cut_stream(3)),
        ("stall;after=2;seconds=5", Fault.stall(2, 5)),
        ("malformed", Fault.malformed_json()),
        ("malformed-body", Fault.malformed_body()),
        ("context-length", Fault.context_length()),
        (" Stall ; seconds=1 ", Fault.stall(seconds=1)),
    ],
)
def test_documented_specs(spec: str, fault: Fault) -> None:
    assert Fault.parse(spec) == fault


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("explode", "unknown fault 'explode'"),
        ("hang;after=2", "does not take 'after'"),
        ("cut;after=x", "bad fault spec"),
        ("600", "400-599"),
        ("slow", "needs seconds"),
        ("hang;seconds", "key=value"),
        ("hang;seconds=-1", ">= 0"),
    ],
)
def test_bad_specs(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Fault.parse(spec)


def test_fault_names() -> None:
    assert Fault.status(503).name == "503"
    assert Fault.cut_stream().name == "cut"
    assert Fault.stall().spec == "stall"
    assert Fault.stall(2, 5).spec == "stall;after=2;seconds=5"
