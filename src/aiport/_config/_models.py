"""The configuration tree: providers, their models, and the whole ``AgentConfig``.

``AgentConfig`` also answers the effective settings of a provider or model (model table
over provider table over top level) and checks, across settings, what no single field
can: aliases, model ids naming providers, backends needing ``redis_url`` (see
:mod:`aiport._config._references`).
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aiport._config._base import ConfigModel, ConfigModelT, validate_located
from aiport._config._fields import (
    HeaderName,
    HeaderValue,
    NonEmptyName,
    ProviderName,
    SecretSetting,
    check_secret_reference,
)
from aiport._config._policies import (
    CacheConfig,
    CircuitBreakerConfig,
    FallbackConfig,
    RateLimitConfig,
    RetryConfig,
    RouterConfig,
    TimeoutConfig,
)
from aiport._config._problems import CrossFieldError, Loc, Located
from aiport._config._references import reference_problems
from aiport._credentials import KeyRotation
from aiport._errors import ProviderNotFoundError
from aiport._secrets import BUILTIN_SCHEMES, SecretResolver, split_reference

__all__ = ["AgentConfig", "Capability", "ProviderConfig", "ProviderModelConfig"]

#: What a model can do. ``None`` in a model's ``capabilities`` means "infer or unknown".
Capability = Literal["chat", "streaming", "tools", "vision", "json_output", "embeddings", "images"]

_ADAPTER_TYPE_RE = re.compile(r"[a-z0-9_-]+")
#: Header names whose values ``repr`` masks.
_SENSITIVE_HEADER_RE = re.compile(
    r"authorization|cookie|key|token|secret|password|credential", re.IGNORECASE
)
_REDIS_SCHEMES = ("redis", "rediss", "unix")


class ProviderModelConfig(ConfigModel):
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


class ProviderConfig(ConfigModel):
    """One configured provider: which adapter talks to it, where, with which credentials."""

    class AuthConfig(ConfigModel):
        """A token provider: short-lived bearer tokens instead of a fixed API key.

        ``oauth2`` is the OAuth 2.0 client-credentials grant (``token_url``, ``client_id``,
        ``client_secret``); ``azure`` gets Microsoft Entra ID tokens through
        ``azure-identity`` (a service principal when ``tenant_id``, ``client_id`` and
        ``client_secret`` are set, else ``DefaultAzureCredential``); ``google`` uses the
        application-default credentials of ``google-auth``; ``plugin`` is a user's own
        :class:`~aiport.TokenProvider`, the entry point ``name`` of the group
        ``aiport.token_providers``, configured with ``options`` (and ``client_secret``).
        """

        type: Literal["oauth2", "azure", "google", "plugin"] = Field(
            description="The token provider: 'oauth2', 'azure', 'google' or 'plugin'."
        )
        name: str | None = Field(
            None,
            description=(
                "plugin: the name of the entry point, in the group 'aiport.token_providers', "
                "that gives the token provider."
            ),
        )
        options: dict[str, Any] = Field(
            default_factory=dict,
            description=(
                "plugin: keyword arguments the plug-in's class or function is called with "
                "(plain settings, shown by `aiport config check`: put secrets in "
                "client_secret)."
            ),
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
                "oauth2, azure and plugin: the client secret, as a reference (env:NAME, "
                "file:PATH, keyring:SERVICE/NAME...) resolved when the first token is fetched."
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
                check_secret_reference(value)
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

        @field_validator("name")
        @classmethod
        def _check_name(cls, value: str | None) -> str | None:
            if value is None:
                return None
            from aiport._tokens import PLUGIN_NAME_RE

            if not PLUGIN_NAME_RE.fullmatch(value):
                raise PydanticCustomError(
                    "plugin_name",
                    "must be an entry point name: lower-case letters, digits, '_', '.', '-'",
                )
            return value

        @model_validator(mode="after")
        def _check_type_fields(self) -> Self:
            if self.type != "plugin" and (self.name is not None or self.options):
                raise PydanticCustomError("auth_field", "name and options are for 'plugin' only")
            if self.type == "plugin":
                if self.name is None:
                    raise PydanticCustomError(
                        "auth_missing",
                        "a 'plugin' token provider needs name: the entry point in the group "
                        "'aiport.token_providers'",
                    )
                extra = [
                    name
                    for name in ("token_url", "client_id", "tenant_id", "audience")
                    if getattr(self, name) is not None
                ]
                extra += [
                    name
                    for name in ("scopes", "client_auth", "timeout")
                    if name in self.model_fields_set
                ]
                if extra:
                    raise PydanticCustomError(
                        "auth_field",
                        "a 'plugin' token provider takes its settings from options, not "
                        "from {fields}",
                        {"fields": ", ".join(extra)},
                    )
            elif self.type == "oauth2":
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
            "A token provider (oauth2, azure, google, or a plugin) giving short-lived bearer "
            "tokens, instead of api_key."
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
            check_secret_reference(value)
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


class AgentConfig(ConfigModel):
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
        check_secret_reference(value)
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
        located = reference_problems(self.model_dump(include={*_REFERENCE_FIELDS}))
        located += self._effective_problems()
        if located:
            raise CrossFieldError(located)
        return self

    @classmethod
    def _extra_problems(cls, data: Any) -> list[Located]:
        return reference_problems(data) if isinstance(data, Mapping) else []

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
        from aiport._config._loader import load_config  # the loader builds on this module

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
        from aiport._config._loader import load_config  # the loader builds on this module

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

    def _effective(
        self, cls: type[ConfigModelT], field: str, provider: str, model: str | None
    ) -> ConfigModelT:
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
        tables: list[ConfigModelT | None] = [getattr(provider_config, field)]
        if model_config is not None:
            tables.append(getattr(model_config, field))
        top: ConfigModelT = getattr(self, field)
        return _merge_tables(cls, top, tables)

    def _effective_problems(self) -> list[Located]:
        """Problems that only appear once a table is merged over the settings it inherits.

        (A provider setting ``initial_backoff`` above the top level's ``max_backoff``.) A
        model is only checked when its provider passed, so one mistake is reported once.
        """
        located: list[Located] = []

        def merged(loc: Loc, tables: list[RetryConfig | None]) -> bool:
            try:
                _merge_tables(RetryConfig, self.retry, tables)
            except CrossFieldError as exc:
                located.extend(
                    Located(loc + p.loc, f"{p.message}, once merged over the inherited settings")
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
    """The model of ``provider`` whose key, alias or upstream name is ``model``, if any."""
    found = provider.models.get(model)
    if found is not None:
        return found
    for candidate in provider.models.values():
        if model in candidate.aliases or (candidate.name is not None and candidate.name == model):
            return candidate
    return None


def _merge_tables(
    cls: type[ConfigModelT], top: ConfigModelT, overrides: Sequence[ConfigModelT | None]
) -> ConfigModelT:
    """``top`` with the settings each table in ``overrides`` sets explicitly laid over it."""
    data = top.model_dump()
    for table in overrides:
        if table is not None:
            data.update(table.model_dump(include=set(table.model_fields_set)))
    return validate_located(cls, data)


def _mask_header(name: str, value: str) -> str:
    """``value`` for a ``repr``: masked, but for its last 4 characters, if ``name`` is sensitive."""
    if not _SENSITIVE_HEADER_RE.search(name):
        return value
    return "****" + value[-4:] if len(value) >= 12 else "****"


def _mask_url(url: str) -> str:
    """``url`` for a ``repr``, its password (if any) masked."""
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
