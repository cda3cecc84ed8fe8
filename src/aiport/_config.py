"""The configuration: Pydantic models of every setting, and the loader that layers them.

A configuration comes from, later layers winning (tables merge key by key, anything else is
replaced):

1. a file (``aiport.toml``/``aiport.yaml`` in the working directory, the file named by
   ``AIPORT_CONFIG``, or an explicit path) or a mapping;
2. the active *profile*: ``environments.<name>``, selected by the ``environment`` argument,
   else ``AIPORT_ENV``, else the ``environment`` setting;
3. ``AIPORT_*`` environment variables, ``__`` separating levels
   (``AIPORT_PROVIDERS__OPENAI__RETRY__MAX_ATTEMPTS=5``);
4. explicit ``overrides``.

Unknown options are errors, and every invalid value is reported at once, with its path and
the layer it came from, as one :class:`~aiport.ConfigError`. Secret settings (``api_key``,
``redis_url``) stay :class:`pydantic.SecretStr` and are never resolved at load time: see
:mod:`aiport._secrets`.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
)
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._credentials import KeyRotation
from ._errors import ConfigError, ConfigProblem, ProviderNotFoundError
from ._secrets import BUILTIN_SCHEMES, SecretResolver, split_reference

__all__ = [
    "AgentConfig",
    "CacheBackend",
    "CacheConfig",
    "Capability",
    "CircuitBreakerConfig",
    "FallbackConfig",
    "FallbackTrigger",
    "LimiterBackend",
    "ProviderConfig",
    "ProviderModelConfig",
    "RateLimitConfig",
    "RetryConfig",
    "RouteStrategy",
    "RouterConfig",
    "TimeoutConfig",
    "deep_merge",
    "env_overlay",
    "format_path",
    "load_config",
]

#: What a model can do. ``None`` in a model's ``capabilities`` means "infer or unknown".
Capability = Literal["chat", "streaming", "tools", "vision", "json_output", "embeddings", "images"]
#: Where cached responses are kept.
CacheBackend = Literal["memory", "sqlite", "redis"]
LimiterBackend = Literal["memory", "redis"]
RouteStrategy = Literal["round-robin", "least-busy", "lowest-latency"]
#: Kinds of failure after which the next model of a fallback list is tried.
FallbackTrigger = Literal[
    "rate_limit",
    "server_error",
    "overloaded",
    "timeout",
    "connection",
    "context_length",
    "malformed_response",
    "stream_interrupted",
    "auth",
    "content_filter",
    "circuit_open",
]
DEFAULT_FALLBACK_ON: tuple[FallbackTrigger, ...] = (
    "rate_limit",
    "server_error",
    "overloaded",
    "timeout",
    "connection",
    "context_length",
    "malformed_response",
    "stream_interrupted",
    "circuit_open",
)

#: The configuration files looked for in the working directory, in this order.
CONFIG_FILE_NAMES: tuple[str, ...] = ("aiport.toml", "aiport.yaml", "aiport.yml")
#: The environment variable prefix of configuration overrides.
ENV_PREFIX = "AIPORT_"
#: Environment variables with the prefix that are not settings.
# Variables read by other parts of aiport, not configuration settings.
_ENV_RESERVED = frozenset(
    {
        "AIPORT_CONFIG",
        "AIPORT_ENV",
        "AIPORT_KEYSTORE",
        "AIPORT_KEYSTORE_PASSPHRASE",
        "AIPORT_KEYSTORE_PATH",
    }
)
_ENV_RESERVED_PREFIX = "AIPORT_TEST_"

_PROVIDER_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_ADAPTER_TYPE_RE = re.compile(r"[a-z0-9_-]+")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PLAIN_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]+")
_SENSITIVE_HEADER_RE = re.compile(
    r"authorization|cookie|key|token|secret|password|credential", re.IGNORECASE
)
_REDIS_SCHEMES = ("redis", "rediss", "unix")

Loc = tuple[str | int, ...]


# -- field validators ---------------------------------------------------------------------


def _check_provider_name(name: str) -> str:
    if not _PROVIDER_NAME_RE.fullmatch(name):
        raise PydanticCustomError(
            "provider_name",
            "provider names may contain only letters, digits, '_', '.' and '-' "
            "(':' separates a provider from a model)",
        )
    return name


def _check_name(name: str) -> str:
    if not name.strip():
        raise PydanticCustomError("empty_name", "must not be empty")
    if name != name.strip():
        raise PydanticCustomError("name_whitespace", "must not start or end with whitespace")
    return name


def _check_header_name(name: str) -> str:
    if not _HEADER_NAME_RE.fullmatch(name):
        raise PydanticCustomError("header_name", "is not a valid HTTP header name")
    return name


def _check_header_value(value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise PydanticCustomError(
            "header_value", "an HTTP header value must not contain line breaks or NUL"
        )
    return value


ProviderName = Annotated[str, AfterValidator(_check_provider_name)]
NonEmptyName = Annotated[str, AfterValidator(_check_name)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]


def _check_secret_reference(value: SecretStr) -> None:
    """Reject empty secrets and built-in references that cannot work (never quoting the value)."""
    text = value.get_secret_value()
    if not text:
        raise PydanticCustomError("empty_secret", "must not be empty")
    parts = split_reference(text, BUILTIN_SCHEMES)
    if parts is None:
        if text != text.strip():
            raise PydanticCustomError(
                "secret_whitespace", "must not start or end with whitespace or a line break"
            )
        return
    scheme, rest = parts
    if not rest.strip():
        raise PydanticCustomError(
            "empty_reference", "the {scheme}: reference names nothing", {"scheme": scheme}
        )
    if scheme == "keyring" and "/" not in rest.strip("/"):
        raise PydanticCustomError(
            "keyring_reference", "keyring references take the form keyring:SERVICE/NAME"
        )


def _checked_secret(value: SecretStr) -> SecretStr:
    _check_secret_reference(value)
    return value


#: A secret setting inside a list (``api_keys``): each item checked, its problems located.
SecretSetting = Annotated[SecretStr, AfterValidator(_checked_secret)]


# -- the models ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Located:
    """A problem with its location as a tuple (the string path is derived from it)."""

    loc: Loc
    message: str


class _CrossFieldError(ConfigError):
    """Raised by model validators for problems across fields; carries their locations.

    It passes through pydantic untouched (it is not a ``ValueError``) and is turned into a
    plain :class:`ConfigError` by the entry points.
    """

    def __init__(self, located: Sequence[_Located]) -> None:
        self.located = tuple(located)
        super().__init__([ConfigProblem(format_path(p.loc), p.message) for p in self.located])


class _ConfigModel(BaseModel):
    """Common behaviour: frozen, unknown options forbidden, errors raised as ConfigError.

    Invalid input raises :class:`~aiport.ConfigError` (never pydantic's ``ValidationError``,
    whose text quotes input values, secrets included), raised outside the ``except`` block so
    that the pydantic error is not even kept as its context.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
            return
        except ValidationError as exc:
            located = _problems_of(type(self), exc, data)
        except _CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([_problem(p) for p in located])

    # Tell pydantic this ``__init__`` only wraps its own: nested models are then built by
    # pydantic-core directly, so the errors of every nested table are collected together.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Validate ``obj``; invalid input raises :class:`~aiport.ConfigError`."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            located = _problems_of(cls, exc, obj)
        except _CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([_problem(p) for p in located])

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Validate a JSON document; invalid input raises :class:`~aiport.ConfigError`."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            located = _problems_of(cls, exc, None)
        except _CrossFieldError as exc:
            located = list(exc.located)
        raise ConfigError([_problem(p) for p in located])

    @classmethod
    def _validate_located(cls, data: Any) -> Self:
        """Validate ``data``, raising :class:`_CrossFieldError` (problems with locations)."""
        try:
            return super().model_validate(data)
        except ValidationError as exc:
            located = _problems_of(cls, exc, data)
        raise _CrossFieldError(located)

    @classmethod
    def _extra_problems(cls, data: Any) -> list[_Located]:
        """Problems to report beside pydantic's when field validation fails (none here)."""
        return []


def _problems_of(cls: type[_ConfigModel], exc: ValidationError, data: Any) -> list[_Located]:
    """Every problem of a failed validation, with the model's own cross-field problems."""
    located = _located_from_validation_error(exc, cls)
    seen = {(p.loc, p.message) for p in located}
    located.extend(p for p in cls._extra_problems(data) if (p.loc, p.message) not in seen)
    return located


def _validate(cls: type[_T], data: Any) -> _T:
    """Validate ``data`` as ``cls``, raising :class:`_CrossFieldError` (with locations)."""
    return cls._validate_located(data)


def _problem(located: _Located, source: str | None = None) -> ConfigProblem:
    return ConfigProblem(path=format_path(located.loc), message=located.message, source=source)


class TimeoutConfig(_ConfigModel):
    """How long a call may take, in seconds. Every value must be greater than zero."""

    connect: float = Field(
        10.0, gt=0, allow_inf_nan=False, description="Seconds to open the TCP/TLS connection."
    )
    first_token: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds from sending the request to the response headers, or to the first "
            "event of a stream."
        ),
    )
    idle: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Longest gap, in seconds, between two events of a stream.",
    )
    total: float = Field(
        600.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds the whole call may take, reading the full response included.",
    )


class RetryConfig(_ConfigModel):
    """How failed calls are retried: exponential backoff with jitter, bounded in count and time."""

    max_attempts: int = Field(
        3, ge=1, description="Attempts in all, the first try included (1 means no retry)."
    )
    initial_backoff: float = Field(
        0.5, gt=0, allow_inf_nan=False, description="Seconds to wait before the first retry."
    )
    max_backoff: float = Field(
        30.0,
        gt=0,
        allow_inf_nan=False,
        description="Longest wait between two attempts, in seconds (at least initial_backoff).",
    )
    max_retry_after: float = Field(
        60.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Longest Retry-After, in seconds, that is honoured; a provider asking for more "
            "makes the call fail at once."
        ),
    )
    deadline: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds all attempts together may take; unset means no limit beyond them.",
    )
    budget_ratio: float = Field(
        0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description=(
            "Retries allowed as a share of first attempts (0.2: at most 20% extra load), "
            "so retries cannot snowball when a provider is down."
        ),
    )

    budget_window: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds of history the retry budget counts first attempts and retries over.",
    )
    budget_min_retries: int = Field(
        10,
        ge=0,
        description=(
            "Retries always allowed per budget window, so that a quiet service can still "
            "retry its occasional failure."
        ),
    )

    @field_validator("max_backoff")
    @classmethod
    def _backoff_order(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_backoff")
        if isinstance(initial, float) and value < initial:
            raise PydanticCustomError(
                "backoff_order",
                "must be at least initial_backoff ({initial})",
                {"initial": initial},
            )
        return value


class RateLimitConfig(_ConfigModel):
    """Client-side limits; calls over a limit wait in a queue for their turn."""

    requests_per_minute: int | None = Field(
        None, gt=0, description="Requests started per minute; unset means no limit."
    )
    tokens_per_minute: int | None = Field(
        None, gt=0, description="Tokens (input and output) per minute; unset means no limit."
    )
    max_concurrency: int | None = Field(
        None, gt=0, description="Calls in flight at once; unset means no limit."
    )
    max_queue_wait: float = Field(
        30.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Seconds a call may wait for its turn before failing with ProviderRateLimitError "
            "(0: fail at once when over a limit)."
        ),
    )
    backend: LimiterBackend = Field(
        "memory",
        description=(
            "Where the counters live: 'memory' (this process) or 'redis' (shared by every "
            "process and host; needs redis_url)."
        ),
    )
    on_backend_failure: Literal["fail_closed", "fail_open"] = Field(
        "fail_closed",
        description=(
            "When the Redis backend is unreachable: 'fail_closed' refuses calls with "
            "ProviderRateLimitError, 'fail_open' lets them through unlimited until it is back."
        ),
    )
    learn_from_headers: bool = Field(
        True,
        description=(
            "Tighten the limits from the providers' rate-limit headers and pause on a 429 "
            "until its Retry-After."
        ),
    )


class CircuitBreakerConfig(_ConfigModel):
    """When a deployment (provider + model) is skipped after failing, and for how long."""

    enabled: bool = Field(True, description="Skip failing deployments while their circuit is open.")
    failure_threshold: int = Field(
        5, ge=1, description="Consecutive failures that open the circuit."
    )
    error_rate: float | None = Field(
        0.5,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of failed calls over `window` that opens the circuit; unset: off.",
    )
    window: float = Field(
        30.0, gt=0, allow_inf_nan=False, description="Seconds the error rate is measured over."
    )
    min_calls: int = Field(
        10, ge=1, description="Calls in the window before the error rate is considered."
    )
    cooldown: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds an open circuit waits before letting one probe call through "
            "(half-open); a successful probe closes it."
        ),
    )


class FallbackConfig(_ConfigModel):
    """Which failures move a call on to the next model of its fallback list."""

    enabled: bool = Field(True, description="Use fallbacks (a call can also turn them off).")
    on: list[FallbackTrigger] = Field(
        default_factory=lambda: list(DEFAULT_FALLBACK_ON),
        description=(
            "Failure kinds that trigger a fallback once retries are exhausted; content "
            "filter refusals and auth errors are left out by default."
        ),
    )


class RouterConfig(_ConfigModel):
    """Several deployments behind one model id, balanced by a strategy."""

    deployments: list[str] = Field(
        min_length=1,
        description="Model ids served interchangeably ('openai:gpt-4o', 'mirror:gpt-4o').",
    )
    strategy: RouteStrategy = Field(
        "round-robin",
        description=(
            "How a deployment is picked: 'round-robin', 'least-busy' (fewest calls in "
            "flight) or 'lowest-latency' (smallest moving average)."
        ),
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Model ids tried, in order, when every deployment failed.",
    )


class CacheConfig(_ConfigModel):
    """The exact-match response cache (opt-in)."""

    enabled: bool = Field(False, description="Cache responses (can also be chosen per call).")
    backend: CacheBackend = Field(
        "memory",
        description=(
            "Where entries live: 'memory' (this process), 'sqlite' (a local file) or "
            "'redis' (shared; needs redis_url)."
        ),
    )
    path: NonEmptyName | None = Field(
        None,
        description="The SQLite file of the 'sqlite' backend; default: the user's cache directory.",
    )
    ttl: float = Field(
        3600.0, gt=0, allow_inf_nan=False, description="Seconds an entry stays valid."
    )
    max_entries: int = Field(
        10_000,
        gt=0,
        description=(
            "Entries kept before the least recently used are evicted (memory; the SQLite "
            "file drops those closest to expiry first)."
        ),
    )
    max_bytes: int = Field(
        128 * 1024 * 1024,
        gt=0,
        description=(
            "Bytes of keys and values the memory backend keeps before evicting the least "
            "recently used (an entry larger than this is not cached)."
        ),
    )
    redis_timeout: float = Field(
        0.02,
        gt=0,
        allow_inf_nan=False,
        description=(
            "Seconds a Redis cache operation may take (connecting included) before the call "
            "goes on without the cache; raise it for a distant Redis."
        ),
    )


class ProviderModelConfig(_ConfigModel):
    """One model of a provider: its names, fallbacks, limits, prices and call defaults."""

    name: NonEmptyName | None = Field(
        None,
        description=(
            "The model's name upstream, when it differs from its key here (an Azure "
            "deployment, a long versioned id)."
        ),
    )
    deployment: NonEmptyName | None = Field(
        None,
        description=(
            "Azure OpenAI: the deployment serving this model when it is not named like the "
            "model; the model id keeps picking prices and limits. Other providers ignore it."
        ),
    )
    description: str = Field("", description="Free text shown by `aiport models`.")
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names the model answers to; unique across the whole configuration.",
    )
    fallbacks: list[str] = Field(
        default_factory=list,
        description=(
            "Models tried in order when this one fails with a retryable error: "
            "'provider:model', an alias, or a bare model id."
        ),
    )
    context_window: int | None = Field(
        None, gt=0, description="Tokens the model accepts, prompt and output together."
    )
    max_output_tokens: int | None = Field(
        None, gt=0, description="Most tokens the model can produce in one response."
    )
    capabilities: list[Capability] | None = Field(
        None,
        description="What the model can do; unset means inferred from the provider or unknown.",
    )
    temperature: float | None = Field(
        None,
        ge=0,
        le=2,
        allow_inf_nan=False,
        description="Default sampling temperature when a call leaves it unset.",
    )
    top_p: float | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Default nucleus-sampling probability when a call leaves it unset.",
    )
    max_tokens: int | None = Field(
        None, gt=0, description="Default output-token limit when a call leaves it unset."
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Provider-specific request fields added to every call to this model.",
    )
    timeouts: TimeoutConfig | None = Field(
        None, description="Overrides the provider's timeouts, setting by setting."
    )
    retry: RetryConfig | None = Field(
        None, description="Overrides the provider's retry policy, setting by setting."
    )
    rate_limit: RateLimitConfig | None = Field(
        None, description="Limits of this model, setting by setting over the provider's."
    )
    input_price_per_million: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Price of a million input tokens, in USD."
    )
    output_price_per_million: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Price of a million output tokens, in USD."
    )
    cached_input_price_per_million: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Price of a million input tokens read from the provider's prompt cache.",
    )
    cache_write_price_per_million: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Price of a million input tokens written to the provider's prompt cache.",
    )
    reasoning_price_per_million: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Price of a million reasoning (thinking) tokens; unset: the output price.",
    )
    deprecated: datetime.date | None = Field(
        None, description="When the provider retires the model (YYYY-MM-DD)."
    )
    cache: bool | None = Field(
        None,
        description="Cache this model's answers; unset: as the cache table says (cache.enabled).",
    )

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens_fit(cls, value: int | None, info: ValidationInfo) -> int | None:
        limit = info.data.get("max_output_tokens")
        if value is not None and isinstance(limit, int) and value > limit:
            raise PydanticCustomError(
                "max_tokens_over_limit",
                "must not exceed max_output_tokens ({limit})",
                {"limit": limit},
            )
        return value


class ProviderConfig(_ConfigModel):
    """One configured provider: which adapter talks to it, where, with which credentials."""

    class AuthConfig(_ConfigModel):
        """A token provider: short-lived bearer tokens instead of a fixed API key.

        ``oauth2`` is the OAuth 2.0 client-credentials grant (``token_url``, ``client_id``,
        ``client_secret``); ``azure`` gets Microsoft Entra ID tokens through
        ``azure-identity`` (a service principal when ``tenant_id``, ``client_id`` and
        ``client_secret`` are set, else ``DefaultAzureCredential``); ``google`` uses the
        application-default credentials of ``google-auth``.
        """

        type: Literal["oauth2", "azure", "google"] = Field(
            description="The token provider: 'oauth2', 'azure' or 'google'."
        )
        token_url: str | None = Field(
            None,
            description=(
                "oauth2: the token endpoint (https; plain http only to a loopback address)."
            ),
        )
        client_id: str | None = Field(
            None, description="oauth2 and azure: the client (application) id."
        )
        client_secret: SecretStr | None = Field(
            None,
            description=(
                "oauth2 and azure: the client secret, as a reference (env:NAME, file:PATH, "
                "keyring:SERVICE/NAME...) resolved when the first token is fetched."
            ),
        )
        tenant_id: str | None = Field(None, description="azure: the directory (tenant) id.")
        scopes: list[str] = Field(
            default_factory=list,
            description=(
                "Scopes to ask for. Defaults: azure "
                "'https://cognitiveservices.azure.com/.default', google "
                "'https://www.googleapis.com/auth/cloud-platform', oauth2 none."
            ),
        )
        audience: str | None = Field(
            None, description="oauth2: the 'audience' parameter some token servers require."
        )
        client_auth: Literal["basic", "post"] = Field(
            "basic",
            description=(
                "oauth2: how the client authenticates to the token endpoint: an HTTP Basic "
                "header ('basic', the standard) or form fields ('post')."
            ),
        )
        refresh_skew: float = Field(
            60.0,
            ge=0,
            allow_inf_nan=False,
            description="Seconds before its expiry a token is replaced by a fresh one.",
        )
        timeout: float = Field(
            10.0, gt=0, allow_inf_nan=False, description="Seconds a token request may take."
        )

        @field_validator("client_secret")
        @classmethod
        def _check_client_secret(cls, value: SecretStr | None) -> SecretStr | None:
            if value is not None:
                _check_secret_reference(value)
            return value

        @field_validator("token_url")
        @classmethod
        def _check_token_url(cls, value: str | None) -> str | None:
            if value is None:
                return None
            from aiport._tokens import token_url_problem

            problem = token_url_problem(value)
            if problem is not None:
                raise PydanticCustomError("token_url", problem)
            return value

        @model_validator(mode="after")
        def _check_type_fields(self) -> Self:
            if self.type == "oauth2":
                missing = [
                    name
                    for name in ("token_url", "client_id", "client_secret")
                    if getattr(self, name) is None
                ]
                if missing:
                    raise PydanticCustomError(
                        "auth_missing",
                        "an 'oauth2' token provider needs token_url, client_id and "
                        "client_secret (missing: {missing})",
                        {"missing": ", ".join(missing)},
                    )
            elif self.type == "azure":
                if self.token_url is not None or self.audience is not None:
                    raise PydanticCustomError(
                        "auth_field", "token_url and audience are for 'oauth2' only"
                    )
                if self.client_secret is not None and (
                    self.client_id is None or self.tenant_id is None
                ):
                    raise PydanticCustomError(
                        "auth_missing",
                        "an 'azure' client_secret needs client_id and tenant_id as well",
                    )
            else:
                extra = [
                    name
                    for name in ("token_url", "client_id", "client_secret", "tenant_id", "audience")
                    if getattr(self, name) is not None
                ]
                if extra:
                    raise PydanticCustomError(
                        "auth_field",
                        "a 'google' token provider takes its identity from the "
                        "application-default credentials, not from {fields}",
                        {"fields": ", ".join(extra)},
                    )
            return self

    type: str = Field(
        description=(
            "The adapter: 'openai', 'anthropic', 'openai-compatible', or any registered name "
            "(lower-case letters, digits, '-' and '_')."
        )
    )
    description: str = Field("", description="Free text shown by `aiport providers`.")
    enabled: bool = Field(True, description="A disabled provider is configured but not used.")
    base_url: str | None = Field(
        None,
        description=(
            "The API's base URL (http or https, with a host); unset means the adapter's "
            "default. One trailing '/' is removed."
        ),
    )
    api_key: SecretStr | None = Field(
        None,
        description=(
            "The credential: a reference (env:NAME, file:PATH, keyring:SERVICE/NAME, or a "
            "registered scheme) resolved when first needed, or, discouraged, the key itself."
        ),
    )
    api_keys: list[SecretSetting] | None = Field(
        None,
        description=(
            "Several credentials of this provider, instead of api_key: each a reference or a "
            "literal like api_key, resolved when first needed. Calls are spread over them as "
            "key_rotation says; each key has its own rate-limit buckets."
        ),
    )
    key_rotation: KeyRotation = Field(
        "round-robin",
        description=(
            "How calls use the keys of api_keys: 'round-robin' (each call starts at the next "
            "key) or 'failover' (the first usable key, in order). In both, a key refused "
            "(401/403) is set aside for 5 minutes, a key answered with 429 rests until its "
            "Retry-After, and the call is retried at once with another key."
        ),
    )
    auth: AuthConfig | None = Field(
        None,
        description=(
            "A token provider (oauth2, azure, google) giving short-lived bearer tokens, "
            "instead of api_key."
        ),
    )
    api_version: str | None = Field(
        None, description="The API version to ask for (Anthropic '2023-06-01', Azure dates)."
    )
    organization: str | None = Field(None, description="The organisation id (OpenAI).")
    project: str | None = Field(None, description="The project id (OpenAI).")
    region: str | None = Field(
        None,
        description=(
            "The AWS region (Bedrock); unset: AWS_REGION, AWS_DEFAULT_REGION or the profile's."
        ),
    )
    aws_profile: str | None = Field(
        None,
        description="The AWS profile of the credential chain (Bedrock); unset: AWS_PROFILE.",
    )
    aws_access_key_id: SecretStr | None = Field(
        None,
        description=(
            "Bedrock: an explicit access key id instead of the AWS credential chain, as a "
            "reference (env:NAME, file:PATH, keyring:SERVICE/NAME...) or the value."
        ),
    )
    aws_secret_access_key: SecretStr | None = Field(
        None,
        description="Bedrock: the secret access key of aws_access_key_id (a reference).",
    )
    aws_session_token: SecretStr | None = Field(
        None,
        description="Bedrock: the session token of temporary access keys (a reference).",
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="Headers sent with every request to this provider."
    )
    max_connections: int = Field(
        100, gt=0, description="Most open connections in this provider's HTTP pool."
    )
    timeouts: TimeoutConfig | None = Field(
        None, description="Overrides the top-level timeouts, setting by setting."
    )
    retry: RetryConfig | None = Field(
        None, description="Overrides the top-level retry policy, setting by setting."
    )
    rate_limit: RateLimitConfig | None = Field(
        None, description="This provider's limits, setting by setting over the top level's."
    )
    circuit_breaker: CircuitBreakerConfig | None = Field(
        None, description="Overrides the top-level circuit_breaker table for this provider."
    )
    models: dict[NonEmptyName, ProviderModelConfig] = Field(
        default_factory=dict,
        description=(
            "Known models by id. Models not listed can still be called as 'provider:model'."
        ),
    )
    preflight_checks: bool | None = Field(
        None,
        description="Overrides the top-level preflight_checks for this provider's models.",
    )

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        if not _ADAPTER_TYPE_RE.fullmatch(value):
            raise PydanticCustomError(
                "adapter_type",
                "must be a non-empty adapter name of lower-case letters, digits, '-' and '_'",
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            valid = (
                parts.scheme in ("http", "https")
                and bool(parts.hostname)
                and not any(c.isspace() for c in value)
            )
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            valid = False
        if not valid:
            raise PydanticCustomError("base_url", "must be an http:// or https:// URL with a host")
        return value.removesuffix("/")

    @field_validator("api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    @classmethod
    def _check_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret_reference(value)
        return value

    @model_validator(mode="after")
    def _check_one_credential(self) -> Self:
        if self.api_key is not None and self.auth is not None:
            raise PydanticCustomError(
                "credential_conflict", "set either api_key or an auth table, not both"
            )
        keys = self.api_keys
        if keys is not None:
            if self.api_key is not None:
                raise PydanticCustomError(
                    "credential_conflict",
                    "set either api_key (one key) or api_keys (several), not both",
                )
            if self.auth is not None:
                raise PydanticCustomError(
                    "credential_conflict", "set either api_keys or an auth table, not both"
                )
            if not keys:
                raise PydanticCustomError(
                    "api_keys_empty", "api_keys must list at least one key (or leave it unset)"
                )
            seen: dict[str, int] = {}
            for index, key in enumerate(keys):
                first = seen.setdefault(key.get_secret_value(), index)
                if first != index:
                    raise PydanticCustomError(
                        "api_keys_duplicate",
                        "api_keys[{first}] and api_keys[{index}] are the same key",
                        {"first": first, "index": index},
                    )
        elif "key_rotation" in self.model_fields_set:
            raise PydanticCustomError(
                "key_rotation_alone", "key_rotation applies to api_keys only: set api_keys too"
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            if name == "headers" and isinstance(value, dict):
                yield name, {k: _mask_header(k, v) for k, v in value.items()}
            elif name == "base_url" and isinstance(value, str):
                yield name, _mask_url(value)
            else:
                yield name, value


class AgentConfig(_ConfigModel):
    """The whole configuration of a :class:`~aiport.ProviderService`.

    Build one with :func:`load_config` (files, profiles, environment variables, overrides),
    :meth:`from_file`, :meth:`from_env`, or directly from keyword arguments. Invalid input
    raises :class:`~aiport.ConfigError` listing every problem with its path.
    """

    environment: str | None = Field(
        None,
        description=(
            "The active profile, selecting the overlay environments.<name> (AIPORT_ENV and "
            "the loader's argument win over it)."
        ),
    )
    redis_url: SecretStr | None = Field(
        None,
        description=(
            "Redis for state shared by every process (rate limits, cache): a redis://, "
            "rediss:// or unix:// URL, or a secret reference (it may embed a password)."
        ),
    )
    providers: dict[ProviderName, ProviderConfig] = Field(
        default_factory=dict,
        description="Configured providers by name (letters, digits, '_', '.', '-').",
    )
    aliases: dict[NonEmptyName, str] = Field(
        default_factory=dict,
        description="Model aliases: name -> model id ('smart' -> 'openai:gpt-4o').",
    )
    default_model: str | None = Field(None, description="The model used when a call names none.")
    timeouts: TimeoutConfig = Field(
        default_factory=TimeoutConfig, description="Timeouts of every provider unless overridden."
    )
    retry: RetryConfig = Field(
        default_factory=RetryConfig, description="Retry policy of every provider unless overridden."
    )
    rate_limit: RateLimitConfig = Field(
        default_factory=RateLimitConfig,
        description="Limits of every provider unless overridden (each provider counts its own).",
    )
    cache: CacheConfig = Field(default_factory=CacheConfig, description="The response cache.")
    circuit_breaker: CircuitBreakerConfig = Field(
        default_factory=CircuitBreakerConfig,
        description="Circuit breaking of every deployment unless a provider overrides it.",
    )
    fallback: FallbackConfig = Field(
        default_factory=FallbackConfig, description="When fallback models are tried."
    )
    routers: dict[NonEmptyName, RouterConfig] = Field(
        default_factory=dict,
        description="Model ids served by several deployments (load balancing).",
    )
    stream_recovery: bool = Field(
        False,
        description=(
            "When a stream breaks after text was delivered: continue it (prefill where the "
            "model accepts it, else a clean restart announced by a 'restart' event) instead "
            "of raising StreamInterruptedError."
        ),
    )
    preflight_checks: bool = Field(
        True,
        description=(
            "Reject, before anything is sent, a request the model's known limits or "
            "capabilities rule out (too long for its context window, tools to a model "
            "without tools...). Models without a catalogue entry are never checked."
        ),
    )
    log_requests: bool = Field(
        False,
        description=(
            "Log request and response metadata (provider, model, status, tokens, latency) at "
            "INFO; message contents are never logged."
        ),
    )
    environments: dict[NonEmptyName, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Profiles: partial configurations merged over this one when their name is the "
            "active environment."
        ),
    )

    _source: str = PrivateAttr(default="arguments")
    _base_dir: Path | None = PrivateAttr(default=None)
    _env: Mapping[str, str] | None = PrivateAttr(default=None)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        _check_secret_reference(value)
        text = value.get_secret_value()
        if split_reference(text, BUILTIN_SCHEMES) is None:
            scheme, sep, _ = text.partition("://")
            if (sep and scheme not in _REDIS_SCHEMES) or (not sep and ":" not in text):
                raise PydanticCustomError(
                    "redis_url",
                    "must be a redis://, rediss:// or unix:// URL, or a secret reference",
                )
        return value

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        located = _reference_problems(self.model_dump(include={*_REFERENCE_FIELDS}))
        located += self._effective_problems()
        if located:
            raise _CrossFieldError(located)
        return self

    @classmethod
    def _extra_problems(cls, data: Any) -> list[_Located]:
        return _reference_problems(data) if isinstance(data, Mapping) else []

    def __eq__(self, other: object) -> bool:
        """Equal when every setting is equal; where the settings were loaded from is ignored."""
        if not isinstance(other, AgentConfig):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # holds dicts: not hashable

    # -- where it came from ---------------------------------------------------------------

    @property
    def source(self) -> str:
        """Where this configuration came from, e.g. ``"aiport.toml + environment variables"``."""
        return self._source

    @property
    def base_dir(self) -> Path | None:
        """The directory relative ``file:`` secret references start from (the config file's)."""
        return self._base_dir

    def secret_resolver(self) -> SecretResolver:
        """A resolver reading the environment and directory this configuration was loaded with.

        Register extra schemes (``keyring``, a vault...) on it before resolving.
        """
        return SecretResolver(env=self._env, base_dir=self._base_dir)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        environment: str | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> AgentConfig:
        """Load a TOML or YAML file, then the profile, ``AIPORT_*`` variables and overrides."""
        return load_config(path, environment=environment, env=env, overrides=overrides)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        environment: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> AgentConfig:
        """Configuration from the environment alone.

        Reads the file named by ``AIPORT_CONFIG`` if set (never a file found in the working
        directory), then ``AIPORT_*`` variables; without providers configured, the standard
        key variables (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``) add their providers.
        """
        environ = os.environ if env is None else env
        source: str | dict[str, Any] = environ.get("AIPORT_CONFIG") or {}
        return load_config(source, environment=environment, env=environ, overrides=overrides)

    # -- effective settings ---------------------------------------------------------------

    def effective_timeouts(self, provider: str, model: str | None = None) -> TimeoutConfig:
        """The timeouts of ``provider`` (and ``model``): model table > provider > top level.

        Each table overrides only the settings it sets. An unlisted ``model`` uses the
        provider's settings; an unknown ``provider`` raises ProviderNotFoundError.
        """
        return self._effective(TimeoutConfig, "timeouts", provider, model)

    def effective_retry(self, provider: str, model: str | None = None) -> RetryConfig:
        """The retry policy of ``provider`` (and ``model``); see :meth:`effective_timeouts`."""
        return self._effective(RetryConfig, "retry", provider, model)

    def effective_rate_limit(self, provider: str, model: str | None = None) -> RateLimitConfig:
        """The rate limits of ``provider`` (and ``model``); see :meth:`effective_timeouts`."""
        return self._effective(RateLimitConfig, "rate_limit", provider, model)

    def effective_circuit_breaker(self, provider: str) -> CircuitBreakerConfig:
        """The circuit breaker settings of ``provider`` (provider table > top level)."""
        return self._effective(CircuitBreakerConfig, "circuit_breaker", provider, None)

    def _effective(self, cls: type[_T], field: str, provider: str, model: str | None) -> _T:
        provider_config = self.providers.get(provider)
        if provider_config is None:
            raise ProviderNotFoundError(
                f"no provider named {provider!r} is configured",
                provider=provider,
                suggestions=difflib.get_close_matches(provider, list(self.providers), n=3),
            )
        model_config = None
        if model is not None:
            model_config = _find_model(provider_config, model.removeprefix(f"{provider}:"))
        tables: list[_T | None] = [getattr(provider_config, field)]
        if model_config is not None:
            tables.append(getattr(model_config, field))
        top: _T = getattr(self, field)
        return _merge_tables(cls, top, tables)

    def _effective_problems(self) -> list[_Located]:
        """Problems that only appear once a table is merged over the settings it inherits.

        (A provider setting ``initial_backoff`` above the top level's ``max_backoff``.) A
        model is only checked when its provider passed, so one mistake is reported once.
        """
        located: list[_Located] = []

        def merged(loc: Loc, tables: list[RetryConfig | None]) -> bool:
            try:
                _merge_tables(RetryConfig, self.retry, tables)
            except _CrossFieldError as exc:
                located.extend(
                    _Located(loc + p.loc, f"{p.message}, once merged over the inherited settings")
                    for p in exc.located
                )
                return False
            return True

        for pname, pconfig in self.providers.items():
            if pconfig.retry is not None and not merged(
                ("providers", pname, "retry"), [pconfig.retry]
            ):
                continue
            for mname, mconfig in pconfig.models.items():
                if mconfig.retry is not None:
                    merged(
                        ("providers", pname, "models", mname, "retry"),
                        [pconfig.retry, mconfig.retry],
                    )
        return located


_T = TypeVar("_T", bound=_ConfigModel)

_REFERENCE_FIELDS = (
    "providers",
    "aliases",
    "default_model",
    "cache",
    "redis_url",
    "routers",
    "rate_limit",
)


def _find_model(provider: ProviderConfig, model: str) -> ProviderModelConfig | None:
    found = provider.models.get(model)
    if found is not None:
        return found
    for candidate in provider.models.values():
        if model in candidate.aliases or (candidate.name is not None and candidate.name == model):
            return candidate
    return None


def _merge_tables(cls: type[_T], top: _T, overrides: Sequence[_T | None]) -> _T:
    """``top`` with the settings each table in ``overrides`` sets explicitly laid over it."""
    data = top.model_dump()
    for table in overrides:
        if table is not None:
            data.update(table.model_dump(include=set(table.model_fields_set)))
    return _validate(cls, data)


def _mask_header(name: str, value: str) -> str:
    if not _SENSITIVE_HEADER_RE.search(name):
        return value
    return "****" + value[-4:] if len(value) >= 12 else "****"


def _mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:****@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- problems -----------------------------------------------------------------------------


def format_path(loc: Sequence[str | int]) -> str:
    """The dotted path of a setting: ``providers.openai.models."gpt-4.1".fallbacks[0]``.

    Keys that are not plain words (letters, digits, ``_``, ``-``) are quoted as in TOML;
    list positions are written ``[n]``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if _PLAIN_SEGMENT_RE.fullmatch(part) else json.dumps(part, ensure_ascii=False)
        out += f".{text}" if out else text
    return out


def _located_from_validation_error(exc: ValidationError, cls: type[BaseModel]) -> list[_Located]:
    """Every error of ``exc`` as a located message; input values are never rendered."""
    located: list[_Located] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        loc: Loc = tuple(error["loc"])
        message = error["msg"]
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            message = f"invalid key: {message}"
        elif error["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            message = "unknown option" + _suggestion(cls, loc)
        elif error["type"] == "missing":
            message = "required setting is missing"
        located.append(_Located(loc, message))
    return located


def _suggestion(cls: type[BaseModel], loc: Loc) -> str:
    """``"; did you mean 'x'?"`` for a misspelt option at ``loc``, else ``""``."""
    owner = _type_at(cls, loc[:-1])
    if owner is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _type_at(cls: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found at ``loc`` below ``cls`` (following dict values and lists)."""
    current: Any = cls
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            continue
        origin, args = get_origin(current), get_args(current)
        if origin is dict and len(args) == 2:
            current = args[1]
        elif origin is list and args:
            current = args[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the interesting type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            candidates = [a for a in get_args(annotation) if a is not type(None)]
            if len(candidates) != 1:
                return annotation
            annotation = candidates[0]
        else:
            return annotation


def _reference_problems(data: Mapping[str, Any]) -> list[_Located]:
    """Problems across settings: aliases and the model ids that point at providers.

    Works on validated settings as well as on raw input (anything malformed is skipped, the
    field validation reports it), so these problems are reported along with field errors.
    """
    located: list[_Located] = []
    raw_providers = data.get("providers")
    providers: Mapping[Any, Any] = raw_providers if isinstance(raw_providers, Mapping) else {}
    names = [name for name in providers if isinstance(name, str)]
    defined: dict[str, Loc] = {}

    def check_alias(alias: Any, loc: Loc) -> None:
        if not isinstance(alias, str):
            return
        if not alias.strip():
            located.append(_Located(loc, "an alias must not be empty"))
        elif ":" in alias:
            located.append(
                _Located(loc, f"alias {alias!r} contains ':', which separates provider and model")
            )
        elif alias in names:
            located.append(_Located(loc, f"alias {alias!r} is also the name of a provider"))
        elif alias in defined:
            located.append(
                _Located(
                    loc, f"alias {alias!r} is already defined at {format_path(defined[alias])}"
                )
            )
        else:
            defined[alias] = loc

    def check_id(model_id: Any, loc: Loc) -> None:
        if not isinstance(model_id, str):
            return
        if not model_id.strip():
            located.append(_Located(loc, "a model id must not be empty"))
            return
        if model_id != model_id.strip():
            located.append(
                _Located(loc, f"model id {model_id!r} must not start or end with whitespace")
            )
            return
        provider, sep, model = model_id.partition(":")
        if not sep:
            return
        if provider not in names:
            known = ", ".join(repr(n) for n in sorted(names)) if names else "none"
            close = difflib.get_close_matches(provider, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            located.append(
                _Located(
                    loc,
                    f"model id {model_id!r} names provider {provider!r}, which is not configured "
                    f"(configured: {known}){hint}",
                )
            )
        elif not model:
            located.append(_Located(loc, f"model id {model_id!r} names no model after ':'"))

    for pname, provider in providers.items():
        models = provider.get("models") if isinstance(provider, Mapping) else None
        if not isinstance(models, Mapping):
            continue
        for mname, model in models.items():
            if not isinstance(model, Mapping):
                continue
            base: Loc = ("providers", pname, "models", mname)
            aliases = model.get("aliases")
            if isinstance(aliases, list | tuple):
                for i, alias in enumerate(aliases):
                    check_alias(alias, (*base, "aliases", i))
            fallbacks = model.get("fallbacks")
            if isinstance(fallbacks, list | tuple):
                for i, fallback in enumerate(fallbacks):
                    check_id(fallback, (*base, "fallbacks", i))

    top_aliases = data.get("aliases")
    if isinstance(top_aliases, Mapping):
        for alias, target in top_aliases.items():
            check_alias(alias, ("aliases", alias))
            check_id(target, ("aliases", alias))
    check_id(data.get("default_model"), ("default_model",))

    routers = data.get("routers")
    if isinstance(routers, Mapping):
        for rname, router in routers.items():
            check_alias(rname, ("routers", rname))
            if not isinstance(router, Mapping):
                continue
            for field in ("deployments", "fallbacks"):
                ids = router.get(field)
                if isinstance(ids, list | tuple):
                    for i, model_id in enumerate(ids):
                        check_id(model_id, ("routers", rname, field, i))

    cache = data.get("cache")
    if isinstance(cache, Mapping) and cache.get("backend") == "redis" and not data.get("redis_url"):
        located.append(_Located(("cache", "backend"), "the 'redis' backend needs redis_url"))
    for loc, table in _rate_limit_tables(data):
        if table.get("backend") == "redis" and not data.get("redis_url"):
            located.append(_Located((*loc, "backend"), "the 'redis' backend needs redis_url"))
    return located


def _rate_limit_tables(data: Mapping[str, Any]) -> list[tuple[Loc, Mapping[str, Any]]]:
    """Every rate_limit table of the configuration, with its location."""
    found: list[tuple[Loc, Mapping[str, Any]]] = []
    top = data.get("rate_limit")
    if isinstance(top, Mapping):
        found.append((("rate_limit",), top))
    providers = data.get("providers")
    if isinstance(providers, Mapping):
        for pname, provider in providers.items():
            if not isinstance(provider, Mapping):
                continue
            table = provider.get("rate_limit")
            if isinstance(table, Mapping):
                found.append((("providers", pname, "rate_limit"), table))
            models = provider.get("models")
            if isinstance(models, Mapping):
                for mname, model in models.items():
                    table = model.get("rate_limit") if isinstance(model, Mapping) else None
                    if isinstance(table, Mapping):
                        found.append((("providers", pname, "models", mname, "rate_limit"), table))
    return found


# -- layering -----------------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged over ``base`` into a new dict; neither input is modified.

    Where both hold a mapping under a key, the mappings are merged the same way; any other
    value of ``overlay`` (lists included) replaces the one in ``base``.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping):
            merged[key] = deep_merge(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


def env_overlay(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings held by ``AIPORT_*`` variables of ``env``, as a nested dict.

    ``AIPORT_A__B__C=value`` sets ``a.b.c`` (names lower-cased). Values starting with ``[``
    or ``{`` are JSON; others stay strings (validation converts ``"5"`` or ``"true"``).
    ``AIPORT_CONFIG``, ``AIPORT_ENV`` and ``AIPORT_TEST_*`` are not settings.

    Raises:
        ConfigError: a variable name with an empty level, or a value that is not valid JSON.
    """
    overlay, _, problems = _env_layer(env)
    if problems:
        raise ConfigError(problems)
    return overlay


def _env_layer(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[Loc, str], list[ConfigProblem]]:
    overlay: dict[str, Any] = {}
    variables: dict[Loc, str] = {}
    problems: list[ConfigProblem] = []
    for name in sorted(env):
        if (
            not name.startswith(ENV_PREFIX)
            or name in _ENV_RESERVED
            or name.startswith(_ENV_RESERVED_PREFIX)
        ):
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        loc: Loc = tuple(parts)
        if not all(parts):
            problems.append(
                ConfigProblem(
                    path=name,
                    message="an empty level in the variable name (use '__' between levels only)",
                    source="environment",
                )
            )
            continue
        value: Any = env[name]
        if value.lstrip()[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                problems.append(
                    ConfigProblem(
                        path=format_path(loc),
                        message=(
                            f"{name} is not valid JSON: {exc.msg} "
                            f"(line {exc.lineno}, column {exc.colno})"
                        ),
                        source="environment",
                    )
                )
                continue
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        overlay = deep_merge(overlay, nested)
        variables[loc] = name
    return overlay, variables, problems


@dataclass(frozen=True, slots=True)
class _Layer:
    data: Mapping[str, Any]
    label: str


def _has(data: Mapping[str, Any], loc: Loc) -> bool:
    current: Any = data
    for part in loc:
        if not isinstance(current, Mapping) or part not in current:
            return False
        current = current[part]
    return True


def _origin(loc: Loc, layers: Sequence[_Layer]) -> str | None:
    """The label of the layer a problem at ``loc`` most likely comes from.

    The last layer setting ``loc`` itself; else the first layer that created the nearest
    enclosing table (a missing setting belongs to whoever wrote the table without it).
    """
    for layer in reversed(layers):
        if loc and _has(layer.data, loc):
            return layer.label
    for size in range(len(loc) - 1, 0, -1):
        for layer in layers:
            if _has(layer.data, loc[:size]):
                return layer.label
    return layers[0].label if layers else None


def _plain(value: Any) -> Any:
    """Mappings and pydantic models (only the settings they set) as plain nested dicts."""
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_unset=True)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


# -- loading ------------------------------------------------------------------------------


def load_config(
    source: AgentConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cwd: Path | None = None,
) -> AgentConfig:
    """Load, layer and validate a configuration.

    Args:
        source: an :class:`AgentConfig` (returned as it is, with ``overrides`` applied if
            any); a mapping; the path of a ``.toml``, ``.yaml`` or ``.yml`` file; or ``None``:
            the file named by ``AIPORT_CONFIG``, else ``aiport.toml``/``aiport.yaml``/
            ``aiport.yml`` in ``cwd``, else no file.
        environment: the profile to apply (wins over ``AIPORT_ENV`` and the ``environment``
            setting).
        env: the environment variables to read; default ``os.environ``. Secret references
            (``env:NAME``) of the result are later resolved against the same mapping.
        overrides: settings laid over everything else.
        cwd: where to look for a configuration file, and the start of relative paths;
            default the current working directory.

    Raises:
        ConfigError: the file cannot be read or parsed, the profile is unknown, an
            ``AIPORT_*`` variable is malformed, or any setting is invalid (all are listed,
            each with its path and the layer it came from).
    """
    if isinstance(source, AgentConfig):
        return _apply_overrides(source, overrides) if overrides else source
    environ: Mapping[str, str] = os.environ if env is None else env
    base, label, base_dir = _read_source(source, environ, cwd)
    env_data, env_vars, env_problems = _env_layer(environ)
    if env_problems:
        raise ConfigError(env_problems)
    over = _plain(overrides) if overrides else {}
    if not isinstance(over, dict):
        raise ConfigError("overrides must be a mapping of settings")

    layers = [_Layer(base, label)]
    described = [label]

    # The active profile: the argument, AIPORT_ENV, then the setting (from any layer).
    unprofiled = deep_merge(deep_merge(base, env_data), over)
    name, name_source = _active_environment(environment, environ, unprofiled, base, label)
    profiles = unprofiled.get("environments")
    if name is not None and isinstance(profiles, Mapping) and profiles:
        if name not in profiles:
            known = ", ".join(repr(p) for p in sorted(map(str, profiles)))
            close = difflib.get_close_matches(name, [str(p) for p in profiles], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                [
                    ConfigProblem(
                        path="environment",
                        message=f"unknown environment {name!r} (known: {known}){hint}",
                        source=name_source,
                    )
                ]
            )
        overlay = profiles[name]
        if isinstance(overlay, Mapping):
            profile_label = f"{label} [environments.{name}]"
            problems = [
                ConfigProblem(
                    path=format_path(("environments", name, key)),
                    message=message,
                    source=profile_label,
                )
                for key, message in (
                    ("environment", "a profile cannot change the active environment"),
                    ("environments", "a profile cannot define profiles"),
                )
                if key in overlay
            ]
            if problems:
                raise ConfigError(problems)
            layers.append(_Layer(_plain(overlay), profile_label))
            described.append(f"environments.{name}")
    if env_data:
        layers.append(_Layer(env_data, "environment"))
        described.append("environment variables")
    if over:
        layers.append(_Layer(over, "overrides"))
        described.append("overrides")

    merged: dict[str, Any] = {}
    for layer in layers:
        merged = deep_merge(merged, layer.data)

    providers = merged.get("providers")
    if providers is None or (isinstance(providers, Mapping) and not providers):
        defaults = _default_providers(environ)
        if defaults:
            layers.append(_Layer({"providers": defaults}, "environment"))
            merged["providers"] = defaults
            described.append("standard key variables")
    if name is not None:
        merged["environment"] = name
        layers.append(_Layer({"environment": name}, name_source or label))

    try:
        config = _validate(AgentConfig, merged)
    except _CrossFieldError as exc:
        located = exc.located
    else:
        config._source = " + ".join(described)
        config._base_dir = base_dir
        config._env = env
        return config
    raise ConfigError([_sourced(p, layers, env_vars) for p in located])


def _sourced(
    located: _Located, layers: Sequence[_Layer], env_vars: Mapping[Loc, str]
) -> ConfigProblem:
    source = _origin(located.loc, layers)
    message = located.message
    if source == "environment":
        for size in range(len(located.loc), 0, -1):
            variable = env_vars.get(located.loc[:size])
            if variable is not None:
                message = f"{message} (set by {variable})"
                break
    return _problem(_Located(located.loc, message), source)


def _active_environment(
    argument: str | None,
    environ: Mapping[str, str],
    merged: Mapping[str, Any],
    base: Mapping[str, Any],
    label: str,
) -> tuple[str | None, str | None]:
    """The active profile name and a description of where it was chosen."""
    if argument:
        return argument, "argument"
    chosen = environ.get("AIPORT_ENV")
    if chosen:
        return chosen, "environment"
    setting = merged.get("environment")
    if isinstance(setting, str) and setting:
        return setting, label if base.get("environment") == setting else "environment"
    return None, None


def _default_providers(environ: Mapping[str, str]) -> dict[str, Any]:
    """A provider for every built-in type and preset whose standard key variable is set
    (``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ``GROQ_API_KEY``...), named like its type.

    A type that needs a base URL (Azure) is added only when its URL variable is set too.
    """
    from aiport._registry import builtin_types
    from aiport.providers._presets import preset_types

    providers: dict[str, Any] = {}
    for row in (*builtin_types(), *preset_types().values()):
        key_var = row.api_key_env
        if not key_var or not environ.get(key_var):
            continue
        url = environ.get(row.base_url_env) if row.base_url_env else None
        if row.requires_base_url and not url:
            continue
        provider: dict[str, Any] = {"type": row.name, "api_key": f"env:{key_var}"}
        if url:
            provider["base_url"] = url
        providers[row.name] = provider
    return providers


def _apply_overrides(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    data = deep_merge(config.model_dump(exclude_unset=True), _plain(overrides))
    layers = [_Layer(data, config.source), _Layer(_plain(overrides), "overrides")]
    try:
        result = _validate(AgentConfig, data)
    except _CrossFieldError as exc:
        located = exc.located
    else:
        result._source = f"{config.source} + overrides"
        result._base_dir = config.base_dir
        result._env = config._env
        return result
    raise ConfigError([_sourced(p, layers, {}) for p in located])


def _read_source(
    source: Mapping[str, Any] | str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    cwd: Path | None,
) -> tuple[dict[str, Any], str, Path | None]:
    """The first layer: its settings, its label, and the base directory of relative paths."""
    if isinstance(source, Mapping):
        return _plain(source), "mapping", cwd
    if source is None:
        named = environ.get("AIPORT_CONFIG")
        if named:
            source = named
        else:
            directory = cwd if cwd is not None else Path.cwd()
            for file_name in CONFIG_FILE_NAMES:
                candidate = directory / file_name
                if candidate.is_file():
                    return _read_file(candidate, str(candidate))
            return {}, "defaults", cwd
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if cwd is not None and not path.is_absolute():
            path = cwd / path
        return _read_file(path, os.fspath(source))
    raise ConfigError(
        f"cannot load a configuration from {type(source).__name__}: pass an AgentConfig, "
        "a mapping or a file path"
    )


def _read_file(path: Path, label: str) -> tuple[dict[str, Any], str, Path | None]:
    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(path="", message=message, source=label)])

    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise fail(
            f"unsupported configuration file type {suffix or '(no extension)'!r}: "
            "use .toml, .yaml or .yml"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise fail("configuration file not found") from None
    except IsADirectoryError:
        raise fail("is a directory, not a configuration file") from None
    except PermissionError:
        raise fail("configuration file cannot be read: permission denied") from None
    except OSError as exc:
        raise fail(f"configuration file cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (byte {exc.start})") from None

    data: object
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise fail(f"TOML syntax error: {exc}") from None
    else:
        data = _parse_yaml(text, fail)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise fail(f"the top level must be a table of settings, not {type(data).__name__}")
    return _plain(data), label, path.absolute().parent


def _parse_yaml(text: str, fail: Callable[[str], ConfigError]) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Built from the parts: str(exc) quotes the offending lines, which may hold a secret.
        where = ""
        if exc.problem_mark is not None:
            where = f" (at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1})"
        what = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise fail(f"YAML syntax error: {what or 'invalid document'}{where}") from None
    except yaml.YAMLError as exc:
        raise fail(f"YAML error: {type(exc).__name__}") from None
