"""An OAuth 2.0 token endpoint: ``POST /oauth/token``, the client-credentials grant.

Requests are form-encoded (``application/x-www-form-urlencoded``) with
``grant_type=client_credentials``; the client authenticates with an HTTP Basic header or
with ``client_id``/``client_secret`` form fields (RFC 6749 section 2.3.1). Answers are the
RFC's: ``{"access_token", "token_type": "Bearer", "expires_in"[, "scope"]}``, or an error
object ``{"error", "error_description"}`` (``invalid_request``, ``invalid_client``,
``unsupported_grant_type``...).

Issued tokens are bearer tokens the emulator's OpenAI and Anthropic routes accept until they
expire (``token_ttl`` seconds) or are revoked, even when the emulator was given a fixed
``api_keys`` list. ``issued`` counts the tokens handed out. To make the endpoint fail, use
the emulator's faults with ``path="/oauth/token"`` (a status fault answers the RFC error
body), or :meth:`OAuthRoutes.fail_next`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from ._faults import Call, Fault, Reply, SSEEvent

__all__ = ["TOKEN_PATH", "AcceptedKeys", "OAuthRoutes"]

#: The path of the token endpoint.
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a URL path)

_STATUS_ERRORS: Mapping[int, str] = {
    400: "invalid_request",
    401: "invalid_client",
    403: "unauthorized_client",
    429: "temporarily_unavailable",
}


class OAuthRoutes:
    """The token endpoint's state: registered clients, issued tokens, scheduled failures.

    Args:
        clients: ``client_id -> client_secret`` accepted; ``None`` accepts any non-empty
            pair.
        token_ttl: seconds an issued token lives (its ``expires_in``).
        clock: monotonic seconds, for expiry.
    """

    def __init__(
        self,
        *,
        clients: Mapping[str, str] | None = None,
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients: dict[str, str] | None = dict(clients) if clients is not None else None
        self.token_ttl = token_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> expiry (clock time)
        self._failures: list[tuple[int, str]] = []
        #: How many tokens were issued.
        self.issued = 0
        #: The client ids of the token requests, in order (``None``: no client identified).
        self.requests: list[str | None] = []

    # ------------------------------------------------------------------ test controls

    def fail_next(self, n: int = 1, *, status: int = 401, error: str | None = None) -> None:
        """Answer the next ``n`` token requests with an RFC 6749 error."""
        with self._lock:
            code = error or _STATUS_ERRORS.get(status, "server_error")
            self._failures.extend([(status, code)] * n)

    def revoke(self) -> None:
        """Make every issued token invalid (the provider routes answer 401 to them)."""
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        """Forget tokens, counts and scheduled failures."""
        with self._lock:
            self._tokens.clear()
            self._failures.clear()
            self.requests.clear()
            self.issued = 0

    def is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has neither expired nor been revoked."""
        with self._lock:
            expiry = self._tokens.get(token)
            return expiry is not None and self._clock() < expiry

    # ------------------------------------------------------------------ routing

    def handle(self, call: Call) -> Reply:
        if call.path != TOKEN_PATH:
            return self._error(404, "invalid_request", f"no such endpoint: {call.path}")
        if call.method != "POST":
            return self._error(405, "invalid_request", "the token endpoint takes POST only")
        content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return self._error(
                400, "invalid_request", "the body must be application/x-www-form-urlencoded"
            )
        try:
            form = dict(parse_qsl(call.raw.decode("utf-8"), strict_parsing=bool(call.raw)))
        except (UnicodeDecodeError, ValueError):
            return self._error(400, "invalid_request", "the form body cannot be parsed")
        client = self._client(call.headers.get("authorization", ""), form)
        with self._lock:
            self.requests.append(client[0] if client else None)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return self._error(failure[0], failure[1], "scheduled failure")
        if form.get("grant_type") != "client_credentials":
            return self._error(
                400, "unsupported_grant_type", "only grant_type=client_credentials is supported"
            )
        if client is None:
            return self._error(401, "invalid_client", "client authentication failed")
        client_id, secret = client
        if self.clients is not None and self.clients.get(client_id) != secret:
            return self._error(401, "invalid_client", "client authentication failed")
        token = "emu-at-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self._clock() + self.token_ttl
            self.issued += 1
        payload: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
        }
        if form.get("scope"):
            payload["scope"] = form["scope"]
        return Reply.json(200, payload, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    @staticmethod
    def _client(authorization: str, form: Mapping[str, str]) -> tuple[str, str] | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                return None
            client_id, secret = unquote(client_id), unquote(secret)
        else:
            client_id = form.get("client_id", "")
            secret = form.get("client_secret", "")
        if not client_id or not secret:
            return None
        return client_id, secret

    @staticmethod
    def _error(status: int, error: str, description: str) -> Reply:
        headers = {"Cache-Control": "no-store"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="aiport-emulator"'
        return Reply.json(status, {"error": error, "error_description": description}, headers)

    # The fault hooks every route family offers the emulator.

    def status_error(self, call: Call, fault: Fault) -> Reply:
        status = fault.code or 500
        error = fault.error_type or _STATUS_ERRORS.get(status, "server_error")
        reply = self._error(status, error, fault.message or f"HTTP {status}")
        if fault.retry_after is not None:
            reply.headers["Retry-After"] = fault.retry_after
        return reply

    def context_length_error(self, call: Call) -> Reply:
        return self._error(400, "invalid_request", "the request is too large")

    def stream_error_event(self, fault: Fault) -> SSEEvent:
        return SSEEvent(json.dumps({"error": "server_error"}))

    def stream_error_status(self, fault: Fault) -> Fault:
        return Fault.status(500, message=fault.message)


class AcceptedKeys(frozenset[str]):
    """The emulator's fixed API keys, plus the tokens its token endpoint issued (while valid)."""

    _oauth: OAuthRoutes

    def __new__(cls, keys: Iterable[str], oauth: OAuthRoutes) -> AcceptedKeys:
        accepted = super().__new__(cls, keys)
        accepted._oauth = oauth
        return accepted

    def __contains__(self, key: object) -> bool:
        return frozenset.__contains__(self, key) or (
            isinstance(key, str) and self._oauth.is_valid(key)
        )
