"""What every HTTP adapter shares: sending JSON, reading SSE, turning failures into errors.

An adapter subclasses ``HttpProvider`` and supplies three things: its auth headers, its
error mapping, and its conversions (in its own ``_convert`` module). Credentials and the
HTTP client are injected, so the same adapter serves the real API, a compatible server
or the emulator.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiport._credentials import (
    CredentialSource,
    check_credential,
    invalidate_after_failure,
    is_refreshable,
)
from aiport._errors import (
    ConfigError,
    ConfigProblem,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._http import HttpClient, HttpResponse, HttpStream, HttpTimeouts, TransportError
from aiport._mapping import request_id_from
from aiport._provider import ModelProvider
from aiport._redact import Redactor
from aiport._sse import ServerSentEvent, SSEDecoder
from aiport._types import ProviderModel

__all__ = [
    "HttpProvider",
    "ResponseListener",
    "check_base_url",
    "decode_json",
    "encode_json",
    "loads_text",
]

logger = logging.getLogger("aiport")

#: Called with (HTTP status, response headers, model) for every answer a provider gets:
#: how layers such as the rate limiter learn from headers without parsing bodies.
ResponseListener = Callable[[int, Mapping[str, str], "str | None"], None]


#: Built once: ``json.dumps`` with options builds an encoder per call (about 1 us).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder()


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON, UTF-8 (what every provider accepts)."""
    return _ENCODER.encode(payload).encode()


#: The decoder's scanner (set by ``JSONDecoder.__init__``; typeshed does not declare it).
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def loads_text(text: str) -> Any:
    """``json.loads(text)``, minus its whitespace checks when there is no whitespace to
    skip (every stream event is parsed here: about 0.6 us less each)."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # leading whitespace, or not JSON: json says which
    if end != len(text):
        return json.loads(text)  # trailing whitespace, or extra data
    return value


def decode_json(body: bytes) -> Any:
    """``json.loads(body)``; a body starting with ``{`` and no NUL (so UTF-8, never the
    UTF-16/32 ``json.loads`` also detects) skips the encoding detection."""
    if body[:1] == b"{" and body[1:2] != b"\x00":
        return loads_text(body.decode("utf-8", "surrogatepass"))
    return json.loads(body)


def check_base_url(name: str, base_url: str) -> None:
    """Refuse a base URL that is not http(s) with a host; warn about plain http off-host.

    Credentials travel in headers to this URL: over plain http anyone on the path can read
    them, so http is only quiet for loopback addresses (local servers, the emulator).

    Raises:
        ConfigError: the URL is not ``http://`` or ``https://`` with a host.
    """
    from aiport._tokens import is_loopback_host

    try:
        parts = urlsplit(base_url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        host, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            [
                ConfigProblem(
                    path=f"providers.{name}.base_url",
                    message="must be an http:// or https:// URL with a host",
                )
            ]
        )
    if parts.scheme == "http" and not is_loopback_host(host):
        logger.warning(
            "provider %r uses plain http to %s: its credentials and prompts travel "
            "unencrypted; use https",
            name,
            host,
        )


class HttpProvider(ModelProvider):
    """Base of adapters that speak JSON over HTTP (and SSE for streams).

    Args:
        name: the provider's configured name.
        base_url: the API root, e.g. ``https://api.openai.com/v1``.
        credential: where the API key or token comes from (``None``: no auth header).
        http: the pooled HTTP client (owned by the caller, usually the service).
        models: known models by id.
        headers: default headers sent with every request.
        timeouts: default timeouts; ``model_timeouts`` overrides them per model.
        clock: a monotonic clock, for latency.

    ``requires_credential``: whether calls need a credential; when an adapter sets it and
    there is none, ``check`` and every call the adapter guards with ``_require_credential``
    fail with ``ProviderAuthError`` before any request. Off by default (local servers).
    """

    requires_credential: bool = False

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        credential: CredentialSource | None,
        http: HttpClient,
        description: str = "",
        models: Mapping[str, ProviderModel] | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: HttpTimeouts | None = None,
        model_timeouts: Mapping[str, HttpTimeouts] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        check_base_url(name, base_url)
        self.name = name
        self.description = description
        self.base_url = base_url.rstrip("/")
        self._credential = credential
        self._http = http
        self._models: dict[str, ProviderModel] = dict(models or {})
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeouts = timeouts or HttpTimeouts()
        self._model_timeouts = dict(model_timeouts or {})
        self._clock = clock
        #: Scrubs the credentials this provider used out of every error it raises.
        self.redactor = Redactor()
        #: Told of every HTTP answer (status, headers, model); see ``ResponseListener``.
        self.response_listeners: list[ResponseListener] = []

    @property
    def models(self) -> Mapping[str, ProviderModel]:
        return self._models

    # ------------------------------------------------------------------ adapter hooks

    @abstractmethod
    def auth_headers(self, secret: str) -> dict[str, str]:
        """The headers that carry ``secret`` (never a URL or query parameter)."""

    @abstractmethod
    def map_error(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        """The typed error for an HTTP error answer.

        ``body`` is the parsed JSON (``None`` if the body was not JSON) and ``text`` the
        raw body text; both are already scrubbed of credentials.
        """

    async def finalize_headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers actually sent, once the request's method, URL, headers and body are
        final. The default sends ``headers`` unchanged; an adapter whose authentication
        signs the whole request (AWS SigV4) signs here, right before sending."""
        return headers

    # ------------------------------------------------------------------ plumbing

    async def check(self) -> None:
        self._require_credential(None)
        if self._credential is not None:
            # Token credentials check their setup without fetching a token (no network).
            await check_credential(self._credential)

    def _require_credential(self, model: str | None) -> None:
        """``ProviderAuthError`` (before any request) when a credential is needed and
        there is none."""
        if self._credential is None and self.requires_credential:
            raise self.missing_credential_error(model)

    async def _secret(self) -> str | None:
        if self._credential is None:
            return None
        secret = (await self._credential.get()).get_secret_value()
        self.redactor.add(secret)
        return secret

    async def _request_headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return (await self._authorized_headers(extra))[0]

    async def _authorized_headers(
        self, extra: Mapping[str, str] | None = None
    ) -> tuple[dict[str, str], str | None]:
        """The headers of a request, and the secret they carry (``None`` without one)."""
        headers = dict(self._headers)
        secret = await self._secret()
        if secret is not None:
            headers.update(self.auth_headers(secret))
        if extra:
            headers.update(extra)
        return headers, secret

    async def _retry_with_fresh_secret(self, status: int, used: str | None, attempt: int) -> bool:
        """After an answer with ``status``: whether to send the request once more.

        Only the first 401 of a request is retried, and only when the credential is
        refreshable (a token): it is invalidated, a fresh token fetched (a failure raises
        ``ProviderAuthError`` with reason ``token_refresh_failed``), and the request is
        retried if the token changed. Otherwise a 401 just invalidates the credential, so
        the next call resolves it again (a rotated key).
        """
        if status != 401 or self._credential is None:
            return False
        invalidate_after_failure(self._credential, used)
        if attempt > 0 or used is None or not is_refreshable(self._credential):
            return False
        fresh = await self._secret()
        return fresh is not None and fresh != used

    def timeouts_for(self, model: str | None, timeout: float | None) -> HttpTimeouts:
        """The timeouts of one call: the model's (or the provider's), ``timeout`` as total."""
        base = self._model_timeouts.get(model or "", self._timeouts)
        if timeout is None:
            return base
        return HttpTimeouts(
            connect=min(base.connect, timeout),
            first_token=min(base.first_token, timeout),
            idle=min(base.idle, timeout),
            total=timeout,
        )

    def url(self, path: str) -> str:
        """The absolute URL of an API path."""
        return f"{self.base_url}/{path.lstrip('/')}"

    async def post_json(
        self,
        path: str,
        payload: Mapping[str, Any],
        *,
        model: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, Any], HttpResponse]:
        """POST ``payload``; return the parsed JSON answer, or raise the typed error."""
        response = await self.send_request(
            "POST", path, encode_json(payload), model=model, timeout=timeout, headers=headers
        )
        return self.parse_json(response.body, response.headers, model), response

    async def get_json(
        self, path: str, *, model: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """GET a JSON resource (model lists)."""
        response = await self.send_request("GET", path, None, model=model, timeout=timeout)
        return self.parse_json(response.body, response.headers, model)

    async def send_request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        model: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request and return its successful answer, whatever its body is.

        Credentials go in headers only; a 401 with a refreshable credential is retried once
        with a fresh token; transport failures and error answers raise typed, scrubbed
        errors. ``post_json`` and ``get_json`` are built on it; adapters use it directly
        for uploads and downloads that are not JSON.
        """
        for attempt in range(2):
            request_headers, used = await self._authorized_headers(headers)
            request_headers = await self.finalize_headers(
                method, self.url(path), request_headers, body
            )
            try:
                response = await self._http.request(
                    method,
                    self.url(path),
                    headers=request_headers,
                    body=body,
                    timeouts=self.timeouts_for(model, timeout),
                )
            except TransportError as exc:
                raise self.transport_error(exc, model) from exc
            self._observe(response.status, response.headers, model)
            if response.status < 300:
                return response
            if not await self._retry_with_fresh_secret(response.status, used, attempt):
                break
        raise self.error_from_body(response.status, response.headers, response.body, model)

    def post_sse(
        self,
        path: str,
        payload: Mapping[str, Any],
        *,
        model: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[
        tuple[AsyncIterator[ServerSentEvent], Mapping[str, str]]
    ]:
        """POST a streaming request; give its events (and the response headers).

        Use with ``async with``. Errors before the stream starts (HTTP status,
        connection, first-token timeout) are raised on entry; errors while reading are
        raised by the event iterator as typed errors. The iterator ends at the end of
        the body; adapters decide whether that end was legitimate.
        """
        return _SSEPost(self, path, payload, model=model, timeout=timeout, headers=headers)

    def post_sse_batches(
        self,
        path: str,
        payload: Mapping[str, Any],
        *,
        model: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> contextlib.AbstractAsyncContextManager[
        tuple[AsyncIterator[list[ServerSentEvent]], Mapping[str, str]]
    ]:
        """``post_sse``, giving the events in batches: one list per chunk of the body
        read (possibly empty), in order, the events of an unterminated last one at the end.

        The same events, errors and closing as ``post_sse``; what it saves is a generator
        resumption per event (a stream of fifty chunks arriving at once is one batch).
        """
        return _SSEPost(
            self, path, payload, model=model, timeout=timeout, headers=headers, batched=True
        )

    async def _event_batches(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str], model: str | None
    ) -> AsyncGenerator[list[ServerSentEvent], None]:
        decoder = SSEDecoder()
        try:
            try:
                async for chunk in chunks:
                    yield decoder.feed(chunk)
            except TransportError as exc:
                raise self.transport_error(exc, model, headers=headers) from exc
            yield decoder.flush()
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def _events(
        self, chunks: AsyncIterator[bytes], headers: Mapping[str, str], model: str | None
    ) -> AsyncGenerator[ServerSentEvent, None]:
        decoder = SSEDecoder()
        try:
            try:
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        yield event
            except TransportError as exc:
                raise self.transport_error(exc, model, headers=headers) from exc
            for event in decoder.flush():
                yield event
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def _observe(self, status: int, headers: Mapping[str, str], model: str | None) -> None:
        for listener in self.response_listeners:
            listener(status, headers, model)

    def _invalidate_on_auth_failure(self, status: int) -> None:
        # A 401 may mean the key was rotated: resolve it again on the next call.
        if status == 401 and self._credential is not None:
            self._credential.invalidate()

    # ------------------------------------------------------------------ errors

    def parse_json(
        self, body: bytes, headers: Mapping[str, str], model: str | None
    ) -> dict[str, Any]:
        """Parse a success body; anything but a JSON object is a ``MalformedResponseError``."""
        try:
            data = decode_json(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise MalformedResponseError(
                f"{self.name} answered with a body that is not a JSON object "
                f"({len(body)} bytes: {self.redactor.scrub(_preview(body))!r})",
                provider=self.name,
                model=model,
                request_id=request_id_from(headers),
            )
        return data

    def error_from_body(
        self, status: int, headers: Mapping[str, str], body: bytes, model: str | None
    ) -> ProviderError:
        """The typed, scrubbed error for an HTTP error answer."""
        text = self.redactor.scrub(body.decode("utf-8", errors="replace"))
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = None
        if 300 <= status < 400:
            return ProviderAPIError(
                f"{self.name} answered with a redirect (HTTP {status}), which aiport does not "
                "follow: check base_url",
                provider=self.name,
                model=model,
                status_code=status,
                request_id=request_id_from(headers),
                reason="unexpected_status",
            )
        return self._mapped(status, headers, parsed, text, model)

    def error_in_answer(
        self, body: Mapping[str, Any], text: str, headers: Mapping[str, str], model: str | None
    ) -> ProviderError:
        """The typed error for an error object inside a 200 answer or a stream (``body``
        parsed, ``text`` as received); both are scrubbed of credentials first."""
        scrubbed = self.redactor.scrub_value(dict(body))
        return self._mapped(0, headers, scrubbed, self.redactor.scrub(text), model)

    def stream_interrupted(
        self, text: str, model: str, request_id: str | None
    ) -> StreamInterruptedError:
        """The error for a stream that ended before the provider said it finished, with
        the ``text`` delivered so far."""
        return StreamInterruptedError(
            f"the stream from {self.name} ended before the model finished "
            f"({len(text)} characters of text received)",
            partial_text=text,
            provider=self.name,
            model=model,
            request_id=request_id,
        )

    def _mapped(
        self, status: int, headers: Mapping[str, str], body: Any, text: str, model: str | None
    ) -> ProviderError:
        error = self.map_error(status, headers, body, text, model)
        error.message = self.redactor.scrub(error.message)
        error.args = (error.message,)
        return error

    def transport_error(
        self,
        exc: TransportError,
        model: str | None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> ProviderError:
        """The typed error for a timeout or a broken connection."""
        context: dict[str, Any] = {
            "provider": self.name,
            "model": model,
            "request_id": request_id_from(headers) if headers else None,
        }
        message = self.redactor.scrub(str(exc))
        if exc.kind == "timeout":
            return ProviderTimeoutError(f"{self.name}: {message}", reason="timeout", **context)
        return ProviderConnectionError(f"{self.name}: {message}", **context)

    def missing_credential_error(self, model: str | None) -> ProviderAuthError:
        """For adapters that require a credential and were given none."""
        return ProviderAuthError(
            f"provider {self.name!r} has no API key configured",
            provider=self.name,
            model=model,
            reason="credentials_missing",
        )


def _preview(body: bytes, limit: int = 120) -> str:
    text = body[:limit].decode("utf-8", errors="replace")
    return text + ("..." if len(body) > limit else "")


class _SSEPost:
    """What ``HttpProvider.post_sse`` returns: an async context manager that sends the
    request on entry (again once with a fresh secret when the provider asks for it) and
    closes the events and the response on exit.

    A class rather than ``contextlib.asynccontextmanager``: every stream opens one, and
    the generator behind a decorated one (created, registered with the event loop,
    resumed twice, closed) is a measurable part of what a stream costs once.
    """

    __slots__ = (
        "_batched",
        "_events",
        "_headers",
        "_model",
        "_path",
        "_payload",
        "_provider",
        "_streaming",
        "_timeout",
    )

    def __init__(
        self,
        provider: HttpProvider,
        path: str,
        payload: Mapping[str, Any],
        *,
        model: str | None,
        timeout: float | None,
        headers: Mapping[str, str] | None,
        batched: bool = False,
    ) -> None:
        self._provider = provider
        self._batched = batched
        self._path = path
        self._payload = payload
        self._model = model
        self._timeout = timeout
        self._headers = headers
        self._streaming: contextlib.AbstractAsyncContextManager[HttpStream] | None = None
        self._events: AsyncGenerator[Any, None] | None = None

    async def __aenter__(self) -> tuple[AsyncIterator[Any], Mapping[str, str]]:
        provider, model = self._provider, self._model
        body = encode_json(self._payload)
        url = provider.url(self._path)
        for attempt in range(2):
            request_headers, used = await provider._authorized_headers(self._headers)
            request_headers.setdefault("Accept", "text/event-stream")
            request_headers = await provider.finalize_headers("POST", url, request_headers, body)
            streaming = provider._http.stream(
                "POST",
                url,
                headers=request_headers,
                body=body,
                timeouts=provider.timeouts_for(model, self._timeout),
            )
            try:
                response = await streaming.__aenter__()
            except TransportError as exc:
                raise provider.transport_error(exc, model) from exc
            try:
                provider._observe(response.status, response.headers, model)
                if response.status < 300:
                    read = provider._event_batches if self._batched else provider._events
                    events = read(response.chunks(), response.headers, model)
                    self._streaming, self._events = streaming, events
                    return events, response.headers
                error_body = await response.read_all()
                retry = await provider._retry_with_fresh_secret(response.status, used, attempt)
                if not retry:
                    raise provider.error_from_body(  # noqa: TRY301  (the response closes below)
                        response.status, response.headers, error_body, model
                    )
            except BaseException as exc:
                try:
                    suppressed = await streaming.__aexit__(type(exc), exc, exc.__traceback__)
                except TransportError as error:
                    raise provider.transport_error(error, model) from error
                if isinstance(exc, TransportError):
                    raise provider.transport_error(exc, model) from exc
                if not suppressed:
                    raise
                message = "post_sse: the response closed before the stream started"
                raise RuntimeError(message) from exc
            try:
                await streaming.__aexit__(None, None, None)
            except TransportError as exc:
                raise provider.transport_error(exc, model) from exc
        raise RuntimeError("post_sse: the request was not sent")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        streaming, events = self._streaming, self._events
        if streaming is None or events is None:
            return None
        self._streaming = self._events = None
        model = self._model
        try:
            # Closed here, with the response: an adapter that stops at its end marker
            # leaves the reader suspended, and the event loop would finalize it later in
            # a task of its own (two per stream).
            await events.aclose()
        except BaseException as closing:
            exc_type, exc, tb = type(closing), closing, closing.__traceback__
            try:
                suppressed = await streaming.__aexit__(exc_type, exc, tb)
            except TransportError as error:
                raise self._provider.transport_error(error, model) from error
            if suppressed:
                return True
            if isinstance(closing, TransportError):
                raise self._provider.transport_error(closing, model) from closing
            raise
        try:
            suppressed = await streaming.__aexit__(exc_type, exc, tb)
        except TransportError as error:
            raise self._provider.transport_error(error, model) from error
        if not suppressed and isinstance(exc, TransportError):
            raise self._provider.transport_error(exc, model) from exc
        return suppressed
