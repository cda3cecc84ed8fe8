"""The AWS Bedrock adapter: Converse, ConverseStream and InvokeModel (embeddings)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from aiport._credentials import CredentialSource
from aiport._errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderAuthError,
    ProviderCapabilityError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from aiport._http import HttpClient, HttpStream, HttpTimeouts, TransportError
from aiport._mapping import request_id_from
from aiport._types import (
    GeneratedImage,
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
from aiport.providers._base import HttpProvider, encode_json
from aiport.providers.bedrock._convert import (
    build_converse_request,
    find_known_model,
    json_tool_name,
    parse_converse_response,
)
from aiport.providers.bedrock._errors import map_error
from aiport.providers.bedrock._eventstream import EventStreamDecoder, FramingError
from aiport.providers.bedrock._invoke import (
    COHERE_BATCH,
    cohere_body,
    embedding_family,
    image_body,
    is_image_model,
    parse_cohere,
    parse_images,
    parse_titan,
    titan_body,
)
from aiport.providers.bedrock._stream import ConverseStreamAssembler

__all__ = ["BedrockProvider", "RequestSigner", "default_endpoint"]

EVENT_STREAM = "application/vnd.amazon.eventstream"
#: Titan embeds one text per call: this many calls run at once for a list of texts.
_TITAN_CONCURRENCY = 8
#: Auth errors after which the credentials are resolved again (expired or rotated).
_STALE_CREDENTIAL_TYPES = frozenset(
    {
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "InvalidClientTokenId",
    }
)


def default_endpoint(region: str) -> str:
    """The Bedrock runtime endpoint of ``region``."""
    return f"https://bedrock-runtime.{region}.amazonaws.com"


class RequestSigner(Protocol):
    """Signs a request right before it is sent (``AwsSigner``: SigV4 with botocore)."""

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> dict[str, str]:
        """``headers`` with the signature headers added."""
        ...

    def invalidate(self) -> None:
        """Forget the credentials; the next request resolves them again."""
        ...

    async def check(self) -> None:
        """Resolve the credentials now, without a request to the service."""
        ...


class BedrockProvider(HttpProvider):
    """Models on Amazon Bedrock through the Converse API, and embeddings via InvokeModel.

    Args:
        region: the AWS region (its endpoint is the default ``base_url``).
        signer: signs each request with AWS SigV4 (see ``_auth.AwsSigner``).
        credential: a Bedrock API key, sent as ``Authorization: Bearer`` instead of a
            SigV4 signature (used when given).
        base_url: the runtime endpoint; default
            ``https://bedrock-runtime.{region}.amazonaws.com``.

    The other arguments are ``HttpProvider``'s. Requests go to
    ``{base_url}/model/{model id}/converse`` (``converse-stream``, ``invoke``); the model
    id may be a foundation model, an inference profile (``us.anthropic...``) or an ARN.
    Embeddings: Titan and Cohere Embed; images: Nova Canvas and Titan Image Generator
    (see ``_invoke``).
    """

    def __init__(
        self,
        *,
        name: str = "bedrock",
        region: str,
        signer: RequestSigner | None = None,
        credential: CredentialSource | None = None,
        http: HttpClient,
        base_url: str | None = None,
        description: str = "Amazon Bedrock (Converse API)",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url or default_endpoint(region),
            credential=credential,
            http=http,
            description=description,
            models=models if models is not None else _catalogue(name),
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.region = region
        # A Bedrock API key, when given, replaces request signing.
        self._signer = signer if credential is None else None

    # ------------------------------------------------------------------ hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    async def finalize_headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        if self._signer is None:
            return headers
        return await self._signer.sign(method, url, headers, body)

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        error = map_error(self.name, status, headers, body, text, model)
        if (
            isinstance(error, ProviderAuthError)
            and error.error_type in _STALE_CREDENTIAL_TYPES
            and self._signer is not None
        ):
            self._signer.invalidate()
        return error

    async def check(self) -> None:
        if self._signer is not None:
            await self._signer.check()
        elif self._credential is None:
            raise self.missing_credential_error(None)
        else:
            await super().check()

    def _require_auth(self, model: str | None) -> None:
        if self._signer is None and self._credential is None:
            raise self.missing_credential_error(model)

    def add_secret(self, secret: str) -> None:
        """Scrub ``secret`` (an AWS secret key or session token) from every error."""
        self.redactor.add(secret)

    @staticmethod
    def _path(model: str, operation: str) -> str:
        # The whole id is one path segment: an ARN's '/' is encoded. ':' is left as it is,
        # as the HTTP client (yarl) would send it anyway; the signature covers this form.
        return f"/model/{quote(model, safe=':')}/{operation}"

    # ------------------------------------------------------------------ completions

    def _request(self, options: ModelCompletionOptions) -> tuple[dict[str, Any], list[str]]:
        self._require_auth(options.model)
        try:
            return build_converse_request(options)
        except ValueError as exc:
            raise InvalidRequestError(
                f"{self.name}: {exc}", provider=self.name, model=options.model
            ) from exc

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Send one Converse request and return the whole answer."""
        body, warnings = self._request(options)
        start = self._clock()
        data, response = await self.post_json(
            self._path(options.model, "converse"),
            body,
            model=options.model,
            timeout=options.timeout,
        )
        request_id = request_id_from(response.headers)
        try:
            return parse_converse_response(
                data,
                provider=self.name,
                model=options.model,
                latency=self._clock() - start,
                request_id=request_id,
                json_tool=json_tool_name(options),
                warnings=warnings,
                models=self._models,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"{self.name} answered with JSON that is not a Converse response "
                f"({type(exc).__name__})",
                provider=self.name,
                model=options.model,
                request_id=request_id,
            ) from exc

    @contextlib.asynccontextmanager
    async def _open_event_stream(
        self, path: str, body: bytes, *, model: str, timeout: float | None
    ) -> AsyncIterator[HttpStream]:
        """POST ``body`` and give the streamed answer; error answers raise typed errors."""
        url = self.url(path)
        headers, _ = await self._authorized_headers({"Accept": EVENT_STREAM})
        headers = await self.finalize_headers("POST", url, headers, body)
        try:
            async with self._http.stream(
                "POST",
                url,
                headers=headers,
                body=body,
                timeouts=self.timeouts_for(model, timeout),
            ) as response:
                self._observe(response.status, response.headers, model)
                if response.status >= 300:
                    error_body = await response.read_all()
                    self._invalidate_on_auth_failure(response.status)
                    raise self.error_from_body(response.status, response.headers, error_body, model)
                yield response
        except TransportError as exc:
            raise self.transport_error(exc, model) from exc

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Stream one ConverseStream request: deltas, usage, then the complete response.

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the
        stream ends, breaks, or loses its framing before ``messageStop``; the typed error
        of an exception message; ``ProviderTimeoutError`` on a stall. A damaged message
        (checksum mismatch) or malformed event is skipped, logged and named in
        ``response.warnings``.
        """
        body, warnings = self._request(options)
        model = options.model
        start = self._clock()
        path = self._path(model, "converse-stream")
        async with self._open_event_stream(
            path, encode_json(body), model=model, timeout=options.timeout
        ) as response:
            assembler = ConverseStreamAssembler(
                provider=self.name,
                model=model,
                request_id=request_id_from(response.headers),
                json_tool=json_tool_name(options),
                warnings=warnings,
                models=self._models,
                redactor=self.redactor,
            )
            decoder = EventStreamDecoder()
            try:
                async for chunk in response.chunks():
                    for message in decoder.feed(chunk):
                        for event in assembler.feed_message(message):
                            yield event
                decoder.finish()
            except FramingError as exc:
                if not assembler.complete:
                    raise assembler.interrupted(str(exc)) from None
                assembler.warnings.append(f"the stream ended with damaged framing ({exc})")
            except TransportError as exc:
                error = self.transport_error(exc, model, headers=response.headers)
                # A connection that breaks after messageStop lost nothing.
                if isinstance(error, ProviderConnectionError) and not assembler.complete:
                    raise assembler.interrupted("the connection broke") from exc
                if isinstance(error, ProviderTimeoutError) and not assembler.complete:
                    raise error from exc
            if decoder.pending and not assembler.complete:
                raise assembler.interrupted("the stream was cut in the middle of a message")
        try:
            final = assembler.finish(latency=self._clock() - start)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"{self.name} streamed events that do not form an answer ({type(exc).__name__})",
                provider=self.name,
                model=model,
                request_id=assembler.request_id,
            ) from exc
        yield StreamFinishEvent(response=final)

    # ------------------------------------------------------------------ embeddings

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts with a Titan or Cohere embedding model; vectors in input order."""
        model = options.model
        family = embedding_family(model)
        if family is None:
            raise ProviderCapabilityError(
                f"{self.name}: {model!r} is not an embedding model aiport can call on Bedrock "
                "(Amazon Titan text embeddings and Cohere Embed are supported)",
                provider=self.name,
                model=model,
            )
        self._require_auth(model)
        start = self._clock()
        path = self._path(model, "invoke")
        vectors: list[list[float]] = []
        tokens = 0
        request_id: str | None = None
        raws: list[dict[str, Any]] = []
        if family == "titan":
            limit = asyncio.Semaphore(_TITAN_CONCURRENCY)

            async def one(text: str) -> tuple[dict[str, Any], Mapping[str, str]]:
                async with limit:
                    return await self._invoke(path, titan_body(text, options), options)

            answers = await asyncio.gather(*(one(text) for text in options.input))
            for data, headers in answers:
                request_id = request_id or request_id_from(headers)
                try:
                    vector, counted = parse_titan(data)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise self._malformed_embedding(exc, model, headers) from exc
                vectors.append(vector)
                tokens += counted or _header_tokens(headers)
                raws.append(data)
        else:
            texts = list(options.input)
            for begin in range(0, len(texts), COHERE_BATCH):
                batch = texts[begin : begin + COHERE_BATCH]
                data, headers = await self._invoke(path, cohere_body(batch, options), options)
                request_id = request_id or request_id_from(headers)
                try:
                    vectors.extend(parse_cohere(data, len(batch)))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise self._malformed_embedding(exc, model, headers) from exc
                tokens += _header_tokens(headers)
                raws.append(data)
        usage = Usage(input_tokens=tokens, total_tokens=tokens)
        known = find_known_model(self._models, model)
        return ModelEmbeddingResponse(
            model=model,
            provider=self.name,
            embeddings=vectors,
            usage=usage,
            latency=self._clock() - start,
            cost=known.cost(usage) if known is not None else None,
            request_id=request_id,
            raw={"responses": raws},
        )

    # ------------------------------------------------------------------ images

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        """Generate PNG images with Nova Canvas or Titan Image Generator."""
        model = options.model
        if not is_image_model(model):
            raise ProviderCapabilityError(
                f"{self.name}: {model!r} is not an image model aiport can call on Bedrock "
                "(Amazon Nova Canvas and Titan Image Generator are supported)",
                provider=self.name,
                model=model,
            )
        self._require_auth(model)
        try:
            body = image_body(options)
        except ValueError as exc:
            raise InvalidRequestError(
                f"{self.name}: {exc}", provider=self.name, model=model
            ) from exc
        start = self._clock()
        data, headers = await self._invoke(self._path(model, "invoke"), body, options)
        try:
            images = parse_images(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedResponseError(
                f"{self.name} answered with JSON that is not an image response ({exc})",
                provider=self.name,
                model=model,
                request_id=request_id_from(headers),
            ) from exc
        return ImageGenerationResponse(
            model=model,
            provider=self.name,
            images=[GeneratedImage(data=image, media_type="image/png") for image in images],
            latency=self._clock() - start,
            request_id=request_id_from(headers),
            raw={k: v for k, v in data.items() if k != "images"},
        )

    async def _invoke(
        self,
        path: str,
        body: Mapping[str, Any],
        options: ModelEmbeddingOptions | ImageGenerationOptions,
    ) -> tuple[dict[str, Any], Mapping[str, str]]:
        data, response = await self.post_json(
            path,
            body,
            model=options.model,
            timeout=options.timeout,
            headers={"Accept": "application/json"},
        )
        return data, response.headers

    def _malformed_embedding(
        self, exc: Exception, model: str, headers: Mapping[str, str]
    ) -> MalformedResponseError:
        return MalformedResponseError(
            f"{self.name} answered with JSON that is not an embedding response ({exc})",
            provider=self.name,
            model=model,
            request_id=request_id_from(headers),
        )


def _catalogue(name: str) -> dict[str, ProviderModel]:
    from aiport._catalogue import known_models

    return known_models("bedrock", name)


def _header_tokens(headers: Mapping[str, str]) -> int:
    """The input tokens InvokeModel reports in ``X-Amzn-Bedrock-Input-Token-Count``."""
    value = headers.get("x-amzn-bedrock-input-token-count") or headers.get(
        "X-Amzn-Bedrock-Input-Token-Count"
    )
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
