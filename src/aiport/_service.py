"""``ProviderService``: the entry point. Resolves model ids, builds providers, routes calls.

The service owns what it creates (HTTP pools, the background loop of the sync API) and
releases it on ``close()`` / ``aclose()`` / leaving ``async with``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel, ValidationError

from aiport._context import CacheControl
from aiport._errors import (
    AiportError,
    ConfigError,
    InvalidRequestError,
    ProviderAPIError,
    ProviderNotFoundError,
)
from aiport._provider import LayerFactory, ModelProvider, wrap
from aiport._registry import ProviderContext, ProviderRegistry
from aiport._routing import ResolvedModel, Router
from aiport._stream import CompletionStream
from aiport._suggest import close_matches
from aiport._sync import LoopThread
from aiport._types import (
    ImageGenerationOptions,
    ImageGenerationResponse,
    ModelCapabilities,
    ModelCompletionOptions,
    ModelCompletionResponse,
    ModelEmbeddingOptions,
    ModelEmbeddingResponse,
    ProviderModel,
    StreamEvent,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from aiport._batch import BatchItemResult, BatchJob
    from aiport._cache import CacheBackend
    from aiport._config import (
        AgentConfig,
        LimiterBackend,
        ProviderConfig,
        ProviderModelConfig,
        RateLimitConfig,
    )
    from aiport._credentials import CredentialSource
    from aiport._errors import ProviderError
    from aiport._http import HttpClient, HttpTimeouts
    from aiport._limits import Limiter
    from aiport._secrets import SecretResolver
    from aiport._tokens import TokenProvider
    from aiport.layers._hooks import Hooks

__all__ = ["ProviderService", "ResolvedModel"]

OptionsT = TypeVar("OptionsT", bound=BaseModel)
_MAX_ALIAS_DEPTH = 8


class ProviderService:
    """One interface to every configured provider.

    Args:
        config: an ``AgentConfig``, a dict, or the path of a TOML/YAML file. ``None``
            loads ``aiport.toml`` (or ``$AIPORT_CONFIG``) if present, else the defaults
            plus environment variables.
        registry: the provider types available (the built-in ones by default).
        hooks: callbacks for call events (``service.hooks`` otherwise starts empty).
        layers: extra layers wrapped around every provider, outermost first, inside
            the hooks layer.
        environment: the config profile to use (overrides ``AIPORT_ENV``).
        env: environment variables to read instead of ``os.environ``.
        clock: a monotonic clock (latencies).
        token_providers: your own ``TokenProvider`` per configured provider name (which
            then has no ``api_key``, ``api_keys`` or ``auth``): its tokens are kept,
            refreshed before expiry (one refresh for all waiting calls) and after a 401,
            like the built-in ones'.

    Example:
        >>> async with ProviderService() as service:  # doctest: +SKIP
        ...     reply = await service.complete(model="openai:gpt-4o", messages="Hi")
    """

    def __init__(
        self,
        config: AgentConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        registry: ProviderRegistry | None = None,
        hooks: Hooks | None = None,
        layers: Sequence[LayerFactory] = (),
        environment: str | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        token_providers: Mapping[str, TokenProvider] | None = None,
    ) -> None:
        from aiport._config import load_config
        from aiport._secrets import SecretResolver

        self._env: Mapping[str, str] = os.environ if env is None else env
        self.config: AgentConfig = load_config(config, environment=environment, env=self._env)
        self.registry = registry or ProviderRegistry.default()
        if hooks is None:
            # Loaded with the first service, not with the import line (it brings the
            # event classes and the credentials module): docs/decisions.md 18.
            from aiport.layers._hooks import Hooks

            hooks = Hooks()
        self.hooks = hooks
        self._layers = tuple(layers)
        self._clock = clock
        self._resolver: SecretResolver = SecretResolver(
            env=self._env, base_dir=_config_base_dir(self.config)
        )
        self._providers: dict[str, ModelProvider] = {}
        self._http: dict[str, HttpClient] = {}
        self._known: dict[str, dict[str, ProviderModel]] = {}
        self._lock = threading.RLock()
        self._call_ids = itertools.count(1)
        self._runner = LoopThread()
        self._router = Router(self, clock)
        self._cache: CacheBackend | None = None
        self._limiters: dict[str, Limiter] = {}
        self._closed = False
        self._check_types()
        # Users' own token providers, given here or as plug-ins (imported now, so that a
        # broken one is a ConfigError at once); nothing to do, nothing imported, otherwise.
        self._token_providers: Mapping[str, TokenProvider] = {}
        if token_providers or any(
            p.auth is not None and p.auth.type == "plugin" for p in self.config.providers.values()
        ):
            from aiport._tokens import token_providers_for

            self._token_providers = token_providers_for(
                self.config, token_providers or {}, self._resolver
            )

    # ------------------------------------------------------------------ providers

    @property
    def _cache_backend(self) -> CacheBackend:
        """The response cache store, shared by every provider (made on first use)."""
        if self._cache is None:
            from aiport._cache import backend_from_config

            with self._lock:
                if self._cache is None:
                    redis_url = None
                    if self.config.cache.backend == "redis" and self.config.redis_url:
                        redis_url = self._resolver.resolve(
                            self.config.redis_url, what="redis_url"
                        ).get_secret_value()
                    self._cache = backend_from_config(self.config.cache, redis_url=redis_url)
        return self._cache

    def _check_types(self) -> None:
        from aiport._errors import ConfigProblem

        problems = []
        for name, provider in self.config.providers.items():
            if provider.type not in self.registry.types:
                suggestions = close_matches(provider.type, self.registry.names())
                hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
                problems.append(
                    ConfigProblem(
                        path=f"providers.{name}.type",
                        message=f"unknown provider type {provider.type!r}{hint} "
                        f"(known: {', '.join(sorted(self.registry.names()))})",
                    )
                )
            elif self.registry.types[provider.type].requires_base_url and not provider.base_url:
                problems.append(
                    ConfigProblem(
                        path=f"providers.{name}.base_url",
                        message=f"a provider of type {provider.type!r} needs a base_url",
                    )
                )
        if problems:
            raise ConfigError(problems)

    @property
    def provider_names(self) -> list[str]:
        """The names of the enabled providers."""
        return [name for name, cfg in self.config.providers.items() if cfg.enabled]

    def _provider_config(self, name: str) -> ProviderConfig:
        provider = self.config.providers.get(name)
        if provider is None or not provider.enabled:
            suggestions = close_matches(name, self.provider_names)
            hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
            known = ", ".join(self.provider_names) or "none configured"
            state = "is disabled" if provider is not None else "is not configured"
            raise ProviderNotFoundError(
                f"provider {name!r} {state}{hint} (providers: {known})",
                provider=name,
                suggestions=suggestions,
            )
        return provider

    def get_provider(self, name: str) -> ModelProvider:
        """The provider called ``name`` (built on first use, with its layers)."""
        self._check_open()
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        with self._lock:
            provider = self._providers.get(name)
            if provider is None:
                provider = self._build(name)
                self._providers[name] = provider
        return provider

    def _build(self, name: str) -> ModelProvider:
        # The layers load with the first provider, not with `import aiport`.
        from aiport._cache import enabled_for, scope_digest
        from aiport._credentials import KeyPool
        from aiport._http import HttpClient
        from aiport._limits import limit_scope
        from aiport.layers._batching import EmbeddingBatcher
        from aiport.layers._cache import CacheLayer
        from aiport.layers._catalogue import CatalogueLayer
        from aiport.layers._hooks import HooksLayer
        from aiport.layers._ratelimit import RateLimitLayer
        from aiport.layers._retry import RetryBudget, RetryLayer
        from aiport.layers._rotation import KeyRotationLayer

        config = self._provider_config(name)
        provider_type = self.registry.get(config.type)
        http = HttpClient(max_connections=config.max_connections)
        credential = self._credential(name, config)
        context = ProviderContext(
            name=name,
            config=config,
            agent_config=self.config,
            http=http,
            credential=credential,
            models=self.known_models(name),
            timeouts=self._timeouts(name, None),
            model_timeouts={
                model: self._timeouts(name, model)
                for model, model_config in config.models.items()
                if model_config.timeouts is not None
            },
            clock=self._clock,
            env=self._env,
            secrets=self._resolver,
        )
        adapter = provider_type.build(context)
        self._http[name] = http
        # Hooks outermost (they time the whole call), then the cache (a hit costs nothing
        # below it), then embedding batching, then retries (the only retry owner), then
        # rate limits (each retry waits for its own turn), then the caller's layers, then
        # the adapter. Several API keys: the key rotation between retries and rate limits
        # (each attempt picks a key, a refused key is replaced at once, each key has its
        # own buckets).
        pool = credential if isinstance(credential, KeyPool) else None
        limited: ModelProvider = RateLimitLayer(
            wrap(adapter, *self._layers),
            limits=self._limits_source(name),
            limiter=self._limiter(self.config.effective_rate_limit(name).backend),
            scope=limit_scope(name, _secret_now(credential)),
            per_key=pool is not None,
        )
        if pool is not None:
            limited = KeyRotationLayer(limited, pool=pool, hooks=self.hooks)
        retry = RetryLayer(
            limited,
            policy=lambda model: self.config.effective_retry(name, model),
            budget=RetryBudget.from_config(self.config.effective_retry(name)),
        )

        scope_memo: tuple[str, str] | None = None

        async def cache_scope() -> str:
            # Answers are shared only by callers with the same provider and key; the key
            # enters the digest, never the store. The digest of the last key is kept: a
            # key rarely changes, and hashing it on every call was a tenth of a cache hit.
            nonlocal scope_memo
            secret = (await credential.get()).get_secret_value() if credential else ""
            if scope_memo is None or scope_memo[0] != secret:
                scope_memo = (secret, scope_digest(name, secret))
            return scope_memo[1]

        # Concurrent embeddings coalesce into one request: inside the cache (only misses are
        # merged), outside retries (a failed batch is retried once, not once per caller).
        # No waiting window: calls issued in the same loop turn (a gather) merge, and a lone
        # call pays no added latency.
        batched = EmbeddingBatcher(retry, window=0.0)
        cached = CacheLayer(
            batched,
            backend=self._cache_backend,
            ttl=self.config.cache.ttl,
            enabled=enabled_for(self.config, name),
            scope=cache_scope,
        )
        # Preflight checks and costs once per call, inside the hooks (they see both).
        return HooksLayer(
            CatalogueLayer.for_provider(cached, context, provider_type),
            hooks=self.hooks,
            log_level=logging.INFO if self.config.log_requests else logging.DEBUG,
            clock=self._clock,
            call_ids=self._call_ids,
            track_keys=pool is not None,
        )

    def _limits_source(self, name: str) -> Callable[[str | None], RateLimitConfig | None]:
        """The rate limits of provider ``name``: its own for ``None``, a model's when it has
        a table of its own (else ``None``: the model shares the provider's buckets)."""
        from aiport._config import _find_model

        provider_config = self.config.providers[name]

        def limits(model: str | None) -> RateLimitConfig | None:
            if model is None:
                return self.config.effective_rate_limit(name)
            model_config = _find_model(provider_config, model)
            if model_config is None or model_config.rate_limit is None:
                return None
            return self.config.effective_rate_limit(name, model)

        return limits

    def _limiter(self, backend: LimiterBackend) -> Limiter:
        """The limiter of ``backend``, shared by every provider (buckets are per scope)."""
        limiter = self._limiters.get(backend)
        if limiter is None:
            from aiport._limits import create_limiter

            redis_url = None
            if backend == "redis" and self.config.redis_url is not None:
                redis_url = self._resolver.resolve(
                    self.config.redis_url, what="redis_url"
                ).get_secret_value()
            limiter = self._limiters.setdefault(
                backend, create_limiter(backend, redis_url=redis_url)
            )
        return limiter

    def _credential(self, name: str, config: ProviderConfig) -> CredentialSource | None:
        from aiport._credentials import build_credential

        return build_credential(
            name,
            config,
            self._resolver,
            default_env=self.registry.get(config.type).api_key_env,
            token_provider=self._token_providers.get(name),
        )

    def _timeouts(self, provider: str, model: str | None) -> HttpTimeouts:
        from aiport._http import HttpTimeouts

        effective = self.config.effective_timeouts(provider, model)
        return HttpTimeouts(
            connect=effective.connect,
            first_token=effective.first_token,
            idle=effective.idle,
            total=effective.total,
        )

    def validate_provider(self, name: str) -> bool:
        """Whether ``name`` is registered, its config is valid and its credentials resolve.

        Makes no network call and never raises.
        """
        try:
            provider = self.get_provider(name)
            self._runner.run(provider.check())
        except Exception:
            return False
        return True

    def known_models(self, provider: str) -> dict[str, ProviderModel]:
        """The models known for ``provider``: its type's catalogue plus its config tables."""
        cached = self._known.get(provider)
        if cached is not None:
            return cached
        config = self._provider_config(provider)
        models = self.registry.get(config.type).known_models(provider)
        catalogue = dict(models)
        for model_id, model_config in config.models.items():
            # Merge order: the built-in catalogue < the config. A key naming another upstream
            # model (`name`) starts from that model's catalogue row.
            known = catalogue.get(model_id)
            if known is None and model_config.name:
                from aiport._catalogue import find_model

                upstream = find_model(catalogue, model_config.name)
                if upstream is not None:
                    known = upstream.model_copy(update={"id": model_id, "aliases": ()})
            models[model_id] = _merge_model(provider, model_id, model_config, known)
        self._known[provider] = models
        return models

    def list_models(self) -> list[ProviderModel]:
        """Every known model of every enabled provider."""
        return [m for name in self.provider_names for m in self.known_models(name).values()]

    # ------------------------------------------------------------------ model ids

    def resolve_model(self, model_id: str) -> ResolvedModel:
        """Where ``model_id`` leads: ``"provider:model"``, an alias, or a bare model id.

        Raises:
            ProviderNotFoundError: unknown provider or model (with suggestions), or a
                bare id known to several providers (``candidates`` lists them).
        """
        return self._resolve(model_id, model_id, 0)

    def _resolve(self, requested: str, model_id: str, depth: int) -> ResolvedModel:
        if not model_id:
            raise ProviderNotFoundError("empty model id", model=requested)
        if depth > _MAX_ALIAS_DEPTH:
            raise ProviderNotFoundError(
                f"model alias {requested!r} does not resolve (alias loop?)", model=requested
            )
        target = self.config.aliases.get(model_id)
        if target is not None:
            return self._resolve(requested, target, depth + 1)
        provider, sep, model = model_id.partition(":")
        if sep and provider in self.config.providers:
            self._provider_config(provider)  # raises if disabled
            return self._qualified(requested, provider, model)
        for name in self.provider_names:
            for key, model_config in self.config.providers[name].models.items():
                if model_id in model_config.aliases:
                    return self._qualified(requested, name, key)
        owners = [name for name in self.provider_names if model_id in self.known_models(name)]
        if len(owners) == 1:
            return self._qualified(requested, owners[0], model_id)
        if owners:
            candidates = [f"{owner}:{model_id}" for owner in owners]
            raise ProviderNotFoundError(
                f"model {model_id!r} is offered by several providers; "
                f"choose one of {', '.join(candidates)}",
                model=requested,
                candidates=candidates,
            )
        raise self._unknown_model(requested, model_id, provider if sep else None)

    def _qualified(self, requested: str, provider: str, model: str) -> ResolvedModel:
        if not model:
            raise ProviderNotFoundError(
                f"model id {requested!r} names no model after the provider",
                provider=provider,
                model=requested,
            )
        model_config = self.config.providers[provider].models.get(model)
        upstream = model_config.name if model_config and model_config.name else model
        return ResolvedModel(requested, provider, upstream, model_config)

    def _unknown_model(
        self, requested: str, model_id: str, provider_part: str | None
    ) -> ProviderNotFoundError:
        known: list[str] = list(self.config.aliases)
        for name in self.provider_names:
            for key, model in self.known_models(name).items():
                known.extend((key, f"{name}:{key}", *model.aliases))
        suggestions = close_matches(model_id, known)
        if provider_part is not None:
            # "opnai:gpt-4o": the provider part is the likely typo.
            rest = model_id.partition(":")[2]
            close_providers = close_matches(provider_part, self.provider_names)
            if close_providers:
                suggestions = [f"{p}:{rest}" for p in close_providers]
        hint = f"; did you mean {suggestions[0]!r}?" if suggestions else ""
        providers = ", ".join(self.provider_names) or "none configured"
        return ProviderNotFoundError(
            f"no provider offers model {model_id!r}{hint} "
            f"(write 'provider:model' to pass any model name through; providers: {providers})",
            model=requested,
            suggestions=suggestions,
        )

    def get_provider_for_model(self, model_id: str) -> ModelProvider:
        """The provider that serves ``model_id``."""
        return self.get_provider(self.resolve_model(model_id).provider)

    # ------------------------------------------------------------------ calls

    def _prepare(
        self,
        options_type: type[OptionsT],
        options: OptionsT | Mapping[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> OptionsT:
        """The call's options, validated; ``model`` is still the id the caller wrote."""
        self._check_open()
        data: dict[str, Any]
        if options is None:
            data = kwargs
        elif isinstance(options, options_type):
            if not kwargs:
                return options
            data = options.model_dump(exclude_unset=True, by_alias=False)
            data.update(kwargs)
        elif isinstance(options, Mapping):
            data = {**options, **kwargs}
        else:
            raise TypeError(f"expected {options_type.__name__} or a mapping, got {type(options)}")
        model_id = data.get("model") or self.config.default_model
        if not model_id:
            raise InvalidRequestError("no model given (and no default_model configured)")
        data["model"] = model_id
        try:
            built = options_type.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(
                f"invalid {options_type.__name__}: {_describe_validation(exc)}",
                model=str(model_id),
                reason="invalid_options",
            ) from None
        return built

    async def complete(
        self,
        options: ModelCompletionOptions | Mapping[str, Any] | None = None,
        /,
        *,
        fallbacks: Sequence[str] | bool | None = None,
        priority: int = 0,
        cache: bool | CacheControl | None = None,
        preflight: bool | None = None,
        **kwargs: Any,
    ) -> ModelCompletionResponse:
        """Run a completion. Give an options object, or its fields as keywords.

        Args:
            fallbacks: model ids to try, in order, when the model fails (replacing the
                configured ones); ``False`` for none; ``None`` for the configured ones.
            priority: the call's place in rate-limit queues (higher first).
            cache: use the response cache for this call (``True``/``False``), or a
                ``CacheControl`` (skip the read, skip the write, a custom ttl);
                ``None``: as configured.
            preflight: check the request against the model's known limits and
                capabilities before sending it (``True``/``False``); ``None``: as
                configured (``preflight_checks``).
        """
        prepared = self._prepare(ModelCompletionOptions, options, kwargs)
        with _ErrorGuard(prepared.model):
            return await self._router.call(
                prepared.model,
                prepared,
                _run_complete,
                fallbacks=fallbacks,
                priority=priority,
                cache=_cache_control(cache),
                preflight=preflight,
            )

    def stream(
        self,
        options: ModelCompletionOptions | Mapping[str, Any] | None = None,
        /,
        *,
        fallbacks: Sequence[str] | bool | None = None,
        priority: int = 0,
        recovery: bool | None = None,
        cache: bool | CacheControl | None = None,
        preflight: bool | None = None,
        **kwargs: Any,
    ) -> CompletionStream:
        """Run a completion as a stream: iterate it with ``async for`` (or ``async with``).

        The last event is a ``StreamFinishEvent`` with the complete response, also
        available as ``stream.response`` afterwards. A failure before the first event is
        retried or falls back invisibly; after it, the stream raises
        ``StreamInterruptedError`` (with the text delivered so far) unless ``recovery``
        (default: the ``stream_recovery`` setting) is on, which continues the answer or
        restarts it after a ``RestartEvent``. See ``complete`` for the other arguments.
        """
        prepared = self._prepare(ModelCompletionOptions, options, kwargs)
        recover = self.config.stream_recovery if recovery is None else recovery

        events = self._router.stream(
            prepared.model,
            prepared,
            fallbacks=fallbacks,
            priority=priority,
            recovery=recover,
            cache=_cache_control(cache),
            preflight=preflight,
        )
        # The guard goes into the stream object rather than a generator around the
        # router's: one generator less for every event to pass through.
        return CompletionStream(events, guard=_ErrorGuard(prepared.model))

    async def embed(
        self,
        options: ModelEmbeddingOptions | Mapping[str, Any] | None = None,
        /,
        *,
        fallbacks: Sequence[str] | bool | None = None,
        priority: int = 0,
        cache: bool | CacheControl | None = None,
        preflight: bool | None = None,
        **kwargs: Any,
    ) -> ModelEmbeddingResponse:
        """Embed one text or many; vectors come back in input order."""
        prepared = self._prepare(ModelEmbeddingOptions, options, kwargs)
        with _ErrorGuard(prepared.model):
            return await self._router.call(
                prepared.model,
                prepared,
                _run_embed,
                fallbacks=fallbacks,
                priority=priority,
                cache=_cache_control(cache),
                preflight=preflight,
            )

    async def generate_image(
        self,
        options: ImageGenerationOptions | Mapping[str, Any] | None = None,
        /,
        *,
        fallbacks: Sequence[str] | bool | None = None,
        priority: int = 0,
        cache: bool | CacheControl | None = None,
        preflight: bool | None = None,
        **kwargs: Any,
    ) -> ImageGenerationResponse:
        """Generate images from a prompt."""
        prepared = self._prepare(ImageGenerationOptions, options, kwargs)
        with _ErrorGuard(prepared.model):
            return await self._router.call(
                prepared.model,
                prepared,
                _run_image,
                fallbacks=fallbacks,
                priority=priority,
                cache=_cache_control(cache),
                preflight=preflight,
            )

    async def complete_many(
        self,
        requests: Iterable[ModelCompletionOptions | Mapping[str, Any]],
        /,
        *,
        concurrency: int = 16,
        return_exceptions: bool = True,
        progress: Callable[[int, int], None] | None = None,
        **call_options: Any,
    ) -> list[ModelCompletionResponse | ProviderError]:
        """Run many completions with at most ``concurrency`` in flight; results in order.

        A failed item is its typed error in the list (or raised, with
        ``return_exceptions=False``); ``progress(done, total)`` follows along;
        ``call_options`` (``priority``, ``fallbacks``, ``cache``) apply to every call.
        """
        from aiport._bulk import complete_many

        return await complete_many(
            self,
            requests,
            concurrency=concurrency,
            return_exceptions=return_exceptions,
            progress=progress,
            **call_options,
        )

    def complete_many_sync(
        self,
        requests: Iterable[ModelCompletionOptions | Mapping[str, Any]],
        /,
        **kwargs: Any,
    ) -> list[ModelCompletionResponse | ProviderError]:
        """``complete_many`` for synchronous code."""
        return self._runner.run(self.complete_many(requests, **kwargs))

    # ------------------------------------------------------------------ provider batches

    async def submit_batch(
        self,
        model: str,
        requests: Sequence[ModelCompletionOptions | Mapping[str, Any]],
        *,
        custom_ids: Sequence[str] | None = None,
    ) -> BatchJob:
        """Submit completions to the provider's Batch API (half price, answers within 24 h)."""
        from aiport._batch import submit_batch

        return await submit_batch(self, model, requests, custom_ids=custom_ids)

    async def get_batch(self, provider_or_model: str, batch_id: str) -> BatchJob:
        """The current state of a submitted batch."""
        from aiport._batch import get_batch

        return await get_batch(self, provider_or_model, batch_id)

    async def cancel_batch(self, provider_or_model: str, batch_id: str) -> BatchJob:
        """Ask the provider to stop a batch."""
        from aiport._batch import cancel_batch

        return await cancel_batch(self, provider_or_model, batch_id)

    async def batch_results(
        self,
        provider_or_model: str,
        batch_id: str,
        *,
        custom_ids: Sequence[str] | None = None,
    ) -> list[BatchItemResult]:
        """The results of a finished batch, in input order, with a typed error per failure."""
        from aiport._batch import batch_results

        return await batch_results(self, provider_or_model, batch_id, custom_ids=custom_ids)

    async def wait_batch(
        self,
        provider_or_model: str,
        batch_id: str,
        *,
        poll_interval: float = 1.0,
        max_interval: float = 60.0,
        timeout: float | None = None,
    ) -> BatchJob:
        """Poll a batch, with growing jittered intervals, until it is done."""
        from aiport._batch import wait_batch

        return await wait_batch(
            self,
            provider_or_model,
            batch_id,
            poll_interval=poll_interval,
            max_interval=max_interval,
            timeout=timeout,
        )

    async def run_batch(
        self,
        model: str,
        requests: Sequence[ModelCompletionOptions | Mapping[str, Any]] = (),
        *,
        custom_ids: Sequence[str] | None = None,
        batch_id: str | None = None,
        on_submit: Callable[[BatchJob], object] | None = None,
        poll_interval: float = 1.0,
        max_interval: float = 60.0,
        timeout: float | None = None,
    ) -> list[BatchItemResult]:
        """Submit (or resume, given ``batch_id``), wait, and return the results in order."""
        from aiport._batch import run_batch

        return await run_batch(
            self,
            model,
            requests,
            custom_ids=custom_ids,
            batch_id=batch_id,
            on_submit=on_submit,
            poll_interval=poll_interval,
            max_interval=max_interval,
            timeout=timeout,
        )

    def run_batch_sync(
        self,
        model: str,
        requests: Sequence[ModelCompletionOptions | Mapping[str, Any]] = (),
        **kwargs: Any,
    ) -> list[BatchItemResult]:
        """``run_batch`` for synchronous code."""
        return self._runner.run(self.run_batch(model, requests, **kwargs))

    # ------------------------------------------------------------------ sync twins

    def complete_sync(
        self,
        options: ModelCompletionOptions | Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> ModelCompletionResponse:
        """``complete`` for synchronous code."""
        return self._runner.run(self.complete(options, **kwargs))

    def stream_sync(
        self,
        options: ModelCompletionOptions | Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> Iterator[StreamEvent]:
        """``stream`` for synchronous code: a plain iterator of the same events."""
        stream = self.stream(options, **kwargs)
        return self._runner.iterate(stream)

    def embed_sync(
        self,
        options: ModelEmbeddingOptions | Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> ModelEmbeddingResponse:
        """``embed`` for synchronous code."""
        return self._runner.run(self.embed(options, **kwargs))

    def generate_image_sync(
        self,
        options: ImageGenerationOptions | Mapping[str, Any] | None = None,
        /,
        **kwargs: Any,
    ) -> ImageGenerationResponse:
        """``generate_image`` for synchronous code."""
        return self._runner.run(self.generate_image(options, **kwargs))

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ProviderService is closed")

    async def _close_on_current_loop(self) -> None:
        for http in list(self._http.values()):
            await http.aclose()

    async def aclose(self) -> None:
        """Release every connection (on this loop and on the sync API's loop)."""
        if self._closed:
            return
        self._closed = True
        await self._close_providers()
        await self._close_on_current_loop()
        if self._runner.loop is not None:
            import asyncio

            await asyncio.to_thread(self._runner.stop, self._close_on_current_loop)

    def close(self) -> None:
        """Release every connection (from synchronous code)."""
        if self._closed:
            return
        self._runner.run(self._close_providers())
        self._closed = True
        self._runner.stop(self._close_on_current_loop)

    async def _close_providers(self) -> None:
        for provider in list(self._providers.values()):
            await provider.aclose()
        if self._cache is not None:
            await self._cache.aclose()
        for limiter in list(self._limiters.values()):
            await limiter.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ProviderService providers={self.provider_names!r}>"


# ---------------------------------------------------------------------- helpers


def _config_base_dir(config: AgentConfig) -> Path | None:
    base = getattr(config, "base_dir", None)
    return base if isinstance(base, Path) else None


def _merge_model(
    provider: str, model_id: str, config: ProviderModelConfig, known: ProviderModel | None
) -> ProviderModel:
    """The config table of ``model_id`` over its catalogue row ``known``, field by field:
    every value the table sets wins (built-in catalogue < config), the rest is kept."""
    base = known or ProviderModel(id=model_id, provider=provider)
    update: dict[str, Any] = {"aliases": tuple(config.aliases) or base.aliases}
    if config.description:
        update["description"] = config.description
    if config.capabilities is not None:
        update["capabilities"] = ModelCapabilities(**dict.fromkeys(config.capabilities, True))
    elif known is None:
        # A configured model of unknown kind: assume a chat model (the common case).
        update["capabilities"] = ModelCapabilities(chat=True, streaming=True)
    for field_name in (
        "context_window",
        "max_output_tokens",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "cache_write_price_per_million",
        "reasoning_price_per_million",
        "deprecated",
    ):
        value = getattr(config, field_name)
        if value is not None:
            update[field_name] = value
    return base.model_copy(update=update)


def _secret_now(credential: CredentialSource | None) -> str | None:
    """The credential's current secret if it resolves now without I/O (for bucket scopes)."""
    resolve_now = getattr(credential, "resolve_now", None)
    if resolve_now is None:
        return None
    try:
        secret: SecretStr = resolve_now()
    except AiportError:
        return None  # the call itself reports the missing credential
    return secret.get_secret_value()


def _cache_control(cache: bool | CacheControl | None) -> CacheControl | None:
    if cache is None or isinstance(cache, CacheControl):
        return cache
    return CacheControl(enabled=cache)


# What the router runs on a target. Plain functions returning the provider's coroutine
# (not coroutines themselves): the router awaits the provider's own, one frame less.


def _run_complete(
    provider: ModelProvider, options: ModelCompletionOptions
) -> Awaitable[ModelCompletionResponse]:
    return provider.complete(options)


def _run_embed(
    provider: ModelProvider, options: ModelEmbeddingOptions
) -> Awaitable[ModelEmbeddingResponse]:
    return provider.embed(options)


def _run_image(
    provider: ModelProvider, options: ImageGenerationOptions
) -> Awaitable[ImageGenerationResponse]:
    return provider.generate_image(options)


def _describe_validation(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(p) for p in error["loc"])
        parts.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(parts)


class _ErrorGuard:
    """Turn anything that is not an aiport error into a ``ProviderAPIError``.

    Adapters raise typed errors; this is the net under them, so a bug never reaches
    the caller as a bare ``KeyError`` (the original stays as ``__cause__``).
    """

    __slots__ = ("_model",)

    def __init__(self, model: str) -> None:
        self._model = model

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, (AiportError, GeneratorExit)):
            return
        if not isinstance(exc, Exception):
            return  # cancellation, KeyboardInterrupt: let them through
        raise ProviderAPIError(
            f"unexpected {type(exc).__name__} inside aiport while calling {self._model!r}",
            model=self._model,
            reason="internal_error",
        ) from exc
