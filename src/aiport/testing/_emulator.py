"""The emulator server: lifecycle, request recording, fault scheduling and routing.

Routes (one catch-all handler dispatches; see :mod:`aiport.testing` for behaviour):
``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``POST /v1/images/generations``,
``GET /files/<name>.png`` (OpenAI); ``POST /v1/messages``,
``POST /v1/messages/count_tokens`` (Anthropic); ``GET /v1/models[/<id>]`` for both (the
Anthropic form when the request has an ``anthropic-version`` or ``x-api-key`` header);
``POST /oauth/token`` (an OAuth2 token endpoint, :mod:`aiport.testing._oauth`).
The other providers' routes live in their own modules, found by path prefix
(``_PROVIDER_ROUTES``): Gemini ``/v1beta/``, Azure OpenAI ``/openai/``, Mistral
``/mistral/``, Cohere ``/v2/``, Ollama ``/api/``, Bedrock ``/model/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from aiohttp import web

from ._anthropic import AnthropicRoutes
from ._batches import BatchRoutes
from ._faults import (
    Call,
    Fault,
    Reply,
    StreamEvent,
    deliver,
    drop_connection,
    html_error_page,
)
from ._oauth import AcceptedKeys, OAuthRoutes
from ._openai import OpenAIRoutes

_MAX_BODY = 64 * 1024 * 1024
_DAMAGING = frozenset({"cut", "stall", "malformed", "slow", "stream-error"})


class Routes(Protocol):
    """What the server asks of one provider's routes."""

    def handle(self, call: Call) -> Reply:
        """The answer to a request without a fault."""
        ...

    def status_error(self, call: Call, fault: Fault) -> Reply:
        """The provider's error body for an HTTP-status fault."""
        ...

    def context_length_error(self, call: Call) -> Reply:
        """The provider's error for a prompt longer than the model's context window."""
        ...

    def stream_error_event(self, fault: Fault) -> StreamEvent:
        """The provider's in-stream error event (the ``stream-error`` fault)."""
        ...

    def stream_error_status(self, fault: Fault) -> Fault:
        """The status fault to answer with when a ``stream-error`` hits a non-stream call."""
        ...


@dataclass(frozen=True, slots=True)
class RoutesContext:
    """What the emulator shares with the routes of every provider."""

    #: None accepts any non-empty key, else only these (and OAuth2 tokens it issued).
    api_keys: frozenset[str] | None
    #: The prompt-token limit of a model.
    window: Callable[[str], int]
    #: ``http://HOST:PORT`` of the running emulator.
    base_url: Callable[[], str]
    #: The OpenAI routes, for providers whose wire format is a dialect of OpenAI's.
    openai: OpenAIRoutes


#: Path prefix -> ``module:Class`` of the routes of the other providers, imported when a
#: request first needs them. The class is built with a :class:`RoutesContext`.
_PROVIDER_ROUTES: tuple[tuple[str, str], ...] = (
    ("/v1beta/", "aiport.testing._gemini:GeminiRoutes"),
    ("/openai/", "aiport.testing._azure:AzureRoutes"),
    ("/mistral/", "aiport.testing._mistral:MistralRoutes"),
    ("/v2/", "aiport.testing._cohere:CohereRoutes"),
    ("/api/", "aiport.testing._ollama:OllamaRoutes"),
    ("/model/", "aiport.testing._bedrock:BedrockRoutes"),
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the emulator received, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None for an empty or non-JSON body
    raw_body: bytes
    fault: str | None  # Fault.name of the fault applied, if any
    time: float  # time.monotonic() at arrival


@dataclass(slots=True)
class _Rule:
    fault: Fault
    remaining: int | None  # None: applies forever
    path: str | None
    model: str | None

    def matches(self, path: str, body: Any) -> bool:
        if self.path is not None and self.path != path:
            return False
        if self.model is None:
            return True
        if isinstance(body, dict) and body.get("model") == self.model:
            return True
        # Gemini, Azure and Bedrock name the model (or deployment) in the path; Bedrock ids
        # contain colons (``...-v1:0``), Gemini puts one after the model (``:generateContent``).
        segments = path.split("/")
        return self.model in segments or self.model in path.replace(":", "/").split("/")


class Emulator:
    """An offline OpenAI + Anthropic API on loopback, with scriptable faults.

    Use ``async with Emulator() as emu`` in async code, ``with
    Emulator().run_in_thread() as emu`` in sync code, or :meth:`serve_forever` from a CLI.
    Point clients at :attr:`openai_base_url` / :attr:`anthropic_base_url`.

    ``api_keys``: None accepts any non-empty key, otherwise only these (401 otherwise).
    ``context_window`` is the prompt-token limit of every model unless ``context_windows``
    names the model. ``stream_delay`` seconds are slept between SSE events.
    Anthropic models named in ``reject_prefill`` refuse a prefilled assistant answer with
    a 400, as some real models do; the others continue it.
    ``batch_delay``: batches (:mod:`aiport.testing._batches`) are done after that many
    status polls (an int; default 1) or seconds (a float).
    """

    def __init__(
        self,
        api_keys: Iterable[str] | None = None,
        context_window: int = 128_000,
        port: int = 0,
        host: str = "127.0.0.1",
        stream_delay: float = 0.0,
        *,
        context_windows: Mapping[str, int] | None = None,
        reject_prefill: Iterable[str] = (),
        batch_delay: float = 1,
    ) -> None:
        if stream_delay < 0:
            raise ValueError("stream_delay must be >= 0")
        #: The OAuth2 token endpoint (``POST /oauth/token``); its tokens are accepted keys.
        self.oauth = OAuthRoutes()
        keys = None if api_keys is None else AcceptedKeys(api_keys, self.oauth)
        self._host = host
        self._wanted_port = port
        self._port: int | None = None
        self._stream_delay = float(stream_delay)
        self._context_window = context_window
        self._windows = dict(context_windows or {})
        self._lock = threading.Lock()  # requests/rules are touched from the caller's thread too
        self._seq = 0
        self._rules: list[_Rule] = []
        self._files: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self.requests: list[RecordedRequest] = []
        self._openai = OpenAIRoutes(
            api_keys=keys, window=self._window, files=self._files, base_url=lambda: self.url
        )
        self._anthropic = AnthropicRoutes(
            api_keys=keys, window=self._window, reject_prefill=frozenset(reject_prefill)
        )
        self._routes_context = RoutesContext(
            api_keys=keys, window=self._window, base_url=lambda: self.url, openai=self._openai
        )
        self._provider_routes: dict[str, Routes] = {}
        self._batches = BatchRoutes(
            openai=self._openai,
            anthropic=self._anthropic,
            base_url=lambda: self.url,
            delay=batch_delay,
        )

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound port (only known once started)."""
        if self._port is None:
            raise RuntimeError("the emulator is not running: start it first")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running emulator."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for OpenAI clients (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for Anthropic clients (they append ``/v1/messages``)."""
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """Base URL for Gemini clients (they append ``/v1beta/models/...``)."""
        return self.url

    @property
    def azure_endpoint(self) -> str:
        """Endpoint for Azure OpenAI clients (they append ``/openai/...``)."""
        return self.url

    @property
    def mistral_base_url(self) -> str:
        """Base URL for Mistral clients (``url + "/mistral/v1"``; its paths are OpenAI's)."""
        return self.url + "/mistral/v1"

    @property
    def cohere_base_url(self) -> str:
        """Base URL for Cohere clients (they append ``/v2/chat``...)."""
        return self.url

    @property
    def ollama_base_url(self) -> str:
        """Base URL for Ollama's native API (clients append ``/api/chat``...)."""
        return self.url

    @property
    def bedrock_endpoint(self) -> str:
        """Endpoint for Bedrock runtime clients (they append ``/model/<id>/converse``...)."""
        return self.url

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "stopped"
        return f"<Emulator {where} requests={len(self.requests)}>"

    # ------------------------------------------------------------------ recording & faults

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (only those for ``path``, if given)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def reset(self) -> None:
        """Forget recorded requests and scheduled faults."""
        with self._lock:
            self.requests.clear()
            self._rules.clear()

    def add_fault(
        self,
        fault: Fault,
        *,
        times: int | None = 1,
        path: str | None = None,
        model: str | None = None,
    ) -> None:
        """Give ``fault`` to the next ``times`` matching requests (None: every one).

        ``path`` must equal the URL path; ``model`` the body's ``"model"`` or a segment of
        the path (``/v1beta/models/<model>:generateContent``). Rules are
        tried in the order added and a request consumes at most one. A request's
        ``x-emulator-fault`` header wins over (and does not consume) scheduled rules.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        with self._lock:
            self._rules.append(_Rule(fault, times, path, model))

    def fail_next(self, n: int, fault: Fault) -> None:
        """The next ``n`` requests, whatever their path, get ``fault``."""
        if n > 0:
            self.add_fault(fault, times=n)

    def _take_rule(self, path: str, body: Any) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if not rule.matches(path, body):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None

    def _window(self, model: str) -> int:
        return self._windows.get(model, self._context_window)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind and start serving on the current event loop."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that gives up on a hang cancels its handler.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._wanted_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = int(runner.addresses[0][1])
        self._stopping = asyncio.Event()
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving; hangs, stalls and slow streams in progress end at once."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._stopping is not None:
            self._stopping.set()
        await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def run_in_thread(self) -> ThreadedEmulator:
        """Run on a private event loop in a daemon thread; use as a context manager."""
        return ThreadedEmulator(self)

    def serve_forever(self, on_ready: Callable[[Emulator], None] | None = None) -> None:
        """Serve until interrupted (Ctrl-C returns cleanly). ``on_ready`` runs once bound."""

        async def main() -> None:
            await self.start()
            try:
                if on_ready is not None:
                    on_ready(self)
                await asyncio.Event().wait()
            finally:
                await self.stop()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())

    async def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the emulator started stopping meanwhile."""
        stopping = self._stopping
        if stopping is None or stopping.is_set():
            return True
        if seconds <= 0:
            return False
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ handling

    def _routes(self, path: str, headers: Mapping[str, str]) -> Routes:
        if path.startswith("/oauth/"):
            return self.oauth
        batches = self._batches.route(path)
        if batches is not None:
            return batches
        for prefix, target in _PROVIDER_ROUTES:
            if path.startswith(prefix):
                return self._provider(target)
        if path.startswith("/v1/messages"):
            return self._anthropic
        if path.startswith("/files/"):
            return self._openai
        if "anthropic-version" in headers or "x-api-key" in headers:
            return self._anthropic
        return self._openai

    def _provider(self, target: str) -> Routes:
        routes = self._provider_routes.get(target)
        if routes is None:
            module_name, _, class_name = target.partition(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            routes = self._provider_routes[target] = cls(self._routes_context)
        return routes

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        fault: Fault | None = None
        spec_error: str | None = None
        spec = headers.get("x-emulator-fault")
        if spec is not None:
            try:
                fault = Fault.parse(spec)
            except ValueError as exc:
                spec_error = str(exc)
        else:
            fault = self._take_rule(request.path, body)
        with self._lock:
            seq = self._seq
            self._seq += 1
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers=headers,
                    body=body,
                    raw_body=raw,
                    fault=fault.name if fault is not None else None,
                    time=time.monotonic(),
                )
            )
        call = Call(
            request.method,
            request.path,
            dict(request.query),
            headers,
            body,
            raw,
            seq,
            raw_path=request.raw_path.partition("?")[0],
        )
        routes = self._routes(request.path, headers)
        if spec_error is not None:
            message = f"x-emulator-fault: {spec_error}"
            return await self._send(
                request, routes.status_error(call, Fault.status(400, message=message))
            )
        if fault is None:
            return await self._send(request, routes.handle(call))
        match fault.kind:
            case "reset":
                drop_connection(request, rst=True)
                return web.Response()
            case "hang":
                await self._pause(fault.seconds or 0.0)
                drop_connection(request, rst=False)
                return web.Response()
            case "status":
                reply = routes.status_error(call, fault)
            case "malformed-body":
                reply = html_error_page(fault.code or 502)
            case "context-length":
                reply = routes.context_length_error(call)
            case _:
                reply = routes.handle(call)
        if fault.kind == "stream-error" and reply.events is None and reply.status < 400:
            reply = routes.status_error(call, routes.stream_error_status(fault))
        damage = fault if fault.kind in _DAMAGING else None
        error_event = routes.stream_error_event(fault) if fault.kind == "stream-error" else None
        return await self._send(request, reply, damage, error_event)

    async def _send(
        self,
        request: web.Request,
        reply: Reply,
        fault: Fault | None = None,
        error_event: StreamEvent | None = None,
    ) -> web.StreamResponse:
        return await deliver(
            request,
            reply,
            fault,
            pause=self._pause,
            stream_delay=self._stream_delay,
            error_event=error_event,
        )


class ThreadedEmulator:
    """An :class:`Emulator` running on its own event loop in a daemon thread.

    ``with emu.run_in_thread() as emu:`` starts it and yields the emulator; leaving the
    block stops it. :meth:`start`/:meth:`stop` do the same without a ``with``.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        """Start the loop thread and the emulator in it; returns the running emulator."""
        if self._thread is not None:
            raise RuntimeError("already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.emulator.start())
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="aiport-emulator", daemon=True)
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._loop, self._thread = loop, thread
        return self.emulator

    def stop(self) -> None:
        """Stop the emulator (ending hangs and stalls at once) and its loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(self.emulator.stop(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
