"""Every provider base URL of the emulator reaches that provider's routes: a trivial
completion through ``ProviderService`` answers, served under the route table's prefix.

A base URL property added without a case here, or a prefix of ``_PROVIDER_ROUTES`` no
case reaches, fails the coverage test: the route table cannot break silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from aiport import ProviderService
from aiport.testing import Emulator
from aiport.testing._emulator import _PROVIDER_ROUTES
from tests.conftest import OPENAI_KEY


@dataclass(frozen=True)
class Route:
    """How to reach one provider of the emulator."""

    #: The ``Emulator`` property that gives the provider's base URL (or endpoint).
    prop: str
    #: The aiport provider type pointed at it.
    provider_type: str
    model: str
    #: What every request of this provider's paths starts with.
    path_prefix: str
    settings: dict[str, Any] = field(default_factory=dict)


ROUTES = [
    Route("openai_base_url", "openai", "gpt-4o-mini", "/v1/chat/completions"),
    Route("anthropic_base_url", "anthropic", "claude-3-5-haiku-latest", "/v1/messages"),
    Route("gemini_base_url", "gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash"),
    Route("azure_endpoint", "azure", "gpt-4o", "/openai/"),
    Route("mistral_base_url", "mistral", "mistral-small-latest", "/mistral/v1/chat/completions"),
    Route("cohere_base_url", "cohere", "command-a-03-2025", "/v2/chat"),
    Route("ollama_base_url", "ollama", "llama3.2", "/api/chat"),
    Route(
        "bedrock_endpoint",
        "bedrock",
        "amazon.nova-lite-v1:0",
        "/model/amazon.nova-lite-v1:0/converse",
        # A Bedrock API key (a bearer token) instead of SigV4 keys: the emulator accepts it.
        {"region": "us-east-1"},
    ),
]


def test_every_base_url_property_and_route_prefix_has_a_case() -> None:
    properties = {
        name
        for name, value in vars(Emulator).items()
        if isinstance(value, property) and name.endswith(("_base_url", "_endpoint"))
    }
    assert properties == {route.prop for route in ROUTES}
    for prefix, target in _PROVIDER_ROUTES:
        assert any(route.path_prefix.startswith(prefix) for route in ROUTES), (prefix, target)


@pytest.mark.parametrize("route", ROUTES, ids=[route.provider_type for route in ROUTES])
async def test_the_provider_of_each_base_url_answers(emulator: Emulator, route: Route) -> None:
    name = f"via-{route.provider_type}"
    settings = {
        "type": route.provider_type,
        "base_url": getattr(emulator, route.prop),
        "api_key": OPENAI_KEY,
        **route.settings,
    }
    config = {"retry": {"max_attempts": 1}, "providers": {name: settings}}
    async with ProviderService(config, env={}) as service:
        response = await service.complete(model=f"{name}:{route.model}", messages="Hi")
    assert response.text == "You said: Hi"
    assert response.provider == name
    assert response.usage.input_tokens > 0
    [request] = emulator.requests
    assert request.path.startswith(route.path_prefix)
