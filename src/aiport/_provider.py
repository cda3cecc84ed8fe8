"""The provider interface, and layers: providers that wrap a provider.

Every adapter implements ``ModelProvider``. Cross-cutting concerns (hooks, retries,
rate limits, caching, fallbacks...) are ``ProviderLayer`` subclasses: they are
providers themselves and delegate to the provider they wrap, so a pipeline is built by
nesting and no adapter knows about any of them.

A layer forwards the unified interface only. An adapter's extras (``CohereProvider.rerank``)
are reached on the adapter, ``provider.unwrap(CohereProvider)``, never through a layer:
forwarding unknown attributes would let an extra silently skip the layers the caller sees
(retries, rate limits, the cache, hooks), and would type every misspelt attribute as
``Any``. A layer asked for one raises an ``AttributeError`` that says how to reach it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from aiport._errors import ProviderCapabilityError

if TYPE_CHECKING:
    from aiport._batch import BatchItemResult, BatchJob
    from aiport._types import (
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        ProviderModel,
        StreamEvent,
    )

__all__ = ["LayerFactory", "ModelProvider", "ProviderLayer", "wrap"]

AdapterT = TypeVar("AdapterT", bound="ModelProvider")


class ModelProvider(ABC):
    """One model provider behind the unified interface.

    ``stream`` is an async generator of ``StreamEvent``; its last event is a
    ``StreamFinishEvent`` carrying the complete response. An operation the provider
    lacks raises ``ProviderCapabilityError``.
    """

    #: The provider's name as configured (``"openai"``, ``"my-vllm"``).
    name: str
    #: A human description.
    description: str = ""
    #: Whether the provider continues a final assistant message (an answer "prefill").
    #: Stream recovery continues a broken stream that way, instead of restarting it.
    supports_prefill: bool = False

    @property
    @abstractmethod
    def models(self) -> Mapping[str, ProviderModel]:
        """The models known for this provider, by id (any other id is still passed through)."""

    @abstractmethod
    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Run a completion and return the whole response."""

    @abstractmethod
    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Run a completion as a stream of events, ending with the complete response."""

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts; vectors come back in input order."""
        raise ProviderCapabilityError(
            f"provider {self.name!r} does not offer embeddings",
            provider=self.name,
            model=options.model,
        )

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        """Generate images from a prompt."""
        raise ProviderCapabilityError(
            f"provider {self.name!r} does not offer image generation",
            provider=self.name,
            model=options.model,
        )

    async def submit_batch(
        self, requests: Sequence[ModelCompletionOptions], custom_ids: Sequence[str]
    ) -> BatchJob:
        """Submit completions as one batch of the provider's Batch API (one custom id each)."""
        raise self._no_batches(requests[0].model if requests else None)

    async def get_batch(self, batch_id: str) -> BatchJob:
        """The current state of a batch."""
        raise self._no_batches(None)

    async def batch_results(self, batch_id: str) -> list[BatchItemResult]:
        """The results of a finished batch, in input order, an error for each failed request."""
        raise self._no_batches(None)

    async def cancel_batch(self, batch_id: str) -> BatchJob:
        """Ask the provider to stop a batch."""
        raise self._no_batches(None)

    def _no_batches(self, model: str | None) -> ProviderCapabilityError:
        return ProviderCapabilityError(
            f"provider {self.name!r} does not offer a batch API", provider=self.name, model=model
        )

    async def check(self) -> None:  # noqa: B027  (no-op by default, on purpose)
        """Raise if the provider cannot be used as configured (credentials unresolved...).

        Makes no network call. ``ProviderService.validate_provider`` relies on it.
        """

    async def aclose(self) -> None:  # noqa: B027  (no-op by default, on purpose)
        """Release what the provider owns (connections are owned by the service)."""

    @overload
    def unwrap(self) -> ModelProvider: ...

    @overload
    def unwrap(self, kind: type[AdapterT]) -> AdapterT: ...

    def unwrap(self, kind: type[ModelProvider] | None = None) -> ModelProvider:
        """The adapter itself: the provider under every layer (a provider that wraps none
        is its own adapter).

        Given ``kind``, an adapter class, the adapter is checked to be one and typed as
        one: that is how an adapter's extras are reached::

            cohere = service.get_provider("cohere").unwrap(CohereProvider)
            ranked = await cohere.rerank("capital of France?", documents, top_n=3)

        Calls made on the adapter go below the layers: retries, rate limits, the response
        cache, hooks and preflight checks do not apply to them.

        Raises:
            TypeError: the adapter is not a ``kind``.
        """
        adapter: ModelProvider = self
        while isinstance(adapter, ProviderLayer):
            adapter = adapter.inner
        if kind is not None and not isinstance(adapter, kind):
            raise TypeError(
                f"the adapter of provider {self.name!r} is {type(adapter).__name__}, "
                f"not {kind.__name__}"
            )
        return adapter

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ProviderLayer(ModelProvider):
    """A provider that wraps another and, by default, delegates everything to it.

    Subclasses override the operations they change. ``inner`` is the wrapped provider.
    """

    def __init__(self, inner: ModelProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.description = inner.description
        self.supports_prefill = inner.supports_prefill

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return self.inner.models

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        return await self.inner.complete(options)

    def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        return self.inner.stream(options)

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        return await self.inner.embed(options)

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        return await self.inner.generate_image(options)

    async def submit_batch(
        self, requests: Sequence[ModelCompletionOptions], custom_ids: Sequence[str]
    ) -> BatchJob:
        return await self.inner.submit_batch(requests, custom_ids)

    async def get_batch(self, batch_id: str) -> BatchJob:
        return await self.inner.get_batch(batch_id)

    async def batch_results(self, batch_id: str) -> list[BatchItemResult]:
        return await self.inner.batch_results(batch_id)

    async def cancel_batch(self, batch_id: str) -> BatchJob:
        return await self.inner.cancel_batch(batch_id)

    async def check(self) -> None:
        await self.inner.check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    if not TYPE_CHECKING:
        # Runtime only: type checkers keep reporting unknown attributes of a layer.

        def __getattr__(self, name: str) -> Any:
            raise _missing_attribute(self, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} around {self.inner!r}>"


def _missing_attribute(layer: ProviderLayer, name: str) -> AttributeError:
    """The error for an attribute ``layer`` lacks: when the adapter under it has it (an
    extra such as ``rerank``), it says how to reach it and that the layers do not apply."""
    plain = f"{type(layer).__name__!r} object has no attribute {name!r}"
    try:
        # Not ``layer.inner``: a layer being copied or unpickled has no ``inner`` yet.
        object.__getattribute__(layer, "inner")
    except AttributeError:
        return AttributeError(plain, name=name)
    if name.startswith("_"):
        return AttributeError(plain, name=name)
    from inspect import getattr_static

    from aiport._suggest import close_matches

    adapter = layer.unwrap()
    kind = type(adapter).__name__
    how = (
        f"call it on the adapter, under the layers (retries, rate limits, the cache and "
        f"hooks do not apply to it): provider.unwrap({kind})"
    )
    missing = object()
    if getattr_static(adapter, name, missing) is not missing:
        return AttributeError(
            f"{plain}: {name!r} is an extra of the {kind} adapter of provider "
            f"{layer.name!r}, outside the unified interface; {how}.{name}",
            name=name,
        )
    on_layer = {a for a in dir(layer) if not a.startswith("_")}
    on_adapter = {a for a in dir(adapter) if not a.startswith("_")}
    suggestions = close_matches(name, on_layer | on_adapter, limit=1)
    if not suggestions:
        return AttributeError(plain, name=name)
    (best,) = suggestions
    if best in on_layer:
        return AttributeError(f"{plain}; did you mean {best!r}?", name=name)
    return AttributeError(
        f"{plain}; did you mean {best!r}, an extra of the {kind} adapter of provider "
        f"{layer.name!r}? If so, {how}.{best}",
        name=name,
    )


#: Something that wraps a provider in a layer: a layer class or any callable.
LayerFactory = Callable[[ModelProvider], ModelProvider]


def wrap(provider: ModelProvider, *layers: LayerFactory) -> ModelProvider:
    """Wrap ``provider`` in ``layers``, the first given being the outermost."""
    for layer in reversed(layers):
        provider = layer(provider)
    return provider
