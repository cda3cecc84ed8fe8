"""Faults the emulator can inject, and the code that puts a reply on the wire.

A :class:`Fault` is a plain, frozen description. Faults that replace the answer
(statuses, hangs, resets, HTML pages, context-length errors) are applied by the emulator
before a provider computes anything; faults that damage an answer (cut, stall, malformed,
slow first byte, mid-stream error) are applied by :func:`deliver` while it writes the
provider's :class:`Reply`.
"""

from __future__ import annotations

import contextlib
import http
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import quote, unquote

from aiohttp import web

FaultKind = Literal[
    "status",
    "hang",
    "reset",
    "cut",
    "stall",
    "malformed",
    "malformed-body",
    "context-length",
    "slow",
    "stream-error",
]

_DEFAULT_WAIT = 3600.0
_DEFAULT_AFTER = 3
_DEFAULT_PROXY_STATUS = 502


def _num(value: float) -> str:
    """Shortest text that parses back to exactly ``value`` (``2.0`` -> ``"2"``)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class Fault:
    """A failure to inject into a response. Build one with the classmethods.

    ``Fault.parse(spec)`` reads the compact form used by the ``x-emulator-fault`` request
    header, and :attr:`spec` writes it back (``Fault.parse(f.spec) == f``).
    """

    kind: FaultKind
    code: int | None = None
    retry_after: str | None = None
    retry_after_ms: int | None = None
    error_type: str | None = None
    message: str | None = None
    seconds: float | None = None
    after_events: int | None = None

    _OPTIONS: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "status": ("retry-after", "retry-after-ms", "type", "message"),
        "hang": ("seconds",),
        "reset": (),
        "cut": ("after",),
        "stall": ("after", "seconds"),
        "malformed": (),
        "malformed-body": ("status",),
        "context-length": (),
        "slow": ("seconds",),
        "stream-error": ("after", "type", "message"),
    }

    # ------------------------------------------------------------------ constructors

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: str | None = None,
        retry_after_ms: int | None = None,
        error_type: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Answer HTTP ``code`` with the provider's real error body and headers.

        ``retry_after`` is sent verbatim as ``Retry-After`` (seconds or an HTTP date),
        ``retry_after_ms`` as ``retry-after-ms``; ``error_type``/``message`` override the
        provider's usual error type and text for that status.
        """
        if not 400 <= code <= 599:
            raise ValueError(f"fault status must be an HTTP error code 400-599, got {code}")
        if retry_after_ms is not None and retry_after_ms < 0:
            raise ValueError("retry_after_ms must be >= 0")
        return cls(
            "status",
            code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            error_type=error_type,
            message=message,
        )

    @classmethod
    def hang(cls, seconds: float = _DEFAULT_WAIT) -> Fault:
        """Accept the request and send nothing until the client gives up, ``seconds``
        pass (then the connection is closed), or the emulator stops."""
        return cls("hang", seconds=_non_negative(seconds, "seconds"))

    @classmethod
    def reset(cls) -> Fault:
        """Reset the TCP connection without sending any response."""
        return cls("reset")

    @classmethod
    def cut_stream(cls, after_events: int = _DEFAULT_AFTER) -> Fault:
        """Streams: send ``after_events`` SSE events, then drop the connection. Other
        responses: send the headers and half of the body, then drop the connection."""
        return cls("cut", after_events=_count(after_events))

    @classmethod
    def stall(cls, after_events: int = _DEFAULT_AFTER, seconds: float = _DEFAULT_WAIT) -> Fault:
        """Pause ``seconds`` after ``after_events`` SSE events (or half of a plain body),
        then carry on normally."""
        return cls("stall", after_events=_count(after_events), seconds=_non_negative(seconds))

    @classmethod
    def malformed_json(cls) -> Fault:
        """A 200 whose JSON body is broken; in a stream, one broken event mid-stream."""
        return cls("malformed")

    @classmethod
    def malformed_body(cls, status: int = _DEFAULT_PROXY_STATUS) -> Fault:
        """An HTML error page, as an intermediate proxy would send, with ``status``."""
        if not 400 <= status <= 599:
            raise ValueError(f"fault status must be an HTTP error code 400-599, got {status}")
        return cls("malformed-body", code=status)

    @classmethod
    def context_length(cls) -> Fault:
        """The provider's real context-length-exceeded 400."""
        return cls("context-length")

    @classmethod
    def slow_first_token(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before the first byte of the response."""
        return cls("slow", seconds=_non_negative(seconds))

    @classmethod
    def stream_error(
        cls,
        after_events: int = _DEFAULT_AFTER,
        error_type: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Streams: after ``after_events`` events send the provider's in-stream error
        event and end the stream. ``error_type`` defaults to ``overloaded_error``
        (Anthropic) / ``server_error`` (OpenAI). Non-streaming requests get the matching
        error status instead."""
        return cls(
            "stream-error",
            after_events=_count(after_events),
            error_type=error_type,
            message=message,
        )

    # ------------------------------------------------------------------ compact specs

    @property
    def name(self) -> str:
        """Short name: the status code for status faults, else the kind."""
        return str(self.code) if self.kind == "status" else self.kind

    @property
    def spec(self) -> str:
        """The compact spec, as accepted by :meth:`parse` and ``x-emulator-fault``."""
        opts: list[tuple[str, str]] = []
        if self.kind == "status":
            if self.retry_after is not None:
                opts.append(("retry-after", self.retry_after))
            if self.retry_after_ms is not None:
                opts.append(("retry-after-ms", str(self.retry_after_ms)))
        if self.kind == "malformed-body" and self.code != _DEFAULT_PROXY_STATUS:
            opts.append(("status", str(self.code)))
        if self.after_events is not None and self.after_events != _DEFAULT_AFTER:
            opts.append(("after", str(self.after_events)))
        if self.seconds is not None and (self.kind == "slow" or self.seconds != _DEFAULT_WAIT):
            opts.append(("seconds", _num(self.seconds)))
        if self.error_type is not None:
            opts.append(("type", self.error_type))
        if self.message is not None:
            opts.append(("message", self.message))
        return ";".join([self.name, *(f"{k}={quote(v, safe='')}" for k, v in opts)])

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Read a compact spec such as ``"429;retry-after=2"``, ``"hang;seconds=2"``,
        ``"cut;after=3"``, ``"stall;after=2;seconds=5"`` or ``"malformed-body"``.

        Raises :class:`ValueError` naming the problem on anything else.
        """
        head, *rest = [part.strip() for part in spec.strip().split(";")]
        head = head.lower()
        kind: FaultKind
        if head.isdigit():
            kind = "status"
        elif head in cls._OPTIONS and head != "status":
            kind = head  # type: ignore[assignment]  # checked against the table above
        else:
            known = ", ".join(k for k in cls._OPTIONS if k != "status")
            raise ValueError(
                f"unknown fault {head!r} in spec {spec!r}: expected an HTTP status code "
                f"(e.g. '429') or one of {known}"
            )
        opts: dict[str, str] = {}
        for part in rest:
            if not part:
                continue
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"fault option {part!r} in spec {spec!r} must be key=value")
            if key not in cls._OPTIONS[kind]:
                allowed = ", ".join(cls._OPTIONS[kind]) or "no options"
                raise ValueError(f"fault {head!r} does not take {key!r} (takes: {allowed})")
            opts[key] = unquote(value.strip())
        try:
            return cls._from_options(kind, head, opts)
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None

    @classmethod
    def _from_options(cls, kind: FaultKind, head: str, opts: dict[str, str]) -> Fault:
        after = int(opts["after"]) if "after" in opts else _DEFAULT_AFTER
        seconds = float(opts["seconds"]) if "seconds" in opts else _DEFAULT_WAIT
        match kind:
            case "status":
                ms = opts.get("retry-after-ms")
                return cls.status(
                    int(head),
                    retry_after=opts.get("retry-after"),
                    retry_after_ms=int(ms) if ms is not None else None,
                    error_type=opts.get("type"),
                    message=opts.get("message"),
                )
            case "hang":
                return cls.hang(seconds)
            case "reset":
                return cls.reset()
            case "cut":
                return cls.cut_stream(after)
            case "stall":
                return cls.stall(after, seconds)
            case "malformed":
                return cls.malformed_json()
            case "malformed-body":
                return cls.malformed_body(int(opts.get("status", _DEFAULT_PROXY_STATUS)))
            case "context-length":
                return cls.context_length()
            case "slow":
                if "seconds" not in opts:
                    raise ValueError("'slow' needs seconds=N")
                return cls.slow_first_token(seconds)
            case "stream-error":
                return cls.stream_error(after, opts.get("type"), opts.get("message"))
        raise AssertionError(kind)


def _non_negative(value: float, what: str = "seconds") -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def _count(value: int) -> int:
    if value < 0:
        raise ValueError(f"after_events must be >= 0, got {value}")
    return int(value)


# --------------------------------------------------------------------------- provider errors
# What each provider sends for an error status; used for status faults and real errors.

# Per status: (type, code, message) of the error OpenAI sends.
OPENAI_STATUS_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "The request was invalid."),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist."),
    409: ("invalid_request_error", None, "The request conflicts with the current state."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "The request could not be processed."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-emulator on requests per min "
        "(RPM): Limit 10000, Used 10000, Requested 1. Please try again in 6ms. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}
OPENAI_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
#: Anthropic error type per status.
ANTHROPIC_STATUS_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: The message Anthropic sends with each error type.
ANTHROPIC_MESSAGES: Mapping[str, str] = {
    "invalid_request_error": "Invalid request.",
    "authentication_error": "invalid x-api-key",
    "billing_error": "Your credit balance is too low to access the Anthropic API. Please go "
    "to Plans & Billing to upgrade or purchase credits.",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "request_too_large": "Request exceeds the maximum allowed number of bytes.",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit "
    "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
    "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
    "later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss "
    "your options for a rate limit increase.",
    "api_error": "Internal server error",
    "timeout_error": "Request timed out",
    "overloaded_error": "Overloaded",
}


# --------------------------------------------------------------------------- wire types


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the provider routes see it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    raw: bytes
    seq: int  # 0-based arrival number within the emulator
    #: The path as it was sent, percent-encoding kept (``path`` is decoded); AWS
    #: signatures cover this form.
    raw_path: str = ""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One server-sent event; ``event`` is the optional ``event:`` line."""

    data: str
    event: str | None = None

    def render(self) -> bytes:
        head = f"event: {self.event}\n" if self.event is not None else ""
        return f"{head}data: {self.data}\n\n".encode()

    def broken(self) -> bytes:
        """The same event with its JSON cut in half, so it no longer parses."""
        return SSEEvent(self.data[: max(1, len(self.data) // 2)], self.event).render()


class StreamEvent(Protocol):
    """One unit of a streamed answer: an SSE event, an NDJSON line, an AWS event-stream
    message... Faults cut, stall or damage a stream between (or inside) these units."""

    def render(self) -> bytes:
        """The bytes of this unit on the wire."""
        ...

    def broken(self) -> bytes:
        """The same unit damaged so that a client cannot parse it."""
        ...


@dataclass(slots=True)
class Reply:
    """A complete answer: a body, or (for streams) a list of stream events."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: Sequence[StreamEvent] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, {**(headers or {}), "Content-Type": "application/json"}, body)

    @classmethod
    def stream(
        cls,
        events: Sequence[StreamEvent],
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "text/event-stream; charset=utf-8",
    ) -> Reply:
        hdrs = {**(headers or {}), "Content-Type": content_type, "Cache-Control": "no-cache"}
        return cls(200, hdrs, events=events)


def reason_phrase(status: int) -> str:
    if status == 529:
        return "Site Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def html_error_page(status: int) -> Reply:
    """What a reverse proxy in front of the provider sends when it gives up."""
    title = f"{status} {reason_phrase(status)}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Reply(status, {"Content-Type": "text/html"}, page.encode())


# --------------------------------------------------------------------------- delivery

#: Sleeps up to the given seconds; returns True when the emulator is stopping instead.
Pause = Callable[[float], Awaitable[bool]]


def drop_connection(request: web.BaseRequest, *, rst: bool) -> None:
    """Close the client's connection: an RST (nothing flushed) or a plain FIN."""
    transport = request.transport
    if transport is None:
        return
    if rst:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 makes close() send RST: the client sees "connection reset".
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


async def deliver(
    request: web.BaseRequest,
    reply: Reply,
    fault: Fault | None,
    *,
    pause: Pause,
    stream_delay: float = 0.0,
    error_event: StreamEvent | None = None,
) -> web.StreamResponse:
    """Write ``reply`` to the client, damaged as ``fault`` says."""
    kind = fault.kind if fault is not None else None
    if fault is not None and kind == "slow" and await pause(fault.seconds or 0.0):
        drop_connection(request, rst=False)
        return web.Response(status=503)
    headers = {k: v for k, v in reply.headers.items() if k.lower() != "content-length"}
    resp = web.StreamResponse(
        status=reply.status, reason=reason_phrase(reply.status), headers=headers
    )
    try:
        if reply.events is None:
            await _write_body(request, resp, reply, fault, pause)
        else:
            await _write_stream(
                request, resp, reply.events, fault, pause, delay=stream_delay, error=error_event
            )
    except ConnectionError:
        # The client went away mid-answer; nothing left to say.
        drop_connection(request, rst=False)
    return resp


async def _write_body(
    request: web.BaseRequest,
    resp: web.StreamResponse,
    reply: Reply,
    fault: Fault | None,
    pause: Pause,
) -> None:
    body = reply.body
    kind = fault.kind if fault is not None else None
    if kind == "malformed":
        # Looks like the start of a real answer, then stops mid-object: not JSON.
        body = body[: max(1, len(body) // 2)] if body.startswith(b"{") else b'{"id": "'
        resp.headers["Content-Type"] = "application/json"
    resp.content_length = len(body)
    await resp.prepare(request)
    if kind in ("cut", "stall") and fault is not None:
        half = len(body) // 2
        await resp.write(body[:half])
        if kind == "cut" or await pause(fault.seconds or 0.0):
            drop_connection(request, rst=False)
            return
        body = body[half:]
    await resp.write(body)
    await resp.write_eof()


async def _write_stream(
    request: web.BaseRequest,
    resp: web.StreamResponse,
    events: Sequence[StreamEvent],
    fault: Fault | None,
    pause: Pause,
    *,
    delay: float,
    error: StreamEvent | None,
) -> None:
    kind = fault.kind if fault is not None else None
    after = fault.after_events if fault is not None and fault.after_events is not None else 0
    if kind in ("cut", "stall", "stream-error"):
        # Always act before the last event, so the fault shows even on short streams.
        after = min(after, max(len(events) - 1, 0))
    bad = len(events) // 2 if kind == "malformed" else -1
    await resp.prepare(request)
    for i, event in enumerate(events):
        if i and delay > 0 and await pause(delay):
            drop_connection(request, rst=False)
            return
        if i == after and fault is not None:
            if kind == "cut":
                drop_connection(request, rst=False)
                return
            if kind == "stall" and await pause(fault.seconds or 0.0):
                drop_connection(request, rst=False)
                return
            if kind == "stream-error" and error is not None:
                await resp.write(error.render())
                await resp.write_eof()
                return
        await resp.write(event.broken() if i == bad else event.render())
    await resp.write_eof()
