"""The catalogue layer: preflight checks before a call, its cost after it.

It sits right inside the hooks layer, so it runs once per call (not once per retry)
and before rate limiting, and the hooks see what the caller gets.

* Before a call: the request is checked against the model's entry (see
  ``aiport._catalogue._preflight``) and rejected with ``ContextWindowExceededError`` or
  ``CapabilityNotSupportedError`` when the entry rules it out, before any network call.
  On unless ``preflight_checks`` is off in the config (provider table over the top
  level) or for the call (``CallContext.preflight``); a model without an entry is never
  checked.
* After it: a response (completion, stream finish, usage event, embeddings, images)
  whose adapter left ``cost`` unset gets it from the entry's prices and the response's
  usage, so every adapter has costs without computing them. An adapter's own cost
  (which may know the snapshot it was served by) is kept, except for a model the config
  renames (a table whose ``name`` differs from its key): the adapter only sees the
  upstream name, so the table's prices win. No usage reported, or no price known: the
  cost stays ``None``, never a made-up zero.

The entry of a model: the provider's known models (the catalogue merged with the config)
by id, by a config table whose ``name`` is the model sent upstream (an Azure deployment
named after its model), then by alias or dated snapshot id (a snapshot found only by
its date suffix is priced, never checked: its limits may differ). Looked up once per
model name and remembered, so a call costs one dict look-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TypeVar

from aiport._catalogue import find_model
from aiport._catalogue._preflight import check_completion, check_embedding, check_image
from aiport._context import continuation, current_call
from aiport._provider import ModelProvider, ProviderLayer
from aiport._replace import replaced

if TYPE_CHECKING:
    from aiport._registry import ProviderContext, ProviderType
    from aiport._types import (
        ImageGenerationOptions,
        ImageGenerationResponse,
        ModelCompletionOptions,
        ModelCompletionResponse,
        ModelEmbeddingOptions,
        ModelEmbeddingResponse,
        ProviderModel,
        StreamEvent,
        Usage,
    )

__all__ = ["CatalogueLayer"]

ResponseT = TypeVar(
    "ResponseT", "ModelCompletionResponse", "ModelEmbeddingResponse", "ImageGenerationResponse"
)
_MAX_REMEMBERED = 1024  # model names remembered (unknown ones too); then look-ups restart


class _Entry:
    """A model's row, and how far it may be trusted.

    ``checked``: the request may be checked against it (not when the row was only found
    by stripping a snapshot date: that snapshot's limits may differ). ``capabilities_known``:
    its capabilities were declared (else they are not checked). ``overrules``: its prices
    win over the adapter's (a config table renaming the model).
    """

    __slots__ = ("capabilities_known", "checked", "model", "overrules")

    def __init__(
        self, model: ProviderModel, *, checked: bool, capabilities_known: bool, overrules: bool
    ) -> None:
        self.model = model
        self.checked = checked
        self.capabilities_known = capabilities_known
        self.overrules = overrules


class CatalogueLayer(ProviderLayer):
    """Preflight checks and costs from the provider's known models (see the module docs)."""

    def __init__(
        self,
        inner: ModelProvider,
        *,
        models: Mapping[str, ProviderModel],
        upstream_names: Mapping[str, str] | None = None,
        undeclared: frozenset[str] = frozenset(),
        preflight: bool = True,
    ) -> None:
        """Args:
        models: the provider's known models by id.
        upstream_names: model name sent upstream -> id in ``models`` (config ``name``).
        undeclared: ids whose capabilities nobody declared (a config table without
            ``capabilities`` for a model the catalogue does not know): not checked.
        preflight: run the checks (a call may still turn them on or off).
        """
        super().__init__(inner)
        self._models = models
        self._upstream = dict(upstream_names or {})
        self._undeclared = undeclared
        self.preflight = preflight
        self._entries: dict[str, _Entry | None] = {}

    @classmethod
    def for_provider(
        cls, inner: ModelProvider, context: ProviderContext, provider_type: ProviderType
    ) -> CatalogueLayer:
        """The layer for the provider ``context`` describes, settings from its config."""
        config = context.config
        catalogue = provider_type.known_models(context.name)
        preflight = (
            config.preflight_checks
            if config.preflight_checks is not None
            else context.agent_config.preflight_checks
        )
        return cls(
            inner,
            models=context.models,
            # Several ids may send the same name upstream; a table keyed by that name
            # itself wins, else the (last) table renaming a model to it.
            upstream_names={
                model_config.name: key
                for key, model_config in config.models.items()
                if model_config.name and model_config.name not in config.models
            },
            undeclared=frozenset(
                key
                for key, model_config in config.models.items()
                if model_config.capabilities is None
                and key not in catalogue
                and not (model_config.name and find_model(catalogue, model_config.name))
            ),
            preflight=preflight,
        )

    # ------------------------------------------------------------------ look-up

    def entry(self, model: str) -> _Entry | None:
        """The entry of the model named ``model`` upstream, or ``None`` when unknown."""
        try:
            return self._entries[model]
        except KeyError:
            pass
        key = self._upstream.get(model, model)
        row = self._models.get(key)
        if row is None:
            row = find_model(self._models, model)
        found = None
        if row is not None:
            found = _Entry(
                row,
                checked=key != model or model == row.id or model in row.aliases,
                capabilities_known=row.id not in self._undeclared,
                overrules=key != model,
            )
        if len(self._entries) >= _MAX_REMEMBERED:
            self._entries.clear()
        self._entries[model] = found
        return found

    def _checking(self) -> bool:
        call = current_call()
        override = call.preflight if call is not None else None
        return self.preflight if override is None else override

    # ------------------------------------------------------------------ operations

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        entry = self.entry(options.model)
        if entry is not None and entry.checked and self._checking():
            check_completion(
                entry.model,
                options,
                stream=False,
                capabilities_known=entry.capabilities_known,
            )
        response = await self.inner.complete(options)
        return _priced(response, entry)

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        # A generator: a rejection surfaces on the first iteration, where the router
        # handles every failure of a stream.
        entry = self.entry(options.model)
        if entry is not None and entry.checked and self._checking():
            check_completion(
                entry.model,
                options,
                stream=True,
                capabilities_known=entry.capabilities_known,
            )
        events = self.inner.stream(options)
        close = getattr(events, "aclose", None)
        try:
            following = events.__anext__
            first = True
            while True:
                try:
                    received = await following()
                except StopAsyncIteration:
                    break
                if first:  # past the first event: skip the streams that only hand on
                    following = continuation(events)
                    first = False
                event = received
                if entry is None:
                    pass
                elif received.type == "finish":
                    response = _priced(received.response, entry)
                    if response is not received.response:
                        event = replaced(received, {"response": response})
                elif received.type == "usage" and (received.cost is None or entry.overrules):
                    cost = _cost(entry.model, received.usage)
                    if cost is not None and cost != received.cost:
                        event = replaced(received, {"cost": cost})
                yield event
        finally:
            if close is not None:
                await close()

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        entry = self.entry(options.model)
        if entry is not None and entry.checked and self._checking():
            check_embedding(entry.model, options, capabilities_known=entry.capabilities_known)
        response = await self.inner.embed(options)
        return _priced(response, entry)

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        entry = self.entry(options.model)
        if entry is not None and entry.checked and self._checking():
            check_image(entry.model, options, capabilities_known=entry.capabilities_known)
        response = await self.inner.generate_image(options)
        return _priced(response, entry)


def _cost(model: ProviderModel, usage: Usage) -> float | None:
    if not (usage.input_tokens or usage.output_tokens):
        return None  # no usage reported: the price of nothing known is not zero
    return model.cost(usage)


def _priced(response: ResponseT, entry: _Entry | None) -> ResponseT:
    """``response`` with its cost from ``entry`` when the adapter left it unset (or when
    the entry overrules the adapter, which saw only the upstream model's row)."""
    if entry is None or (response.cost is not None and not entry.overrules):
        return response
    cost = _cost(entry.model, response.usage)
    if cost is None or cost == response.cost:
        return response
    return replaced(response, {"cost": cost})
