"""The Anthropic adapter: the Messages API (``/v1/messages``), plain and streamed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiport._batch import BatchItemResult, BatchJob, in_order, send_raw, summarize_warnings
from aiport._catalogue import known_models
from aiport._credentials import CredentialSource
from aiport._errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from aiport._http import HttpClient, HttpTimeouts
from aiport._mapping import request_id_from
from aiport._types import (
    ModelCompletionOptions,
    ModelCompletionResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
)
from aiport.providers._base import HttpProvider
from aiport.providers.anthropic import _batch as batch
from aiport.providers.anthropic._convert import (
    build_messages_request,
    parse_messages_response,
    uses_bearer_auth,
)
from aiport.providers.anthropic._errors import map_error
from aiport.providers.anthropic._stream import MessagesStreamAssembler

__all__ = ["AnthropicProvider"]

_PATH = "/v1/messages"


class AnthropicProvider(HttpProvider):
    """Claude models through Anthropic's Messages API.

    Args:
        api_version: the ``anthropic-version`` header. ``"2026-10-21"`` (the default,
            what the 2.x SDKs send) authenticates with ``Authorization: Bearer`` and no
            longer takes ``temperature``/``top_p`` (they become warnings);
            ``"2023-06-01"`` (the 0.x SDKs) uses ``x-api-key`` and sends them.
        default_max_tokens: ``max_tokens`` when the call gives none (Anthropic requires
            it); capped by the model's output limit when the catalogue knows it.

    The other arguments are ``HttpProvider``'s. ``base_url`` is the API root; requests
    go to ``{base_url}/v1/messages``. Embeddings and image generation raise
    ``ProviderCapabilityError``: Anthropic offers neither.
    """

    requires_credential = True

    supports_prefill = True

    def __init__(
        self,
        *,
        name: str = "anthropic",
        base_url: str = "https://api.anthropic.com",
        credential: CredentialSource | None,
        http: HttpClient,
        description: str = "Anthropic (Messages API)",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        api_version: str = "2026-10-21",
        default_max_tokens: int = 4096,
    ) -> None:
        if default_max_tokens <= 0:
            raise ValueError("default_max_tokens must be positive")
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description,
            models=models if models is not None else known_models("anthropic", name),
            headers={"anthropic-version": api_version, **(headers or {})},
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.api_version = api_version
        self.default_max_tokens = default_max_tokens
        self._bearer = uses_bearer_auth(api_version)

    # ------------------------------------------------------------------ hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        if self._bearer:
            return {"Authorization": f"Bearer {secret}"}
        return {"x-api-key": secret}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        return map_error(self.name, status, headers, body, text, model)

    # ------------------------------------------------------------------ operations

    def _request(
        self, options: ModelCompletionOptions, *, stream: bool
    ) -> tuple[dict[str, Any], list[str]]:
        self._require_credential(options.model)
        try:
            return build_messages_request(
                options,
                api_version=self.api_version,
                max_tokens_default=self.default_max_tokens,
                models=self._models,
                stream=stream,
            )
        except ValueError as exc:
            raise InvalidRequestError(
                f"{self.name}: {exc}", provider=self.name, model=options.model
            ) from exc

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Send one Messages request and return the whole answer."""
        body, warnings = self._request(options, stream=False)
        start = self._clock()
        data, response = await self.post_json(
            _PATH, body, model=options.model, timeout=options.timeout
        )
        latency = self._clock() - start
        request_id = request_id_from(response.headers)
        try:
            return parse_messages_response(
                data,
                provider=self.name,
                latency=latency,
                request_id=request_id,
                warnings=warnings,
                models=self._models,
                requested_model=options.model,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"{self.name} answered with JSON that is not a message ({type(exc).__name__})",
                provider=self.name,
                model=options.model,
                request_id=request_id,
            ) from exc

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Stream one Messages request: deltas, usage, then the complete response."""
        body, warnings = self._request(options, stream=True)
        start = self._clock()
        async with self.post_sse(_PATH, body, model=options.model, timeout=options.timeout) as (
            events,
            headers,
        ):
            assembler = MessagesStreamAssembler(
                provider=self.name,
                model=options.model,
                request_id=request_id_from(headers),
                warnings=warnings,
                models=self._models,
                redactor=self.redactor,
            )
            try:
                async for sse in events:
                    for event in assembler.feed_sse(sse.event, sse.data):
                        yield event
            except ProviderConnectionError as exc:
                # A connection that breaks after the stop reason lost nothing.
                if not assembler.complete:
                    raise assembler.interrupted("the connection broke") from exc
            except ProviderTimeoutError:
                if not assembler.complete:
                    raise
        try:
            response = assembler.finish(latency=self._clock() - start)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"{self.name} streamed events that do not form a message ({type(exc).__name__})",
                provider=self.name,
                model=options.model,
                request_id=assembler.request_id,
            ) from exc
        yield StreamFinishEvent(response=response)

    # ------------------------------------------------------------------ batch API

    async def submit_batch(
        self, requests: Sequence[ModelCompletionOptions], custom_ids: Sequence[str]
    ) -> BatchJob:
        """Create a Message Batch; each request's params are a ``complete`` body."""
        bodies: list[dict[str, Any]] = []
        notes: list[tuple[str, list[str]]] = []
        for options, custom_id in zip(requests, custom_ids, strict=True):
            body, warnings = self._request(options, stream=False)
            bodies.append(body)
            notes.append((custom_id, warnings))
        model = requests[0].model if requests else None
        payload = batch.build_batch_request(bodies, custom_ids)
        data, _ = await self.post_json(batch.BATCHES_PATH, payload, model=model, timeout=None)
        return batch.parse_batch(
            data, provider=self.name, model=model, warnings=summarize_warnings(notes)
        )

    async def get_batch(self, batch_id: str) -> BatchJob:
        """The batch's current state."""
        self._require_credential(None)
        data = await self.get_json(self._batch_path(batch_id))
        return batch.parse_batch(data, provider=self.name)

    async def batch_results(self, batch_id: str) -> list[BatchItemResult]:
        """The results of an ended batch, in input order (see ``in_order``)."""
        job = await self.get_batch(batch_id)
        if not job.raw.get("results_url"):
            raise InvalidRequestError(
                f"batch {batch_id} has no results yet ({job.status})",
                provider=self.name,
                reason="batch_not_finished",
            )
        # Always this provider's own URL: credentials never follow a URL from a body.
        response = await send_raw(self, "GET", self._batch_path(batch_id) + "/results")
        entries = batch.parse_results(
            response.body, provider=self.name, models=self._models, scrub=self.redactor.scrub
        )
        return in_order(entries, provider=self.name, total=job.counts.total)

    async def cancel_batch(self, batch_id: str) -> BatchJob:
        """Ask Anthropic to cancel the batch (``canceling``, then ``ended``)."""
        self._require_credential(None)
        response = await send_raw(self, "POST", self._batch_path(batch_id) + "/cancel")
        data = self.parse_json(response.body, response.headers, None)
        return batch.parse_batch(data, provider=self.name)

    @staticmethod
    def _batch_path(batch_id: str) -> str:
        return f"{batch.BATCHES_PATH}/{quote(batch_id, safe='')}"
