"""The Gemini adapter: Google's Generative Language API over HTTP.

``POST {base_url}/{api_version}/models/{model}:generateContent`` (and
``:streamGenerateContent?alt=sse``, ``:embedContent``, ``:batchEmbedContents``, Imagen's
``:predict``). Conversions live in ``_convert`` and ``_stream``, error mapping in
``_errors``; this module only moves bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

from aiport._catalogue import known_models
from aiport._credentials import CredentialSource, is_refreshable
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
    ImageGenerationOptions,
    ImageGenerationResponse,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
    Usage,
)
from aiport.providers._base import HttpProvider
from aiport.providers.gemini._convert import (
    MAX_EMBED_BATCH,
    build_embed_request,
    build_generate_request,
    build_image_request,
    build_predict_request,
    embedding_response,
    is_imagen,
    model_path,
    parse_embed_response,
    parse_generate_response,
    parse_image_response,
    parse_predict_response,
)
from aiport.providers.gemini._errors import map_error
from aiport.providers.gemini._stream import GenerateStreamAssembler

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
#: Google OAuth 2.0 access tokens start with this; API keys never do.
_ACCESS_TOKEN_PREFIX = "ya29."  # noqa: S105  (a prefix, not a secret)

logger = logging.getLogger("aiport")

_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class GeminiProvider(HttpProvider):
    """Gemini (and Imagen) models through the Gemini API.

    Args:
        base_url: the API root (``https://generativelanguage.googleapis.com``); requests
            go to ``{base_url}/{api_version}/models/...``.
        credential: an API key, sent in the ``x-goog-api-key`` header (never in the URL),
            or a token credential (Google application-default credentials, an OAuth2
            token provider), sent as ``Authorization: Bearer``. A static secret that is a
            Google access token (``ya29....``) is sent as a bearer token too.
        api_version: ``v1beta`` (the default: everything, including ``systemInstruction``,
            tools and JSON schemas) or ``v1``.

    The other arguments are ``HttpProvider``'s. ``models`` defaults to the Gemini
    catalogue. Model ids may be bare (``gemini-2.5-flash``) or resource names
    (``models/gemini-2.5-flash``, ``tunedModels/...``).
    """

    requires_credential = True

    def __init__(
        self,
        *,
        name: str = "gemini",
        base_url: str = DEFAULT_BASE_URL,
        credential: CredentialSource | None,
        http: HttpClient,
        api_version: str = "v1beta",
        description: str = "Google Gemini API",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not api_version or "/" in api_version:
            raise ValueError(f"invalid Gemini API version {api_version!r}")
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description or "Google Gemini API",
            models=models if models is not None else known_models("gemini", name),
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.api_version = api_version

    # ------------------------------------------------------------------ hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        if is_refreshable(self._credential) or secret.startswith(_ACCESS_TOKEN_PREFIX):
            return {"Authorization": f"Bearer {secret}"}
        return {"x-goog-api-key": secret}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        return map_error(self.name, status, headers, body, text, model)

    # ------------------------------------------------------------------ helpers

    def _path(self, model: str, method: str) -> str:
        """``{api_version}/models/{model}:{method}``, the model name escaped."""
        return f"{self.api_version}/{quote(model_path(model), safe='/')}:{method}"

    def _malformed(
        self, what: str, exc: Exception, model: str, request_id: str | None
    ) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.name} answered with JSON that is not {what} ({type(exc).__name__})",
            provider=self.name,
            model=model,
            request_id=request_id,
        )

    def _invalid(self, exc: ValueError, model: str) -> InvalidRequestError:
        return InvalidRequestError(f"{self.name}: {exc}", provider=self.name, model=model)

    # ------------------------------------------------------------------ completion

    def _request(self, options: ModelCompletionOptions) -> tuple[dict[str, Any], list[str]]:
        self._require_credential(options.model)
        try:
            return build_generate_request(options)
        except ValueError as exc:
            raise self._invalid(exc, options.model) from exc

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """One ``generateContent`` call (see ``_convert`` for what is unified)."""
        body, warnings = self._request(options)
        start = self._clock()
        data, response = await self.post_json(
            self._path(options.model, "generateContent"),
            body,
            model=options.model,
            timeout=options.timeout,
        )
        latency = self._clock() - start
        request_id = request_id_from(response.headers)
        try:
            return parse_generate_response(
                data,
                provider=self.name,
                latency=latency,
                request_id=request_id,
                warnings=warnings,
                models=self._models,
                requested_model=options.model,
            )
        except ProviderError:
            raise
        except _SHAPE_ERRORS as exc:
            raise self._malformed(
                "a GenerateContentResponse", exc, options.model, request_id
            ) from exc

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """``streamGenerateContent`` over SSE: deltas, usage, then the whole response.

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the
        stream ends, or the connection breaks, before the finishReason; the typed error
        of an error event sent mid-stream; ``ContentFilterError`` for a blocked prompt.
        """
        body, warnings = self._request(options)
        start = self._clock()
        path = self._path(options.model, "streamGenerateContent") + "?alt=sse"
        async with self.post_sse(path, body, model=options.model, timeout=options.timeout) as (
            events,
            headers,
        ):
            assembler = GenerateStreamAssembler(
                provider=self.name,
                model=options.model,
                request_id=request_id_from(headers),
                warnings=warnings,
                models=self._models,
                redactor=self.redactor,
            )
            try:
                async for sse in events:
                    for event in assembler.feed_sse(sse.data):
                        yield event
            except ProviderConnectionError as exc:
                # A connection that breaks after the finishReason lost nothing.
                if not assembler.complete:
                    raise assembler.interrupted("the connection broke") from exc
            except ProviderTimeoutError:
                if not assembler.complete:
                    raise
        try:
            response = assembler.finish(latency=self._clock() - start)
        except ProviderError:
            raise
        except _SHAPE_ERRORS as exc:
            raise self._malformed(
                "a GenerateContentResponse", exc, options.model, assembler.request_id
            ) from exc
        yield StreamFinishEvent(response=response)

    # ------------------------------------------------------------------ embeddings

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts: one text with ``embedContent``, several with
        ``batchEmbedContents`` (in calls of at most 100); vectors in input order."""
        self._require_credential(options.model)
        start = self._clock()
        vectors: list[list[float]] = []
        usage: Usage | None = None
        raw: dict[str, Any] = {}
        request_id: str | None = None
        texts = options.input
        for offset in range(0, len(texts), MAX_EMBED_BATCH):
            method, body = build_embed_request(options, texts[offset : offset + MAX_EMBED_BATCH])
            data, response = await self.post_json(
                self._path(options.model, method),
                body,
                model=options.model,
                timeout=options.timeout,
            )
            request_id = request_id_from(response.headers) or request_id
            try:
                batch, batch_usage = parse_embed_response(data)
            except _SHAPE_ERRORS as exc:
                raise self._malformed("embeddings", exc, options.model, request_id) from exc
            if len(batch) != len(body.get("requests", [body])):
                raise MalformedResponseError(
                    f"{self.name} answered {len(batch)} embeddings for "
                    f"{len(body.get('requests', [body]))} inputs",
                    provider=self.name,
                    model=options.model,
                    request_id=request_id,
                )
            vectors.extend(batch)
            if batch_usage is not None:
                usage = _add(usage, batch_usage)
            raw = {k: v for k, v in data.items() if k not in ("embedding", "embeddings")}
        return embedding_response(
            vectors,
            usage,
            raw,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=request_id,
            models=self._models,
        )

    # ------------------------------------------------------------------ images

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        """Generate images: Imagen models through ``:predict``, Gemini image models
        (``gemini-2.5-flash-image``...) through ``generateContent``.

        Settings Gemini cannot honour (``quality``, ``style``, ``output="url"``, a size
        that is not one of its aspect ratios) are logged at WARNING on the ``aiport``
        logger: image responses have no ``warnings`` field.
        """
        self._require_credential(options.model)
        imagen = is_imagen(options.model)
        body, notes = build_predict_request(options) if imagen else build_image_request(options)
        for note in notes:
            logger.warning("%s: %s", self.name, note)
        method = "predict" if imagen else "generateContent"
        start = self._clock()
        data, response = await self.post_json(
            self._path(options.model, method), body, model=options.model, timeout=options.timeout
        )
        latency = self._clock() - start
        request_id = request_id_from(response.headers)
        try:
            if imagen:
                return parse_predict_response(
                    data,
                    provider=self.name,
                    model=options.model,
                    latency=latency,
                    request_id=request_id,
                )
            return parse_image_response(
                data,
                provider=self.name,
                model=options.model,
                latency=latency,
                request_id=request_id,
                models=self._models,
            )
        except ProviderError:
            raise
        except _SHAPE_ERRORS as exc:
            raise self._malformed("images", exc, options.model, request_id) from exc


def _add(total: Usage | None, more: Usage) -> Usage:
    if total is None:
        return more
    return Usage(
        input_tokens=total.input_tokens + more.input_tokens,
        output_tokens=total.output_tokens + more.output_tokens,
        total_tokens=total.total_tokens + more.total_tokens,
        cached_input_tokens=total.cached_input_tokens + more.cached_input_tokens,
        reasoning_tokens=total.reasoning_tokens + more.reasoning_tokens,
    )
