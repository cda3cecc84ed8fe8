"""Routing one call over deployments: load balancing, circuit breaking, fallbacks, streams.

The service hands every call to the ``Router``. It turns the model id into an ordered
list of *targets*: the deployments of a router (ordered by its strategy) or the one
resolved model, then the fallbacks (per call, or from the config), each expanded the
same way. Targets whose circuit is open are skipped; a failure whose kind is in
``fallback.on`` moves on to the next target once the provider's own retries are spent.

Streams are routed the same way until their first event reaches the caller. After
that a failure is never a quiet end: it raises ``StreamInterruptedError`` with the text
delivered so far or, with stream recovery on, continues the answer (an assistant
prefill where the model accepts one, so no token is delivered twice) or restarts it
cleanly after a ``RestartEvent`` that tells the caller to discard what it received.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from aiport._context import CacheControl, CallContext, call_scope, continuation, scoped_stream
from aiport._errors import (
    ContentFilterError,
    ContextLengthExceededError,
    InvalidRequestError,
    MalformedResponseError,
    ProviderAPIError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    StreamInterruptedError,
)
from aiport._health import DeploymentHealth
from aiport._replace import replaced
from aiport._types import (
    Attempt,
    Message,
    ModelCompletionOptions,
    ModelCompletionResponse,
    RestartEvent,
    StreamEvent,
    StreamFinishEvent,
    TextDeltaEvent,
    TextPart,
)

if TYPE_CHECKING:
    from aiport._config import FallbackTrigger, ProviderModelConfig
    from aiport._provider import ModelProvider
    from aiport._service import ProviderService

__all__ = ["ResolvedModel", "Router", "Target", "apply_defaults", "fallback_kind"]

ResultT = TypeVar("ResultT")
OptionsT = TypeVar("OptionsT", bound=BaseModel)
logger = logging.getLogger("aiport")

#: Call plans remembered at most (any ``provider:model`` id passes through, so the memo is
#: cleared when full rather than left to grow).
_MAX_PLANS = 1024


def fallback_kind(error: BaseException) -> FallbackTrigger | None:
    """The ``fallback.on`` kind of ``error`` (``None``: not a reason to fall back)."""
    if isinstance(error, StreamInterruptedError):
        return "stream_interrupted"
    if isinstance(error, ProviderRateLimitError):
        return "rate_limit"
    if isinstance(error, ContextLengthExceededError):
        return "context_length"
    if isinstance(error, ContentFilterError):
        return "content_filter"
    if isinstance(error, ProviderTimeoutError):
        return "timeout"
    if isinstance(error, ProviderConnectionError):
        return "connection"
    if isinstance(error, MalformedResponseError):
        return "malformed_response"
    if isinstance(error, ProviderAuthError):
        return "auth"
    if isinstance(error, ProviderAPIError):
        if error.reason == "circuit_open":
            return "circuit_open"
        if error.reason == "overloaded":
            return "overloaded"
        if error.reason == "server_error" or (error.status_code or 0) >= 500:
            return "server_error"
    return None


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Where a model id leads.

    Attributes:
        requested: the id as the caller wrote it.
        provider: the provider's configured name.
        model: the model name sent to the provider.
        config: the model's own settings, when the config has a table for it.
    """

    requested: str
    provider: str
    model: str
    config: ProviderModelConfig | None = None

    @property
    def qualified_id(self) -> str:
        """``provider:model``."""
        return f"{self.provider}:{self.model}"


def apply_defaults(options: OptionsT, resolved: ResolvedModel) -> OptionsT:
    """``options`` for the deployment ``resolved``: the upstream model name, and the
    model table's defaults (sampling settings the call left unset, provider options
    under the call's own)."""
    model_config = resolved.config
    if model_config is None:  # no table for the model: only the name changes
        return replaced(options, {"model": resolved.model})
    update: dict[str, Any] = {"model": resolved.model}
    if isinstance(options, ModelCompletionOptions):
        for field_name in ("temperature", "top_p", "max_tokens"):
            if (
                getattr(options, field_name) is None
                and getattr(model_config, field_name) is not None
            ):
                update[field_name] = getattr(model_config, field_name)
    if model_config.provider_options:
        current = getattr(options, "provider_options", {})
        update["provider_options"] = {**model_config.provider_options, **current}
    return replaced(options, update)


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment a call may be sent to."""

    resolved: ResolvedModel
    health: DeploymentHealth
    is_fallback: bool

    @property
    def key(self) -> str:
        """``provider:model``."""
        return self.resolved.qualified_id


class Router:
    """Routes the calls of one ``ProviderService``."""

    def __init__(self, service: ProviderService, clock: Callable[[], float]) -> None:
        self._service = service
        self._clock = clock
        self._health: dict[str, DeploymentHealth] = {}
        self._turns: dict[str, itertools.count[int]] = {}
        # Plans that cannot change (no router rotates or sorts them), by (model id,
        # fallbacks); valid for the config they were made from (it is frozen).
        self._plans: dict[tuple[str, object], tuple[Target, ...]] = {}
        self._plans_config: object = None

    # ------------------------------------------------------------------ planning

    def health(self, resolved: ResolvedModel) -> DeploymentHealth:
        """The health record of a deployment (created on first use)."""
        key = resolved.qualified_id
        health = self._health.get(key)
        if health is None:
            config = self._service.config.effective_circuit_breaker(resolved.provider)
            health = self._health.setdefault(key, DeploymentHealth(key, config, self._clock))
        return health

    def plan(self, model_id: str, fallbacks: Sequence[str] | bool | None) -> list[Target]:
        """The targets of a call to ``model_id``, in the order they will be tried."""
        return list(self._planned(model_id, fallbacks))

    def _planned(self, model_id: str, fallbacks: Sequence[str] | bool | None) -> tuple[Target, ...]:
        """``plan``, remembered when it cannot change: the config is frozen and a
        deployment's health record is made once, so only routers (which rotate and sort
        their deployments per call) make a plan that must be worked out again."""
        config = self._service.config
        if self._plans_config is not config:
            self._plans.clear()
            self._plans_config = config
        key = (
            model_id,
            fallbacks if fallbacks is None or isinstance(fallbacks, bool) else tuple(fallbacks),
        )
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        planned, varies = self._plan(model_id, fallbacks)
        targets = tuple(planned)
        if not varies:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = targets
        return targets

    def _plan(
        self, model_id: str, fallbacks: Sequence[str] | bool | None
    ) -> tuple[list[Target], bool]:
        """The targets, and whether another call could get others (a router is involved)."""
        routers = self._service.config.routers
        primary, configured = self._expand(model_id)
        targets = [Target(r, self.health(r), is_fallback=False) for r in primary]
        varies = model_id in routers
        enabled = self._service.config.fallback.enabled
        if fallbacks is False or (fallbacks is None and not enabled):
            return targets, varies
        chosen = configured if fallbacks is None or fallbacks is True else list(fallbacks)
        seen = {t.key for t in targets}
        for fallback_id in chosen:
            varies = varies or fallback_id in routers
            for resolved in self._expand(fallback_id)[0]:
                if resolved.qualified_id not in seen:
                    seen.add(resolved.qualified_id)
                    targets.append(Target(resolved, self.health(resolved), is_fallback=True))
        return targets, varies

    def _expand(self, model_id: str) -> tuple[list[ResolvedModel], list[str]]:
        """The deployments behind ``model_id`` (ordered) and its configured fallbacks."""
        router = self._service.config.routers.get(model_id)
        if router is None:
            resolved = self._service.resolve_model(model_id)
            fallbacks = list(resolved.config.fallbacks) if resolved.config else []
            return [resolved], fallbacks
        deployments = [self._service.resolve_model(d) for d in router.deployments]
        turn = next(self._turns.setdefault(model_id, itertools.count()))
        rotated = [deployments[(turn + i) % len(deployments)] for i in range(len(deployments))]
        if router.strategy == "least-busy":
            rotated.sort(key=lambda r: self.health(r).in_flight)
        elif router.strategy == "lowest-latency":
            # Unmeasured deployments first (0.0), so every one gets measured.
            rotated.sort(key=lambda r: self.health(r).latency or 0.0)
        return rotated, list(router.fallbacks)

    # ------------------------------------------------------------------ calls

    def _may_fall_back(self, error: ProviderError, failed: Target, rest: list[Target]) -> bool:
        kind = fallback_kind(error)
        if kind is None or kind not in self._service.config.fallback.on or not rest:
            return False
        if kind == "context_length":
            # Never resend an unchanged prompt to a window that is not larger.
            window = self._context_window(failed)
            rest[:] = [
                t
                for t in rest
                if t.resolved.model != failed.resolved.model
                and (window is None or (self._context_window(t) or 0) > window)
            ]
            return bool(rest)
        return True

    def _context_window(self, target: Target) -> int | None:
        known = self._service.known_models(target.resolved.provider).get(target.resolved.model)
        return known.context_window if known is not None else None

    def _context(
        self,
        model_id: str,
        priority: int,
        cache: CacheControl | None = None,
        preflight: bool | None = None,
    ) -> CallContext:
        context = CallContext(priority=priority, cache=cache, preflight=preflight)
        hooks = self._service.hooks
        if hooks.attempt:
            from aiport.layers._hooks import AttemptEvent

            async def emit(attempt: Attempt) -> None:
                for hook in hooks.attempt:
                    try:
                        result = hook(AttemptEvent(requested_model=model_id, attempt=attempt))
                        if inspect.isawaitable(result):
                            await result
                    except Exception:
                        # Observing a call must never break it.
                        logger.warning("aiport attempt hook %r failed", hook, exc_info=True)

            context.listeners.append(emit)
        return context

    @staticmethod
    def _next_available(targets: list[Target]) -> Target | None:
        """Take the next target whose circuit lets a call through.

        A deployment cooling after a 429 is passed over while a cool one remains, and
        used when none does (its rate limiter then waits for the Retry-After).
        """
        if len(targets) == 1:  # the common case: no choice to make
            only = targets[0]
            if not only.health.available():
                return None
            targets.clear()
            return only
        available = [t for t in targets if t.health.available()]
        if not available:
            return None
        chosen = next((t for t in available if t.health.cooling_for() == 0.0), available[0])
        targets.remove(chosen)
        return chosen

    def _all_open_error(self, targets: Sequence[Target], model_id: str) -> ProviderAPIError:
        wait = min((t.health.open_for() for t in targets), default=0.0)
        names = ", ".join(t.key for t in targets)
        return ProviderAPIError(
            f"every deployment for {model_id!r} is temporarily skipped after failures "
            f"(circuit open: {names}); next try in {wait:.1f}s",
            model=model_id,
            reason="circuit_open",
            retryable=True,
            retry_after=wait,
        )

    async def call(
        self,
        model_id: str,
        options: Any,
        run: Callable[[ModelProvider, Any], Awaitable[ResultT]],
        *,
        fallbacks: Sequence[str] | bool | None,
        priority: int,
        cache: CacheControl | None = None,
        preflight: bool | None = None,
    ) -> ResultT:
        """Run ``run(provider, options)`` on the first target that succeeds."""
        planned = self._planned(model_id, fallbacks)
        targets = list(planned)
        context = self._context(model_id, priority, cache, preflight)
        last_error: ProviderError | None = None
        with call_scope(context):
            while True:
                target = self._next_available(targets)
                if target is None:
                    if last_error is not None:
                        raise last_error
                    raise self._all_open_error(planned, model_id)
                context.has_alternatives = bool(targets) and any(
                    t.health.available() for t in targets
                )
                provider = self._service.get_provider(target.resolved.provider)
                attempt_options = apply_defaults(options, target.resolved)
                target.health.begin()
                started = self._clock()
                try:
                    result = await run(provider, attempt_options)
                except ProviderError as error:
                    target.health.failed(error)
                    last_error = error
                    if not self._may_fall_back(error, target, targets):
                        raise
                    continue
                except BaseException:
                    target.health.cancelled()
                    raise
                target.health.succeeded(self._clock() - started)
                return _with_attempts(result, context)

    # ------------------------------------------------------------------ streams

    async def stream(
        self,
        model_id: str,
        options: ModelCompletionOptions,
        *,
        fallbacks: Sequence[str] | bool | None,
        priority: int,
        recovery: bool,
        cache: CacheControl | None = None,
        preflight: bool | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Stream from the first target that starts; handle failures after the start."""
        planned = self._planned(model_id, fallbacks)
        targets = list(planned)
        context = self._context(model_id, priority, cache, preflight)
        delivered: list[str] = []  # text the caller holds (since the last restart)
        prefillable = True  # all delivered content is plain text, so it can be continued
        interrupted: ProviderError | None = None  # the mid-stream failure being recovered
        last_error: ProviderError | None = None
        recover_on: Target | None = None  # the deployment that gets the first recovery try
        restart_only: set[str] = set()  # deployments that refused a prefilled answer
        while True:
            target = recover_on or self._next_available(targets)
            recover_on = None
            if target is None:
                if interrupted is not None:
                    raise _interrupted(interrupted, "".join(delivered)) from interrupted
                if last_error is not None:
                    raise last_error
                raise self._all_open_error(planned, model_id)
            context.has_alternatives = bool(targets) and any(t.health.available() for t in targets)
            provider = self._service.get_provider(target.resolved.provider)
            attempt_options = apply_defaults(options, target.resolved)
            prefix = "".join(delivered) if interrupted is not None else ""
            use_prefill = (
                interrupted is not None
                and prefillable
                and bool(prefix.strip())
                and _supports_prefill(provider)
                and target.key not in restart_only
            )
            if interrupted is not None and not use_prefill:
                yield RestartEvent(
                    reason=f"{interrupted.code}: {interrupted.message}",
                    provider=target.resolved.provider,
                    model=target.resolved.model,
                )
                delivered, prefillable, prefix = [], True, ""
            # Providers refuse a prefill ending in whitespace: send it trimmed, and drop the
            # same whitespace from the start of the continuation (it was delivered already).
            prefilled = prefix.rstrip() if use_prefill else ""
            if use_prefill:
                attempt_options = _with_prefill(attempt_options, prefilled)
            overlap = prefix[len(prefilled) :] if use_prefill else ""
            target.health.begin()
            started = self._clock()
            first = True
            events = scoped_stream(context, provider.stream(attempt_options))
            try:
                # try/finally rather than ``contextlib.aclosing``: the same closing, two
                # coroutines less per stream.
                try:
                    following = events.__anext__
                    while True:
                        try:
                            received = await following()
                        except StopAsyncIteration:
                            break
                        if first:  # past the first event: skip the streams that hand on
                            following = continuation(events)
                        event: StreamEvent = received
                        if isinstance(received, TextDeltaEvent):
                            if overlap:
                                text = received.text
                                text = text[len(overlap) :] if text.startswith(overlap) else text
                                overlap = ""
                                if not text:
                                    continue
                                event = TextDeltaEvent(text=text)
                            delivered.append(event.text)  # type: ignore[union-attr]
                        elif received.type in ("tool-call-delta", "tool-call", "reasoning-delta"):
                            prefillable = False
                        elif isinstance(received, StreamFinishEvent):
                            response = _finished(received.response, prefilled, interrupted, context)
                            if response is not received.response:
                                event = replaced(received, {"response": response})
                        first = False
                        yield event
                finally:
                    await events.aclose()
            except ProviderError as error:
                target.health.failed(error)
                last_error = error
                if first:  # this attempt delivered nothing
                    if use_prefill and isinstance(error, InvalidRequestError):
                        # A model that rejects prefill must not turn a recoverable stream
                        # into an error: restart on the same deployment instead.
                        restart_only.add(target.key)
                        recover_on = target
                    elif interrupted is None and not self._may_fall_back(error, target, targets):
                        raise
                    continue
                if not recovery:
                    raise _interrupted(error, "".join(delivered)) from error
                if interrupted is None:
                    recover_on = target  # the same deployment gets the first recovery try
                interrupted = error
                continue
            except BaseException:
                target.health.cancelled()
                raise
            target.health.succeeded(self._clock() - started)
            return


def _supports_prefill(provider: ModelProvider) -> bool:
    return bool(getattr(provider, "supports_prefill", False))


def _with_prefill(options: ModelCompletionOptions, prefix: str) -> ModelCompletionOptions:
    messages = [*options.messages, Message(role="assistant", content=[TextPart(text=prefix)])]
    return options.model_copy(update={"messages": messages})


def _interrupted(error: ProviderError, partial: str) -> StreamInterruptedError:
    if isinstance(error, StreamInterruptedError):
        error.partial_text = partial
        return error
    interrupted = StreamInterruptedError(
        f"the stream broke after text was delivered: {error.message}",
        partial_text=partial,
        provider=error.provider,
        model=error.model,
        status_code=error.status_code,
        error_type=error.error_type,
        request_id=error.request_id,
        attempts=error.attempts,
    )
    interrupted.__cause__ = error
    return interrupted


def _finished(
    response: ModelCompletionResponse,
    prefilled: str,
    interrupted: ProviderError | None,
    context: CallContext,
) -> ModelCompletionResponse:
    update: dict[str, Any] = {}
    if context.attempts:
        update["attempts"] = list(context.attempts)
    if interrupted is not None:
        warning = f"the stream was recovered after an interruption ({interrupted.reason})"
        update["warnings"] = [*response.warnings, warning]
        if prefilled:
            parts = [TextPart(text=prefilled + response.text), *response.message.tool_calls]
            update["message"] = Message(role="assistant", content=parts)
    return replaced(response, update) if update else response


def _with_attempts(result: ResultT, context: CallContext) -> ResultT:
    if (
        not context.attempts
        or not isinstance(result, BaseModel)
        or "attempts" not in result.__dict__
    ):
        return result
    return replaced(result, {"attempts": list(context.attempts)})
