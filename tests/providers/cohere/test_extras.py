"""Reaching a provider extra (``CohereProvider.rerank``) from the service: on the adapter,
typed with ``unwrap(CohereProvider)``; a layer asked for it says so instead of forwarding."""

from __future__ import annotations

import pytest

from aiport import ProviderService
from aiport.providers.cohere import CohereProvider
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator

DOCUMENTS = ["Berlin is the capital of Germany.", "Paris is the capital of France."]


async def test_rerank_on_the_typed_adapter(service: ProviderService, emu: Emulator) -> None:
    cohere = service.get_provider("cohere").unwrap(CohereProvider)
    assert isinstance(cohere, CohereProvider)
    ranked = await cohere.rerank("capital of France", DOCUMENTS, top_n=1)
    assert [(r.index, r.document) for r in ranked.results] == [(1, DOCUMENTS[1])]
    assert ranked.provider == "cohere"
    assert emu.requests[-1].path == "/v2/rerank"


async def test_a_layer_asked_for_an_extra_says_how_to_reach_it(service: ProviderService) -> None:
    layered = service.get_provider("cohere")
    with pytest.raises(AttributeError) as caught:
        layered.rerank  # type: ignore[attr-defined]  # noqa: B018
    message = str(caught.value)
    assert "'rerank' is an extra of the CohereProvider adapter of provider 'cohere'" in message
    assert "provider.unwrap(CohereProvider).rerank" in message
    assert "retries, rate limits, the cache and hooks do not apply" in message
    assert caught.value.name == "rerank"
    assert not hasattr(layered, "rerank")
    # getattr with a default still works (feature detection stays possible).
    assert getattr(layered, "rerank", None) is None


async def test_misspelt_attributes_get_a_suggestion(service: ProviderService) -> None:
    layered = service.get_provider("cohere")
    with pytest.raises(AttributeError, match=r"did you mean 'rerank', an extra of the Cohere"):
        layered.rerenk  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"did you mean 'complete'\?$"):
        layered.compelte  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(AttributeError, match=r"object has no attribute 'zzz_nothing'$"):
        layered.zzz_nothing  # type: ignore[attr-defined]  # noqa: B018


async def test_unwrap_checks_the_adapter_kind(service: ProviderService) -> None:
    layered = service.get_provider("cohere")
    with pytest.raises(TypeError, match="provider 'cohere' is CohereProvider, not OpenAIProvider"):
        layered.unwrap(OpenAIProvider)
    adapter = layered.unwrap()
    # A provider without layers is its own adapter.
    assert adapter.unwrap() is adapter
    assert adapter.unwrap(CohereProvider) is adapter
