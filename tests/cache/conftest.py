"""Fixtures of the cache tests: real adapters over HTTP against the shared emulator.

Redis comes from the resilience fixtures (``AIPORT_TEST_REDIS_URL``, else a private
``redis-server``, else a skip, or a failure with ``AIPORT_TEST_REQUIRE_REDIS=1``); each
test gets its own key namespace and never flushes the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from aiport._cache import MemoryCache, scope_digest
from aiport._cache._base import CacheBackend
from aiport._credentials import StaticCredential
from aiport._http import HttpClient
from aiport._provider import ModelProvider
from aiport.layers._cache import CacheLayer
from aiport.providers.anthropic import AnthropicProvider
from aiport.providers.openai import OpenAIProvider
from aiport.testing import Emulator
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.resilience.conftest import redis_server_factory, redis_url

__all__ = ["FakeClock", "redis_server_factory", "redis_url"]

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-sonnet-4-6"
EMBEDDING_MODEL = "text-embedding-3-small"
CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
EMBEDDINGS_PATH = "/v1/embeddings"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anthropic(emulator: Emulator, http: HttpClient) -> AnthropicProvider:
    return AnthropicProvider(
        name="anthropic",
        base_url=emulator.anthropic_base_url,
        credential=StaticCredential(ANTHROPIC_KEY),
        http=http,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeLayer = Callable[..., CacheLayer]


@pytest.fixture
def make_layer(openai: OpenAIProvider, clock: FakeClock) -> MakeLayer:
    """``make_layer(provider=openai, backend=MemoryCache(), ttl=60, enabled=True, ...)``."""

    def make(
        provider: ModelProvider | None = None,
        *,
        backend: CacheBackend | None = None,
        ttl: float = 60.0,
        enabled: bool | Callable[[str], bool] = True,
        **kwargs: Any,
    ) -> CacheLayer:
        inner = provider if provider is not None else openai
        key = ANTHROPIC_KEY if inner.name == "anthropic" else OPENAI_KEY
        return CacheLayer(
            inner,
            backend=backend if backend is not None else MemoryCache(),
            ttl=ttl,
            enabled=enabled if callable(enabled) else (lambda _model: enabled),
            scope=kwargs.pop("scope", scope_digest(inner.name, key)),
            clock=kwargs.pop("clock", clock),
            **kwargs,
        )

    return make


@pytest.fixture
def redis_namespace() -> str:
    """Keys of this test's own (tests share one Redis and never flush it)."""
    return f"aiport-test:{uuid.uuid4().hex[:12]}:"
