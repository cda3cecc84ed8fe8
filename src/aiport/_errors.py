"""Every error aiport raises to a user.

The hierarchy (each class keeps the stable ``code`` of its category)::

    AiportError
    ├── ConfigError                         CONFIG_ERROR
    └── ProviderError
        ├── ProviderNotFoundError           PROVIDER_NOT_FOUND
        ├── ProviderAuthError               PROVIDER_AUTH_ERROR
        ├── ProviderRateLimitError          PROVIDER_RATE_LIMIT_ERROR
        └── ProviderAPIError                PROVIDER_API_ERROR
            ├── InvalidRequestError             reason "invalid_request"
            │   └── ContextLengthExceededError  reason "context_length_exceeded"
            │       └── ContextWindowExceededError  reason "context_window_exceeded"
            ├── ContentFilterError              reason "content_filter"
            ├── ProviderTimeoutError            reason "timeout"
            ├── ProviderConnectionError         reason "connection"
            ├── MalformedResponseError          reason "malformed_response"
            ├── StreamInterruptedError          reason "stream_interrupted"
            └── ProviderCapabilityError         reason "unsupported_capability"
                └── CapabilityNotSupportedError reason "capability_not_supported"

``ContextWindowExceededError`` and ``CapabilityNotSupportedError`` are aiport's own
preflight rejections: the model's catalogue entry rules the request out, so nothing was
sent (no status code, not retryable).

Errors carry context (provider, model, HTTP status, provider error type, request id,
``retryable``, ``retry_after``, attempts) and never a credential: messages built from
provider bodies are scrubbed by the provider that raises them, and ``repr`` only shows
the fields listed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "AiportError",
    "CapabilityNotSupportedError",
    "ConfigError",
    "ConfigProblem",
    "ContentFilterError",
    "ContextLengthExceededError",
    "ContextWindowExceededError",
    "ErrorCode",
    "InvalidRequestError",
    "MalformedResponseError",
    "ProviderAPIError",
    "ProviderAuthError",
    "ProviderCapabilityError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderNotFoundError",
    "ProviderRateLimitError",
    "ProviderTimeoutError",
    "StreamInterruptedError",
]


class ErrorCode(StrEnum):
    """Stable, documented error codes. Branch on these, not on messages."""

    CONFIG_ERROR = "CONFIG_ERROR"
    PROVIDER_NOT_FOUND = "PROVIDER_NOT_FOUND"
    PROVIDER_AUTH_ERROR = "PROVIDER_AUTH_ERROR"
    PROVIDER_RATE_LIMIT_ERROR = "PROVIDER_RATE_LIMIT_ERROR"
    PROVIDER_API_ERROR = "PROVIDER_API_ERROR"


class AiportError(Exception):
    """Base of every exception aiport raises on purpose."""

    code: ClassVar[ErrorCode]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One invalid configuration value: where it is and what is wrong with it."""

    path: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.path or '<root>'}: {self.message}"


class ConfigError(AiportError):
    """The configuration is invalid. ``problems`` lists every bad value with its path."""

    code = ErrorCode.CONFIG_ERROR

    def __init__(self, problems: Sequence[ConfigProblem] | str) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(path="", message=problems)]
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        count = len(self.problems)
        header = f"invalid configuration ({count} problem{'s' if count != 1 else ''})"
        super().__init__(header + "".join(f"\n  - {p}" for p in self.problems))

    def __repr__(self) -> str:
        return f"ConfigError(problems={list(self.problems)!r})"


class ProviderError(AiportError):
    """An error from, or about, a model provider.

    Attributes:
        code: the stable category code.
        reason: a finer, stable reason within the category (``None`` when there is none).
        provider: the provider name as configured (``"openai"``).
        model: the model the call was for, when known.
        status_code: the HTTP status the provider answered with, when there was one.
        error_type: the provider's own error type or code (``"rate_limit_error"``).
        request_id: the provider's request id, for support tickets.
        retryable: whether sending the same request again may succeed.
        retry_after: seconds the provider asked us to wait, when it said so.
        attempts: how many attempts were made before this error was raised.
    """

    code: ClassVar[ErrorCode] = ErrorCode.PROVIDER_API_ERROR
    default_reason: ClassVar[str | None] = None
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
        reason: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.error_type = error_type
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts = attempts
        self.reason = reason if reason is not None else self.default_reason
        #: The provider's parsed error body (already scrubbed of credentials), if any.
        self.body = body

    def __str__(self) -> str:
        context = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("model", self.model),
                ("status", self.status_code),
                ("type", self.error_type),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        suffix = f" ({', '.join(context)})" if context else ""
        return f"[{self.code}] {self.message}{suffix}"

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.context().items())
        return f"{type(self).__name__}({self.message!r}, {fields})"

    def context(self) -> dict[str, Any]:
        """The error's context as a plain dict (what ``--json`` output and logs show)."""
        return {
            "code": str(self.code),
            "reason": self.reason,
            "provider": self.provider,
            "model": self.model,
            "status_code": self.status_code,
            "error_type": self.error_type,
            "request_id": self.request_id,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep errors picklable (multiprocessing, caches of failures) with their context.
        return (_rebuild_error, (type(self), self.message, self._state()))

    def _state(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("message", None)
        return state


def _rebuild_error(cls: type[ProviderError], message: str, state: dict[str, Any]) -> ProviderError:
    error = cls.__new__(cls)
    ProviderError.__init__(error, message)
    error.__dict__.update(state)
    return error


class ProviderNotFoundError(ProviderError):
    """No provider is registered under a name, or a model id resolves to none (or to several)."""

    code = ErrorCode.PROVIDER_NOT_FOUND

    def __init__(
        self,
        message: str,
        *,
        candidates: Iterable[str] = (),
        suggestions: Iterable[str] = (),
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        #: When a bare model id is known to several providers: the qualified ids to choose from.
        self.candidates: tuple[str, ...] = tuple(candidates)
        #: Close matches for a misspelled name or model id.
        self.suggestions: tuple[str, ...] = tuple(suggestions)


class ProviderAuthError(ProviderError):
    """Credentials are missing, cannot be resolved, or were refused (HTTP 401/403)."""

    code = ErrorCode.PROVIDER_AUTH_ERROR


class ProviderRateLimitError(ProviderError):
    """The provider (HTTP 429) or aiport's own limiter refused the call for now."""

    code = ErrorCode.PROVIDER_RATE_LIMIT_ERROR
    default_retryable = True


class ProviderAPIError(ProviderError):
    """Anything else the provider or the network did wrong."""

    code = ErrorCode.PROVIDER_API_ERROR


class InvalidRequestError(ProviderAPIError):
    """The provider rejected the request as invalid (HTTP 400, 404, 422...)."""

    default_reason = "invalid_request"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt (plus requested output) does not fit the model's context window."""

    default_reason = "context_length_exceeded"


class ContextWindowExceededError(ContextLengthExceededError):
    """Rejected before sending: the request cannot fit the model's known limits.

    Raised by aiport's preflight check (no network call was made) when the prompt
    certainly exceeds the model's context window, or the requested ``max_tokens``
    exceeds its output limit. As a ``ContextLengthExceededError`` it triggers
    ``context_length`` fallbacks like the provider's own rejection would.
    """

    default_reason = "context_window_exceeded"


class ContentFilterError(ProviderAPIError):
    """The provider refused the request or the output on content-policy grounds."""

    default_reason = "content_filter"


class ProviderTimeoutError(ProviderAPIError):
    """A connect, first-token, idle or total timeout passed."""

    default_reason = "timeout"
    default_retryable = True


class ProviderConnectionError(ProviderAPIError):
    """The connection could not be made, or broke before a response arrived."""

    default_reason = "connection"
    default_retryable = True


class MalformedResponseError(ProviderAPIError):
    """The provider answered with a body aiport could not parse."""

    default_reason = "malformed_response"
    default_retryable = True


class StreamInterruptedError(ProviderAPIError):
    """A stream ended before the provider signalled completion.

    ``partial_text`` holds the text delivered to the caller before the interruption.
    """

    default_reason = "stream_interrupted"
    default_retryable = True

    def __init__(self, message: str, *, partial_text: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.partial_text = partial_text


class ProviderCapabilityError(ProviderAPIError):
    """The provider (or model) does not offer the requested operation."""

    default_reason = "unsupported_capability"


class CapabilityNotSupportedError(ProviderCapabilityError):
    """Rejected before sending: the model's catalogue entry lacks a capability the
    request needs (tools, image input, JSON output, streaming, chat, embeddings, images).

    ``capability`` names it. Raised by aiport's preflight check; no network call was made.
    """

    default_reason = "capability_not_supported"

    def __init__(self, message: str, *, capability: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.capability = capability
