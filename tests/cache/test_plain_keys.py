"""The direct key document of plain requests is byte for byte the general one.

``canonical_completion`` writes the document of a request made of text messages only
directly (docs/decisions.md 18) instead of dumping the options and encoding them. Keys
stored by earlier versions and keys of requests that take the general path must stay the
same, so both writers are compared here on any text (quotes, escapes, control
characters, non-ASCII), any role and name, and any scope.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiport._cache._keys import _general_completion, _plain_completion, completion_key
from aiport._types import ModelCompletionOptions, TextPart

_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ['"', "\\", "\n\t\x00\x1f", "\u2028\u2029", "ünï 😀", "</script>", ""]
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": _TEXT},
    optional={"name": _TEXT},
)


@given(
    messages=st.lists(_MESSAGE, min_size=1, max_size=5),
    model=_TEXT.filter(bool),
    scope=_TEXT,
    timeout=st.none() | st.floats(0.1, 60),
)
def test_plain_requests_are_written_as_the_general_path_writes_them(
    messages: list[dict[str, Any]], model: str, scope: str, timeout: float | None
) -> None:
    options = ModelCompletionOptions(model=model, messages=messages, timeout=timeout)
    plain = _plain_completion(options, scope)
    assert plain is not None
    assert plain.encode() == _general_completion(options, scope)


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": 0.0},
        {"top_p": 1.0},
        {"max_tokens": 5},
        {"stop": []},
        {"seed": 0},
        {"tools": [{"name": "f", "parameters": {"type": "object"}}]},
        {"tool_choice": "auto"},
        {"parallel_tool_calls": False},
        {"response_format": "text"},
        {"metadata": {}},
        {"provider_options": {"logprobs": True}},
    ],
)
def test_any_other_setting_takes_the_general_path(extra: dict[str, Any]) -> None:
    options = ModelCompletionOptions(model="gpt-4o", messages="hi", **extra)
    assert _plain_completion(options, "s") is None
    plain = ModelCompletionOptions(model="gpt-4o", messages="hi")
    assert completion_key(options, "s") != completion_key(plain, "s")


def test_a_message_with_parts_takes_the_general_path_and_still_shares_its_key() -> None:
    parts = ModelCompletionOptions(
        model="gpt-4o", messages=[{"role": "user", "content": [TextPart(text="hi")]}]
    )
    text = ModelCompletionOptions(model="gpt-4o", messages="hi")
    assert _plain_completion(parts, "s") is None
    assert completion_key(parts, "s") == completion_key(text, "s")
