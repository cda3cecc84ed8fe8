"""The OpenAI adapter: Chat Completions, embeddings and images over HTTP.

The same class serves every OpenAI-compatible server (vLLM, Ollama's ``/v1``,
llama.cpp, Groq, Together...) with ``compatible=True``. Conversions live in
``_convert``, error mapping in ``_errors``; this module only moves bytes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiport._batch import BatchItemResult, BatchJob, has_default_ids, in_order, send_raw
from aiport._catalogue import known_models
from aiport._credentials import CredentialSource
from aiport._errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderConnectionError,
    ProviderError,
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
)
from aiport.providers._base import HttpProvider, loads_text
from aiport.providers.openai import _batch as batch
from aiport.providers.openai._convert import (
    ChatStreamAssembler,
    build_chat_request,
    finish_event,
    parse_chat_response,
)
from aiport.providers.openai._errors import map_error
from aiport.providers.openai._media import (
    build_embedding_request,
    build_image_request,
    parse_embedding_response,
    parse_image_response,
)
from aiport.providers.openai._quirks import ServerQuirks, apply_chat_quirks

__all__ = ["OpenAIProvider"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

logger = logging.getLogger("aiport")


class OpenAIProvider(HttpProvider):
    """OpenAI's API, or any server that speaks it.

    Args:
        name: the provider's configured name.
        base_url: the API root (``https://api.openai.com/v1``; a compatible server's
            ``.../v1``).
        credential: the API key, sent as ``Authorization: Bearer``. Required for
            OpenAI itself; compatible servers may have none (no auth header is sent).
        http: the pooled HTTP client.
        organization: sent as ``OpenAI-Organization``.
        project: sent as ``OpenAI-Project``.
        compatible: talk to an OpenAI-compatible server: ``max_tokens`` instead of
            ``max_completion_tokens``, float embeddings, developer messages as system
            messages, missing answer fields tolerated, no model catalogue.
        models: known models (default: OpenAI's catalogue, none when ``compatible``).
        quirks: how a compatible server departs from OpenAI (a preset's row): refused
            settings become warnings, ``/embeddings`` or ``/images`` it lacks raise
            ``ProviderCapabilityError`` before any request.

    The other arguments are those of ``HttpProvider``.
    """

    def __init__(
        self,
        *,
        name: str = "openai",
        base_url: str = DEFAULT_BASE_URL,
        credential: CredentialSource | None = None,
        http: HttpClient,
        organization: str | None = None,
        project: str | None = None,
        compatible: bool = False,
        quirks: ServerQuirks | None = None,
        description: str = "",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        default_headers: dict[str, str] = {}
        if organization:
            default_headers["OpenAI-Organization"] = organization
        if project:
            default_headers["OpenAI-Project"] = project
        default_headers.update(headers or {})
        if models is None:
            models = {} if compatible else known_models("openai", name)
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description or ("OpenAI-compatible server" if compatible else "OpenAI API"),
            models=models,
            headers=default_headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )
        self.compatible = compatible
        self.requires_credential = not compatible
        self.quirks = quirks

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
        body, warnings = build_chat_request(options, compatible=self.compatible)
        if self.quirks is not None:
            apply_chat_quirks(body, warnings, self.quirks, self.name, stream=False)
        start = self._clock()
        data, response = await self.post_json(
            "chat/completions", body, model=options.model, timeout=options.timeout
        )
        latency = self._clock() - start
        if "choices" not in data and data.get("error"):
            # Some compatible servers and proxies answer errors with a 200.
            raise self.error_in_answer(data, json.dumps(data), response.headers, options.model)
        return parse_chat_response(
            data,
            provider=self.name,
            latency=latency,
            request_id=request_id_from(response.headers),
            warnings=warnings,
            models=self._models,
            requested_model=options.model,
        )

    async def stream(self, options: ModelCompletionOptions) -> AsyncIterator[StreamEvent]:
        """Run a chat completion as a stream of events, ending with the whole response.

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the
        stream ends, or the connection breaks, before the model finished; the typed
        error of an error event sent mid-stream; ``ProviderTimeoutError`` on a stall.
        A malformed event is skipped, logged and named in ``response.warnings``.
        """
        self._require_credential(options.model)
        model = options.model
        body, warnings = build_chat_request(options, compatible=self.compatible, stream=True)
        if self.quirks is not None:
            apply_chat_quirks(body, warnings, self.quirks, self.name, stream=True)
        assembler = ChatStreamAssembler()
        start = self._clock()
        done = False
        path = "chat/completions"
        opening = self.post_sse_batches(path, body, model=model, timeout=options.timeout)
        async with opening as opened:
            batches, headers = opened
            request_id = request_id_from(headers)
            try:
                # The events come a chunk of the body at a time: one generator resumption
                # per chunk read rather than per event.
                async for batch in batches:
                    for event in batch:
                        data = event.data
                        if data == "[DONE]":
                            done = True
                            break
                        if not data:
                            continue  # an empty keep-alive event
                        try:
                            chunk = loads_text(data)
                            if chunk.get("error") or event.event == "error":
                                raise self.error_in_answer(chunk, data, headers, model)
                            unified = assembler.feed(chunk)
                        except (ValueError, TypeError, AttributeError):
                            # Not JSON, or JSON of the wrong shape. Never the event itself
                            # in the log: it may hold user content.
                            logger.warning("skipped a malformed stream event from %s", self.name)
                            warnings.append(f"skipped a malformed stream event from {self.name}")
                            continue
                        for item in unified:
                            yield item
                    if done:
                        break
            except ProviderConnectionError as exc:
                raise self.stream_interrupted(assembler.text, model, request_id) from exc
        if not assembler.finished and not (done and self.compatible):
            # OpenAI always sends a finish reason; some compatible servers only [DONE].
            raise self.stream_interrupted(assembler.text, model, request_id)
        response = assembler.finish(
            provider=self.name,
            latency=self._clock() - start,
            request_id=request_id,
            warnings=warnings,
            models=self._models,
            requested_model=model,
        )
        yield finish_event(response)

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts; vectors come back in input order."""
        if self.quirks is not None and not self.quirks.embeddings:
            return await super().embed(options)  # ProviderCapabilityError: no endpoint
        self._require_credential(options.model)
        body = build_embedding_request(options, compatible=self.compatible)
        start = self._clock()
        data, response = await self.post_json(
            "embeddings", body, model=options.model, timeout=options.timeout
        )
        return parse_embedding_response(
            data,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=request_id_from(response.headers),
            models=self._models,
        )

    async def generate_image(self, options: ImageGenerationOptions) -> ImageGenerationResponse:
        """Generate images. ``gpt-image`` models always answer with bytes, even when
        ``output="url"`` was asked for (they cannot give URLs)."""
        if self.quirks is not None and not self.quirks.images:
            return await super().generate_image(options)  # ProviderCapabilityError
        self._require_credential(options.model)
        body = build_image_request(options)
        start = self._clock()
        data, response = await self.post_json(
            "images/generations", body, model=options.model, timeout=options.timeout
        )
        return parse_image_response(
            data,
            provider=self.name,
            options=options,
            latency=self._clock() - start,
            request_id=request_id_from(response.headers),
            models=self._models,
        )

    # ------------------------------------------------------------------ batch API

    async def submit_batch(
        self, requests: Sequence[ModelCompletionOptions], custom_ids: Sequence[str]
    ) -> BatchJob:
        """Upload the requests as a JSONL file (purpose ``batch``), then create the batch."""
        model = requests[0].model if requests else None
        self._require_credential(model)
        content, warnings = batch.build_input_file(requests, custom_ids, compatible=self.compatible)
        form, content_type = batch.multipart_form(
            {"purpose": "batch"}, file_field="file", filename=batch.INPUT_FILENAME, content=content
        )
        uploaded = await send_raw(
            self, "POST", "files", body=form, content_type=content_type, model=model
        )
        file_id = self.parse_json(uploaded.body, uploaded.headers, model).get("id")
        if not isinstance(file_id, str) or not file_id:
            raise MalformedResponseError(
                f"{self.name} answered the file upload without a file id",
                provider=self.name,
                model=model,
                request_id=request_id_from(uploaded.headers),
            )
        data, _ = await self.post_json(
            "batches", batch.build_batch_create(file_id), model=model, timeout=None
        )
        return batch.parse_batch(data, provider=self.name, model=model, warnings=warnings)

    async def get_batch(self, batch_id: str) -> BatchJob:
        """The batch's current state (``GET /batches/{id}``)."""
        self._require_credential(None)
        data = await self.get_json(f"batches/{quote(batch_id, safe='')}")
        return batch.parse_batch(data, provider=self.name)

    async def batch_results(self, batch_id: str) -> list[BatchItemResult]:
        """The output and error files of a finished batch, as results in input order."""
        job = await self.get_batch(batch_id)
        if not job.done or job.status == "failed":
            failed = job.status == "failed"
            detail = batch.batch_errors(job.raw) if failed else "not finished yet"
            raise InvalidRequestError(
                f"batch {batch_id} has no results ({job.status}: {detail})",
                provider=self.name,
                reason="batch_failed" if failed else "batch_not_finished",
            )
        output = await self._file_content(job.raw.get("output_file_id"))
        errors = await self._file_content(job.raw.get("error_file_id"))
        entries = batch.parse_result_files(
            output, errors, provider=self.name, models=self._models, scrub=self.redactor.scrub
        )
        order = None
        if not has_default_ids(e.custom_id for e in entries):
            # The caller's own ids: only the input file knows their order.
            input_file = await self._file_content(job.raw.get("input_file_id"))
            order = batch.input_order(input_file, provider=self.name)
        missing = {"cancelled": "batch_cancelled", "expired": "batch_expired"}
        return in_order(
            entries,
            provider=self.name,
            order=order,
            total=job.counts.total,
            missing_reason=missing.get(job.status, "batch_result_missing"),
        )

    async def cancel_batch(self, batch_id: str) -> BatchJob:
        """Ask OpenAI to cancel the batch (it goes through ``cancelling``)."""
        self._require_credential(None)
        response = await send_raw(self, "POST", f"batches/{quote(batch_id, safe='')}/cancel")
        data = self.parse_json(response.body, response.headers, None)
        return batch.parse_batch(data, provider=self.name)

    async def _file_content(self, file_id: Any) -> bytes:
        if not isinstance(file_id, str) or not file_id:
            return b""  # OpenAI leaves out a file that would be empty
        response = await send_raw(self, "GET", f"files/{quote(file_id, safe='')}/content")
        return response.body
