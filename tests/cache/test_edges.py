"""Edge cases of the layer, against a scripted provider (no HTTP needed to reach them)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

import aiport._cache
from aiport._cache import MemoryCache
from aiport._errors import MalformedResponseError
from aiport._provider import ModelProvider
from aiport._types import (
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
)
from aiport.layers._cache import CacheLayer


class Scripted(ModelProvider):
    """Answers "ok" (or what ``finish`` says) and counts calls; embeds with 1-d vectors."""

    name = "scripted"

    def __init__(self, finish: str = "stop", drop_vector: bool = False) -> None:
        self.finish = finish
        self.drop_vector = drop_vector
        self.calls = 0

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return {}

    def _response(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        return ModelCompletionResponse(
            id=f"r{self.calls}",
            model=options.model,
            provider=self.name,
            message=Message.assistant("ok"),
            finish_reason=self.finish,
        )

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        self.calls += 1
        return self._response(options)

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        yield StreamFinishEvent(response=self._response(options))

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        self.calls += 1
        vectors = [[float(len(text))] for text in options.input]
        if self.drop_vector:
            vectors.pop()
        return ModelEmbeddingResponse(model=options.model, provider=self.name, embeddings=vectors)


def layer_of(provider: ModelProvider, backend: Any = None) -> CacheLayer:
    return CacheLayer(
        provider,
        backend=backend or MemoryCache(),
        ttl=60,
        enabled=lambda _model: True,
        scope="s",
    )


ODD = ModelCompletionOptions(model="m", messages="hi", provider_options={"x": object()})


async def test_a_request_without_canonical_form_is_not_cached() -> None:
    provider = Scripted()
    layer = layer_of(provider)
    await layer.complete(ODD)
    await layer.complete(ODD)
    async for _ in layer.stream(ODD):
        pass
    odd_embed = ModelEmbeddingOptions(model="m", input=["a"], provider_options={"x": object()})
    await layer.embed(odd_embed)
    await layer.embed(odd_embed)
    assert provider.calls == 5
    assert layer.stats.skipped == 5
    assert layer.stats.writes == 0


async def test_error_finishes_are_not_stored() -> None:
    provider = Scripted(finish="error")
    layer = layer_of(provider)
    options = ModelCompletionOptions(model="m", messages="hi")
    await layer.complete(options)
    await layer.complete(options)
    async for _ in layer.stream(options):
        pass
    assert provider.calls == 3


async def test_a_wrong_vector_count_is_a_malformed_response() -> None:
    layer = layer_of(Scripted(drop_vector=True))
    with pytest.raises(MalformedResponseError, match="1 vectors for 2 texts"):
        await layer.embed(ModelEmbeddingOptions(model="m", input=["a", "bb"]))


class _NoGetMany(MemoryCache):
    async def get_many(self, keys: Any) -> list[bytes | None]:
        raise OSError("gone")


async def test_a_failed_batch_read_embeds_everything(caplog: pytest.LogCaptureFixture) -> None:
    provider = Scripted()
    layer = layer_of(provider, _NoGetMany())
    with caplog.at_level(logging.DEBUG, logger="aiport"):
        result = await layer.embed(ModelEmbeddingOptions(model="m", input=["a", "bb"]))
        await layer.embed(ModelEmbeddingOptions(model="m", input=["a", "bb"]))
    assert result.embeddings == [[1.0], [2.0]]
    assert provider.calls == 2
    assert layer.stats.errors == 2
    assert any("aiport cache embed" in r.getMessage() for r in caplog.records)


async def test_partial_hits_merge_in_input_order() -> None:
    provider = Scripted()
    layer = layer_of(provider)
    await layer.embed(ModelEmbeddingOptions(model="m", input=["bb"]))
    result = await layer.embed(ModelEmbeddingOptions(model="m", input=["a", "bb", "ccc"]))
    assert result.embeddings == [[1.0], [2.0], [3.0]]
    assert provider.calls == 2


async def test_hits_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    layer = layer_of(Scripted())
    options = ModelCompletionOptions(model="m", messages="hi")
    with caplog.at_level(logging.DEBUG, logger="aiport"):
        await layer.complete(options)
        await layer.complete(options)
    outcomes = [r.getMessage().split(":")[0] for r in caplog.records]
    assert outcomes == ["aiport cache miss", "aiport cache hit"]
    assert all("hi" not in r.getMessage().split()[-1] for r in caplog.records)


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        CacheLayer(Scripted(), backend=MemoryCache(), ttl=0, enabled=bool, scope="s")


def test_redis_cache_is_exported_lazily() -> None:
    from aiport._cache._redis import RedisCache

    assert aiport._cache.RedisCache is RedisCache
    with pytest.raises(AttributeError):
        _ = aiport._cache.Nothing


class _OddRaw(Scripted):
    def _response(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        response = super()._response(options)
        return response.model_copy(update={"raw": {"x": object()}})


async def test_a_response_without_json_form_is_served_but_not_stored() -> None:
    provider = _OddRaw()
    layer = layer_of(provider)
    options = ModelCompletionOptions(model="m", messages="hi")
    assert (await layer.complete(options)).text == "ok"
    await layer.complete(options)
    assert provider.calls == 2
    assert layer.stats.writes == 0
