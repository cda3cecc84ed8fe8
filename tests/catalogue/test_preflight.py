"""Preflight checks: rejected before any request, with a clear typed error; never a guess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aiport import (
    CapabilityNotSupportedError,
    ContextLengthExceededError,
    ContextWindowExceededError,
    ImagePart,
    Message,
    ProviderCapabilityError,
    ProviderService,
    Tool,
)
from aiport._catalogue._preflight import MAX_CHARS_PER_TOKEN, min_tokens
from aiport.testing import Emulator
from tests.catalogue.conftest import config_file

# A small window and output limit, so that a test prompt can exceed them.
SMALL = """
[providers.openai.models.small]
name = "gpt-4o-mini"
context_window = 100
max_output_tokens = 50

[providers.openai.models.big]
name = "gpt-4.1-mini"

[providers.openai.models."mystery"]
input_price_per_million = 1.0
output_price_per_million = 1.0
"""

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
async def service(tmp_path: Path, emulator: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(config_file(tmp_path, emulator, SMALL), env={}) as svc:
        yield svc


def _long_prompt(tokens: int) -> str:
    """Text whose certain token count is just over ``tokens``: words of 8 letters in which
    no letter follows itself (a run of one character would count once)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    count = tokens * MAX_CHARS_PER_TOKEN // 9 + 2
    words = ("".join(letters[(i + 3 * k) % 26] for k in range(8)) for i in range(count))
    text = " ".join(words)
    assert min_tokens([text]) > tokens
    return text


async def test_a_prompt_over_the_window_is_rejected_before_sending(
    service: ProviderService, emulator: Emulator
) -> None:
    with pytest.raises(ContextWindowExceededError) as caught:
        await service.complete(model="openai:small", messages=_long_prompt(101))
    error = caught.value
    assert isinstance(error, ContextLengthExceededError)  # handled like the provider's own
    assert error.reason == "context_window_exceeded"
    assert error.provider == "openai"
    assert error.status_code is None and error.retryable is False
    assert "100-token context window" in error.message
    assert "nothing was sent" in error.message
    assert emulator.count() == 0


async def test_a_prompt_that_fits_is_sent(service: ProviderService, emulator: Emulator) -> None:
    reply = await service.complete(model="openai:small", messages=_long_prompt(90))
    assert reply.text
    assert emulator.count() == 1


async def test_max_tokens_over_the_output_limit(
    service: ProviderService, emulator: Emulator
) -> None:
    with pytest.raises(ContextWindowExceededError, match="max_tokens=51 exceeds the 50-token"):
        await service.complete(model="openai:small", messages="Hi", max_tokens=51)
    await service.complete(model="openai:small", messages="Hi", max_tokens=50)
    assert emulator.count() == 1


async def test_streams_are_checked_before_the_first_request(
    service: ProviderService, emulator: Emulator
) -> None:
    with pytest.raises(ContextWindowExceededError):
        async for _ in service.stream(model="openai:small", messages=_long_prompt(200)):
            pass
    assert emulator.count() == 0


@pytest.mark.parametrize(
    ("model", "call", "capability"),
    [
        (
            "openai:gpt-image-1",
            {"messages": "Hello"},
            "chat",
        ),
        (
            "openai:text-embedding-3-small",
            {"messages": "Hello"},
            "chat",
        ),
        (
            "openai:gpt-4o-mini",
            {"messages": "Hello", "tools": [Tool(name="lookup")]},
            None,  # gpt-4o-mini takes tools: sent
        ),
    ],
)
async def test_a_completion_needs_a_chat_model(
    service: ProviderService,
    emulator: Emulator,
    model: str,
    call: dict[str, Any],
    capability: str | None,
) -> None:
    if capability is None:
        await service.complete(model=model, **call)
        assert emulator.count() == 1
        return
    with pytest.raises(CapabilityNotSupportedError) as caught:
        await service.complete(model=model, **call)
    assert caught.value.capability == capability
    assert isinstance(caught.value, ProviderCapabilityError)
    assert caught.value.reason == "capability_not_supported"
    assert emulator.count() == 0


CHAT_ONLY = """
[providers.openai.models.plain]
name = "plain-model"
capabilities = ["chat"]
context_window = 1000
"""


@pytest.fixture
async def plain(tmp_path: Path, emulator: Emulator) -> AsyncIterator[ProviderService]:
    async with ProviderService(config_file(tmp_path, emulator, CHAT_ONLY), env={}) as svc:
        yield svc


@pytest.mark.parametrize(
    ("call", "capability"),
    [
        ({"tools": [Tool(name="lookup")]}, "tools"),
        ({"response_format": "json"}, "json_output"),
        ({"response_format": {"type": "json_object"}}, "json_output"),
        (
            {
                "messages": [
                    Message.user("What is this?", ImagePart(data=PNG, media_type="image/png"))
                ]
            },
            "vision",
        ),
        (
            {
                "messages": [
                    Message.user("Look"),
                    Message.assistant(tool_calls=[]),
                    {
                        "role": "tool",
                        "tool_call_id": "call_1",
                        "content": [{"type": "image_url", "image_url": "https://x/y.png"}],
                    },
                ]
            },
            "vision",
        ),
    ],
)
async def test_missing_capabilities_are_rejected(
    plain: ProviderService, emulator: Emulator, call: dict[str, Any], capability: str
) -> None:
    arguments = {"messages": "Hello", **call}
    with pytest.raises(CapabilityNotSupportedError) as caught:
        await plain.complete(model="openai:plain", **arguments)
    assert caught.value.capability == capability
    assert "model 'plain' " in caught.value.message
    assert emulator.count() == 0


async def test_streaming_embeddings_and_images_need_their_capability(
    plain: ProviderService, emulator: Emulator
) -> None:
    with pytest.raises(CapabilityNotSupportedError, match="does not stream") as caught:
        async for _ in plain.stream(model="openai:plain", messages="Hi"):
            pass
    assert caught.value.capability == "streaming"
    with pytest.raises(CapabilityNotSupportedError, match="does not embed"):
        await plain.embed(model="openai:plain", input="text")
    with pytest.raises(CapabilityNotSupportedError, match="does not generate images"):
        await plain.generate_image(model="openai:plain", prompt="a cat")
    with pytest.raises(CapabilityNotSupportedError, match="does not embed"):
        await plain.embed(model="openai:gpt-4o", input="text")
    with pytest.raises(CapabilityNotSupportedError, match="does not generate images"):
        await plain.generate_image(model="openai:gpt-4o", prompt="a cat")
    assert emulator.count() == 0
    # Plain text with this model goes through.
    await plain.complete(model="openai:plain", messages="Hi", response_format="text")
    assert emulator.count() == 1


async def test_embedding_inputs_are_checked_one_by_one(
    service: ProviderService, emulator: Emulator
) -> None:
    too_long = _long_prompt(8_200)
    with pytest.raises(ContextWindowExceededError, match="input 1 needs at least"):
        await service.embed(model="openai:text-embedding-3-small", input=["short", too_long])
    assert emulator.count() == 0
    response = await service.embed(model="openai:text-embedding-3-small", input=["a", "b"])
    assert len(response.embeddings) == 2


async def test_unknown_models_are_never_checked(
    service: ProviderService, emulator: Emulator
) -> None:
    # Neither in the catalogue nor in the config: passed through untouched.
    await service.complete(
        model="openai:some-new-model", messages=_long_prompt(500), max_tokens=100_000
    )
    # Known only by its prices: capabilities were never declared, so tools are not refused.
    await service.complete(model="openai:mystery", messages="Hello", tools=[Tool(name="lookup")])
    assert emulator.count() == 2


async def test_checks_can_be_turned_off_per_call(
    service: ProviderService, emulator: Emulator
) -> None:
    await service.complete(model="openai:small", messages="Hi", max_tokens=51, preflight=False)
    assert emulator.count() == 1
    with pytest.raises(ContextWindowExceededError):
        await service.complete(model="openai:small", messages="Hi", max_tokens=51, preflight=True)
    assert emulator.count() == 1


@pytest.mark.parametrize("where", ["top", "provider"])
async def test_checks_can_be_turned_off_in_the_config(
    tmp_path: Path, emulator: Emulator, where: str
) -> None:
    setting = (
        "preflight_checks = false\n"
        if where == "top"
        else "[providers.openai.models.x]\n[providers.openai]\npreflight_checks = false\n"
    )
    text = config_file(tmp_path, emulator, SMALL).read_text()
    if where == "top":
        text = setting + text
    else:
        text = text.replace(
            "[providers.openai]\n", "[providers.openai]\npreflight_checks = false\n", 1
        )
    path = tmp_path / "off.toml"
    path.write_text(text)
    async with ProviderService(path, env={}) as service:
        await service.complete(model="openai:small", messages="Hi", max_tokens=51)
        # ...and a call can still turn them on.
        with pytest.raises(ContextWindowExceededError):
            await service.complete(
                model="openai:small", messages="Hi", max_tokens=51, preflight=True
            )
    assert emulator.count() == 1


async def test_a_preflight_rejection_falls_back_to_a_larger_window(
    tmp_path: Path, emulator: Emulator
) -> None:
    text = SMALL.replace(
        "max_output_tokens = 50\n",
        'max_output_tokens = 50\nfallbacks = ["openai:big"]\n',
    )
    async with ProviderService(config_file(tmp_path, emulator, text), env={}) as service:
        reply = await service.complete(model="openai:small", messages=_long_prompt(200))
    assert reply.model.startswith("gpt-4.1-mini")
    assert [a.outcome for a in reply.attempts][-1] == "ok"
    assert emulator.count() == 1  # only the fallback was sent


def test_min_tokens_counts_only_what_is_certainly_tokens() -> None:
    assert min_tokens([]) == 0
    assert min_tokens(["a"]) == 1
    assert min_tokens(["x" * 10_000]) == 1  # a run of one character may be one token
    assert min_tokens([" " * 500 + "abc"]) == 1
    assert min_tokens(["ab" * 16]) == 2  # 32 characters, no runs
    assert min_tokens(["abcdefgh", "ijklmnop"]) == 1  # pieces are counted together


async def test_a_snapshot_found_by_its_date_is_priced_but_not_checked(
    service: ProviderService, emulator: Emulator
) -> None:
    # gpt-4o-mini allows 16,384 output tokens; its dated snapshots might not match it.
    reply = await service.complete(
        model="openai:gpt-4o-mini-2024-07-18", messages="Hi", max_tokens=100_000
    )
    assert emulator.count() == 1
    row = service.known_models("openai")["gpt-4o-mini"]
    assert reply.cost == pytest.approx(row.cost(reply.usage))
    # An alias the catalogue lists is the model itself: checked.
    with pytest.raises(ContextWindowExceededError):
        await service.complete(
            model="anthropic:claude-haiku-4-5-20251001", messages="Hi", max_tokens=64_001
        )
    assert emulator.count() == 1


def test_preflight_errors_keep_their_context_through_pickle() -> None:
    import pickle

    error = CapabilityNotSupportedError(
        "model 'x' does not take tools", provider="p", model="x", capability="tools"
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is CapabilityNotSupportedError
    assert (copy.capability, copy.provider, copy.reason) == (
        "tools",
        "p",
        "capability_not_supported",
    )
    window = pickle.loads(pickle.dumps(ContextWindowExceededError("too long", model="m")))
    assert window.reason == "context_window_exceeded"
    assert window.code == "PROVIDER_API_ERROR"
