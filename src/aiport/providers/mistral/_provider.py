"""The Mistral adapter: chat completions (plain and streamed) and embeddings over HTTP.

Conversions live in ``_convert``, error mapping in ``_errors``; this module only moves
bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from aiport._catalogue import known_models
from aiport._credentials import CredentialSource
from aiport._errors import ProviderConnectionError, ProviderError
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
from aiport.providers.mistral._convert import (
    MistralStreamAssembler,
    build_chat_request,
    build_embedding_request,
    parse_chat_response,
    parse_embedding_response,
)
from aiport.providers.mistral._errors import map_error, request_id_of

__all__ = ["DEFAULT_BASE_URL", "MistralProvider"]

DEFAULT_BASE_URL = "https://api.mistral.ai/v1"

logger = logging.getLogger("aiport")


class MistralProvider(HttpProvider):
    """Mistral AI's API: chat (tools, vision, JSON output, prefill) and embeddings.

    Args:
        name: the provider's configured name.
        base_url: the API root (``https://api.mistral.ai/v1``); requests go to
            ``{base_url}/chat/completions`` and ``{base_url}/embeddings``.
        credential: the API key, sent as ``Authorization: Bearer``.
        safe_prompt: ask Mistral to prepend its safety system prompt to every
            conversation (``safe_prompt: true``); a call's ``provider_options`` may still
            set it either way.
        models: known models (default: the ``mistral`` catalogue).

    The other arguments are those of ``HttpProvider``. A final assistant message is a
    prefill (``supports_prefill``): Mistral continues it, and the response holds only the
    continuation. Image generation raises ``ProviderCapabilityError``.
    """

    requires_credential = True

    supports_prefill = True

    def __init__(
        self,
        *,
        name: str = "mistral",
        base_url: str = DEFAULT_BASE_URL,
        credential: CredentialSource | None,
        http: HttpClient,
        description: str = "Mistral AI",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        safe_prompt: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description,
            models=models if models is not None else known_models("mistral", name),
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.safe_prompt = safe_prompt

    # ------------------------------------------------------------------ adapter hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        return map_error(self.name, status, headers, body, text, model)

    # ------------------------------------------------------------------ operations

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Run a chat completion (see ``parse_chat_response`` for what is unified)."""
        self._require_credential(options.model)
        body, warnings, prefix = build_chat_request(options, safe_prompt=self.safe_prompt)
        start = self._clock()
        data, response = await self.post_json(
            "chat/completions", body, model=options.model, timeout=options.timeout
        )
        return parse_chat_response(
            data,
            provider=self.name,
            latency=self._clock() - start,
            request_id=request_id_of(response.headers),
            warnings=warnings,
            models=self._models,
            requested_model=options.model,
            prefix=prefix,
        )

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Run a chat completion as a stream of events, ending with the whole response.

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the stream
        ends, or the connection breaks, before a finish reason; the typed error of an error
        event sent mid-stream; ``ProviderTimeoutError`` on a stall. A malformed event is
        skipped, logged and named in ``response.warnings``.
        """
        self._require_credential(options.model)
        model = options.model
        body, warnings, prefix = build_chat_request(
            options, stream=True, safe_prompt=self.safe_prompt
        )
        assembler = MistralStreamAssembler(prefix=prefix)
        start = self._clock()
        path = "chat/completions"
        async with self.post_sse(path, body, model=model, timeout=options.timeout) as opened:
            events, headers = opened
            request_id = request_id_of(headers)
            try:
                async for event in events:
                    data = event.data
                    if data == "[DONE]":
                        break
                    if not data:
                        continue  # a keep-alive
                    try:
                        chunk = json.loads(data)
                        if chunk.get("object") == "error" or "error" in chunk:
                            raise self.error_in_answer(chunk, data, headers, model)
                        unified = assembler.feed(chunk)
                    except (ValueError, TypeError, AttributeError):
                        # Never the event itself in the log: it may hold user content.
                        logger.warning("skipped a malformed stream event from %s", self.name)
                        warnings.append(f"skipped a malformed stream event from {self.name}")
                        continue
                    for item in unified:
                        yield item
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
            prefix=prefix,
        )
        yield StreamFinishEvent(response=response)

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts (``mistral-embed``, ``codestral-embed``...); vectors in input order.

        ``dimensions`` is sent as ``output_dimension``, which only some models accept
        (Mistral refuses it for ``mistral-embed``: an ``InvalidRequestError``).
        """
        self._require_credential(options.model)
        start = self._clock()
        data, response = await self.post_json(
            "embeddings",
            build_embedding_request(options),
            model=options.model,
            timeout=options.timeout,
        )
        return parse_embedding_response(
            data,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=request_id_of(response.headers),
            models=self._models,
        )
