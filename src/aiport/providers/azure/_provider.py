"""The Azure OpenAI adapter: Chat Completions, embeddings and images on Azure deployments.

The wire format is OpenAI's (its conversions are reused from ``aiport.providers.openai``);
what is Azure's own — deployments, ``api-version``, ``api-key`` or Entra ID bearer auth,
content-filter results — is in ``_convert`` and ``_errors``. This module only moves bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiport._credentials import CredentialSource, is_refreshable
from aiport._errors import ProviderConnectionError, ProviderError
from aiport._http import HttpClient, HttpTimeouts
from aiport._types import (
    ImageGenerationOptions,
    ImageGenerationResponse,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
)
from aiport.providers._base import HttpProvider
from aiport.providers.azure._convert import (
    V1_API_VERSION,
    StreamFilterResults,
    adapt_chat_request,
    operation_path,
    split_endpoint,
    supports_base64_embeddings,
)
from aiport.providers.azure._errors import azure_request_id, map_error
from aiport.providers.openai._convert import (
    ChatStreamAssembler,
    build_chat_request,
    parse_chat_response,
)
from aiport.providers.openai._media import (
    build_embedding_request,
    build_image_request,
    parse_embedding_response,
    parse_image_response,
)

__all__ = ["AzureOpenAIProvider"]

logger = logging.getLogger("aiport")


class AzureOpenAIProvider(HttpProvider):
    """Azure OpenAI (and Azure AI Foundry's Azure OpenAI endpoints).

    Args:
        name: the provider's configured name.
        base_url: the resource endpoint, ``https://NAME.openai.azure.com`` (or
            ``...cognitiveservices.azure.com``); a trailing ``/openai`` is ignored and a
            trailing ``/openai/v1`` selects the v1 surface.
        credential: an API key, sent as the ``api-key`` header, or an Entra ID token
            source (``aiport._tokens.RefreshingCredential``), sent as
            ``Authorization: Bearer``.
        http: the pooled HTTP client.
        api_version: the ``api-version`` query parameter (default
            :data:`~aiport.providers.azure._convert.DEFAULT_API_VERSION`, the newest GA
            version), or ``"v1"`` for the v1 surface (``{endpoint}/openai/v1/...``, no
            ``api-version``, the deployment named in the body).
        deployments: model id -> deployment name, for deployments not named like their
            model (any other model id is used as the deployment name). The model id
            still picks the catalogue row (prices, limits).
        bearer: send the credential as a bearer token; default: when it is a refreshable
            token source.

    The other arguments are those of ``HttpProvider``.
    """

    requires_credential = True

    def __init__(
        self,
        *,
        name: str = "azure",
        base_url: str,
        credential: CredentialSource | None = None,
        http: HttpClient,
        api_version: str | None = None,
        deployments: Mapping[str, str] | None = None,
        bearer: bool | None = None,
        description: str = "",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        endpoint, version = split_endpoint(base_url, api_version)
        if models is None:
            from aiport._catalogue import known_models

            models = known_models("azure", name)
        super().__init__(
            name=name,
            base_url=f"{endpoint}/openai",
            credential=credential,
            http=http,
            description=description or "Azure OpenAI",
            models=models,
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        #: The resource endpoint, without ``/openai``.
        self.endpoint = endpoint
        #: The ``api-version`` sent, or ``"v1"`` for the v1 surface.
        self.api_version = version
        self._deployments = dict(deployments or {})
        self._bearer = is_refreshable(credential) if bearer is None else bearer

    def deployment_for(self, model: str) -> str:
        """The deployment that serves ``model`` (its configured one, else its own name)."""
        return self._deployments.get(model, model)

    def _path(self, model: str, operation: str) -> tuple[str, str]:
        deployment = self.deployment_for(model)
        return deployment, operation_path(self.api_version, deployment, operation)

    # ------------------------------------------------------------------ adapter hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        if self._bearer:
            return {"Authorization": f"Bearer {secret}"}
        return {"api-key": secret}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        deployment = self.deployment_for(model) if model else None
        return map_error(self.name, status, headers, body, text, model, deployment=deployment)

    # ------------------------------------------------------------------ operations

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Run a chat completion. ``raw`` keeps Azure's ``prompt_filter_results`` and each
        choice's ``content_filter_results``; output stopped by the content filter has
        finish reason ``content_filter``."""
        self._require_credential(options.model)
        deployment, path = self._path(options.model, "chat/completions")
        body, warnings = build_chat_request(options, compatible=False)
        adapt_chat_request(body, deployment=deployment, api_version=self.api_version)
        start = self._clock()
        data, response = await self.post_json(
            path, body, model=options.model, timeout=options.timeout
        )
        latency = self._clock() - start
        if "choices" not in data and data.get("error"):
            raise self.error_in_answer(data, json.dumps(data), response.headers, options.model)
        return parse_chat_response(
            data,
            provider=self.name,
            latency=latency,
            request_id=azure_request_id(response.headers),
            warnings=warnings,
            models=self._models,
            requested_model=options.model,
        )

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Run a chat completion as a stream of events, ending with the whole response.

        The final response equals what ``complete`` gives, content-filter results in
        ``raw`` included. Raises ``StreamInterruptedError`` (with the text delivered so
        far) when the stream ends before the model finished, the typed error of an error
        event sent mid-stream, ``ProviderTimeoutError`` on a stall. A malformed event is
        skipped, logged and named in ``response.warnings``.
        """
        self._require_credential(options.model)
        model = options.model
        deployment, path = self._path(model, "chat/completions")
        body, warnings = build_chat_request(options, compatible=False, stream=True)
        adapt_chat_request(body, deployment=deployment, api_version=self.api_version)
        assembler = ChatStreamAssembler()
        filters = StreamFilterResults()
        start = self._clock()
        async with self.post_sse(path, body, model=model, timeout=options.timeout) as opened:
            events, headers = opened
            request_id = azure_request_id(headers)
            try:
                async for event in events:
                    data = event.data
                    if data == "[DONE]":
                        break
                    if not data:
                        continue  # an empty keep-alive event
                    try:
                        chunk = json.loads(data)
                        if chunk.get("error") or event.event == "error":
                            raise self.error_in_answer(chunk, data, headers, model)
                        if filters.take(chunk):
                            continue  # only the prompt's filter results
                        unified = assembler.feed(chunk)
                    except (ValueError, TypeError, AttributeError):
                        # Never the event itself in the log: it may hold user content.
                        logger.warning("skipped a malformed stream event from %s", self.name)
                        warnings.append(f"skipped a malformed stream event from {self.name}")
                        continue
                    for item in unified:
                        yield item
            except ProviderConnectionError as exc:
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
        response = response.model_copy(update={"raw": filters.apply(response.raw)})
        yield StreamFinishEvent(response=response)

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts; vectors come back in input order."""
        self._require_credential(options.model)
        deployment, path = self._path(options.model, "embeddings")
        # Base64 vectors (a quarter of the bytes) where the API version has them.
        compact = supports_base64_embeddings(self.api_version)
        body = build_embedding_request(options, compatible=not compact)
        body["model"] = deployment
        start = self._clock()
        data, response = await self.post_json(
            path, body, model=options.model, timeout=options.timeout
        )
        return parse_embedding_response(
            data,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=azure_request_id(response.headers),
            models=self._models,
        )

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        """Generate images (DALL-E 3, gpt-image-1 deployments). ``raw`` keeps each
        image's ``content_filter_results`` and ``prompt_filter_results`` as lists, one
        entry per image."""
        self._require_credential(options.model)
        deployment, path = self._path(options.model, "images/generations")
        body = build_image_request(options)
        body["model"] = deployment
        start = self._clock()
        data, response = await self.post_json(
            path, body, model=options.model, timeout=options.timeout
        )
        result = parse_image_response(
            data,
            provider=self.name,
            options=options,
            latency=self._clock() - start,
            request_id=azure_request_id(response.headers),
            models=self._models,
        )
        items = data.get("data")
        if isinstance(items, list):
            for key in ("content_filter_results", "prompt_filter_results"):
                found = [item.get(key) for item in items if isinstance(item, Mapping)]
                if any(found):
                    result.raw[key] = found
        return result

    def __repr__(self) -> str:
        surface = "v1" if self.api_version == V1_API_VERSION else self.api_version
        return f"<AzureOpenAIProvider {self.name!r} api_version={surface}>"
