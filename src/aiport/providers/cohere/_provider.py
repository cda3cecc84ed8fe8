"""The Cohere adapter: the v2 API's chat (plain and streamed), embed and rerank.

Conversions live in ``_convert`` and ``_rerank``, error mapping in ``_errors``; this
module only moves bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from aiport._catalogue import known_models
from aiport._credentials import CredentialSource
from aiport._errors import (
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
)
from aiport._http import HttpClient, HttpTimeouts
from aiport._types import (
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
)
from aiport.providers._base import HttpProvider
from aiport.providers.cohere._convert import (
    DEFAULT_INPUT_TYPE,
    CohereStreamAssembler,
    build_chat_request,
    build_embed_request,
    parse_chat_response,
    parse_embed_response,
)
from aiport.providers.cohere._errors import map_error, request_id_of
from aiport.providers.cohere._rerank import (
    DEFAULT_RERANK_MODEL,
    RerankResponse,
    build_rerank_request,
    parse_rerank_response,
)

__all__ = ["DEFAULT_BASE_URL", "CohereProvider"]

DEFAULT_BASE_URL = "https://api.cohere.com"

logger = logging.getLogger("aiport")


class CohereProvider(HttpProvider):
    """Cohere's v2 API: chat (tools, vision, JSON output), embeddings, and reranking.

    Args:
        name: the provider's configured name.
        base_url: the API root (``https://api.cohere.com``); requests go to
            ``{base_url}/v2/chat``, ``/v2/embed`` and ``/v2/rerank``.
        credential: the API key, sent as ``Authorization: Bearer``.
        default_input_type: the embed ``input_type`` when a call's ``provider_options``
            name none: ``search_document`` (texts to be searched), ``search_query``,
            ``classification`` or ``clustering``. Cohere's v3 and later embedding models
            require one.
        models: known models (default: the ``cohere`` catalogue).

    The other arguments are those of ``HttpProvider``. Reranking is a Cohere extra,
    outside the unified interface: see ``rerank``. Image generation raises
    ``ProviderCapabilityError``.
    """

    requires_credential = True

    def __init__(
        self,
        *,
        name: str = "cohere",
        base_url: str = DEFAULT_BASE_URL,
        credential: CredentialSource | None,
        http: HttpClient,
        description: str = "Cohere (v2 API)",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        default_input_type: str = DEFAULT_INPUT_TYPE,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description,
            models=models if models is not None else known_models("cohere", name),
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.default_input_type = default_input_type

    # ------------------------------------------------------------------ adapter hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        return map_error(self.name, status, headers, body, text, model)

    # ------------------------------------------------------------------ chat

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Run one ``/v2/chat`` call (see ``_convert`` for what is unified)."""
        self._require_credential(options.model)
        body, warnings = build_chat_request(options)
        start = self._clock()
        data, response = await self.post_json(
            "v2/chat", body, model=options.model, timeout=options.timeout
        )
        return parse_chat_response(
            data,
            provider=self.name,
            latency=self._clock() - start,
            request_id=request_id_of(response.headers),
            warnings=warnings,
            models=self._models,
            requested_model=options.model,
        )

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Stream one ``/v2/chat`` call: deltas, usage, then the complete response.

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the stream
        ends, or the connection breaks, before ``message-end``; the typed error of a
        ``message-end`` that reports an error; ``ProviderTimeoutError`` on a stall. A
        malformed event is skipped, logged and named in ``response.warnings``.
        """
        self._require_credential(options.model)
        model = options.model
        body, warnings = build_chat_request(options, stream=True)
        assembler = CohereStreamAssembler()
        start = self._clock()
        async with self.post_sse("v2/chat", body, model=model, timeout=options.timeout) as (
            events,
            headers,
        ):
            request_id = request_id_of(headers)
            try:
                async for sse in events:
                    data = sse.data
                    if data == "[DONE]":
                        break
                    if not data:
                        continue  # a keep-alive
                    try:
                        payload = json.loads(data)
                        unified = assembler.feed(payload, sse.event)
                    except (ValueError, TypeError, AttributeError):
                        # Never the event itself in the log: it may hold user content.
                        logger.warning("skipped a malformed stream event from %s", self.name)
                        warnings.append(f"skipped a malformed stream event from {self.name}")
                        continue
                    for item in unified:
                        yield item
                    if assembler.error is not None:
                        raise self._stream_error(assembler.error, payload, headers, model)
                    if assembler.finished:
                        break
            except ProviderConnectionError as exc:
                if not assembler.finished:
                    raise self.stream_interrupted(assembler.text, model, request_id) from exc
        if not assembler.finished:
            raise self.stream_interrupted(assembler.text, model, request_id)
        response = assembler.finish(
            provider=self.name,
            latency=self._clock() - start,
            request_id=request_id,
            warnings=warnings,
            models=self._models,
            requested_model=model,
        )
        yield StreamFinishEvent(response=response)

    def _stream_error(
        self, message: str, payload: Any, headers: Mapping[str, str], model: str
    ) -> ProviderError:
        """The typed error for a stream that ended with an error."""
        return self.error_in_answer({"message": message, "event": payload}, "", headers, model)

    # ------------------------------------------------------------------ embed

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts with ``/v2/embed``; float vectors in input order.

        ``input_type`` comes from ``provider_options`` (``{"input_type":
        "search_query"}``), else ``default_input_type``; ``dimensions`` is sent as
        ``output_dimension`` (``embed-v4.0``: 256, 512, 1024 or 1536).
        """
        self._require_credential(options.model)
        body = build_embed_request(options, default_input_type=self.default_input_type)
        start = self._clock()
        data, response = await self.post_json(
            "v2/embed", body, model=options.model, timeout=options.timeout
        )
        return parse_embed_response(
            data,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=request_id_of(response.headers),
            models=self._models,
        )

    # ------------------------------------------------------------------ rerank (extra)

    async def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        model: str = DEFAULT_RERANK_MODEL,
        top_n: int | None = None,
        max_tokens_per_doc: int | None = None,
        timeout: float | None = None,
        provider_options: Mapping[str, Any] | None = None,
    ) -> RerankResponse:
        """Order ``documents`` by relevance to ``query`` (``POST /v2/rerank``).

        Returns the ``top_n`` most relevant documents (all when ``None``), best first,
        each with its position in ``documents`` and a relevance score in [0, 1].
        Failures raise the same typed errors as the other calls; a bad argument (no
        documents, ``top_n < 1``) raises ``InvalidRequestError`` before any request.

        Reranking is not part of the unified interface, so the service's layers
        (retries, rate limits, cache, hooks) do not apply to it. Reach it through the
        adapter under them::

            provider = service.get_provider("cohere").unwrap(CohereProvider)
            ranked = await provider.rerank("capital of France?", docs, top_n=3)
        """
        self._require_credential(model)
        try:
            body = build_rerank_request(
                query,
                documents,
                model=model,
                top_n=top_n,
                max_tokens_per_doc=max_tokens_per_doc,
                provider_options=provider_options,
            )
        except ValueError as exc:
            raise InvalidRequestError(
                f"{self.name}: {exc}", provider=self.name, model=model
            ) from exc
        start = self._clock()
        data, response = await self.post_json("v2/rerank", body, model=model, timeout=timeout)
        return parse_rerank_response(
            data,
            documents,
            provider=self.name,
            model=model,
            latency=self._clock() - start,
            request_id=request_id_of(response.headers),
        )
