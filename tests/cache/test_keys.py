"""Cache keys: one output-affecting difference always changes the key, nothing else does
(gateways F15); keys stay short however large the request (F16); no secret in a key."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aiport._cache import KEY_PREFIX, completion_key, embedding_keys, scope_digest
from aiport._cache._keys import UncacheableRequestError, canonical_completion
from aiport._types import (
    ImagePart,
    JsonSchemaFormat,
    Message,
    ModelCompletionOptions,
    ModelEmbeddingOptions,
    NamedToolChoice,
    TextPart,
    Tool,
)
from tests.conftest import OPENAI_KEY

KEY_RE = re.compile(r"aiport:c:v1:[0-9a-f]{32}")

texts = st.text(min_size=1, max_size=12)
names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
messages = st.lists(
    st.builds(
        lambda role, text: {"role": role, "content": text},
        st.sampled_from(["system", "user", "assistant"]),
        texts,
    ),
    min_size=1,
    max_size=4,
)
tools = st.lists(
    st.builds(
        lambda name, description, prop: Tool(
            name=name,
            description=description,
            parameters={"type": "object", "properties": {prop: {"type": "string"}}},
        ),
        names,
        st.text(max_size=10),
        texts,
    ),
    min_size=1,
    max_size=3,
)

#: A strategy per output-affecting field of ModelCompletionOptions.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": names,
    "messages": messages,
    "temperature": st.none() | st.floats(0, 2),
    "top_p": st.none() | st.floats(0, 1),
    "max_tokens": st.none() | st.integers(1, 1_000_000),
    "stop": st.none() | st.lists(texts, max_size=3),
    "seed": st.none() | st.integers(-(2**63), 2**63 - 1),
    "tools": st.none() | tools,
    "tool_choice": st.none()
    | st.sampled_from(["auto", "none", "required"])
    | st.builds(NamedToolChoice, name=names),
    "parallel_tool_calls": st.none() | st.booleans(),
    "response_format": st.none()
    | st.sampled_from(["text", "json"])
    | st.builds(
        lambda name, prop: JsonSchemaFormat(
            name=name, schema_={"type": "object", "properties": {prop: {"type": "integer"}}}
        ),
        names,
        texts,
    ),
    "metadata": st.none() | st.dictionaries(texts, texts, max_size=3),
    "provider_options": st.dictionaries(texts, json_values, max_size=3),
}


def test_every_field_but_timeout_is_covered() -> None:
    """A field added to the options must be added here (and is keyed automatically)."""
    assert set(ModelCompletionOptions.model_fields) - {"timeout"} == set(FIELDS)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), base=st.fixed_dictionaries(FIELDS))
def test_one_different_field_never_shares_a_key(data: st.DataObject, base: dict[str, Any]) -> None:
    field = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    changed = {**base, field: data.draw(FIELDS[field], label="new value")}
    first = ModelCompletionOptions(**base)
    second = ModelCompletionOptions(**changed)
    assume(first != second)
    assert completion_key(first, "scope") != completion_key(second, "scope")


@settings(max_examples=100, deadline=None)
@given(base=st.fixed_dictionaries(FIELDS), seed=st.integers(0, 1000), timeout=st.floats(0.1, 99))
def test_identical_requests_always_share_a_key(
    base: dict[str, Any], seed: int, timeout: float
) -> None:
    """Rebuilt from scratch, mappings in another order, another timeout: one key."""
    rng = random.Random(seed)

    def shuffled(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    first = ModelCompletionOptions(**base)
    again = ModelCompletionOptions(
        **{k: shuffled(v) if k in ("provider_options", "metadata") else v for k, v in base.items()},
        timeout=timeout,
    )
    assert completion_key(first, "scope") == completion_key(again, "scope")
    assert KEY_RE.fullmatch(completion_key(first, "scope"))


@settings(max_examples=50, deadline=None)
@given(base=st.fixed_dictionaries(FIELDS), scopes=st.lists(texts, min_size=2, max_size=2))
def test_the_scope_is_part_of_the_key(base: dict[str, Any], scopes: list[str]) -> None:
    assume(scopes[0] != scopes[1])
    options = ModelCompletionOptions(**base)
    assert completion_key(options, scopes[0]) != completion_key(options, scopes[1])


def test_a_500_message_request_makes_a_short_key() -> None:
    history = [
        {"role": "user" if i % 2 else "assistant", "content": "word " * 200} for i in range(500)
    ]
    options = ModelCompletionOptions(model="gpt-4o", messages=history)
    key = completion_key(options, scope_digest("openai", OPENAI_KEY))
    assert len(key.encode()) <= 64
    assert key.startswith(KEY_PREFIX)
    assert KEY_RE.fullmatch(key)


def test_string_content_and_one_text_part_are_one_request() -> None:
    as_string = ModelCompletionOptions(model="m", messages=[Message.user("hello")])
    as_parts = ModelCompletionOptions(
        model="m", messages=[Message(role="user", content=[TextPart(text="hello")])]
    )
    assert completion_key(as_string, "s") == completion_key(as_parts, "s")


def test_inline_images_enter_the_key_by_digest() -> None:
    def with_image(data: bytes) -> ModelCompletionOptions:
        image = ImagePart(data=data, media_type="image/png")
        return ModelCompletionOptions(model="m", messages=[Message.user("look", image)])

    big = bytes(range(256)) * 4000  # 1 MB, not valid UTF-8
    document = canonical_completion(with_image(big), "s")
    assert len(document) < 1000
    assert completion_key(with_image(big), "s") != completion_key(with_image(big + b"x"), "s")


def test_a_value_without_json_form_is_uncacheable() -> None:
    options = ModelCompletionOptions(model="m", messages="hi", provider_options={"x": object()})
    with pytest.raises(UncacheableRequestError):
        completion_key(options, "s")
    mixed = ModelCompletionOptions(model="m", messages="hi", provider_options={"x": {1: 1, "a": 2}})
    with pytest.raises(UncacheableRequestError):
        completion_key(mixed, "s")


def test_sets_enter_the_key_whatever_their_order() -> None:
    def with_set(items: frozenset[str]) -> ModelCompletionOptions:
        return ModelCompletionOptions(model="m", messages="hi", provider_options={"tags": items})

    assert completion_key(with_set(frozenset("abc")), "s") == completion_key(
        with_set(frozenset("cba")), "s"
    )


EMBED_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": names,
    "dimensions": st.none() | st.integers(1, 4096),
    "provider_options": st.dictionaries(texts, json_values, max_size=2),
}


@settings(max_examples=100, deadline=None)
@given(data=st.data(), base=st.fixed_dictionaries(EMBED_FIELDS), text=texts)
def test_embedding_keys_differ_by_any_field_and_text(
    data: st.DataObject, base: dict[str, Any], text: str
) -> None:
    field = data.draw(st.sampled_from([*sorted(EMBED_FIELDS), "text"]))
    if field == "text":
        other_text = data.draw(texts)
        assume(other_text != text)
        first = ModelEmbeddingOptions(input=[text], **base)
        second = ModelEmbeddingOptions(input=[other_text], **base)
    else:
        first = ModelEmbeddingOptions(input=[text], **base)
        second = ModelEmbeddingOptions(
            input=[text], **{**base, field: data.draw(EMBED_FIELDS[field])}
        )
        assume(first != second)
    assert embedding_keys(first, "s") != embedding_keys(second, "s")
    # One text, one key, wherever it stands in the input; the timeout is not part of it.
    batch = ModelEmbeddingOptions(input=["other", text], timeout=5, **base)
    assert embedding_keys(batch, "s")[1] == embedding_keys(first, "s")[0]
    assert embedding_keys(first, "s") != embedding_keys(first, "s2")


def test_embedding_keys_do_not_confuse_text_boundaries() -> None:
    options = ModelEmbeddingOptions(model="m", input=['a"', "a", '"a'])
    assert len(set(embedding_keys(options, "s"))) == 3


def test_scope_digest_hides_the_secret_and_separates_parts() -> None:
    digest = scope_digest("openai", OPENAI_KEY)
    assert OPENAI_KEY not in digest
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert scope_digest("ab", "c") != scope_digest("a", "bc")
    options = ModelCompletionOptions(model="m", messages=OPENAI_KEY)  # even in the prompt
    assert OPENAI_KEY not in completion_key(options, digest)
