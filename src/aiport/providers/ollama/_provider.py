"""The Ollama adapter: its native API (``/api/chat``, ``/api/embed``, ``/api/tags``).

Ollama's OpenAI-compatible endpoint (``/v1``) is served by the ``openai-compatible``
type and the ``ollama-openai`` preset instead; the native API is the complete one
(thinking, ``keep_alive``, ``options`` such as ``num_ctx``, JSON-schema ``format``).
Conversions live in ``_convert``, error mapping in ``_errors``; this module only moves
bytes. Streams are NDJSON (one JSON object per line), read with ``aiport._ndjson``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiport._credentials import CredentialSource
from aiport._errors import (
    ConfigError,
    ConfigProblem,
    ProviderConnectionError,
    ProviderError,
)
from aiport._http import HttpClient, HttpTimeouts, TransportError
from aiport._mapping import request_id_from
from aiport._ndjson import NDJSONDecoder
from aiport._types import (
    ModelCapabilities,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
    StreamFinishEvent,
)
from aiport.providers._base import HttpProvider, encode_json
from aiport.providers.ollama._convert import (
    ChatStreamAssembler,
    build_chat_request,
    build_embed_request,
    parse_chat_response,
    parse_embed_response,
)
from aiport.providers.ollama._errors import map_error

__all__ = ["DEFAULT_BASE_URL", "OllamaProvider", "base_url_from_host"]

#: Where a local Ollama listens.
DEFAULT_BASE_URL = "http://localhost:11434"
_DEFAULT_PORT = 11434

logger = logging.getLogger("aiport")


def base_url_from_host(host: str | None) -> str:
    """The base URL an ``OLLAMA_HOST`` value stands for, read as Ollama's clients read it.

    ``None`` or ``""`` -> ``http://localhost:11434``; a bare host or ``host:port`` gets
    ``http://`` and port 11434 by default (``0.0.0.0`` and ``::``, the addresses a server
    binds to, mean this machine); an explicit ``http://``/``https://`` URL keeps its own
    default port (80/443) and path.
    """
    value = (host or "").strip()
    if not value:
        return DEFAULT_BASE_URL
    scheme, separator, rest = value.partition("://")
    default_port = _DEFAULT_PORT
    if not separator:
        scheme, rest = "http", value
    elif scheme in ("http", "https"):
        default_port = 80 if scheme == "http" else 443
    address, slash, path_rest = rest.partition("/")
    if "[" not in address and address.count(":") > 1:
        # A bare IPv6 address (no port can follow it without brackets).
        address = f"[{address}]"
    try:
        parts = urlsplit(f"{scheme}://{address}{slash}{path_rest}")
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(
            [ConfigProblem("OLLAMA_HOST", "must be host, host:port or an http(s) URL")]
        ) from None
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):  # noqa: S104  (a bind-all address names this machine)
        hostname = "localhost"
    try:
        if isinstance(ipaddress.ip_address(hostname), ipaddress.IPv6Address):
            hostname = f"[{hostname}]"
    except ValueError:
        pass  # a name, not an address
    path = parts.path.strip("/")
    return f"{scheme}://{hostname}:{port}" + (f"/{path}" if path else "")


class OllamaProvider(HttpProvider):
    """Models served by Ollama, through its native API.

    Args:
        name: the provider's configured name.
        base_url: the server root (``http://localhost:11434``; ``https://ollama.com``
            for Ollama's hosted models); requests go to ``{base_url}/api/...``.
        credential: optional. A local Ollama needs none; with one (ollama.com, or a
            proxy that authenticates) it is sent as ``Authorization: Bearer``.

    The other arguments are those of ``HttpProvider``. Ollama-specific request fields go
    in ``provider_options``: ``{"think": True}``, ``{"keep_alive": "10m"}``,
    ``{"options": {"num_ctx": 8192, "top_k": 20}}``, ``{"truncate": False}`` (an error
    instead of Ollama's default of silently dropping the oldest messages that do not fit
    the context). ``list_local_models()`` lists the models pulled on the server.
    """

    def __init__(
        self,
        *,
        name: str = "ollama",
        base_url: str = DEFAULT_BASE_URL,
        credential: CredentialSource | None = None,
        http: HttpClient,
        description: str = "",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            credential=credential,
            http=http,
            description=description or "Ollama (native API)",
            models=models,
            headers=headers,
            timeouts=timeouts,
            model_timeouts=model_timeouts,
            clock=clock,
        )

    # ------------------------------------------------------------------ adapter hooks

    def auth_headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        return map_error(self.name, status, headers, body, text, model)

    def _error_in_stream(
        self, line: Mapping[str, Any], headers: Mapping[str, str], model: str | None
    ) -> ProviderError:
        """The typed error for an ``{"error": ...}`` line inside a stream."""
        return self.error_in_answer(line, json.dumps(line), headers, model)

    # ------------------------------------------------------------------ operations

    async def complete(self, options: ModelCompletionOptions) -> ModelCompletionResponse:
        """Run a chat completion (``stream: false``)."""
        body, warnings = build_chat_request(options, stream=False)
        start = self._clock()
        data, response = await self.post_json(
            "api/chat", body, model=options.model, timeout=options.timeout
        )
        latency = self._clock() - start
        if isinstance(data.get("error"), str) and "message" not in data:
            raise self._error_in_stream(data, response.headers, options.model)
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

        Raises ``StreamInterruptedError`` (with the text delivered so far) when the body
        ends, or the connection breaks, before the ``done: true`` line; the typed error of
        an ``{"error": ...}`` line; ``ProviderTimeoutError`` on a stall. A line that is not
        JSON is skipped, logged and named in ``response.warnings``.
        """
        model = options.model
        body, warnings = build_chat_request(options, stream=True)
        assembler = ChatStreamAssembler()
        start = self._clock()
        async with self._post_ndjson("api/chat", body, model=model, timeout=options.timeout) as (
            lines,
            headers,
        ):
            request_id = request_id_from(headers)
            try:
                async for raw in lines:
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        line = None
                    if not isinstance(line, dict):
                        # Never the line itself in the log: it may hold user content.
                        logger.warning("skipped a malformed stream line from %s", self.name)
                        warnings.append(f"skipped a malformed stream line from {self.name}")
                        continue
                    if assembler.finished:
                        continue  # read on to the end, so the connection can be reused
                    if line.get("error") and "message" not in line:
                        raise self._error_in_stream(line, headers, model)
                    for event in assembler.feed(line):
                        yield event
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
        yield StreamFinishEvent(response=response)

    async def embed(self, options: ModelEmbeddingOptions) -> ModelEmbeddingResponse:
        """Embed texts with ``/api/embed``; vectors come back in input order."""
        body = build_embed_request(options)
        start = self._clock()
        data, response = await self.post_json(
            "api/embed", body, model=options.model, timeout=options.timeout
        )
        return parse_embed_response(
            data,
            provider=self.name,
            model=options.model,
            latency=self._clock() - start,
            request_id=request_id_from(response.headers),
            models=self._models,
        )

    async def list_local_models(self) -> list[ProviderModel]:
        """The models pulled on the server (``GET /api/tags``), in the server's order.

        Each row has the model's tagged name as ``id`` (``llama3.2:latest``) and its
        family, size and quantisation as ``description``; Ollama does not say what the
        model can do there, so ``capabilities`` are left empty, and a local model costs
        nothing (prices 0).
        """
        data = await self.get_json("api/tags")
        rows: list[ProviderModel] = []
        entries = data.get("models")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, Mapping):
                continue
            name = entry.get("model") or entry.get("name")
            if not isinstance(name, str) or not name:
                continue
            details = entry.get("details")
            described = ""
            if isinstance(details, Mapping):
                described = " ".join(
                    str(details[key])
                    for key in ("family", "parameter_size", "quantization_level")
                    if details.get(key)
                )
            rows.append(
                ProviderModel(
                    id=name,
                    provider=self.name,
                    description=described,
                    capabilities=ModelCapabilities(),
                    input_price_per_million=0.0,
                    output_price_per_million=0.0,
                )
            )
        return rows

    # ------------------------------------------------------------------ NDJSON streams

    @contextlib.asynccontextmanager
    async def _post_ndjson(
        self, path: str, payload: Mapping[str, Any], *, model: str | None, timeout: float | None
    ) -> AsyncIterator[tuple[AsyncIterator[bytes], Mapping[str, str]]]:
        """POST a streaming request; give its lines (and the response headers).

        As ``HttpProvider.post_sse`` does for SSE: errors before the stream starts
        (status, connection, first-token timeout) are raised here, errors while reading
        by the line iterator, as typed errors; a 401 with a refreshable credential is
        retried once with a fresh token.
        """
        body = encode_json(payload)
        for attempt in range(2):
            request_headers, used = await self._authorized_headers()
            request_headers.setdefault("Accept", "application/x-ndjson")
            retry = False
            try:
                async with self._http.stream(
                    "POST",
                    self.url(path),
                    headers=request_headers,
                    body=body,
                    timeouts=self.timeouts_for(model, timeout),
                ) as response:
                    self._observe(response.status, response.headers, model)
                    if response.status >= 300:
                        error_body = await response.read_all()
                        retry = await self._retry_with_fresh_secret(response.status, used, attempt)
                        if not retry:
                            raise self.error_from_body(
                                response.status, response.headers, error_body, model
                            )
                    else:
                        yield (
                            self._lines(response.chunks(), response.headers, model),
                            response.headers,
                        )
            except TransportError as exc:
                raise self.transport_error(exc, model) from exc
            if not retry:
                return

    async def _lines(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str], model: str | None
    ) -> AsyncIterator[bytes]:
        decoder = NDJSONDecoder()
        try:
            async for chunk in chunks:
                for line in decoder.feed(chunk):
                    yield line
        except TransportError as exc:
            raise self.transport_error(exc, model, headers=headers) from exc
        for line in decoder.flush():
            yield line
