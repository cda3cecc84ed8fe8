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

The modules, each building on the ones before it:

* ``_problems``: locating and wording problems (``format_path``);
* ``_fields``: checks of single settings (names, headers, secret references);
* ``_base``: the base model that raises ``ConfigError``;
* ``_policies``: timeouts, retry, rate limits, circuit breaker, fallback, routers, cache;
* ``_references``: checks across settings (aliases, model ids, ``redis_url``);
* ``_models``: ``ProviderModelConfig``, ``ProviderConfig`` and ``AgentConfig``;
* ``_layering``: merging layers and tracing a problem to its layer (``deep_merge``);
* ``_env``: settings from ``AIPORT_*`` variables (``env_overlay``);
* ``_loader``: reading files and profiles, and ``load_config``.
"""

from __future__ import annotations

from aiport._config._env import env_overlay
from aiport._config._layering import deep_merge
from aiport._config._loader import load_config
from aiport._config._models import (
    AgentConfig,
    Capability,
    ProviderConfig,
    ProviderModelConfig,
)
from aiport._config._models import _find_model as _find_model
from aiport._config._policies import (
    CacheBackend,
    CacheConfig,
    CircuitBreakerConfig,
    FallbackConfig,
    FallbackTrigger,
    LimiterBackend,
    RateLimitConfig,
    RetryConfig,
    RouterConfig,
    RouteStrategy,
    TimeoutConfig,
)
from aiport._config._problems import format_path

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
